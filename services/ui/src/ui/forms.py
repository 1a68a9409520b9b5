"""The session form (new, edit, copy): from posted fields to session-api's JSON, and from its
422 field list back to messages beside the fields.

Fields: ``name``, ``microscope_id``, ``grid_1`` … ``grid_12`` (the grid's name at that cassette
position; empty: no grid there), ``squares_per_grid``, ``holes_per_square`` (empty: the
facility's default), ``ordering``, ``atlas_only``, ``exposures_per_hole``,
``pause_between_grids``. session-api checks everything; this module only carries values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proto.api import CASSETTE_SLOTS, ScreeningPlan, SessionView

PLAN_FIELDS = ("squares_per_grid", "holes_per_square", "ordering", "exposures_per_hole")
ORDERINGS = (("score", "Best score first"), ("thinnest_ice", "Thinnest ice first"))


@dataclass
class SessionForm:
    """What the form shows: the values and, after a refusal, the error of each field."""

    name: str = ""
    microscope_id: str = ""
    slots: dict[int, str] = field(default_factory=dict)
    squares_per_grid: str = ""
    holes_per_square: str = ""
    ordering: str = "score"
    atlas_only: bool = False
    exposures_per_hole: str = "1"
    pause_between_grids: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    """Field name (``grid_3``, ``squares_per_grid``, ``form`` for the form as a whole) →
    message."""

    @classmethod
    def posted(cls, data: Mapping[str, Any]) -> SessionForm:
        def text(key: str, default: str = "") -> str:
            value = data.get(key)
            return str(value).strip() if value is not None else default

        slots = {p: text(f"grid_{p}") for p in range(1, CASSETTE_SLOTS + 1)}
        return cls(
            name=text("name"),
            microscope_id=text("microscope_id"),
            slots={p: n for p, n in slots.items() if n},
            squares_per_grid=text("squares_per_grid"),
            holes_per_square=text("holes_per_square"),
            ordering=text("ordering", "score"),
            atlas_only=bool(data.get("atlas_only")),
            exposures_per_hole=text("exposures_per_hole", "1") or "1",
            pause_between_grids=bool(data.get("pause_between_grids")),
        )

    @classmethod
    def of(cls, s: SessionView, *, name: str | None = None, grids: bool = True) -> SessionForm:
        """The form filled from a session (``grids=False``: empty cassette, for a copy)."""
        plan = s.plan
        return cls(
            name=s.name if name is None else name,
            microscope_id=s.microscope_id,
            slots={g.position: g.name for g in s.grids} if grids else {},
            squares_per_grid=_text(plan.squares_per_grid if plan else None),
            holes_per_square=_text(plan.holes_per_square if plan else None),
            ordering=plan.ordering if plan else "score",
            atlas_only=plan.atlas_only if plan else False,
            exposures_per_hole=str(plan.exposures_per_hole if plan else 1),
            pause_between_grids=s.pause_between_grids,
        )

    @property
    def positions(self) -> list[int]:
        return sorted(self.slots)

    def cassette(self) -> dict[str, Any]:
        return {
            "grids": [self.slots[p] for p in self.positions],
            "positions": self.positions,
        }

    def plan(self) -> dict[str, Any]:
        return {
            "squares_per_grid": _number(self.squares_per_grid),
            "holes_per_square": _number(self.holes_per_square),
            "ordering": self.ordering,
            "atlas_only": self.atlas_only,
            "exposures_per_hole": _number(self.exposures_per_hole),
        }

    def create(self) -> dict[str, Any]:
        """A ``SessionCreate``."""
        return {
            "name": self.name,
            "microscope_id": self.microscope_id,
            **self.cassette(),
            "pause_between_grids": self.pause_between_grids,
            "plan": self.plan(),
        }

    def edit(self, *, grids: bool) -> dict[str, Any]:
        """A ``SessionEdit`` (the grids only when they may change)."""
        body = {"name": self.name, "pause_between_grids": self.pause_between_grids}
        return {**body, **(self.cassette() if grids else {}), "plan": self.plan()}

    def copy(self) -> dict[str, Any]:
        """A ``SessionCopy``."""
        return {"name": self.name, "microscope_id": self.microscope_id, **self.cassette()}

    def refused(self, errors: list[dict[str, Any]], detail: str) -> None:
        """Put session-api's 422 field list (or a 409's ``detail``) beside the fields."""
        if not errors:
            self.errors["form"] = detail
        for err in errors:
            key = self._field(list(err.get("loc", ())))
            words = friendly(err)
            self.errors[key] = f"{self.errors[key]}; {words}" if key in self.errors else words
        if not self.slots and "grids" not in self.errors and "form" not in self.errors:
            self.errors["grids"] = "Name at least one grid."

    def _field(self, loc: list[Any]) -> str:
        if loc and loc[0] == "body":
            loc = loc[1:]
        if not loc:
            return "form"
        head = str(loc[0])
        if head in ("grids", "positions"):
            if len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(self.positions):
                return f"grid_{self.positions[loc[1]]}"
            return "grids"
        if head == "plan" and len(loc) > 1 and str(loc[1]) in PLAN_FIELDS + ("atlas_only",):
            return str(loc[1])
        if head in ("name", "microscope_id", "pause_between_grids"):
            return head
        return "form"


def friendly(err: dict[str, Any]) -> str:
    """A field error in words a facility user reads (pydantic's own for the rest)."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        return "Use letters, digits, spaces and _ . - only (no space at either end)."
    if kind == "string_too_short" or (kind == "missing"):
        return "Required."
    if kind == "string_too_long":
        return f"At most {ctx.get('max_length')} characters."
    if kind == "too_short":
        return "Name at least one grid."
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "A whole number."
    if kind == "greater_than_equal":
        return f"At least {ctx.get('ge')}."
    if kind == "less_than_equal":
        return f"At most {ctx.get('le')}."
    msg = str(err.get("msg", "invalid"))
    return msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")


def plan_words(plan: ScreeningPlan | None) -> str:
    """A session's plan in a line: ``atlas only · 4 holes per square · thinnest ice first``."""
    p = plan or ScreeningPlan()

    def count(n: int | None, noun: str, where: str) -> str:
        if n is None:
            return f"{noun}s per {where}: default"
        return f"{n} {noun}{'' if n == 1 else 's'} per {where}"

    head = "atlas only" if p.atlas_only else count(p.squares_per_grid, "square", "grid")
    order = dict(ORDERINGS)[p.ordering].lower()
    shots = count(p.exposures_per_hole, "exposure", "hole")
    return " · ".join((head, count(p.holes_per_square, "hole", "square"), order, shots))


def _text(n: int | None) -> str:
    return "" if n is None else str(n)


def _number(text: str) -> int | str | None:
    """An integer field: empty is ``None``; what is not a whole number goes as typed, for
    session-api to refuse naming the field."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text
