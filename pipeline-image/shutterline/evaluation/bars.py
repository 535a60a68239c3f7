"""Why true changes are lost, and the classifier's bars chosen on labelled detections.

Both read the tables of `shutterline.evaluation.fakes.labelled_detections` (every detection
of a night with fakes, ``select=False``, and the truth's changing sources at expected SNR
>= 10 with the detection matching each), so a choice of bars costs no re-run of the images.
`diagnose` says, per kind of source, how many `dia.accept` keeps, which rule of
`dia.rejections` drops the others, and for those never detected what lies under them.
`grid` gives completeness and false rate (detections matching no truth and no fake) over
a grid of the two bars, as `dia.accept` would apply them.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from astropy.table import Table

from shutterline.differencing import dia
from shutterline.images import mask as mask_mod

__all__ = ["diagnose", "format_diagnosis", "format_grid", "grid"]

_BARS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
_BIT = mask_mod.MaskBit
_UNDER = {"sat": _BIT.SAT, "bad": _BIT.BAD, "streak": _BIT.STREAK,
          "edge": _BIT.EDGE | _BIT.NO_DATA, "cr": _BIT.CR}  # fmt: skip


def diagnose(
    table: Table,
    expected: Table,
    min_classifier: float = dia.MIN_CLASSIFIER,
    min_classifier_bright: float = dia.MIN_CLASSIFIER_BRIGHT,
) -> dict[str, dict[str, int]]:
    """Kind -> counts: ``expected``, ``kept``, ``<rule>`` (dropped by it, with others),
    ``only <rule>`` (by it alone), ``undetected``, ``undetected <plane>`` (that mask plane
    at the source's pixel) and ``undetected pixel snr < 3``."""
    drops = dia.rejections(table, min_classifier, min_classifier_bright)
    row = np.asarray(expected["det_row"], int)
    hit = row >= 0
    out: dict[str, dict[str, int]] = {}
    for kind in sorted(set(np.asarray(expected["kind"], str))):
        sel = np.asarray(expected["kind"], str) == kind
        r = row[sel & hit]
        by = {name: d[r] for name, d in drops.items()}
        dropped = np.any(np.vstack([np.zeros(len(r), bool), *by.values()]), axis=0)
        n_by = np.sum(np.vstack([np.zeros(len(r), int), *[b.astype(int) for b in by.values()]]),
                      axis=0)  # fmt: skip
        counts = {"expected": int(sel.sum()), "kept": int((~dropped).sum())}
        counts.update({name: int(b.sum()) for name, b in by.items() if b.any()})
        counts.update({f"only {name}": int((b & (n_by == 1)).sum()) for name, b in by.items()
                       if (b & (n_by == 1)).any()})  # fmt: skip
        miss = sel & ~hit
        counts["undetected"] = int(miss.sum())
        masks = np.asarray(expected["mask"], int)
        for plane, bit in _UNDER.items():
            n = int(np.sum(miss & ((masks & int(bit)) != 0)))
            if n:
                counts[f"undetected {plane}"] = n
        low = int(np.sum(miss & (np.asarray(expected["diff_snr_px"], float) < 3.0)))
        if low:
            counts["undetected pixel snr < 3"] = low
        out[kind] = counts
    return out


def grid(table: Table, expected: Table, bars: tuple[float, ...] = _BARS) -> list[dict[str, Any]]:
    """Completeness and false rate per pair of bars ``(min_classifier, ..._bright)``."""
    # Nights share visit numbers: an image is its ``image`` index (`fakes.stack`) when there.
    keys = [np.asarray(table[c]) for c in ("image", "visit", "detector") if c in table.colnames]
    n_dv = len(set(zip(*keys, strict=True)))
    row = np.asarray(expected["det_row"], int)
    kinds = np.asarray(expected["kind"], str)
    bogus = np.asarray(table["label"]) == 0
    out = []
    for lo, bright in itertools.product(bars, bars):
        kept = dia.accept(table, lo, bright)
        found = (row >= 0) & kept[np.maximum(row, 0)]
        out.append({
            "min_classifier": lo, "min_classifier_bright": bright,
            "found": int(found.sum()), "expected": len(row),
            "false_per_detector_visit": float(np.sum(kept & bogus)) / max(n_dv, 1),
            "by_kind": {k: (int(found[kinds == k].sum()), int((kinds == k).sum()))
                        for k in sorted(set(kinds))},
        })  # fmt: skip
    return out


def format_diagnosis(diag: dict[str, dict[str, int]]) -> str:
    """One line per kind."""
    return "\n".join(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in c.items())
                     for kind, c in diag.items())  # fmt: skip


def format_grid(rows: list[dict[str, Any]]) -> str:
    """One line per pair of bars."""
    return "\n".join(
        f"  bars {r['min_classifier']:.2f}/{r['min_classifier_bright']:.2f}: "
        f"{r['found']}/{r['expected']} ({r['found'] / max(r['expected'], 1):.3f}), "
        f"false {r['false_per_detector_visit']:.2f}; "
        + ", ".join(f"{k} {f}/{n}" for k, (f, n) in r["by_kind"].items())
        for r in rows
    )
