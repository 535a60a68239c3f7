"""The night report's pictures, each a PNG as bytes (matplotlib, no display needed).

Every function takes the night's visit QA records (`records.visit_record`, each with its
detectors' records under ``"detectorRecords"``) in time order and draws one figure; a value
no visit has is drawn as an empty panel saying so, never left out, so the report always has
the same pictures.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from shutterline.camera import layout

__all__ = [
    "LATENCY_REQUIREMENT_S",
    "dia_counts",
    "focal_plane",
    "image_quality",
    "latency",
    "limiting_magnitude",
    "zero_point",
]

#: The prompt pipeline's requirement: alerts within this many seconds of shutter close.
LATENCY_REQUIREMENT_S = 60.0
_Records = Sequence[Mapping[str, Any]]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _hours(records: _Records) -> np.ndarray:
    """Hours since the night's first visit (its ``mjd``)."""
    mjd = np.array([float(r.get("mjd") or np.nan) for r in records])
    start = np.nanmin(mjd) if np.isfinite(mjd).any() else 0.0
    return (mjd - start) * 24.0


def _series(records: _Records, key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in records])


def _detector_points(records: _Records, key: str) -> tuple[np.ndarray, np.ndarray]:
    hours = _hours(records)
    xs, ys = [], []
    for h, r in zip(hours, records, strict=True):
        for d in r.get("detectorRecords") or []:
            if d.get(key) is not None:
                xs.append(h)
                ys.append(float(d[key]))
    return np.array(xs), np.array(ys)


def _time_panel(ax: Any, records: _Records, key: str, label: str) -> None:
    x, y = _detector_points(records, key)
    ax.plot(x, y, ".", color="0.6", ms=4, label="detectors")
    ax.plot(_hours(records), _series(records, key), "o-", color="C0", ms=5, label="visit")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if not np.isfinite(_series(records, key)).any():
        ax.text(0.5, 0.5, f"no {key} values", transform=ax.transAxes, ha="center")


def image_quality(records: _Records) -> bytes:
    """PSF FWHM and ellipticity over the night."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    _time_panel(top, records, "fwhm", "PSF FWHM (arcsec)")
    top.legend(loc="best", fontsize=8)
    top.set_title("Image quality over the night")
    _time_panel(bottom, records, "ellipticity", "ellipticity |e|")
    bottom.set_xlabel("hours since the first visit")
    return _png(fig)


def zero_point(records: _Records) -> bytes:
    """Zero point (AB mag of 1 e-/s) over the night, with each detector's scatter."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    _time_panel(ax, records, "zeroPoint", "zero point (mag)")
    scatter = _series(records, "zeroPointScatter")
    hours, zps = _hours(records), _series(records, "zeroPoint")
    ax.errorbar(hours, zps, yerr=scatter, fmt="none", ecolor="C0")
    ax.set_title("Photometric zero point (bars: scatter against the reference stars)")
    ax.set_xlabel("hours since the first visit")
    return _png(fig)


def limiting_magnitude(records: _Records) -> bytes:
    """5-sigma point-source depth over the night."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    _time_panel(ax, records, "limitingMag", "5σ limiting mag (AB)")
    ax.invert_yaxis()
    ax.set_title("Limiting magnitude")
    ax.set_xlabel("hours since the first visit")
    return _png(fig)


def dia_counts(records: _Records) -> bytes:
    """DIA sources per visit against the count the configured rate predicts."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    hours = _hours(records)
    width = max(float(np.nanmin(np.diff(hours))) * 0.6, 0.01) if len(hours) > 1 else 0.1
    ax.bar(hours, np.nan_to_num(_series(records, "diaCount")), width=width, label="found")
    ax.plot(hours, _series(records, "diaExpected"), "k_", ms=20, mew=2, label="expected")
    ax.set_ylabel("DIA sources per visit")
    ax.set_xlabel("hours since the first visit")
    ax.set_title("DIA source counts")
    ax.legend(fontsize=8)
    return _png(fig)


def latency(records: _Records) -> bytes:
    """Distribution of the detectors' latency (shutter close to last alert) against 60 s."""
    _, shutter = _detector_points(records, "latencySeconds")
    critical = [
        float(d["timing"]["criticalPathSeconds"])
        for r in records
        for d in r.get("detectorRecords") or []
        if (d.get("timing") or {}).get("criticalPathSeconds") is not None
    ]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    values = np.concatenate([shutter, critical]) if len(shutter) or critical else np.array([0.0])
    bins = list(np.linspace(0, max(LATENCY_REQUIREMENT_S * 1.2, float(np.max(values)) * 1.05), 40))
    if len(shutter):
        ax.hist(shutter, bins=bins, alpha=0.7, label="shutter close to last alert")
    if critical:
        ax.hist(critical, bins=bins, alpha=0.7, label="raw landed to last alert")
    if not len(shutter) and not critical:
        ax.text(0.5, 0.5, "no metrics records", transform=ax.transAxes, ha="center")
    ax.axvline(LATENCY_REQUIREMENT_S, color="r", label=f"{LATENCY_REQUIREMENT_S:.0f} s requirement")
    ax.set_xlabel("seconds")
    ax.set_ylabel("detectors")
    ax.set_title("Latency")
    ax.legend(fontsize=8)
    return _png(fig)


def _cells(records: _Records, key: str) -> dict[int, np.ndarray]:
    """Per detector, the median over the night of its ``psfMap[key]`` cells."""
    stacks: dict[int, list[np.ndarray]] = {}
    for r in records:
        for d in r.get("detectorRecords") or []:
            cells = (d.get("psfMap") or {}).get(key)
            if cells is not None:
                grid = np.array([[np.nan if v is None else v for v in row] for row in cells])
                stacks.setdefault(int(d["detector"]), []).append(grid)
    with warnings.catch_warnings():  # a cell no star fell in on any visit stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: np.nanmedian(np.array(v), axis=0) for k, v in stacks.items()}


def focal_plane(records: _Records) -> bytes:
    """Per-detector maps of PSF FWHM and ellipticity, placed as on the focal plane."""
    cam = layout.CAMERA
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, key, label in zip(
        axes, ("fwhm", "ellipticity"), ("PSF FWHM (arcsec)", "ellipticity"), strict=True
    ):
        cells = _cells(records, key)
        finite = [v[np.isfinite(v)] for v in cells.values()]
        values = np.concatenate(finite) if finite else np.array([])
        lo, hi = (np.min(values), np.max(values)) if values.size else (0.0, 1.0)
        image = None
        for spec in cam.detectors:
            # A detector's y (rows) lies along the focal plane's x: its cells transposed.
            x0, y0 = spec.offset_x - cam.ny / 2, spec.offset_y - cam.nx / 2
            box = plt.Rectangle((x0, y0), cam.ny, cam.nx, fill=False, ec="0.7", lw=0.5)
            ax.add_patch(box)
            if spec.ccdnum in cells:
                extent = (x0, x0 + cam.ny, y0, y0 + cam.nx)
                image = ax.imshow(
                    cells[spec.ccdnum].T, extent=extent, origin="lower", vmin=lo, vmax=hi
                )
                ax.text(spec.offset_x, spec.offset_y, str(spec.ccdnum), ha="center", fontsize=6)
        xs = [d.offset_x for d in cam.detectors]
        ys = [d.offset_y for d in cam.detectors]
        ax.set_xlim(min(xs) - cam.ny, max(xs) + cam.ny)
        ax.set_ylim(min(ys) - cam.nx, max(ys) + cam.nx)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{label}\nmedian per cell over the night", fontsize=10)
        if image is not None:
            fig.colorbar(image, ax=ax, shrink=0.7)
        else:
            ax.text(0.5, 0.5, "no PSF maps", transform=ax.transAxes, ha="center")
    return _png(fig)
