"""One colour per line, in every chart of the report (and in every report).

Benchmarks have fixed greys and dash styles; variants get a colour from their name alone, so
``baseline`` is the same blue in the equity curve, the rolling Sharpe, the distribution and
the A/B charts. The colours are Okabe & Ito's set for colour-blind readers; the two default
variants are pinned, other names take the colour their name hashes to (stable, though two
such names may share one: the legend still names them).
"""

from __future__ import annotations

import hashlib

VARIANT_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                  "#8C6D31", "#7F3C8D")
PINNED = {"baseline": 0, "enhanced": 1}
BENCHMARKS = {
    "buy_and_hold": ("#222222", "dash"),
    "exposure_matched": ("#777777", "dot"),
    "always_long": ("#AAAAAA", "dashdot"),
    "coin": ("#999999", "dot"),
}
NEUTRAL = "#999999"
POSITIVE, NEGATIVE = "#1a9850", "#d73027"
"""Heat-map ends: gains green, losses red."""


def color(name: str) -> str:
    """The colour of the line called ``name`` (a variant, an A/B arm or a benchmark)."""
    if name in BENCHMARKS:
        return BENCHMARKS[name][0]
    i = PINNED.get(name)
    if i is None:
        i = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(VARIANT_COLORS)
    return VARIANT_COLORS[i]


def dash(name: str) -> str:
    """Benchmarks are dashed or dotted, variants solid."""
    return BENCHMARKS.get(name, ("", "solid"))[1]


def line(name: str, width: float = 1.6) -> dict[str, object]:
    """The plotly ``line`` of ``name``."""
    return {"color": color(name), "dash": dash(name), "width": width}


def fill(name: str, alpha: float = 0.12) -> str:
    """A translucent version of ``name``'s colour, for bands."""
    c = color(name).lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha:g})"


def heat(value: float | None, scale: float) -> str:
    """A cell background for a return: white at 0, saturating at ±``scale``."""
    if value is None or scale <= 0:
        return "#ffffff"
    t = max(-1.0, min(1.0, value / scale))
    end = POSITIVE if t >= 0 else NEGATIVE
    er, eg, eb = (int(end[i:i + 2], 16) for i in (1, 3, 5))
    a = abs(t) * 0.75
    r, g, b = (round(255 + (e - 255) * a) for e in (er, eg, eb))
    return f"#{r:02x}{g:02x}{b:02x}"
