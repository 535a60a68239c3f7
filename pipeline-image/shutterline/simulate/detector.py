"""The instrument signature of one detector, and turning electrons into a raw 16-bit image.

Per detector (fixed for the night, drawn from the seed and CCD number): two amplifiers with
their own bias level, gain, read noise and full well; a fixed 2-D bias pattern; a few bad
columns (hot: extra charge in every exposure, biases included; dead: almost no response);
pixel response non-uniformity; and a smooth, band-dependent illumination/vignetting pattern.
The header gain is what the engineers measured; the true gain differs by about 1%, which
the flat field absorbs, as on a real camera.

Saturation: a pixel whose charge reaches the full well holds it, and the excess bleeds
along its column in both directions; such pixels read out as exactly ``SATURAT`` ADU (a raw
value, bias included), every other pixel reads below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shutterline.camera import layout
from shutterline.simulate import config, geometry

__all__ = [
    "DetectorModel",
    "add_cosmic_rays",
    "bleed",
    "flat_response",
    "make_detector",
    "to_raw",
]

F32 = npt.NDArray[np.float32]
AMPS = ("A", "B")


@dataclass(frozen=True)
class DetectorModel:
    """The fixed properties of one detector (values per amplifier keyed ``'A'``, ``'B'``)."""

    ccdnum: int
    detpos: str
    gain: dict[str, float]  # header value, e-/ADU
    true_gain: dict[str, float]
    bias_level: dict[str, float]  # ADU
    read_noise: dict[str, float]  # e-
    full_well: dict[str, float]  # e-
    saturate_adu: dict[str, int]  # raw ADU, bias included
    bad_columns: tuple[tuple[int, int, str], ...]  # (column, first row, 'hot' | 'dead')
    prnu: F32  # (ny, nx)
    bias_pattern: F32  # (ny, nx) ADU, hot columns included
    focal_offset: tuple[float, float]  # detector centre on the focal plane, pixels


def make_detector(cfg: config.SimConfig, ccdnum: int, with_arrays: bool = True) -> DetectorModel:
    """Draw the detector's properties; deterministic for ``(cfg.seed, ccdnum)``.

    ``with_arrays=False`` skips the per-pixel arrays (``prnu``, ``bias_pattern`` are then
    empty), for callers that only need the amplifier numbers; the numbers are the same.
    """
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 31, ccdnum]))
    spec = layout.CAMERA.detector(ccdnum)
    gain = {a: round(float(rng.uniform(3.7, 4.3)), 4) for a in AMPS}
    true_gain = {a: gain[a] * float(1.0 + rng.normal(0.0, 0.01)) for a in AMPS}
    bias = {a: round(float(rng.uniform(1200.0, 2600.0)), 2) for a in AMPS}
    noise = {a: round(float(rng.uniform(6.0, 8.0)), 3) for a in AMPS}
    well = {a: float(rng.uniform(170000.0, 200000.0)) for a in AMPS}
    saturate = {a: int(bias[a] + well[a] / true_gain[a]) for a in AMPS}
    bad = _bad_columns(cfg, rng)
    hot_levels = [float(rng.uniform(300.0, 2000.0)) for _ in bad]
    if with_arrays:
        pixels = np.random.default_rng(np.random.SeedSequence([cfg.seed, 32, ccdnum]))
        prnu = pixels.standard_normal((cfg.ny, cfg.nx), dtype=np.float32)
        prnu *= np.float32(0.006)
        prnu += np.float32(1.0)
        pattern = _bias_pattern(cfg, pixels, bad, hot_levels)
    else:
        prnu = pattern = np.zeros((0, 0), dtype=np.float32)
    sx, sy = cfg.scale
    return DetectorModel(
        ccdnum,
        spec.detpos,
        gain,
        true_gain,
        bias,
        noise,
        well,
        saturate,
        bad,
        prnu,
        pattern,
        (spec.offset_x * sy, spec.offset_y * sx),
    )


def _bad_columns(
    cfg: config.SimConfig, rng: np.random.Generator
) -> tuple[tuple[int, int, str], ...]:
    cols = rng.choice(np.arange(8, cfg.nx - 8), size=int(rng.integers(3, 6)), replace=False)
    out = []
    for k, col in enumerate(sorted(int(c) for c in cols)):
        first_row = 0 if k % 2 == 0 else int(rng.integers(0, cfg.ny // 2))
        out.append((col, first_row, "hot" if k % 3 == 1 else "dead"))
    return tuple(out)


def _bias_pattern(
    cfg: config.SimConfig,
    rng: np.random.Generator,
    bad: tuple[tuple[int, int, str], ...],
    hot_levels: list[float],
) -> F32:
    """Column-to-column offsets, a ramp near the first rows, and hot columns (ADU)."""
    cols = rng.normal(0.0, 1.0, cfg.nx).astype(np.float32)
    rows = (4.0 * np.exp(-np.arange(cfg.ny) / 60.0)).astype(np.float32)
    pattern = rows[:, None] + cols[None, :]
    for (col, first_row, kind), level in zip(bad, hot_levels, strict=True):
        if kind == "hot":
            pattern[first_row:, col] += np.float32(level)
    return pattern.astype(np.float32)


def flat_response(model: DetectorModel, cfg: config.SimConfig, band: str) -> F32:
    """Relative response ``(ny, nx)`` of the detector in ``band``, mean 1 over live pixels.

    Vignetting falls with focal-plane radius (a few percent across the camera); a gentle
    band-dependent ripple and the pixel response non-uniformity ride on it; dead columns
    respond at 3%.
    """
    b = "gri".index(band) if band in "gri" else 0
    y = np.arange(cfg.ny, dtype=np.float32) - (cfg.ny - 1) / 2
    x = np.arange(cfg.nx, dtype=np.float32) - (cfg.nx - 1) / 2
    fx, fy = model.focal_offset
    u = (fx + y) / np.float32(6000.0 * cfg.ny / layout.CAMERA.ny)  # rows run along focal x
    v = (fy - x) / np.float32(6000.0 * cfg.nx / layout.CAMERA.nx)
    ripple_y = np.float32(0.01) * np.sin(np.float32(2.5 + b) * u + np.float32(b))
    smooth = (1.0 - np.float32(0.04) * (u[:, None] ** 2 + v[None, :] ** 2)) + ripple_y[:, None]
    smooth += (np.float32(0.006) * np.cos(np.float32(3.0 + b) * v))[None, :]
    response = (smooth * model.prnu).astype(np.float32)
    response /= np.float32(response.mean())
    for col, first_row, kind in model.bad_columns:
        if kind == "dead":
            response[first_row:, col] = np.float32(0.03)
    return response


def bleed(signal: F32, full_well: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Cap charge at the full well and spread the excess along columns; in place.

    ``full_well`` has shape ``(nx,)``. Returns the saturated-pixel mask ``(ny, nx)``.
    """
    over = np.flatnonzero(signal.max(axis=0) > full_well)
    for col in over.tolist():
        _bleed_column(signal[:, col], float(full_well[col]))
    saturated = np.zeros(signal.shape, dtype=bool)
    if len(over):
        saturated[:, over] = signal[:, over] >= full_well[over][None, :]
    return saturated


def _bleed_column(column: F32, well: float) -> None:
    """Each run above the well keeps the well and pushes its excess half up, half down."""
    above = column > well
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.view(np.int8), [0]])))
    for start, stop in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        excess = float(np.sum(column[start:stop] - well))
        column[start:stop] = well
        _spill(column[stop:], excess / 2.0, well)
        _spill(column[:start][::-1], excess / 2.0, well)


def _spill(run: F32, charge: float, well: float) -> None:
    """Fill ``run`` (a view moving away from the saturated core) to the well with ``charge``."""
    if len(run) == 0 or charge <= 0:
        return
    room = np.maximum(well - run, 0.0)
    filled = np.searchsorted(np.cumsum(room), charge)
    run[:filled] = well
    if filled < len(run):
        used = float(room[:filled].sum())
        run[filled] += np.float32(charge - used)


def add_cosmic_rays(image: F32, rng: np.random.Generator, mean_count: float) -> int:
    """Add sharp cosmic-ray tracks (1 to 10 pixels, 300 to 4000 e- per pixel) in place.

    ``mean_count`` is the expected number of hits on the image; returns the number drawn.
    """
    ny, nx = image.shape
    n = int(rng.poisson(mean_count))
    length = np.minimum(rng.geometric(0.35, n), 10)
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    x0, y0 = rng.uniform(0, nx, n), rng.uniform(0, ny, n)
    step = np.arange(10)[None, :]
    xs = np.floor(x0[:, None] + step * np.cos(angle)[:, None]).astype(np.int64)
    ys = np.floor(y0[:, None] + step * np.sin(angle)[:, None]).astype(np.int64)
    charge = rng.uniform(300.0, 4000.0, (n, 10)).astype(np.float32)
    keep = (step < length[:, None]) & (xs >= 0) & (xs < nx) & (ys >= 0) & (ys < ny)
    np.add.at(image, (ys[keep], xs[keep]), charge[keep])
    return n


def _per_column(
    model: DetectorModel, raw: geometry.RawLayout, values: dict[str, float]
) -> npt.NDArray[np.float32]:
    """An amplifier property spread over the data columns, shape ``(nx,)``."""
    out = np.empty(raw.nx, dtype=np.float32)
    for amp in AMPS:
        sec = raw.data[amp]
        out[sec.x0 - raw.overscan : sec.x1 - raw.overscan] = values[amp]
    return out


def to_raw(
    electrons: F32,
    saturated: npt.NDArray[np.bool_],
    model: DetectorModel,
    raw: geometry.RawLayout,
    rng: np.random.Generator,
) -> npt.NDArray[np.uint16]:
    """Read out: noise, bias, gain, overscan, 16-bit digitisation.

    Parameters
    ----------
    electrons : float32 array ``(ny, nx)``
        Expected charge per data pixel after bleeding (before shot noise); overwritten.
    saturated : bool array ``(ny, nx)``
        Pixels at full well; they read out as ``SATURAT``.

    Returns
    -------
    uint16 array ``(ny, nx + 2 overscan)``: the raw image.
    """
    ny = electrons.shape[0]
    # One row-dependent bias drift per exposure: the overscan sees it too, so per-row
    # overscan subtraction removes it.
    wave = np.sin(np.linspace(0.0, rng.uniform(1.0, 6.0), ny))
    drift = (rng.normal(0.0, 0.5) * wave).astype(np.float32)[:, None]
    noise = rng.standard_normal(raw.raw_shape, dtype=np.float32)
    rn2 = _per_column(model, raw, {a: model.read_noise[a] ** 2 for a in AMPS})
    inv_gain = _per_column(model, raw, {a: 1.0 / model.true_gain[a] for a in AMPS})
    sat = _per_column(model, raw, {a: float(model.saturate_adu[a]) for a in AMPS})
    data = slice(raw.overscan, raw.overscan + raw.nx)
    # Shot noise and read noise in one draw: sigma = sqrt(max(e, 0) + rn^2), all in place.
    sigma = np.maximum(electrons, 0.0)
    sigma += rn2
    np.sqrt(sigma, out=sigma)
    sigma *= noise[:, data]
    electrons += sigma
    electrons *= inv_gain
    # Bias level, fixed pattern and drift, plus 0.5 so that truncation below rounds.
    electrons += model.bias_pattern
    electrons += _per_column(model, raw, model.bias_level) + np.float32(0.5)
    electrons += drift
    np.clip(electrons, 0.0, sat - 0.5, out=electrons)
    np.copyto(electrons, np.broadcast_to(sat + 0.5, electrons.shape), where=saturated)
    out = np.empty(raw.raw_shape, dtype=np.uint16)
    np.copyto(out[:, data], electrons, casting="unsafe")
    for amp in AMPS:
        bias = raw.bias[amp]
        rn_adu = np.float32(model.read_noise[amp] / model.true_gain[amp])
        over = noise[bias.slices] * rn_adu + (model.bias_level[amp] + 0.5 + drift)
        np.copyto(out[bias.slices], np.clip(over, 0.0, 65535.0), casting="unsafe")
    return out
