"""Why the true changes of prepared nights are lost: every detection, no fakes, each miss named.

Each science detector-visit of the named nights goes through every stage to the difference
image and detection with nothing injected (`fakes.labelled_detections` with
``with_fakes=False``) and every detection kept (``select=False``). For each true changing
source at expected SNR >= 10 (`truth.expected_snr`) the step that loses it: *undetected*
(no detection within 3"), *position* (a detection within 3" but none within the 1" match
radius), or the rules of `dia.rejections` that drop its detection; then the grid of the
classifier's bars on these real detections (`bars.grid`: completeness and false DIA sources
per detector-visit as `dia.accept` keeps them). For choosing on fitting nights only.

    .venv/bin/python -m shutterline.evaluation.misses NIGHT_DIR [...] --tables DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

from shutterline.differencing import dia

__all__ = ["fates", "main"]

_SHOW = ("id", "visit", "detector", "x", "y", "mag", "diff_flux_nJy", "expected_snr")


def fates(
    table: Table,
    expected: Table,
    min_classifier: float = dia.MIN_CLASSIFIER,
    min_classifier_bright: float = dia.MIN_CLASSIFIER_BRIGHT,
) -> list[str]:
    """Per row of ``expected``: ``kept``, ``undetected``, ``position`` or the dropping rules."""
    drops = dia.rejections(table, min_classifier, min_classifier_bright)
    out = []
    for row, near in zip(expected["det_row"], expected["near_row"], strict=True):
        if row >= 0:
            rules = [name for name, d in drops.items() if d[row]]
            out.append("+".join(rules) if rules else "kept")
        else:
            out.append("position" if near >= 0 else "undetected")
    return out


def _describe(table: Table, expected: Table, fate: list[str], kind: str) -> None:
    """Print every lost source of ``kind`` with its detection's measurements."""
    for i in np.flatnonzero(np.asarray(expected["kind"], str) == kind):
        if fate[i] == "kept":
            continue
        cells = [f"{c}={expected[c][i]:.4g}" if isinstance(expected[c][i], float)
                 else f"{c}={expected[c][i]}" for c in _SHOW]  # fmt: skip
        r = int(expected["det_row"][i] if expected["det_row"][i] >= 0 else expected["near_row"][i])
        if r >= 0:
            d = table[r]
            cells += [f"near={expected['near_arcsec'][i]:.2f}\"", f"snr={d['snr']:.1f}",
                      f"psf_flux={d['psf_flux']:.4g}", f"tpl={d['template_flux']:.4g}",
                      f"rel={d['reliability']:.3f}", f"pen={d['reliability_penalty']:.2f}",
                      f"ext={d['extendedness']:.2f}", f"dipole={bool(d['is_dipole'])}"]  # fmt: skip
        print(f"  {fate[i]:>22}: " + " ".join(cells))


def main(argv: list[str] | None = None) -> int:
    """Diagnose the named prepared nights (see the module docstring)."""
    from shutterline.evaluation import bars, fakes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nights", nargs="+", type=Path, help="prepared night directories")
    parser.add_argument("--tables", type=Path, help="keep (and reuse) each image's tables here")
    args = parser.parse_args(argv)
    table, expected = fakes.stack([fakes.labelled_detections(n, i, args.tables, 1, False)
                                   for i, n in enumerate(args.nights)])  # fmt: skip
    fate = fates(table, expected)
    for kind in sorted(set(np.asarray(expected["kind"], str))):
        sel = np.asarray(expected["kind"], str) == kind
        names, counts = np.unique(np.asarray(fate)[sel], return_counts=True)
        print(f"{kind}: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True)))
        _describe(table, expected, fate, kind)
    print(bars.format_diagnosis(bars.diagnose(table, expected)))
    print(bars.format_grid(bars.grid(table, expected)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
