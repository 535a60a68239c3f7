"""The benchmark's pictures: completeness vs expected SNR, false rate vs reliability threshold,
and, per reliability score, completeness (expected SNR >= 10) against false rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_curves"]


def plot_curves(curves: dict[str, dict[str, Any]], path: Path) -> Path:
    """One figure, two panels, a line per night set (``{set name: {completeness, false}}``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right, third) = plt.subplots(1, 3, figsize=(16, 4.2))
    for name, c in curves.items():
        comp = c["completeness"]
        expected = np.asarray(comp["expected"], float)
        frac = np.where(expected > 0, np.asarray(comp["found"]) / np.maximum(expected, 1), np.nan)
        left.step(comp["snr_low"], frac, where="post", label=f"{name} ({int(expected.sum())})")
        fr = c["false_rate"]
        right.plot(fr["threshold"], fr["false_per_detector_visit"], marker="o", label=name)
    left.set_xscale("log")
    left.axvline(10.0, color="grey", lw=0.8, ls="--")
    left.axhline(0.95, color="grey", lw=0.8, ls=":")
    left.set_xlabel("expected difference SNR (simulator's noise model)")
    left.set_ylabel("completeness")
    left.set_ylim(0, 1.05)
    left.legend(fontsize=8)
    right.axhline(5.0, color="grey", lw=0.8, ls=":")
    right.set_xlabel("reliability threshold")
    right.set_ylabel("false DIA sources per detector-visit")
    right.legend(fontsize=8)
    _score_panel(third, curves)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _score_panel(ax: Any, curves: dict[str, dict[str, Any]]) -> None:
    """Completeness against false rate as the threshold rises, a line per set and score."""
    for name, c in curves.items():
        for score, tab in c.get("by_score", {}).items():
            found = np.asarray(tab["found"], float) / max(tab["expected"], 1)
            style = "-" if score == "classifier" else "--"
            ax.plot(tab["false_per_detector_visit"][:-1], found[:-1], style, marker=".",
                    label=f"{name}: {score}")  # fmt: skip
    ax.set_xlabel("false DIA sources per detector-visit (threshold rising to the left)")
    ax.set_ylabel("completeness, expected SNR >= 10")
    if ax.get_lines():
        ax.legend(fontsize=8)
