"""HTTP models of session-api, shared by the ui and by scripts (the OpenAPI contract).

Routes (all under ``/api``; roles viewer < operator < staff; every route checks on the server):

| route | role | answer |
|---|---|---|
| POST /auth/login, /auth/token, /auth/logout | anyone | TokenResponse |
| GET /auth/me | viewer | UserView |
| GET /microscopes | viewer | list[MicroscopeView] |
| POST /microscopes/{id}/lease/release | staff | LeaseReleaseResponse |
| GET /sessions (?microscope_id, state, since, until, archived, before) | viewer | [SessionView] |
| POST /sessions | operator | SessionView (201) |
| GET /sessions/{id} | viewer | SessionView |
| PATCH /sessions/{id} | operator | SessionView (grids: before the 1st start; rest: no live run) |
| POST /sessions/{id}/copy | operator | SessionView (201): same microscope and plan, new grids |
| POST /sessions/{id}/archive · /unarchive | operator | SessionView |
| POST /sessions/{id}/start | operator | StartResponse (202); 409 when archived |
| POST /sessions/{id}/stop | operator | RunView (202) |
| PUT /sessions/{id}/pause-between-grids | operator | RunView or SessionView |
| POST /sessions/{id}/decision | operator | RunView (202) |
| GET /sessions/{id}/queue | viewer | QueueView |
| GET /sessions/{id}/runs (?limit, before) | viewer | list[RunView], newest first |
| POST · DELETE /sessions/{id}/targets | operator | QueueView (202; no live run: for the next run) |
| POST /sessions/{id}/skip-target · /skip-square | operator | RunView (202) |
| POST /sessions/{id}/force-start | staff | StartResponse (202) |
| POST /sessions/{id}/kill | staff | RunView (202) |
| GET /sessions/{id}/logs (?panel, level, since, after_id, before_id) | viewer | list[LogLineView] |
| GET /sessions/{id}/logs?format=text (?panel, level, since) | viewer | text/plain, streamed |
| GET /sessions/{id}/grids/{grid_id} | viewer | GridDetail |
| GET /sessions/{id}/exposures (?limit, before) | viewer | list[ExposureView] |
| GET /sessions/{id}/exposures/series (?limit) | viewer | ExposureSeries |
| GET /squares/{id} | viewer | SquareDetail |
| GET /images/{image_id}.png | viewer | image/png |
| GET /runs/{id} | viewer | RunView |
| GET /audit (?session_id, limit, before) | staff | list[AuditView] |
| GET /ops | staff | OpsView (queues, workers, dead letters) |
| GET /ops/dead-letters (?queue) | staff | list[DeadLetterView] |
| POST /ops/dead-letters/{queue}/{key}/replay · /discard | staff | DeadLetterAction |
| POST /ops/dead-letters/{queue}/purge | staff | DeadLetterAction |
| GET /notifications | viewer | NotificationSettings (the caller's own) |
| POST /notifications/destinations | viewer | DestinationView (201) |
| DELETE /notifications/destinations/{id} | viewer (own) | 204 |
| POST /notifications/destinations/{id}/test | viewer (own) | SendTestResult |
| POST /notifications/subscriptions | viewer | SubscriptionView (one per scope: replaces) |
| DELETE /notifications/subscriptions/{id} | viewer (own) | 204 |
| GET /notifications/deliveries | staff | list[DestinationView] (every user's) |

Lists are newest first (log lines: in id order) and come in pages (``limit``), read with
keyset cursors: a full page carries a ``Link: <…>; rel="next"`` header (RFC 8288) whose URL
asks for the next one — ``before`` = the last row's id (a session's, an exposure's, the audit
id; a run's number), or for logs ``after_id`` (reading forward) or ``before_id`` (reading back
from ``tail``). Filters apply before the page is cut. No ``Link``: that was the last page.

Errors: 401 not logged in, 403 wrong role, 404 unknown id, 409 conflict (a run is live, naming
it), 422 invalid body (FastAPI's field list), 503 bus or broker unavailable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from proto.messages.image import QueueItem
from proto.messages.run import Choice
from proto.messages.run import ScreeningPlan as ScreeningPlan  # part of this contract too
from proto.states import ExitReason, RunState

Role = Literal["viewer", "operator", "staff"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "staff": 2}
GridStatus = Literal["pending", "screening", "done"]
ExposureStatus = Literal["acquired", "processed", "failed"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- auth -----------------------------------------------------------------------------------


PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""No control characters (PostgreSQL refuses NUL in text: a 500 instead of a 422)."""
MicroscopeId = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    password: str = Field(min_length=1, max_length=256)


class RefusalReport(BaseModel):
    """A request the ui refused (a cross-site form or fetch), for session-api's audit log."""

    action: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    request: str = Field(min_length=1, max_length=2048, description="method and path")
    reason: str = Field(min_length=1, max_length=1000)
    session_id: UUID | None = None


class UserView(_View):
    username: str
    role: Role


class TokenResponse(_View):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    user: UserView


# --- microscopes, disks, leases -------------------------------------------------------------


class VolumeView(_View):
    name: str
    path: str
    total_bytes: int
    free_bytes: int
    used_fraction: float
    level: Literal["ok", "warning", "critical"]
    hours_left: float | None = None
    """At the current exposure rate; ``None`` when nothing is being written."""


class LeaseHolderView(_View):
    microscope_id: str
    session_id: UUID | None
    session_name: str
    run_id: UUID | None
    host: str
    pid: int
    acquired_at: datetime


class MicroscopeView(_View):
    id: str
    name: str
    lease_holder: LeaseHolderView | None
    session_id: UUID | None = None
    session_name: str | None = None
    run: RunView | None = None
    current_grid: str | None = None
    exposures_per_hour: float = 0.0
    backlog: int = 0
    volumes: list[VolumeView] = []
    alerts: list[str] = []


class LeaseReleaseResponse(_View):
    released: bool
    holder: LeaseHolderView | None


# --- sessions and runs ----------------------------------------------------------------------


NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9 _.\-]*[A-Za-z0-9_.\-])?$"
"""A session's or grid's name: letters, digits, space, ``_ . -``; no space at either end."""

GridName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME)]
SessionName = Annotated[str, Field(min_length=1, max_length=120, pattern=NAME)]
CASSETTE_SLOTS = 12
"""Positions of an autoloader cassette; a session has at most one grid per position."""
Position = Annotated[int, Field(ge=1, le=CASSETTE_SLOTS)]


class SessionCreate(BaseModel):
    name: SessionName
    microscope_id: MicroscopeId
    grids: list[GridName] = Field(
        min_length=1, max_length=CASSETTE_SLOTS, description="grid names, in order"
    )
    positions: list[Position] | None = Field(
        None, description="each grid's cassette position (default 1, 2, …), unique"
    )
    pause_between_grids: bool = False
    plan: ScreeningPlan | None = None
    """``None``: the acquisition defaults, best score first, one movie per hole."""


class SessionEdit(BaseModel):
    """A change to a session; fields left out stay as they are. Grids (and positions) only
    before the session's first start; anything only while no run is live."""

    name: SessionName | None = None
    grids: list[GridName] | None = Field(None, min_length=1, max_length=CASSETTE_SLOTS)
    positions: list[Position] | None = None
    pause_between_grids: bool | None = None
    plan: ScreeningPlan | None = None


class SessionCopy(BaseModel):
    """A new session with the original's microscope (unless given), plan and pause setting,
    and new grids."""

    name: SessionName
    grids: list[GridName] = Field(min_length=1, max_length=CASSETTE_SLOTS)
    positions: list[Position] | None = None
    microscope_id: MicroscopeId | None = None


class SkipRequest(BaseModel):
    target_id: UUID | None = None
    """The target the page shows being acquired (for *skip rest of this square*: a hole of
    the square, or the square); ``None``: whatever the run is acquiring now."""


class DecisionView(_View):
    grid_id: UUID
    grid_name: str
    has_next_grid: bool
    cause: Literal["grid_done", "disk_low"] = "grid_done"
    reprompt_reason: str | None = None


class RunView(_View):
    id: UUID
    session_id: UUID
    microscope_id: str
    number: int
    state: RunState
    exit_reason: ExitReason | None
    detail: str | None
    host: str | None
    pid: int | None
    started_at: datetime
    ended_at: datetime | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    requested_by: str
    pause_between_grids: bool
    stop_requested: bool
    decision: DecisionView | None
    current_grid: str | None = None
    exposures: int = 0
    exposures_failed: int = 0
    """Exposures whose processing failed (corrupt movie, failed fit): see the exposures table."""
    acknowledged_by: str | None = None
    """Who took note of how the ended run ended (its outcome is then no longer a pop-up)."""
    acknowledged_at: datetime | None = None


class GridView(_View):
    id: UUID
    name: str
    position: int
    status: GridStatus
    atlas_id: UUID | None = None


class SessionView(_View):
    id: UUID
    name: str
    microscope_id: str
    microscope_name: str
    created_at: datetime
    created_by: str
    pause_between_grids: bool
    grids: list[GridView]
    run: RunView | None
    """The latest run (live or ended), ``None`` before the first Start."""
    lock_holder: LeaseHolderView | None = None
    """Who holds this session's microscope, when it is held by another session's run."""
    plan: ScreeningPlan | None = None
    """The screening plan its runs follow (``None``: the acquisition defaults)."""
    archived: bool = False
    """Hidden from the default sessions list; kept whole; cannot be started."""
    exposures: int = 0
    """Exposures its runs took (the sum of their ``RunView.exposures``)."""


class StartResponse(_View):
    run_id: UUID
    session_id: UUID


class PauseRequest(BaseModel):
    enabled: bool


class DecisionRequest(BaseModel):
    choice: Choice


class TargetsRequest(BaseModel):
    target_ids: list[UUID] = Field(min_length=1, max_length=500)


class QueueView(_View):
    run_id: UUID | None
    items: list[QueueItem]
    counts: dict[str, int]


# --- images, targets, exposures -------------------------------------------------------------


class TargetView(_View):
    id: UUID
    kind: Literal["square", "hole"]
    grid_id: UUID
    parent_id: UUID
    y: float
    x: float
    size_px: float
    cls: str
    score: float
    ice_nm: float | None
    status: str | None
    """Its queue status (queued, acquiring, done, removed, …) or ``None`` if never queued."""
    image_id: UUID | None = None
    """For squares: the square image taken there, once it exists."""


class ImageView(_View):
    id: UUID
    url: str
    width: int
    height: int
    pixel_size_a: float


class GridDetail(_View):
    grid: GridView
    atlas: ImageView | None
    squares: list[TargetView]


class SquareDetail(_View):
    square: TargetView
    image: ImageView | None
    holes: list[TargetView]


class ExposureView(_View):
    id: UUID
    run_id: UUID | None = None
    grid_id: UUID
    hole_id: UUID
    acquired_at: datetime
    status: ExposureStatus
    error: str | None = None
    defocus1_a: float | None = None
    defocus2_a: float | None = None
    astigmatism_a: float | None = None
    astig_angle_deg: float | None = None
    ctf_fit_resolution_a: float | None = None
    ctf_low_confidence: bool | None = None
    drift_total_a: float | None = None
    ice_nm: float | None = None
    thumbnail_url: str | None = None
    spectrum_url: str | None = None


class ExposureSeries(_View):
    """What the plots draw of a session's newest exposures, one list per column, newest first
    (``GET /api/sessions/{id}/exposures/series``): a seventh of the bytes of the same
    exposures as ``ExposureView`` rows, and no object per exposure on either side. ``more``:
    the session has older exposures than these."""

    acquired_at: list[datetime]
    status: list[ExposureStatus]
    defocus1_a: list[float | None]
    defocus2_a: list[float | None]
    ctf_fit_resolution_a: list[float | None]
    ctf_low_confidence: list[bool | None]
    ice_nm: list[float | None]
    more: bool = False


# --- logs and audit -------------------------------------------------------------------------


class LogLineView(_View):
    id: int
    message_id: UUID
    sent_at: datetime
    run_id: UUID | None
    service: str
    panel: Literal["acquisition", "processing", "system"]
    level: Literal["debug", "info", "warning", "error", "critical"]
    text: str


class AuditView(_View):
    id: int
    at: datetime
    username: str
    action: str
    session_id: UUID | None
    run_id: UUID | None
    target: str | None
    outcome: str
    detail: str | None


# --- operations -----------------------------------------------------------------------------

WorkQueue = Literal[
    "acquisition.commands",
    "processing.finders",
    "processing.images",
    "session-api.events",
    "session-api.logs",
]
"""The durable queues (each has ``dlq.<queue>``); ``tests/contract`` checks the list against
``proto.topology.WORK_QUEUES``."""


class QueueStatsView(_View):
    queue: str
    messages: int
    """Waiting (ready) messages."""
    consumers: int
    dead_letters: int | None = None
    """Messages in this queue's ``dlq.<queue>`` (``None`` for a dead-letter queue itself)."""


class WorkerView(_View):
    instance: str
    service: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    age_s: float
    """Seconds since the last heartbeat."""
    stale: bool
    """No heartbeat for three intervals: hung, dead or cut off from the broker."""
    handled: int


class DeadLetterView(_View):
    queue: str
    key: str
    """Names the letter for replay/discard: its message id, else a digest of its body."""
    message_id: str | None
    type: str
    routing_key: str
    reason: str
    attempts: int
    dead_at: datetime | None
    size_bytes: int
    preview: str
    """The start of the body, as text."""


class OpsView(_View):
    checked_at: datetime
    queues: list[QueueStatsView]
    workers: list[WorkerView]
    dead_letters: list[DeadLetterView]
    broker_error: str | None = None
    """Set when the broker could not be read; queues and letters are then empty."""


class DeadLetterAction(_View):
    queue: str
    action: Literal["replayed", "discarded", "purged"]
    count: int
    key: str | None = None


# --- notifications --------------------------------------------------------------------------

NotifyEvent = Literal[
    "run_ended",
    "pause_prompt",
    "scope_locked",
    "lease_lost",
    "disk_warning",
    "disk_critical",
    "processing_failures",
    "run_silent",
]
"""What a person can be told about (``docs/operations.md``, *Notifications*)."""

NOTIFY_EVENTS: tuple[NotifyEvent, ...] = (
    "run_ended",
    "pause_prompt",
    "scope_locked",
    "lease_lost",
    "disk_warning",
    "disk_critical",
    "processing_failures",
    "run_silent",
)


class DestinationCreate(BaseModel):
    """One place to send notifications: an apprise URL (``mailto://``, ``slack://``,
    ``workflows://`` (Teams), ``matrix://``, ``json://``/``jsons://`` …). It is stored encrypted and
    never shown back whole."""

    label: str = Field(min_length=1, max_length=64, pattern=NAME)
    url: str = Field(min_length=3, max_length=2000)


class DestinationView(_View):
    id: int
    label: str
    service: str
    """What apprise calls it: ``E-Mail``, ``Slack``, ``JSON`` …"""
    url_masked: str
    """The URL with passwords, tokens and long path parts masked."""
    created_at: datetime
    owner: str | None = None
    """Whose it is (in the staff's list of every destination)."""
    last_attempt_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    """Why the last failed attempt failed (apprise's words); ``last_error_at`` says when."""
    sent: int = 0
    """Messages delivered (each may carry several notices: one message per burst)."""
    failed: int = 0
    """Attempts that failed (retried ones included)."""
    dropped: int = 0
    """Notices given up on after the last retry, or beyond what one destination keeps."""
    pending: int = 0
    """Notices waiting now (coalescing, rate limit or retry)."""


class SubscriptionCreate(BaseModel):
    """Tell me about ``events`` of one session or of every session of one microscope (give
    exactly one of ``session_id`` and ``microscope_id``). A second subscription for the same
    session or microscope replaces the first one's events."""

    session_id: UUID | None = None
    microscope_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    events: list[NotifyEvent] = Field(min_length=1, max_length=len(NOTIFY_EVENTS))


class SubscriptionView(_View):
    id: int
    session_id: UUID | None
    session_name: str | None = None
    microscope_id: str
    microscope_name: str
    events: list[NotifyEvent]
    created_at: datetime


class NotifyEventView(_View):
    event: NotifyEvent
    label: str
    """What it means here, with this deployment's thresholds in numbers."""


class NotificationSettings(_View):
    destinations: list[DestinationView]
    subscriptions: list[SubscriptionView]
    events: list[NotifyEventView]
    coalesce_s: float = 0.0
    """Notices for one destination within this long go as one message."""
    min_interval_s: float = 0.0
    """At most one message per destination this often."""


class SendTestResult(_View):
    ok: bool
    error: str | None = None
    destination: DestinationView


MicroscopeView.model_rebuild()
