"""Match DIA sources and calibrated source catalogs to the truth table of a simulated night."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from astropy.table import Table
from scipy.spatial import cKDTree

from shutterline.evaluation import coverage
from shutterline.simulate import record as night_record

__all__ = [
    "ChangeTruth",
    "DetectorScore",
    "astrometric_residuals",
    "expected_sigma",
    "expected_snr",
    "false_sources",
    "load_truth",
    "score_detector",
    "template_weights",
    "wrong_attributions",
]

CHANGING = ("variable", "transient", "asteroid")


@dataclass(frozen=True)
class ChangeTruth:
    """Truth rows of one night, with the flux each changing source shows in a difference image.

    ``table`` has the simulator's columns plus ``diff_flux_nJy``: the visit's flux minus the
    coadd-weighted mean flux over the template-building visits (`template_weights`; zero
    for a transient or asteroid there), and
    ``expected_sigma_nJy``: the PSF-flux noise the simulator's noise model gives that source
    in the visit's difference image (`expected_sigma`), so what a night is expected to find
    never depends on the pipeline's own noise estimate; and ``template_covered``: whether the
    row's centre lies on a template input pixel
    (`coverage.template_covered`, from the simulator's true footprints; True for rows of
    template visits and for nights whose record lacks the geometry).
    """

    table: Table

    def rows(self, visit: int, detector: int) -> Table:
        """Rows of one visit and detector."""
        t = self.table
        return t[(t["visit"] == visit) & (t["detector"] == detector)]


def load_truth(night_dir: Path, template_visits: set[int]) -> ChangeTruth:
    """Read ``truth/sources.csv`` and add the expected difference flux of every row."""
    table = Table.read(night_dir / "truth" / "sources.csv", format="ascii.csv")
    in_template = np.isin(table["visit"], sorted(template_visits))
    record = night_dir / "night.yaml"
    night = yaml.safe_load(record.read_text()) if record.exists() else None
    weight = template_weights(night) if night is not None else {}
    values: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for row in table[in_template & (table["kind"] == "variable")]:
        w = weight.get(int(row["visit"]), 1.0)
        values.setdefault((int(row["id"]), str(row["band"])), []).append(
            (float(row["flux_nJy"]), w)
        )
    mean_template = {
        key: float(np.average([f for f, _ in v], weights=[w for _, w in v]))
        for key, v in values.items()
    }
    diff = np.array(
        [
            float(r["flux_nJy"]) - mean_template.get((int(r["id"]), str(r["band"])), 0.0)
            if r["kind"] == "variable"
            else float(r["flux_nJy"])
            for r in table
        ]
    )
    table["diff_flux_nJy"] = diff
    if night is not None:
        table["expected_sigma_nJy"] = expected_sigma(night, table)
        table["template_covered"] = _covered(night, table, in_template)
    return ChangeTruth(table)


def _covered(night: dict[str, Any], table: Table, in_template: np.ndarray) -> np.ndarray:
    """`coverage.template_covered` for the changing rows of science visits; True elsewhere."""
    out = np.ones(len(table), bool)
    if "config" not in night or "detectors" not in night:
        return out
    todo = ~in_template & np.isin(table["kind"], CHANGING)
    for band in np.unique(np.asarray(table["band"])[todo]):
        sel = np.flatnonzero(todo & (np.asarray(table["band"]) == band))
        out[sel] = coverage.template_covered(
            night, np.asarray(table["ra"])[sel], np.asarray(table["dec"])[sel], str(band)
        )
    return out


def template_weights(
    night: dict[str, Any], read_noise_e: float = night_record.READ_NOISE_E
) -> dict[int, float]:
    """The coadd's weight of each template visit, from the simulator's record.

    `templates.coadd` weights each input by the inverse of its median pixel variance
    (nJy**2): sky and read noise, ``(sky_e_per_px + read_noise_e**2) * njy_per_electron**2``.
    A variable's flux in the template is this weighted mean of its template-visit fluxes,
    not their plain mean.
    """
    return {
        int(v["visit"]): 1.0
        / ((float(v["sky_e_per_px"]) + read_noise_e**2) * float(v["njy_per_electron"]) ** 2)
        for v in night["visits"]
        if v["role"] == "template" and "sky_e_per_px" in v
    }


def expected_sigma(night: dict[str, Any], rows: Table) -> np.ndarray:
    """PSF-flux noise (nJy) of each truth row in its visit's difference image.

    From the simulator's record (``night.yaml``): the visit's sky-and-read-noise point-source
    sigma, the template's (the inverse-variance sum over the template visits of the same
    field and band, as the coadd weights them) and the source's own shot noise in the visit
    (``flux * njy_per_electron``, nJy**2). Rows of visits the record lacks get NaN.
    """
    visits = {int(v["visit"]): v for v in night["visits"]}
    inv: dict[tuple[str, str], float] = {}
    for v in night["visits"]:
        if v["role"] == "template":
            key = (str(v["field"]), str(v["band"]))
            inv[key] = inv.get(key, 0.0) + float(v["point_source_sigma_njy"]) ** -2
    out = np.full(len(rows), np.nan)
    for i, row in enumerate(rows):
        v = visits.get(int(row["visit"]))
        if v is None or v["role"] != "science":
            continue
        tmpl = inv.get((str(v["field"]), str(v["band"])))
        var = float(v["point_source_sigma_njy"]) ** 2 + (1.0 / tmpl if tmpl else np.inf)
        var += max(float(row["flux_nJy"]), 0.0) * float(v["njy_per_electron"])
        out[i] = np.sqrt(var)
    return out


@dataclass(frozen=True)
class DetectorScore:
    """How one detector's DIA sources compare with the truth."""

    n_dia: int
    n_true_changing: int
    n_expected: int  # changing sources with expected difference SNR >= the threshold
    # ... and its centre on a template input pixel (`coverage`)
    n_found: int  # of those, matched by a DIA source
    n_false: int  # DIA sources within the radius of no changing source
    n_asteroids_detected: int
    n_asteroids_correct: int
    completeness_by_kind: dict[str, tuple[int, int]]  # kind -> (found, expected)
    n_not_covered: int = 0  # SNR >= the threshold but covered by no template: counted apart
    # The definition before template coverage (every source at SNR >= the threshold).
    completeness_by_kind_any_coverage: dict[str, tuple[int, int]] | None = None


def _separation_match(
    ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each point of set 1, the index of the nearest point of set 2 and its distance (")."""
    if len(ra2) == 0 or len(ra1) == 0:
        return np.full(len(ra1), -1), np.full(len(ra1), np.inf)
    ra0, dec0 = float(np.mean(ra2)), float(np.mean(dec2))
    cosd = np.cos(np.radians(dec0))

    def plane(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.column_stack([((ra - ra0 + 180.0) % 360.0 - 180.0) * cosd, dec - dec0]) * 3600

    dist, best = cKDTree(plane(ra2, dec2)).query(plane(ra1, dec1))
    return np.where(dist <= radius_arcsec, best, -1), dist


def expected_snr(truth_rows: Table, point_source_sigma_njy: float | None = None) -> np.ndarray:
    """``|diff_flux_nJy| / sigma`` per row: the truth's ``expected_sigma_nJy`` when present.

    ``point_source_sigma_njy`` (one noise for every row) is used only for truth tables
    without the simulator's noise model.
    """
    if "expected_sigma_nJy" in truth_rows.colnames:
        sigma = np.asarray(truth_rows["expected_sigma_nJy"], float)
    elif point_source_sigma_njy is not None:
        sigma = np.full(len(truth_rows), float(point_source_sigma_njy))
    else:
        raise ValueError("truth rows carry no expected_sigma_nJy and no sigma was given")
    return np.abs(np.asarray(truth_rows["diff_flux_nJy"], float)) / sigma


def score_detector(
    dia: Table,
    truth_rows: Table,
    point_source_sigma_njy: float | None = None,
    snr_threshold: float = 10.0,
    radius_arcsec: float = 1.0,
) -> DetectorScore:
    """Score one detector-visit's DIA sources.

    A changing source is expected when its `expected_snr` (the simulator's noise model, see
    `load_truth`) is at least ``snr_threshold`` and a template covers it (``template_covered``
    when the truth has it); one no template covers is counted in ``n_not_covered`` only.
    ``point_source_sigma_njy`` only serves truth tables without the noise model.
    """
    changing = truth_rows[np.isin(truth_rows["kind"], CHANGING)]
    ra_t, dec_t = np.asarray(changing["ra"], float), np.asarray(changing["dec"], float)
    ra_d, dec_d = np.asarray(dia["ra"], float), np.asarray(dia["dec"], float)
    to_truth, _ = _separation_match(ra_d, dec_d, ra_t, dec_t, radius_arcsec)
    to_dia, _ = _separation_match(ra_t, dec_t, ra_d, dec_d, radius_arcsec)
    bright = np.nan_to_num(expected_snr(changing, point_source_sigma_njy)) >= snr_threshold
    covered = (
        np.asarray(changing["template_covered"], bool)
        if "template_covered" in changing.colnames
        else np.ones(len(changing), bool)
    )
    expected = bright & covered

    def by_kind(sel: np.ndarray) -> dict[str, tuple[int, int]]:
        kinds = np.asarray(changing["kind"])
        found = sel & (to_dia >= 0)
        return {k: (int(np.sum(found & (kinds == k))), int(np.sum(sel & (kinds == k))))
                for k in CHANGING}  # fmt: skip

    ast_correct, ast_detected = _asteroid_score(dia, changing, to_truth)
    return DetectorScore(
        n_dia=len(dia),
        n_true_changing=len(changing),
        n_expected=int(expected.sum()),
        n_found=int(np.sum(expected & (to_dia >= 0))),
        n_false=int(np.sum(to_truth < 0)),
        n_asteroids_detected=ast_detected,
        n_asteroids_correct=ast_correct,
        completeness_by_kind=by_kind(expected),
        n_not_covered=int(np.sum(bright & ~covered)),
        completeness_by_kind_any_coverage=by_kind(bright),
    )


#: DIA columns kept in `false_sources` (when the table has them).
_FALSE_COLUMNS = ("x", "y", "snr", "psf_flux", "template_flux", "extendedness", "reliability",
                  "pixel_flags_cr", "pixel_flags_interpolated", "pixel_flags_bad")  # fmt: skip


def false_sources(dia: Table, truth_rows: Table, radius_arcsec: float = 1.0) -> Table:
    """The DIA sources within ``radius_arcsec`` of no changing source, with what lies under them.

    Beside the DIA columns of `_FALSE_COLUMNS`: the distance (arcsec) and AB magnitude of the
    nearest star (static or variable, not extended) and galaxy of ``truth_rows`` (the
    visit's and detector's rows of every kind): a false source on a star is a subtraction
    residual, one on neither is noise or an artefact.
    """
    changing = truth_rows[np.isin(truth_rows["kind"], CHANGING)]
    to_truth, _ = _separation_match(
        np.asarray(dia["ra"], float), np.asarray(dia["dec"], float),
        np.asarray(changing["ra"], float), np.asarray(changing["dec"], float), radius_arcsec,
    )  # fmt: skip
    false = dia[to_truth < 0]
    out = Table({c: false[c] for c in _FALSE_COLUMNS if c in false.colnames})
    still = np.isin(truth_rows["kind"], ("static", "variable"))
    extended = np.asarray(truth_rows["extended"], int) == 1
    for name, sel in (("star", still & ~extended), ("galaxy", still & extended)):
        near = truth_rows[sel]
        best, dist = _separation_match(
            np.asarray(false["ra"], float), np.asarray(false["dec"], float),
            np.asarray(near["ra"], float), np.asarray(near["dec"], float), np.inf,
        )  # fmt: skip
        out[f"{name}_sep_arcsec"] = dist
        mags = np.asarray(near["mag"], float)
        out[f"{name}_mag"] = mags[best] if len(near) else np.full(len(false), np.nan)
    return out


def _asteroid_score(dia: Table, changing: Table, to_truth: np.ndarray) -> tuple[int, int]:
    """(correctly associated, detected) known asteroids among the DIA sources."""
    if "ss_object_id" not in dia.colnames:
        return 0, 0
    hit = to_truth >= 0
    kinds = np.asarray(changing["kind"])[np.where(hit, to_truth, 0)]
    is_ast = hit & (kinds == "asteroid")
    truth_ids = np.asarray(changing["id"])[np.where(hit, to_truth, 0)]
    ss_ids = np.ma.filled(np.ma.asarray(dia["ss_object_id"]), -1)
    correct = is_ast & (ss_ids.astype(np.int64) == truth_ids.astype(np.int64))
    return int(correct.sum()), int(is_ast.sum())


def wrong_attributions(dia: Table, truth_rows: Table, radius_arcsec: float = 1.0) -> int:
    """DIA sources attributed to a known object (``ss_object_id`` not 0) that are not it.

    A source is rightly attributed only when the nearest changing source of the truth within
    ``radius_arcsec`` is the asteroid of that id; anything else (a variable, a transient,
    another asteroid, a false detection) counts.
    """
    if "ss_object_id" not in dia.colnames or len(dia) == 0:
        return 0
    ss_ids = np.ma.filled(np.ma.asarray(dia["ss_object_id"]), 0).astype(np.int64)
    changing = truth_rows[np.isin(truth_rows["kind"], CHANGING)]
    to_truth, _ = _separation_match(
        np.asarray(dia["ra"], float),
        np.asarray(dia["dec"], float),
        np.asarray(changing["ra"], float),
        np.asarray(changing["dec"], float),
        radius_arcsec,
    )
    hit = to_truth >= 0
    pick = np.where(hit, to_truth, 0)
    right = (
        hit
        & (np.asarray(changing["kind"])[pick] == "asteroid")
        & (np.asarray(changing["id"]).astype(np.int64)[pick] == ss_ids)
    )
    return int(np.sum((ss_ids != 0) & ~right))


def astrometric_residuals(src: Table, truth_rows: Table, radius_arcsec: float = 1.0) -> np.ndarray:
    """Separations (arcsec) between calibrated positions of sources and their true static stars."""
    point = truth_rows["extended"] == 0 if "extended" in truth_rows.colnames else True
    static = truth_rows[(truth_rows["kind"] == "static") & point]
    idx, dist = _separation_match(
        np.asarray(src["ra"], float),
        np.asarray(src["dec"], float),
        np.asarray(static["ra"], float),
        np.asarray(static["dec"], float),
        radius_arcsec,
    )
    return dist[idx >= 0]
