"""Thin handlers: validate, act (in a worker thread), publish. Idempotent on the image id.

Result messages get ids derived from the image's id, so a redelivered image (another worker,
a retry) yields the same result message, which consumers already dedupe by ``message_id``;
target ids are derived the same way, so a square is the same square however often it is found.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar
from uuid import UUID, uuid5

from processing import pipeline
from processing.imaging.holes import FoundHole
from processing.imaging.squares import FoundSquare
from processing.metrics import ProcessingMetrics
from processing.settings import ProcessingSettings
from proto import messages as m
from proto.bus.base import Bus
from proto.errors import CorruptImage, PermanentError

log = logging.getLogger("processing.handlers")
P = ParamSpec("P")
T = TypeVar("T")


class Handlers:
    def __init__(
        self, bus: Bus, settings: ProcessingSettings, metrics: ProcessingMetrics | None = None
    ) -> None:
        self.bus, self.settings, self.metrics = bus, settings, metrics

    def _count(self, kind: str, outcome: str, acquired: datetime | None = None) -> None:
        if self.metrics is not None:
            seconds = (datetime.now(UTC) - acquired).total_seconds() if acquired else None
            self.metrics.done(kind, outcome, seconds)

    def _extra(self, run_id: UUID | None) -> dict[str, str]:
        return {"run_id": str(run_id), "panel": "processing"}

    async def finders(self, message: m.Message) -> None:
        """``processing.finders``: squares on atlases, holes on square images."""
        if isinstance(message, m.AtlasAcquired):
            await self._squares(message)
        elif isinstance(message, m.SquareAcquired):
            await self._holes(message)

    async def _squares(self, e: m.AtlasAcquired) -> None:
        found = await self._find(
            "square", e.run_id, e.grid_id, e.atlas_id, e.image, pipeline.squares
        )
        await self.bus.publish(
            m.SquaresFound(
                message_id=uuid5(e.atlas_id, "squares.found"),
                run_id=e.run_id,
                grid_id=e.grid_id,
                atlas_id=e.atlas_id,
                squares=found,
            )
        )
        self._count("atlas", "ok", e.sent_at)

    async def _holes(self, e: m.SquareAcquired) -> None:
        found = await self._find("hole", e.run_id, e.grid_id, e.square_id, e.image, pipeline.holes)
        await self.bus.publish(
            m.HolesFound(
                message_id=uuid5(e.square_id, "holes.found"),
                run_id=e.run_id,
                grid_id=e.grid_id,
                square_id=e.square_id,
                holes=found,
            )
        )
        self._count("square", "ok", e.sent_at)

    async def _find(
        self,
        kind: Literal["square", "hole"],
        run_id: UUID,
        grid_id: UUID,
        parent_id: UUID,
        image: m.ImageRef,
        finder: Callable[[str, int], Sequence[FoundSquare | FoundHole]],
    ) -> tuple[m.Target, ...]:
        """Run a finder on ``image``; targets get ids derived from the parent image's id."""
        started = time.perf_counter()
        found = await self._guard(
            run_id, parent_id, image.path, finder, image.path, self.settings.fft_threads
        )
        targets = tuple(
            m.Target(
                target_id=uuid5(parent_id, f"{kind}-{i}"),
                kind=kind,
                grid_id=grid_id,
                parent_id=parent_id,
                y=f.y,
                x=f.x,
                size_px=f.size_px if isinstance(f, FoundSquare) else 2 * f.radius_px,
                cls=f.cls,
                score=f.score,
                ice_nm=f.ice_nm,
            )
            for i, f in enumerate(found)
        )
        good = sum(1 for t in targets if t.cls == "good")
        log.info(
            "%s: %d %ss (%d good) in %.2f s",
            Path(image.path).name,
            len(targets),
            kind,
            good,
            time.perf_counter() - started,
            extra=self._extra(run_id),
        )
        return targets

    async def exposure(self, e: m.ExposureAcquired) -> None:
        """``processing.images``: motion correction, CTF, ice thickness, PNGs."""
        started = time.perf_counter()
        result = await self._guard(
            e.run_id,
            e.exposure_id,
            e.movie.path,
            pipeline.exposure,
            e.movie.path,
            e.movie.pixel_size_a,
            e.dose_e_per_a2,
            self.settings.fft_threads,
        )
        seconds = time.perf_counter() - started
        await self.bus.publish(
            m.ExposureProcessed(
                message_id=uuid5(e.exposure_id, "exposure.processed"),
                run_id=e.run_id,
                exposure_id=e.exposure_id,
                ctf=result.ctf,
                drift_total_a=result.drift_total_a,
                ice_nm=result.ice_nm,
                thumbnail_path=str(result.thumbnail),
                spectrum_path=str(result.spectrum),
                seconds=seconds,
            )
        )
        self._count("exposure", "ok", e.sent_at)
        words = _ctf_words(result.ctf)
        log.info(
            "%s: %s, drift %.1f Å, ice %.0f nm (%.2f s)",
            Path(e.movie.path).name,
            words,
            result.drift_total_a or 0,
            result.ice_nm or 0,
            seconds,
            extra=self._extra(e.run_id),
        )

    async def _guard(
        self,
        run_id: UUID,
        image_id: UUID,
        path: str,
        fn: Callable[P, T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` in a thread. A corrupt file, or a computation that fails on it (the
        same input would fail again: retrying cannot help), is reported — an error line in the
        processing log and ``image.failed`` for the pages — and dead-lettered at once."""
        error: PermanentError
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except CorruptImage as exc:
            reason, error = exc.reason, exc
            log.error("%s", exc, extra=self._extra(run_id))
        except Exception as exc:
            reason = f"processing failed: {type(exc).__name__}: {exc}"
            error = PermanentError(f"{path}: {reason}")
            log.exception("%s: %s", Path(path).name, reason, extra=self._extra(run_id))
        self._count(kind_of(fn), "corrupt" if isinstance(error, CorruptImage) else "failed")
        await self.bus.publish(
            m.ImageFailed(
                message_id=uuid5(image_id, "image.failed"),
                run_id=run_id,
                image_id=image_id,
                path=path,
                reason=reason,
            )
        )
        raise error


def kind_of(fn: Callable[..., object]) -> str:
    return {"squares": "atlas", "holes": "square"}.get(getattr(fn, "__name__", ""), "exposure")


def _ctf_words(ctf: m.CtfResult | None) -> str:
    if ctf is None:
        return "no CTF"
    low = " (low confidence)" if ctf.low_confidence else ""
    d1, d2 = ctf.defocus1_a / 1e4, ctf.defocus2_a / 1e4
    return f"defocus {d1:.2f}/{d2:.2f} µm, fit {ctf.fit_resolution_a:.1f} Å{low}"
