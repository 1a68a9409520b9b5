"""Small, dependency-free SVG charts for the session browser (scatter over time, histogram).

The charts are rendered on the server as accessible SVG (``role="img"`` with a title and a
description), scale with their container, and use the page's CSS colours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

W, H = 480, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 12, 26, 36


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Time-axis steps (s): 1, 2, 5, 10, 15, 30 min; 1, 2, 3, 6, 12 h; a day."""


def _time_ticks(t0: float, t1: float, n: int = 5) -> list[float]:
    """Round times (UTC) between ``t0`` and ``t1``, about ``n`` of them."""
    raw = (t1 - t0) / n
    step = next((s for s in _TIME_STEPS if s >= raw), 86400 * math.ceil(raw / 86400))
    first = math.ceil(t0 / step) * step
    return [first + i * step for i in range(int((t1 - first) // step) + 1)]


def _x_label(x: float) -> str:
    """Anchor of a tick label at ``x``: labels near the plot's ends stay inside it."""
    if x < PAD_L + 24:
        return "start"
    return "end" if x > W - PAD_R - 24 else "middle"


def _fmt(v: float) -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-2):
        return f"{v:.1e}"
    return f"{v:,.2f}".rstrip("0").rstrip(".").replace(",", "\u202f")


def _frame(title: str, desc: str, body: list[str], xlabel: str, ylabel: str) -> Markup:
    slug = "".join(c if c.isalnum() else "-" for c in title.lower())
    return Markup(
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="t-{slug} d-{slug}" preserveAspectRatio="xMidYMid meet">'
        f'<title id="t-{slug}">{escape(title)}</title><desc id="d-{slug}">{escape(desc)}</desc>'
        f'<text class="chart-title" x="{PAD_L}" y="16">{escape(title)}</text>'
        + "".join(body)
        + f'<text class="axis-label" x="{(W + PAD_L) / 2}" y="{H - 4}" text-anchor="middle">'
        f"{escape(xlabel)}</text>"
        f'<text class="axis-label" transform="translate(12 {(H + PAD_T - PAD_B) / 2}) '
        f'rotate(-90)" text-anchor="middle">{escape(ylabel)}</text></svg>'
    )


def _empty(title: str, xlabel: str, ylabel: str) -> Markup:
    msg = (
        f'<text class="chart-empty" x="{W / 2}" y="{H / 2}" text-anchor="middle">No data yet</text>'
    )
    return _frame(title, "No data yet.", [msg], xlabel, ylabel)


def _y_axis(lo: float, hi: float, y: object) -> list[str]:
    out = []
    for t in _ticks(lo, hi):
        py = y(t)  # type: ignore[operator]
        out.append(
            f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{py:.1f}" y2="{py:.1f}"/>'
            f'<text class="tick" x="{PAD_L - 6}" y="{py + 4:.1f}" text-anchor="end">'
            f"{_fmt(t)}</text>"
        )
    return out


def _span(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def scatter(
    points: Sequence[tuple[datetime, float]],
    *,
    title: str,
    ylabel: str,
    flagged: Sequence[bool] | None = None,
) -> Markup:
    """Values over time; ``flagged`` points (e.g. low-confidence fits) drawn hollow."""
    pts = [(t, v) for t, v in points if v is not None and math.isfinite(v)]
    if not pts:
        return _empty(title, "time (UTC)", ylabel)
    t0 = min(t for t, _ in pts).timestamp()
    t1 = max(t for t, _ in pts).timestamp()
    lo, hi = _span([v for _, v in pts])
    span_t = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return PAD_L + (t - t0) / span_t * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return H - PAD_B - (v - lo) / (hi - lo) * (H - PAD_T - PAD_B)

    body = _y_axis(lo, hi, y)
    flags = list(flagged or [False] * len(pts))
    for i, (t, v) in enumerate(pts):
        cls = "pt flagged" if i < len(flags) and flags[i] else "pt"
        body.append(
            f'<circle class="{cls}" cx="{x(t.timestamp()):.1f}" cy="{y(v):.1f}" r="3">'
            f"<title>{t:%H:%M:%S}: {_fmt(v)}</title></circle>"
        )
    first, last = min(t for t, _ in pts), max(t for t, _ in pts)
    days = first.date() != last.date()
    clock = "%d %b %H:%M" if days else "%H:%M"
    ticks = _time_ticks(t0, t1) if t1 - t0 >= 120 else []
    if len(ticks) < 2:  # a few minutes: the first and the last point
        ticks = [t0, t1] if t1 > t0 else [t0]
    for tick in ticks:
        px = x(tick)
        body.append(
            f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{PAD_T}" y2="{H - PAD_B}"/>'
            f'<text class="tick" x="{px:.1f}" y="{H - PAD_B + 14}" text-anchor="{_x_label(px)}">'
            f"{datetime.fromtimestamp(tick, first.tzinfo):{clock}}</text>"
        )
    if any(flags):
        body.append(
            f'<circle class="pt flagged" cx="{W - PAD_R - 100}" cy="12" r="3"/>'
            f'<text class="tick" x="{W - PAD_R}" y="16" text-anchor="end">low confidence</text>'
        )
    when = f"{first:{clock}} to {last:{clock}}"
    desc = f"{len(pts)} points from {when}, {_fmt(lo)} to {_fmt(hi)}."
    return _frame(title, desc, body, "time (UTC)", ylabel)


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 20) -> Markup:
    """A histogram of ``values`` in ``bins`` equal bins."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return _empty(title, xlabel, "count")
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = max(1, min(bins, len(vals)))
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    top = max(counts)

    def y(c: float) -> float:
        return H - PAD_B - c / top * (H - PAD_T - PAD_B)

    body = _y_axis(0, top, y)
    bw = (W - PAD_L - PAD_R) / bins
    for i, c in enumerate(counts):
        if c == 0:
            continue
        a, b = lo + i * width, lo + (i + 1) * width
        body.append(
            f'<rect class="bar-h" x="{PAD_L + i * bw + 1:.1f}" y="{y(c):.1f}" '
            f'width="{max(bw - 2, 1):.1f}" height="{H - PAD_B - y(c):.1f}">'
            f"<title>{_fmt(a)} – {_fmt(b)}: {c}</title></rect>"
        )
    for v in _ticks(lo, hi):
        px = PAD_L + (v - lo) / (hi - lo) * (W - PAD_L - PAD_R)
        body.append(
            f'<text class="tick" x="{px:.1f}" y="{H - PAD_B + 14}" text-anchor="{_x_label(px)}">'
            f"{_fmt(v)}</text>"
        )
    desc = f"{len(vals)} values from {_fmt(lo)} to {_fmt(hi)} in {bins} bins; tallest {top}."
    return _frame(title, desc, body, xlabel, "count")
