"""A run's screening plan: how many squares and holes it queues by itself, in which order,
how many movies per hole, and whether it takes only the atlases.

Ordering ``thinnest_ice`` sorts the usable (``good``) targets by their ice estimate, thinnest
first: the finders classify ice that is too thick (``thick``) or absent (``empty``) apart, so
within ``good`` thinner ice is better (more contrast). Targets without an estimate come last,
and ties go by the finder's score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from proto import messages as m
from proto.messages.run import Ordering


@dataclass(frozen=True)
class Plan:
    """The plan a run follows: the session's, with the service's defaults filled in."""

    squares_per_grid: int
    holes_per_square: int
    ordering: Ordering = "score"
    atlas_only: bool = False
    exposures_per_hole: int = 1

    @classmethod
    def of(cls, plan: m.ScreeningPlan | None, squares: int, holes: int) -> Plan:
        """The session's ``plan`` (``None``: today's behaviour) over the service defaults."""
        if plan is None:
            return cls(squares_per_grid=squares, holes_per_square=holes)
        return cls(
            squares_per_grid=squares if plan.squares_per_grid is None else plan.squares_per_grid,
            holes_per_square=holes if plan.holes_per_square is None else plan.holes_per_square,
            ordering=plan.ordering,
            atlas_only=plan.atlas_only,
            exposures_per_hole=plan.exposures_per_hole,
        )

    def describe(self) -> str:
        """The plan in words, for the run's log."""
        order = "thinnest ice first" if self.ordering == "thinnest_ice" else "best score first"
        if self.atlas_only:
            head = "atlas only (squares are chosen by hand)"
        else:
            head = f"{_count(self.squares_per_grid, 'square')} per grid"
        return (
            f"{head}, {_count(self.holes_per_square, 'hole')} per square, {order}, "
            f"{_count(self.exposures_per_hole, 'movie')} per hole"
        )


def order(targets: Iterable[m.Target], ordering: Ordering) -> list[m.Target]:
    """``targets`` in the order the plan acquires them."""
    if ordering == "thinnest_ice":
        return sorted(targets, key=_thinnest)
    return sorted(targets, key=lambda t: -t.score)


def _thinnest(t: m.Target) -> tuple[float, float]:
    ice = t.ice_nm if t.ice_nm is not None and math.isfinite(t.ice_nm) else math.inf
    return (ice, -t.score)


def pick(
    found: Iterable[m.Target],
    n: int,
    ordering: Ordering,
    skip: frozenset[UUID] = frozenset(),
) -> list[m.Target]:
    """The first ``n`` usable targets of ``found`` in the plan's order, leaving out ``skip``."""
    usable = [t for t in found if t.cls == "good" and t.target_id not in skip]
    return order(usable, ordering)[: max(n, 0)]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
