"""The learning-curve chart of a simulation: an SVG written by hand (no plotting library
in the default install), one panel per error rate, one line per strategy."""

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np

# one per strategy, in the order asr.simulate.loop.STRATEGIES lists them (the legend's order)
COLORS = {
    "random": "#555555",
    "least-confidence": "#1f77b4",
    "entropy": "#d62728",
    "margin": "#9467bd",
    "diverse": "#2ca02c",
    "new-words": "#ff7f0e",
    "oracle-words": "#8c564b",
}


def learning_curves_svg(rows: Sequence[dict]) -> str:
    """Panels of WER and CER (and WER with the LM, when every row has it) against labeled
    minutes: per strategy, the mean over seeds as a line with dots and, with several seeds,
    the min-max band. A plain SVG string."""
    metrics = ["wer", "cer"]
    if rows and all(row.get("wer_lm") is not None for row in rows):
        metrics.append("wer_lm")
    width, height = len(metrics) * PANEL_WIDTH + 40, PANEL_HEIGHT + 2 * MARGIN + 30
    strategies = [name for name in COLORS if any(row["strategy"] == name for row in rows)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for panel, metric in enumerate(metrics):
        parts += _panel(rows, strategies, metric, left=20 + panel * PANEL_WIDTH + MARGIN)
    for number, strategy in enumerate(strategies):  # the legend, under the panels
        legend_x, legend_y = 20 + MARGIN + 130 * number, height - 14
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 24}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{COLORS[strategy]}" stroke-width="3"/>'
            f'<text x="{legend_x + 30}" y="{legend_y}">{escape(strategy)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


PANEL_WIDTH, PANEL_HEIGHT, MARGIN = 420, 300, 56
PANEL_TITLES = {"wer": "test WER", "cer": "test CER", "wer_lm": "test WER with the LM"}


def _panel(rows: Sequence[dict], strategies: list[str], metric: str, left: float) -> list[str]:
    top, plot_width, plot_height = MARGIN, PANEL_WIDTH - MARGIN - 10, PANEL_HEIGHT
    max_minutes = max((row["labeled_minutes"] for row in rows), default=1.0)
    max_rate = max((row[metric] for row in rows if math.isfinite(row[metric])), default=1.0)
    x_ticks, y_ticks = _nice_ticks(max_minutes), _nice_ticks(max(max_rate, 0.1))

    def x(minutes: float) -> float:
        return left + plot_width * minutes / x_ticks[-1]

    def y(rate: float) -> float:
        return top + plot_height * (1 - min(rate, y_ticks[-1]) / y_ticks[-1])

    parts = [
        f'<text x="{left + plot_width / 2}" y="{top - 12}" text-anchor="middle" '
        f'font-size="14" font-weight="bold">{PANEL_TITLES[metric]}</text>'
    ]
    for tick in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#e5e5e5"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{100 * tick:g}%</text>'
        )
    for tick in x_ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top + plot_height}" '
            f'y2="{top + plot_height + 4}" stroke="black"/><text x="{x(tick):.1f}" '
            f'y="{top + plot_height + 18}" text-anchor="middle">{tick:g}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" '
        f'fill="none" stroke="black"/><text x="{left + plot_width / 2}" '
        f'y="{top + plot_height + 36}" text-anchor="middle">labeled minutes</text>'
    )
    for strategy in strategies:
        color = COLORS[strategy]
        points = _curve(rows, strategy, metric)  # (minutes, mean, low, high) per round
        if any(high > low for _, _, low, high in points):
            band = [(x(m), y(h)) for m, _, _, h in points]
            band += [(x(m), y(lo)) for m, _, lo, _ in reversed(points)]
            parts.append(
                f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in band)}" '
                f'fill="{color}" fill-opacity="0.15" stroke="none"/>'
            )
        line = " ".join(f"{x(m):.1f},{y(mean):.1f}" for m, mean, _, _ in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for minutes, mean, _, _ in points:
            parts.append(f'<circle cx="{x(minutes):.1f}" cy="{y(mean):.1f}" r="3" fill="{color}"/>')
    return parts


def _curve(
    rows: Sequence[dict], strategy: str, metric: str
) -> list[tuple[float, float, float, float]]:
    by_round: dict[int, list[dict]] = {}
    for row in rows:
        if row["strategy"] == strategy and math.isfinite(row[metric]):
            by_round.setdefault(row["round"], []).append(row)
    points = []
    for number in sorted(by_round):
        minutes = [row["labeled_minutes"] for row in by_round[number]]
        rates = [row[metric] for row in by_round[number]]
        points.append((float(np.mean(minutes)), float(np.mean(rates)), min(rates), max(rates)))
    return points


def _nice_ticks(highest: float) -> list[float]:
    """0, then round steps (1, 2, 2.5 or 5 x 10^k) up to the first at or above `highest`."""
    highest = max(highest, 1e-9)
    magnitude = 10 ** math.floor(math.log10(highest / 5))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if highest / (s * magnitude) <= 6)
    count = math.ceil(highest / step - 1e-9)
    return [round(step * i, 10) for i in range(count + 1)]
