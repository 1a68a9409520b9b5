"""Grids, atlases, squares, holes, exposures, targets and processing results."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from proto.messages.base import RunMessage
from proto.messages.optics import Detector, Optics
from proto.topology import COMMANDS, EVENTS

TargetKind = Literal["square", "hole"]
TargetStatus = Literal["queued", "acquiring", "done", "skipped", "removed", "failed"]
SquareClass = Literal["good", "thick", "empty", "broken", "cracked", "contaminated"]
HoleClass = Literal["good", "thick", "empty", "contaminated"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ImageRef(_Frozen):
    """Where an image lives and how to read it."""

    path: str
    pixel_size_a: float = Field(gt=0)
    shape: tuple[int, ...]
    preview_path: str | None = None
    """A PNG rendering for the pages (atlas and square images)."""


class Target(_Frozen):
    """A square or hole found by processing, positioned in its parent image (pixels)."""

    target_id: UUID
    kind: TargetKind
    grid_id: UUID
    parent_id: UUID
    y: float
    x: float
    size_px: float = Field(ge=0)
    cls: str
    score: float
    ice_nm: float | None = None
    selected: bool = False


class QueueItem(_Frozen):
    """One entry of a run's queue, as the queue panel shows it."""

    target_id: UUID
    kind: TargetKind
    grid_name: str
    label: str
    status: TargetStatus


# --- events: acquisition --------------------------------------------------------------------


class GridLoaded(RunMessage):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "grid.loaded"

    grid_id: UUID
    grid_name: str
    position: int


class GridFinished(RunMessage):
    """Screening of a grid is over (its queue ran out, or the operator moved on)."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "grid.finished"

    grid_id: UUID
    grid_name: str
    exposures: int = Field(ge=0)
    screened: bool = True
    """``False`` when the run took only the grid's atlas (an atlas-only plan, nothing
    acquired there): the grid stays to be screened by a later run, which reuses the atlas."""


class AtlasAcquired(RunMessage):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "atlas.acquired"

    grid_id: UUID
    atlas_id: UUID
    image: ImageRef


class SquareAcquired(RunMessage):
    """A square was imaged; the image's id is the square target's id."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "square.acquired"

    grid_id: UUID
    square_id: UUID
    image: ImageRef


class ExposureAcquired(RunMessage):
    """A movie was written and is handed to processing."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "exposure.acquired"

    grid_id: UUID
    hole_id: UUID
    exposure_id: UUID
    movie: ImageRef
    n_frames: int = Field(ge=1)
    dose_e_per_a2: float = Field(gt=0)
    optics: Optics | None = None
    """The microscope's optics when the movie was taken (``None`` from older senders:
    processing then assumes the defaults of :class:`~proto.messages.optics.Optics`)."""
    detector: Detector | None = None
    """The camera and how its frames are written (format, gain reference, EER grouping)."""


class QueueUpdated(RunMessage):
    """The run's queue as it stands now (the queue panel is structured, not a text log)."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "queue.updated"

    session_id: UUID
    items: tuple[QueueItem, ...]
    counts: dict[str, int]


# --- events: processing ---------------------------------------------------------------------


class SquaresFound(RunMessage):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "squares.found"

    grid_id: UUID
    atlas_id: UUID
    squares: tuple[Target, ...]


class HolesFound(RunMessage):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "holes.found"

    grid_id: UUID
    square_id: UUID
    holes: tuple[Target, ...]


class CtfResult(_Frozen):
    defocus1_a: float
    defocus2_a: float
    astig_angle_deg: float
    fit_resolution_a: float
    cc: float
    low_confidence: bool


class ExposureProcessed(RunMessage):
    """Motion correction, CTF and ice thickness of one exposure (PNGs beside the movie)."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "exposure.processed"

    exposure_id: UUID
    ctf: CtfResult | None
    drift_total_a: float | None = None
    ice_nm: float | None = None
    thumbnail_path: str | None = None
    spectrum_path: str | None = None
    seconds: float = Field(ge=0)


class ImageFailed(RunMessage):
    """An image could not be processed (corrupt, truncated); shown on the exposure in the UI."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "image.failed"

    image_id: UUID
    path: str
    reason: str


# --- commands: targets ----------------------------------------------------------------------


class AddTargets(RunMessage):
    """Queue these targets (squares or holes) on the running run."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "targets.add"

    target_ids: tuple[UUID, ...]
    requested_by: str
    targets: tuple[Target, ...] = ()
    """The targets themselves, so that a run knows those an earlier run of the session found
    (a hole on a square imaged before a restart)."""


class RemoveTargets(RunMessage):
    """Take these targets out of the run's queue."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "targets.remove"

    target_ids: tuple[UUID, ...]
    requested_by: str
