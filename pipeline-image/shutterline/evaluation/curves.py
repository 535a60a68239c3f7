"""Completeness against expected SNR, and false rate against reliability threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from shutterline.evaluation import truth

__all__ = [
    "SNR_EDGES",
    "THRESHOLDS",
    "Curves",
    "ScoreCurves",
    "binomial_interval",
    "detector_points",
]

#: Bins of expected difference SNR for the completeness curve.
SNR_EDGES = np.array([3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0, 1e9])
#: Reliability thresholds for the false-rate curve.
THRESHOLDS = np.linspace(0.0, 1.0, 21)


def detector_points(
    dia: Table, rows: Table, radius_arcsec: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(expected snr, found)`` of the changing truth rows, ``(reliability, false)`` of DIA."""
    changing = rows[np.isin(rows["kind"], truth.CHANGING)]
    snr = np.nan_to_num(truth.expected_snr(changing))
    ra_t, dec_t = np.asarray(changing["ra"], float), np.asarray(changing["dec"], float)
    ra_d, dec_d = np.asarray(dia["ra"], float), np.asarray(dia["dec"], float)
    to_dia, _ = truth._separation_match(ra_t, dec_t, ra_d, dec_d, radius_arcsec)
    to_truth, _ = truth._separation_match(ra_d, dec_d, ra_t, dec_t, radius_arcsec)
    reliability = np.asarray(dia["reliability"], float) if len(dia) else np.zeros(0)
    return snr, to_dia >= 0, reliability, to_truth < 0


class Curves:
    """Accumulates points over detector-visits and gives the two curves."""

    def __init__(self) -> None:
        self.snr: list[np.ndarray] = []
        self.found: list[np.ndarray] = []
        self.reliability: list[np.ndarray] = []
        self.false: list[np.ndarray] = []
        self.n_detector_visits = 0

    def add(self, points: Sequence[np.ndarray]) -> None:
        """Add one detector-visit's `detector_points`."""
        snr, found, rel, false = points
        self.snr.append(snr)
        self.found.append(found)
        self.reliability.append(rel)
        self.false.append(false)
        self.n_detector_visits += 1

    def completeness(self) -> dict[str, Any]:
        """Per SNR bin: lower edge, found, expected."""
        snr = np.concatenate(self.snr) if self.snr else np.zeros(0)
        found = np.concatenate(self.found) if self.found else np.zeros(0, bool)
        idx = np.digitize(snr, SNR_EDGES) - 1
        bins = range(len(SNR_EDGES) - 1)
        return {
            "snr_low": SNR_EDGES[:-1].tolist(),
            "found": [int(np.sum(found[idx == b])) for b in bins],
            "expected": [int(np.sum(idx == b)) for b in bins],
        }

    def false_rate(self) -> dict[str, Any]:
        """Per reliability threshold: false and true DIA sources per detector-visit kept."""
        rel = np.concatenate(self.reliability) if self.reliability else np.zeros(0)
        false = np.concatenate(self.false) if self.false else np.zeros(0, bool)
        n = max(self.n_detector_visits, 1)
        return {
            "threshold": THRESHOLDS.tolist(),
            "false_per_detector_visit": [float(np.sum(false & (rel >= t)) / n) for t in THRESHOLDS],
            "true_per_detector_visit": [float(np.sum(~false & (rel >= t)) / n) for t in THRESHOLDS],
        }


class ScoreCurves:
    """Completeness (expected SNR >= 10) and false rate against a threshold on one score.

    ``add`` takes one detector-visit's reported DIA sources, their scores and truth rows;
    a true source counts as found at threshold ``t`` when its matched DIA source scores at
    least ``t``.
    """

    def __init__(self) -> None:
        self.matched: list[np.ndarray] = []  # score of the matched DIA source, NaN if none
        self.false_scores: list[np.ndarray] = []
        self.n_detector_visits = 0

    def add(self, dia: Table, score: np.ndarray, rows: Table, radius_arcsec: float = 1.0) -> None:
        """One detector-visit."""
        changing = rows[np.isin(rows["kind"], truth.CHANGING)]
        expected = np.nan_to_num(truth.expected_snr(changing)) >= 10.0
        ra_t, dec_t = np.asarray(changing["ra"], float), np.asarray(changing["dec"], float)
        ra_d, dec_d = np.asarray(dia["ra"], float), np.asarray(dia["dec"], float)
        to_dia, _ = truth._separation_match(ra_t, dec_t, ra_d, dec_d, radius_arcsec)
        to_truth, _ = truth._separation_match(ra_d, dec_d, ra_t, dec_t, radius_arcsec)
        score = np.asarray(score, float)
        got = np.where(to_dia >= 0, score[np.maximum(to_dia, 0)] if len(score) else np.nan, np.nan)
        self.matched.append(got[expected])
        self.false_scores.append(score[to_truth < 0])
        self.n_detector_visits += 1

    def table(self) -> dict[str, Any]:
        """Per threshold: completeness and false DIA sources per detector-visit."""
        matched = np.concatenate(self.matched) if self.matched else np.zeros(0)
        false = np.concatenate(self.false_scores) if self.false_scores else np.zeros(0)
        n = max(self.n_detector_visits, 1)
        return {
            "threshold": THRESHOLDS.tolist(),
            "expected": int(matched.size),
            "found": [int(np.sum(matched >= t)) for t in THRESHOLDS],
            "false_per_detector_visit": [float(np.sum(false >= t) / n) for t in THRESHOLDS],
        }


def binomial_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion ``k / n``."""
    from scipy import stats

    if n == 0:
        return (0.0, 1.0)
    a = (1 - level) / 2
    lo = float(stats.beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return lo, hi
