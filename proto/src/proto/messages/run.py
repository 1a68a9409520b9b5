"""Run lifecycle: commands to acquisition and the events it emits about a run."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from proto.messages.base import RunMessage
from proto.messages.image import ImageRef, Target
from proto.states import ExitReason, RunState
from proto.topology import COMMANDS, EVENTS

Choice = Literal["continue_grid", "next_grid"]
Ordering = Literal["score", "thinnest_ice"]
"""How a run picks and orders the usable (``good``) squares and holes it queues by itself:
best finder score first, or thinnest ice first (ties, and targets without an ice estimate
last, by score)."""


class KnownAtlas(BaseModel):
    """An atlas a grid already has, and what earlier runs did with its squares."""

    model_config = ConfigDict(frozen=True)

    atlas_id: UUID
    image: ImageRef
    squares: tuple[Target, ...]
    imaged: frozenset[UUID] = frozenset()
    """Squares already imaged: a restarted run does not pick them again by itself."""
    queued: tuple[Target, ...] = ()
    """What an earlier run left queued on the grid (holes first; a square that a stop cut
    short is queued again): a restarted run goes on with these before it picks new squares."""


class ScreeningPlan(BaseModel):
    """What a run does on each grid: a session's screening plan, carried on ``run.start``.

    A field left ``None`` takes the acquisition service's configured default
    (``ACQUISITION_SQUARES_PER_GRID`` / ``_HOLES_PER_SQUARE``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    squares_per_grid: int | None = Field(None, ge=0, le=100)
    """Squares queued by the run itself on each grid's atlas."""
    holes_per_square: int | None = Field(None, ge=0, le=200)
    """Holes queued by the run itself on each square it images."""
    ordering: Ordering = "score"
    atlas_only: bool = False
    """Take each grid's atlas, find its squares, queue nothing and move on: the operator
    chooses squares in the session browser and starts again (the atlas is reused)."""
    exposures_per_hole: int = Field(1, ge=1, le=20)
    """Movies taken on each hole, one after the other (a skip is honoured between them)."""


class GridSpec(BaseModel):
    """One grid of a session's cassette."""

    model_config = ConfigDict(frozen=True)

    grid_id: UUID
    name: str
    position: int = Field(ge=1)
    atlas: KnownAtlas | None = None
    """The grid's atlas from an earlier run of the session, with the squares found on it:
    a restarted run reuses it instead of taking (and finding squares on) another."""


# --- commands -------------------------------------------------------------------------------


class StartRun(RunMessage):
    """Start a new run of a session on its microscope."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.start"

    session_id: UUID
    session_name: str
    microscope_id: str
    grids: tuple[GridSpec, ...]
    pause_between_grids: bool = False
    requested_by: str
    grids_done: tuple[str, ...] = ()
    """The session's grids earlier runs finished: this run leaves them out (and says so)."""
    plan: ScreeningPlan | None = None
    """The session's screening plan; ``None`` (older senders): the acquisition defaults,
    best score first, one exposure per hole, not atlas only."""


class StopRun(RunMessage):
    """Soft stop: finish the current exposure, stop when the queue is next asked."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.stop"

    requested_by: str


class SetPauseBetweenGrids(RunMessage):
    """Turn the pause-between-grids prompt on or off for this run."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.set_pause_between_grids"

    enabled: bool
    requested_by: str


class DecideRun(RunMessage):
    """Answer the pause-between-grids prompt."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.decide"

    choice: Choice
    requested_by: str


class SkipTarget(RunMessage):
    """Skip this target (the one being acquired, or a queued one): honoured at the run's next
    safe point, never in the middle of an exposure; its queue status becomes ``skipped``."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.skip_target"

    target_id: UUID
    requested_by: str


class SkipSquare(RunMessage):
    """Skip the rest of this square: the square itself if it is still being acquired or
    queued, and its holes still queued or being exposed (at the next safe point)."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.skip_square"

    square_id: UUID
    requested_by: str


class KillRun(RunMessage):
    """Kill the run's whole process group now (SIGKILL); the run ends ``killed``."""

    exchange: ClassVar[str] = COMMANDS
    routing_key: ClassVar[str] = "run.kill"

    requested_by: str


# --- events ---------------------------------------------------------------------------------


class RunStateChanged(RunMessage):
    """The run moved to ``state``; ``exit_reason`` is set when it ended."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "run.state_changed"

    session_id: UUID
    microscope_id: str
    state: RunState
    exit_reason: ExitReason | None = None
    detail: str | None = None
    host: str | None = None
    pid: int | None = None
    requested_by: str | None = None


class RunHeartbeatSent(RunMessage):
    """The run process is alive (every 2 s)."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "run.heartbeat_sent"

    session_id: UUID
    microscope_id: str
    state: RunState
    host: str
    pid: int


class DecisionRequested(RunMessage):
    """The current grid's queue is exhausted and pause-between-grids is on."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "run.decision_requested"

    session_id: UUID
    grid_id: UUID
    grid_name: str
    has_next_grid: bool
    cause: Literal["grid_done", "disk_low"] = "grid_done"
    reprompt_reason: str | None = None


class DecisionTaken(RunMessage):
    """The run received a decision and acts on it."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "run.decision_taken"

    session_id: UUID
    choice: Choice
    requested_by: str


class PauseBetweenGridsChanged(RunMessage):
    """The run's pause-between-grids toggle changed."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "run.pause_between_grids_changed"

    session_id: UUID
    enabled: bool
    requested_by: str
