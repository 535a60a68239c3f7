"""Pictures people would rather look at than read: stage timeline and alert cutouts."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["plot_alert_cutouts", "plot_timeline"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_timeline(reports: Sequence[Any], path: Path) -> Path:
    """One row per detector-visit, one bar per stage, offsets from the detector's start."""
    plt = _pyplot()
    rows = [r for r in reports if r.timeline]
    names = sorted({n for r in rows for n, _, _ in r.timeline}, key=_stage_order(rows))
    colors = {n: plt.cm.tab20(i % 20) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(11, 0.35 * len(rows) + 1.6))
    for i, r in enumerate(rows):
        for name, start, wall in r.timeline:
            ax.barh(i, wall, left=start, color=colors[name], edgecolor="none")
    ax.set_yticks(range(len(rows)), [f"v{r.visit} d{r.detector}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the detector process started (gaps: imports)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[n]) for n in names]
    ax.legend(
        handles,
        names,
        ncol=min(6, len(names)),
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08 - 0.3 / max(len(rows), 1)),
    )
    ax.set_title("Stage timeline per detector")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _stage_order(rows: Sequence[Any]) -> Any:
    first: dict[str, float] = {}
    for r in rows:
        for name, start, _ in r.timeline:
            first[name] = min(first.get(name, np.inf), start)
    return lambda name: first[name]


def _cutout_array(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    with fits.open(io.BytesIO(blob)) as hdul:
        for hdu in hdul:
            if hdu.data is not None and np.ndim(hdu.data) == 2:
                return np.asarray(hdu.data, float)
    return None


def plot_alert_cutouts(alerts: Sequence[dict[str, Any]], path: Path, limit: int = 8) -> Path:
    """Science, template and difference cutouts of up to ``limit`` alerts, one row each."""
    plt = _pyplot()
    # The most reliable first, then the brightest: what a person triaging alerts looks at.
    chosen = sorted(
        alerts,
        key=lambda a: (
            -(a["diaSource"].get("reliability") or 0.0),
            -abs(a["diaSource"].get("snr") or 0.0),
        ),
    )[:limit]
    fig, axes = plt.subplots(
        max(len(chosen), 1), 3, figsize=(6.4, 2.1 * max(len(chosen), 1)), squeeze=False
    )
    keys = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
    for row, alert in zip(axes, chosen, strict=False):
        for ax, key in zip(row, keys, strict=True):
            data = _cutout_array(alert.get(key))
            if data is not None:
                lo, hi = np.nanpercentile(data, [2, 99.5])
                ax.imshow(data, origin="lower", cmap="gray", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
        src = alert["diaSource"]
        row[0].set_ylabel(f"{src['diaSourceId']}\nSNR {src.get('snr') or 0:.0f}", fontsize=7)
    for ax, title in zip(axes[0], ("science", "template", "difference"), strict=True):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
