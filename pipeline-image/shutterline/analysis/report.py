"""The night report: one HTML file that stands alone (its plots are PNG data URIs).

`night_report` takes the night's visit QA records (with their detectors' records under
``"detectorRecords"``) and returns the page: a summary, the plots of `plots`, and a table
of the visits. Every picture is an ``<img class="plot">`` with an ``id``, so a browser test
can check that each one rendered.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shutterline.analysis import plots

__all__ = ["PLOTS", "night_report"]

#: ``(id, caption, drawing function)`` of every plot, in page order.
PLOTS = (
    (
        "image-quality",
        "Image quality (PSF FWHM, ellipticity) over the night",
        plots.image_quality,
    ),
    ("zero-point", "Photometric zero point", plots.zero_point),
    ("limiting-mag", "5-sigma limiting magnitude", plots.limiting_magnitude),
    ("dia-counts", "DIA source counts against the expected rate", plots.dia_counts),
    ("latency", "Latency against the 60 s requirement", plots.latency),
    (
        "focal-plane",
        "Focal-plane maps: PSF per cell, zero point and depth per detector",
        plots.focal_plane,
    ),
)

_COLUMNS = (
    ("visit", "visit", "{}"),
    ("band", "band", "{}"),
    ("fwhm", 'FWHM (")', "{:.3f}"),
    ("ellipticity", "|e|", "{:.3f}"),
    ("zeroPoint", "ZP (mag)", "{:.3f}"),
    ("zeroPointScatter", "ZP scatter", "{:.3f}"),
    ("limitingMag", "m5 (mag)", "{:.2f}"),
    ("sky", "sky (e-/px)", "{:.0f}"),
    ("astromScatter", "astrom (mas)", "{:.0f}"),
    ("diaCount", "DIA", "{}"),
    ("dipoleFraction", "dipoles", "{:.2f}"),
    ("latencySeconds", "latency (s)", "{:.1f}"),
)

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
figure { margin: 1.5em 0; } img.plot { max-width: 100%; }
"""


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    return html.escape(fmt.format(value))


def _table(records: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in _COLUMNS)
    rows = [
        "<tr>" + "".join(f"<td>{_cell(r.get(k), f)}</td>" for k, _, f in _COLUMNS) + "</tr>"
        for r in records
    ]
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _detector_values(records: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    """``key`` of every detector record that has it; ``timing.<name>`` reads the timing."""
    out = []
    for r in records:
        for d in r.get("detectorRecords") or []:
            value = d.get(key) if "." not in key else (d.get("timing") or {}).get(key[7:])
            if value is not None:
                out.append(float(value))
    return out


def _latency_line(records: Sequence[Mapping[str, Any]]) -> str:
    """How many detectors missed the requirement: from shutter close where the records know
    it, else (the embedded run, whose visits were observed in a simulated past) from the raw
    landing, which is a lower bound."""
    limit = plots.LATENCY_REQUIREMENT_S
    for key, what in (
        ("latencySeconds", "shutter close to last alert"),
        ("timing.criticalPathSeconds", "raw landed to last alert; no shutter-close times"),
    ):
        values = _detector_values(records, key)
        if values:
            late = sum(v > limit for v in values)
            return f"{late} of {len(values)} detectors over {limit:.0f} s ({what})"
    return "no latency figures (no metrics records)"


def _summary(records: Sequence[Mapping[str, Any]]) -> str:
    def median(key: str) -> str:
        values = [float(r[key]) for r in records if r.get(key) is not None]
        return f"{np.median(values):.3f}" if values else "–"

    items = [
        f"{len(records)} visits, {sum(len(r.get('detectors') or []) for r in records)} detectors",
        f"median FWHM {median('fwhm')} arcsec, zero point {median('zeroPoint')} mag, "
        f"5-sigma depth {median('limitingMag')} mag",
        _latency_line(records),
    ]
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def night_report(night: str, records: Sequence[Mapping[str, Any]], source: str = "") -> str:
    """The HTML page of ``night`` (``YYYY-MM-DD``) from its visit QA records."""
    figures = []
    for plot_id, caption, draw in PLOTS:
        data = base64.b64encode(draw(records)).decode("ascii")
        figures.append(
            f'<figure><img class="plot" id="{plot_id}" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>"
        )
    title = f"Shutterline night report {html.escape(night)}"
    origin = f"<p>From {html.escape(source)}</p>" if source else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>{origin}{_summary(records)}"
        f"{''.join(figures)}<h2>Visits</h2>{_table(records)}</body></html>\n"
    )
