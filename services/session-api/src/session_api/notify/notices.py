"""From projected events to notices: what happened, in words, and which subscriptions hear it.

Most notices are one event each (a run ended, a pause prompt). Two are kept by a little state
here, per process: *disk* notices fire when a volume's level rises (ok → warning → critical,
not on every report), *processing failures* when more than N exposures of a run fail within M
minutes (once per window). *Run silent* comes from :mod:`session_api.notify.watch`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from proto import messages as m
from proto.api import NotifyEvent
from proto.states import ExitReason, RunState
from session_api.settings import NotifySettings

Level = Literal["info", "warning", "critical"]
DISK_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Notice:
    """One thing to tell people. ``events`` are the subscriptions that hear it (a run that
    ended ``locked`` is heard by *run ended* and by *scope locked*, once)."""

    events: frozenset[NotifyEvent]
    title: str
    text: str
    at: datetime
    level: Level = "info"
    microscope_id: str | None = None
    session_id: UUID | None = None
    run_id: UUID | None = None
    key: str = ""
    """Notices with the same key waiting for one destination collapse into the newest."""
    where: str = ""
    """``session alpha, run 2 on Krios 1``: filled in from the database before it is queued."""


def event_labels(s: NotifySettings) -> dict[NotifyEvent, str]:
    """What each event means, with this deployment's thresholds (for the settings page)."""
    return {
        "run_ended": "Run ended, with its exit reason",
        "pause_prompt": "Pause prompt waiting for an answer",
        "scope_locked": "Scope locked: a start found the microscope in use",
        "lease_lost": "Lease lost: the run stopped driving the scope",
        "disk_warning": "Disk warning (or worse) on the microscope's data volumes",
        "disk_critical": "Disk critical on the microscope's data volumes",
        "processing_failures": (
            f"Processing failures: more than {s.failures_n} exposures of a run failed "
            f"within {_minutes(s.failures_minutes)}"
        ),
        "run_silent": (
            f"Run silent: no heartbeat for {_seconds(s.silent_s)}, or no progress "
            f"for {_seconds(s.stalled_s)} while running"
        ),
    }


def _minutes(minutes: float) -> str:
    return f"{minutes:g} min"


def _seconds(s: float) -> str:
    return f"{s / 60:g} min" if s >= 120 else f"{s:g} s"


def run_ended(e: m.RunStateChanged) -> Notice | None:
    if e.state != RunState.ENDED:
        return None
    reason = e.exit_reason or ExitReason.FAILED
    events: set[NotifyEvent] = {"run_ended"}
    level: Level = "info" if reason in (ExitReason.COMPLETED, ExitReason.STOPPED) else "warning"
    title = f"Run ended: {reason}"
    if reason == ExitReason.LOCKED:
        events.add("scope_locked")
        title = "Scope locked: the run did not start"
    elif reason == ExitReason.LOST:
        events.add("lease_lost")
        level = "critical"
    return Notice(
        frozenset(events),
        title,
        e.detail or f"The run ended {reason}.",
        e.sent_at,
        level,
        microscope_id=e.microscope_id,
        session_id=e.session_id,
        run_id=e.run_id,
        key=f"ended:{e.run_id}",
    )


def pause_prompt(e: m.DecisionRequested) -> Notice | None:
    if e.reprompt_reason is not None:
        return None  # asked again at once after an answer: someone is at the page
    if e.cause == "disk_low":
        text = f"The run paused on grid {e.grid_name}: a data volume is nearly full."
    else:
        text = f"Grid {e.grid_name} has no more targets: continue it or go to the next grid."
    return Notice(
        frozenset({"pause_prompt"}),
        "Pause prompt waiting",
        text,
        e.sent_at,
        "warning",
        session_id=e.session_id,
        run_id=e.run_id,
        key=f"prompt:{e.run_id}:{e.grid_id}",
    )


def lease_lost(e: m.LeaseLost) -> Notice:
    return Notice(
        frozenset({"lease_lost"}),
        "Lease lost",
        f"The run lost the lease of {e.holder.microscope_id}: {e.reason}",
        e.sent_at,
        "critical",
        microscope_id=e.holder.microscope_id,
        session_id=e.holder.session_id,
        run_id=e.holder.run_id,
        key=f"lost:{e.holder.run_id}",
    )


@dataclass
class DiskLevels:
    """The level of every volume last reported; a notice when one rises."""

    levels: dict[tuple[str, str], str] = field(default_factory=dict)

    def seed(self, microscope_id: str, volumes: list[m.VolumeStatus]) -> None:
        for v in volumes:
            self.levels[microscope_id, v.name] = v.level

    def report(self, e: m.MicroscopeReported) -> list[Notice]:
        out = []
        for v in e.volumes:
            before = self.levels.get((e.microscope_id, v.name), "ok")
            self.levels[e.microscope_id, v.name] = v.level
            if DISK_RANK[v.level] <= DISK_RANK[before]:
                continue
            critical = v.level == "critical"
            events: frozenset[NotifyEvent] = frozenset(
                {"disk_warning", "disk_critical"} if critical else {"disk_warning"}
            )
            out.append(
                Notice(
                    events,
                    f"Disk {v.level} on {e.name}",
                    f"Volume {v.name} ({v.path}) is {v.used_fraction:.0%} full, "
                    f"{v.free_bytes / 1e9:.1f} GB free.",
                    e.sent_at,
                    "critical" if critical else "warning",
                    microscope_id=e.microscope_id,
                    key=f"disk:{e.microscope_id}:{v.name}",
                )
            )
        return out


@dataclass
class FailureWindow:
    """Exposures of each run that failed processing, within the last ``minutes``."""

    n: int
    minutes: float
    times: dict[UUID, deque[datetime]] = field(default_factory=dict)
    told: dict[UUID, datetime] = field(default_factory=dict)

    def failed(self, e: m.ImageFailed) -> Notice | None:
        window = timedelta(minutes=self.minutes)
        times = self.times.setdefault(e.run_id, deque())
        times.append(e.sent_at)
        while times and e.sent_at - times[0] > window:
            times.popleft()
        if len(times) <= self.n:
            return None
        last = self.told.get(e.run_id)
        if last is not None and e.sent_at - last < window:
            return None  # once per window
        self.told[e.run_id] = e.sent_at
        return Notice(
            frozenset({"processing_failures"}),
            "Processing failures",
            f"{len(times)} exposures failed processing within {_minutes(self.minutes)}; "
            f"the latest: {e.reason}",
            e.sent_at,
            "warning",
            run_id=e.run_id,
            key=f"failures:{e.run_id}",
        )

    def forget(self, run_id: UUID) -> None:
        self.times.pop(run_id, None)
        self.told.pop(run_id, None)
