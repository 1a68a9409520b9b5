"""Run states and exit reasons: one enum, one source of truth, the same words everywhere."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is. ``starting → running ⇄ awaiting_decision → stopping → ended``."""

    STARTING = "starting"
    RUNNING = "running"
    AWAITING_DECISION = "awaiting_decision"
    STOPPING = "stopping"
    ENDED = "ended"

    @property
    def live(self) -> bool:
        """True while the run may still drive the microscope."""
        return self is not RunState.ENDED

    @property
    def label(self) -> str:
        """The words the pages show for this state."""
        return _LABELS[self]


class ExitReason(StrEnum):
    """Why an ended run ended."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    LOCKED = "locked"
    FAILED = "failed"
    KILLED = "killed"
    LOST = "lost"


_LABELS = {
    RunState.STARTING: "starting",
    RunState.RUNNING: "running",
    RunState.AWAITING_DECISION: "awaiting decision",
    RunState.STOPPING: "stopping…",
    RunState.ENDED: "ended",
}

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.STARTING: frozenset({RunState.RUNNING, RunState.STOPPING, RunState.ENDED}),
    RunState.RUNNING: frozenset({RunState.AWAITING_DECISION, RunState.STOPPING, RunState.ENDED}),
    RunState.AWAITING_DECISION: frozenset({RunState.RUNNING, RunState.STOPPING, RunState.ENDED}),
    RunState.STOPPING: frozenset({RunState.ENDED}),
    RunState.ENDED: frozenset(),
}
"""Allowed moves. Any live state may end at once (killed, lost, failed)."""


def can_move(old: RunState, new: RunState) -> bool:
    """Whether a run in ``old`` may move to ``new`` (staying put is allowed)."""
    return old == new or new in TRANSITIONS[old]
