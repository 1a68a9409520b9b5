"""Square and hole finders against simulator ground truth (accuracy targets, not times)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from acquisition.physics import simulate_atlas, simulate_square
from processing.imaging import find_holes, find_squares


def _squares_score(seed: int, mesh: int, *, use_i0: bool) -> tuple[float, float, int]:
    image, truth = simulate_atlas(seed, shape=(2048, 2048), mesh=mesh)
    found = find_squares(image, i0=truth.i0 if use_i0 else None)
    centres = np.array([s.centre for s in truth.squares])
    dist, idx = cKDTree(centres).query(np.array([[f.y, f.x] for f in found]))
    hit = dist < 0.25 * truth.pitch_px
    tp = sum(1 for k in range(len(found)) if hit[k] and truth.squares[idx[k]].fully_visible)
    visible = [s.id for s in truth.squares if s.fully_visible]
    matched = {int(idx[k]) for k in range(len(found)) if hit[k]}
    recall = sum(1 for i in visible if i in matched) / len(visible)
    bad_as_good = sum(
        1
        for k, f in enumerate(found)
        if hit[k] and f.cls == "good" and truth.squares[idx[k]].cls in ("broken", "empty")
    )
    return tp / len(found), recall, bad_as_good


@pytest.mark.parametrize(("seed", "mesh", "use_i0"), [(21, 400, True), (22, 300, False)])
def test_square_finder_precision_recall_and_classes(seed: int, mesh: int, use_i0: bool) -> None:
    precision, recall, bad_as_good = _squares_score(seed, mesh, use_i0=use_i0)
    assert precision >= 0.99
    assert recall >= 0.98
    assert bad_as_good == 0


def test_square_ranking_puts_good_squares_first() -> None:
    image, truth = simulate_atlas(23, shape=(2048, 2048), mesh=300)
    found = find_squares(image, i0=truth.i0)
    classes = [f.cls for f in found]
    n_good = classes.count("good")
    assert n_good > 10
    assert set(classes[:n_good]) == {"good"}
    assert all(a.score >= b.score for a, b in zip(found, found[1:], strict=False))


def test_square_finder_on_blank_or_bad_input() -> None:
    assert find_squares(np.zeros((256, 256), dtype=np.float32)) == []
    with pytest.raises(ValueError):
        find_squares(np.zeros((2, 4, 4), dtype=np.float32))


@pytest.mark.parametrize(
    ("seed", "pattern", "use_i0"), [(31, "R1.2/1.3", True), (32, "R2/1", False), (33, "R2/2", True)]
)
def test_hole_finder_precision_recall_on_usable_holes(
    seed: int, pattern: str, use_i0: bool
) -> None:
    image, truth = simulate_square(seed, shape=(2048, 2048), pattern=pattern)
    found = find_holes(image, i0=truth.i0 if use_i0 else None)
    centres = np.array([h.centre for h in truth.holes])
    radius = truth.holes[0].radius_px
    dist, idx = cKDTree(centres).query(np.array([[f.y, f.x] for f in found]))
    hit = dist < 0.5 * radius
    assert hit.mean() >= 0.99  # every reported hole is a real, fully visible hole
    called_good = [k for k, f in enumerate(found) if f.cls == "good"]
    tp = sum(1 for k in called_good if hit[k] and truth.holes[idx[k]].cls == "good")
    n_good = sum(h.cls == "good" for h in truth.holes)
    assert tp / len(called_good) >= 0.99
    assert tp / n_good >= 0.98
    assert found[0].radius_px == pytest.approx(radius, rel=0.1)
    errors = [found[k].ice_nm - truth.holes[idx[k]].ice_nm for k in called_good if hit[k]]
    assert abs(float(np.median(errors))) < 10.0


def test_hole_finder_on_blank_or_bad_input() -> None:
    assert find_holes(np.zeros((256, 256), dtype=np.float32)) == []
    with pytest.raises(ValueError):
        find_holes(np.zeros(16, dtype=np.float32))
