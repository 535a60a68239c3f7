"""One detector of one exposure: the electron image, its truth rows, and the raw pixels.

Randomness is keyed by ``(seed, purpose, expnum, ccdnum)``, never by processing order, so
detectors can be simulated in any order or in parallel and still give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy import wcs as fitswcs
from astropy.table import Table

from shutterline.camera import layout
from shutterline.simulate import (
    artefacts,
    asteroids,
    config,
    detector,
    geometry,
    render,
    schedule,
    sky,
)

__all__ = ["TRUTH_COLUMNS", "DetectorExposure", "simulate_exposure"]

F32 = npt.NDArray[np.float32]
#: Columns of ``truth/sources.csv``, in order.
TRUTH_COLUMNS = (
    "id",
    "kind",
    "visit",
    "detector",
    "mjd",
    "band",
    "ra",
    "dec",
    "x",
    "y",
    "flux_nJy",
    "mag",
    "extended",
)
#: Sources whose centre lies this far outside the detector are still drawn (their wings).
_DRAW_MARGIN_PX = 40.0
#: Expected cosmic-ray hits on a full 2048 x 4096 detector per exposure of the role.
_COSMICS = {"bias": 0.0, "flat": 120.0, "template": 300.0, "science": 300.0}


@dataclass(frozen=True)
class DetectorExposure:
    """The simulated raw of one detector, with the WCS written to it and its truth rows."""

    pixels: npt.NDArray[np.uint16]
    written_wcs: fitswcs.WCS
    true_wcs: fitswcs.WCS
    truth: dict[str, np.ndarray]
    wcs_error: dict[str, float]


def _rng(cfg: config.SimConfig, purpose: int, expnum: int, ccdnum: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, purpose, expnum, ccdnum]))


def _sky_sources(
    cfg: config.SimConfig, plan: schedule.ExposurePlan, cat: Table, track: asteroids.Track | None
) -> dict[str, np.ndarray]:
    """Every source of the field at this exposure's mid-time: catalog plus asteroids."""
    n_ast = 0 if track is None else len(track.ids)
    flux = sky.flux_at(cat, plan.band, plan.mjd_mid)
    empty = np.zeros(n_ast)
    cols = {
        "id": np.concatenate(
            [np.asarray(cat["id"], np.int64), track.ids if track else np.zeros(0, np.int64)]
        ),
        "kind": np.concatenate([np.asarray(cat["kind"], "U9"), np.full(n_ast, "asteroid")]),
        "ra": np.concatenate([np.asarray(cat["ra"], float), track.ra if track else empty]),
        "dec": np.concatenate([np.asarray(cat["dec"], float), track.dec if track else empty]),
        "flux_nJy": np.concatenate([flux, track.flux_njy if track else empty]),
        "extended": np.concatenate([np.asarray(cat["extended"], bool), np.zeros(n_ast, bool)]),
    }
    arcsec_px = layout.CAMERA.pixel_scale_arcsec
    cols["sigma_x"] = np.concatenate([np.asarray(cat["sigma_x"], float) / arcsec_px, empty])
    cols["sigma_y"] = np.concatenate([np.asarray(cat["sigma_y"], float) / arcsec_px, empty])
    return cols


def _truth_rows(
    cols: dict[str, np.ndarray],
    keep: npt.NDArray[np.bool_],
    plan: schedule.ExposurePlan,
    ccdnum: int,
) -> dict[str, np.ndarray]:
    n = int(keep.sum())
    flux = cols["flux_nJy"][keep]
    return {
        "id": cols["id"][keep],
        "kind": cols["kind"][keep],
        "visit": np.full(n, plan.expnum, np.int64),
        "detector": np.full(n, ccdnum, np.int64),
        "mjd": np.full(n, plan.mjd_mid),
        "band": np.full(n, plan.band, "U1"),
        "ra": cols["ra"][keep],
        "dec": cols["dec"][keep],
        "x": cols["x"][keep],
        "y": cols["y"][keep],
        "flux_nJy": flux,
        "mag": config.NJY_AB_ZERO_MAG - 2.5 * np.log10(np.maximum(flux, 1e-30)),
        "extended": cols["extended"][keep].astype(np.int8),
    }


def _science_electrons(
    cfg: config.SimConfig,
    plan: schedule.ExposurePlan,
    true_wcs: fitswcs.WCS,
    response: F32,
    cat: Table,
    track: asteroids.Track | None,
    ccdnum: int,
) -> tuple[F32, dict[str, np.ndarray]]:
    """Expected electrons (sky + sources, times the response) and the truth rows."""
    cols = _sky_sources(cfg, plan, cat, track)
    x, y = geometry.sky_to_data_pixels(true_wcs, cfg, cols["ra"], cols["dec"])
    cols["x"], cols["y"] = x, y
    lit = cols["flux_nJy"] > 0
    near = (
        lit
        & (x > -_DRAW_MARGIN_PX)
        & (x < cfg.nx + _DRAW_MARGIN_PX)
        & (y > -_DRAW_MARGIN_PX)
        & (y < cfg.ny + _DRAW_MARGIN_PX)
    )
    on = lit & (x >= -0.5) & (x < cfg.nx - 0.5) & (y >= -0.5) & (y < cfg.ny - 0.5)
    image = np.full((cfg.ny, cfg.nx), np.float32(plan.sky_e_per_px), dtype=np.float32)
    # A faint sky gradient (about 1% across the detector) for background subtraction to find.
    image += np.linspace(0.0, 0.01 * plan.sky_e_per_px, cfg.ny, dtype=np.float32)[:, None]
    fwhm_px = plan.seeing_arcsec / layout.CAMERA.pixel_scale_arcsec
    electrons = cols["flux_nJy"][near] / plan.njy_per_electron
    render.render_sources(
        image, x[near], y[near], electrons, fwhm_px, cols["sigma_x"][near], cols["sigma_y"][near]
    )
    artefacts.add_trails(
        image, artefacts.trails_for(cfg, plan.expnum, ccdnum, plan.exptime), fwhm_px
    )
    image *= response
    artefacts.add_late_columns(image, artefacts.late_columns(cfg, ccdnum), plan.sky_e_per_px)
    return image, _truth_rows(cols, on, plan, ccdnum)


def simulate_exposure(
    cfg: config.SimConfig,
    plan: schedule.ExposurePlan,
    model: detector.DetectorModel,
    response: F32 | None,
    cat: Table | None,
    track: asteroids.Track | None,
) -> DetectorExposure:
    """Simulate detector ``model`` in exposure ``plan``.

    ``response`` is the detector's flat response in the plan's band (unused for biases);
    ``cat`` and ``track`` the field's sources and the asteroids (science/template only).
    """
    raw = geometry.raw_layout(cfg)
    rng = _rng(cfg, 51, plan.expnum, model.ccdnum)
    true_wcs = geometry.detector_wcs(cfg, model.ccdnum, plan.ra, plan.dec)
    written, wcs_error = geometry.perturb_wcs(
        true_wcs, cfg, _rng(cfg, 52, plan.expnum, model.ccdnum)
    )
    truth: dict[str, np.ndarray] = {}
    if plan.role == "bias":
        electrons = np.zeros((cfg.ny, cfg.nx), dtype=np.float32)
    elif plan.role == "flat":
        assert response is not None
        level = np.float32(rng.uniform(18000.0, 24000.0))
        electrons = response * level
    else:
        assert response is not None and cat is not None
        electrons, truth = _science_electrons(
            cfg, plan, true_wcs, response, cat, track, model.ccdnum
        )
    wells = np.empty(cfg.nx, dtype=np.float32)
    half = cfg.nx // 2
    wells[:half], wells[half:] = model.full_well["A"], model.full_well["B"]
    saturated = detector.bleed(electrons, wells)
    area = cfg.nx * cfg.ny / (layout.CAMERA.nx * layout.CAMERA.ny)
    detector.add_cosmic_rays(electrons, rng, _COSMICS[plan.role] * area)
    pixels = detector.to_raw(electrons, saturated, model, raw, rng)
    return DetectorExposure(pixels, written, true_wcs, truth, wcs_error)
