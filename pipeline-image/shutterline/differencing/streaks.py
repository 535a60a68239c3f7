"""Satellite streaks in a difference image: found by a Hough transform, masked as ``STREAK``.

A satellite, aircraft or meteor crossing during the science exposure leaves a straight streak
that the template (a coadd with outlier rejection) does not have, so it survives subtraction
as a line of positive pixels. Detected as point sources it would give a row of false DIA
sources along its length, so it is found first and masked: DIA sources on it carry
``pixel_flags_streak`` and are not reported (`dia.accept`). A trailed asteroid is no streak:
its trail is far shorter than `MIN_LENGTH_PX` and it is measured with the trail fields.

Method (`find_streaks`): the signal-to-noise image ``D / sqrt(V)``, unusable pixels zeroed,
is summed in ``BIN x BIN`` blocks (a block sum of white noise has sigma ``BIN``); blocks
above `BLOCK_SNR` vote in a ``(theta, rho)`` Hough accumulator. The best line is accepted
when its votes, within one block of it, are at least `MIN_LENGTH_PX` (and
`MIN_LENGTH_FWHM` PSF widths) long from first to last and fill at least `MIN_FILL` of that
stretch (a row of separate sources or a blob does not); its width comes from the median
profile across it (see `residual_level`), its blocks leave the accumulator and the search
repeats, up to `MAX_STREAKS` times. The thresholds were chosen on the fitting nights
(`shutterline.evaluation.nights.FITTING`).
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from shutterline.images import mask as mask_mod

__all__ = [
    "BIN",
    "BLOCK_SNR",
    "EDGE_SNR",
    "MAX_STREAKS",
    "MIN_FILL",
    "MIN_LENGTH_FWHM",
    "MIN_LENGTH_PX",
    "Streak",
    "find_streaks",
    "mask_streaks",
    "residual_level",
]

BIN = 4
#: A block votes when its summed signal-to-noise is this many (block) sigma.
BLOCK_SNR = 3.5
#: A streak's votes span at least this many pixels and PSF widths along it...
MIN_LENGTH_PX = 100.0
MIN_LENGTH_FWHM = 10.0
#: ...and cover at least this fraction of that span.
MIN_FILL = 0.6
#: The mask reaches out to where the median profile across the streak falls below this.
EDGE_SNR = 0.5
MAX_STREAKS = 8
_Bit = mask_mod.MaskBit
_UNUSABLE = int(_Bit.NO_DATA | _Bit.EDGE | _Bit.SAT | _Bit.BAD | _Bit.CR)
_N_THETA = 720


@dataclasses.dataclass(frozen=True)
class Streak:
    """A straight streak: ``x cos(theta) + y sin(theta) = rho`` (pixels, radians).

    ``s0, s1`` bound it along the line (``s = -x sin(theta) + y cos(theta)``); ``half_width``
    (pixels) is how far from the centre line the mask reaches; ``peak_snr`` is the median
    signal-to-noise per pixel on the centre line.
    """

    theta: float
    rho: float
    s0: float
    s1: float
    half_width: float
    peak_snr: float

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Perpendicular distance (pixels) of points from the centre line."""
        return np.abs(x * np.cos(self.theta) + y * np.sin(self.theta) - self.rho)

    def along(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Position along the line (pixels)."""
        return -x * np.sin(self.theta) + y * np.cos(self.theta)


def _usable_snr(image: np.ndarray, variance: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Signal-to-noise ``image / sqrt(variance)``, 0 where unusable or not finite (any shape)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(
            ((mask & _UNUSABLE) == 0) & (variance > 0), image / np.sqrt(variance), 0.0
        ).astype(np.float32)
    return np.nan_to_num(snr)


@numba.njit(cache=True, nogil=True)
def _snr_blocks(image: np.ndarray, variance: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``BIN x BIN`` block sums / BIN of the per-pixel signal-to-noise (unusable pixels 0).

    One pass, with no full-size temporaries (numpy made five 32 MB ones). As before, a block
    holding a NaN pixel counts 0 and one summing to an infinity the largest float32.
    """
    ny, nx = image.shape[0] // BIN, image.shape[1] // BIN
    out = np.zeros((ny, nx), np.float32)
    for by in range(ny):
        for r in range(by * BIN, by * BIN + BIN):
            for bx in range(nx):
                acc = out[by, bx]
                for c in range(bx * BIN, bx * BIN + BIN):
                    v = variance[r, c]
                    if (mask[r, c] & _UNUSABLE) == 0 and v > 0:
                        acc += np.float32(image[r, c] / np.sqrt(v))
                out[by, bx] = acc
    big = np.finfo(np.float32).max
    for by in range(ny):
        for bx in range(nx):
            b = out[by, bx] / np.float32(BIN)
            out[by, bx] = 0.0 if np.isnan(b) else (min(max(b, -big), big))
    return out


def _hough(by: np.ndarray, bx: np.ndarray, thetas: np.ndarray, n_rho: int) -> np.ndarray:
    """``(n_theta, n_rho)`` votes of block centres; rho in blocks, offset by ``n_rho // 2``."""
    rho = np.rint(np.outer(np.cos(thetas), bx) + np.outer(np.sin(thetas), by)).astype(np.int64)
    rho += n_rho // 2
    flat = rho + np.arange(thetas.size)[:, None] * n_rho
    return np.bincount(flat.ravel(), minlength=thetas.size * n_rho).reshape(thetas.size, n_rho)


def _run(along: np.ndarray) -> tuple[float, float, float]:
    """Longest stretch of votes with gaps under `MIN_LENGTH_PX` / 4: (start, end, fill)."""
    s = np.sort(along)
    breaks = np.where(np.diff(s) > MIN_LENGTH_PX / (4 * BIN))[0]
    starts, ends = np.r_[0, breaks + 1], np.r_[breaks, s.size - 1]
    k = int(np.argmax(ends - starts))
    lo, hi = s[starts[k]], s[ends[k]]
    occupied = np.unique(np.rint(s[starts[k] : ends[k] + 1])).size
    return float(lo), float(hi), occupied / max(hi - lo + 1.0, 1.0)


def _profile_width(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray], streak: Streak, fwhm: float
) -> tuple[float, float]:
    """(half-width, centre-line SNR per pixel) from the median profile across the streak.

    ``planes`` are the difference image's image, variance and mask; the signal-to-noise is
    computed at the profile's sample points only.

    The mask reaches to where a Gaussian of the profile's measured width falls to
    `residual_level`, or to where the measured profile stays above `EDGE_SNR`, whichever
    is farther.
    """
    ny, nx = planes[0].shape
    step = max(int((streak.s1 - streak.s0) / 400), 1)
    s = np.arange(streak.s0, streak.s1, step, dtype=np.float64)
    d = np.arange(-120, 121, dtype=np.float64) * 0.5
    c, si = np.cos(streak.theta), np.sin(streak.theta)
    x = np.rint(streak.rho * c - s[:, None] * si + d[None, :] * c).astype(int)
    y = np.rint(streak.rho * si + s[:, None] * c + d[None, :] * si).astype(int)
    inside = ((x >= 0) & (x < nx) & (y >= 0) & (y < ny)).all(axis=1)
    if not inside.any():
        return 2.0 * fwhm, 0.0
    at = (y[inside], x[inside])
    prof = np.median(_usable_snr(*(plane[at] for plane in planes)), axis=0)
    peak = float(prof[d.size // 2 - 2 : d.size // 2 + 3].max())
    half_max = np.abs(d)[prof > 0.5 * peak]
    sigma = max(float(half_max.max()) if half_max.size else 0.0, 0.5) / 1.1774
    level = residual_level(fwhm)
    model = sigma * np.sqrt(2.0 * np.log(max(peak / level, 1.0)))
    above = np.abs(d)[prof > EDGE_SNR]
    return max(model, float(above.max()) if above.size else 0.0) + 1.0, peak


def residual_level(fwhm: float) -> float:
    """Per-pixel SNR of a band that the PSF matched filter turns into one sigma.

    A uniform band of ``a`` sigma per pixel filtered with a Gaussian PSF of width ``s``
    gives ``a sqrt(4 pi s**2)`` sigma; the mask stops where what is left of the streak gives
    less than that, so it can neither make a detection nor shift a neighbour's flux by more
    than its error.
    """
    return float(1.0 / np.sqrt(4.0 * np.pi * (fwhm / 2.3548200450309493) ** 2))


def find_streaks(
    image: np.ndarray, variance: np.ndarray, mask: np.ndarray, fwhm: float
) -> list[Streak]:
    """Streaks in a difference image (``(ny, nx)`` planes; ``fwhm`` of its PSF in pixels)."""
    blocks = _snr_blocks(image, variance, mask)
    by, bx = np.nonzero(blocks > BLOCK_SNR)
    cy, cx = by + 0.5, bx + 0.5  # block centres in block units
    thetas = np.linspace(0.0, np.pi, _N_THETA, endpoint=False)
    n_rho = 2 * int(np.hypot(*blocks.shape)) + 3
    out: list[Streak] = []
    keep = np.ones(cy.size, bool)
    for _ in range(MAX_STREAKS):
        if keep.sum() < MIN_LENGTH_PX * MIN_FILL / BIN:
            break
        acc = _hough(cy[keep], cx[keep], thetas, n_rho)
        ti, ri = np.unravel_index(int(np.argmax(acc)), acc.shape)
        theta, rho = float(thetas[ti]), float(ri - n_rho // 2)
        near = keep & (np.abs(cx * np.cos(theta) + cy * np.sin(theta) - rho) <= 1.0)
        lo, hi, fill = _run(-cx[near] * np.sin(theta) + cy[near] * np.cos(theta))
        if (hi - lo) * BIN < max(MIN_LENGTH_PX, MIN_LENGTH_FWHM * fwhm) or fill < MIN_FILL:
            break
        streak = Streak(theta, rho * BIN, lo * BIN - BIN, hi * BIN + 2 * BIN, 0.0, 0.0)
        width, peak = _profile_width((image, variance, mask), streak, fwhm)
        streak = dataclasses.replace(streak, half_width=width, peak_snr=peak)
        out.append(streak)
        # Every vote within the streak's width leaves the accumulator, not just the line's.
        keep &= ~(streak.distance(cx * BIN, cy * BIN) <= width + BIN)
    return out


def mask_streaks(mask: np.ndarray, streaks: list[Streak]) -> int:
    """Set ``STREAK`` on every pixel within each streak's half-width; returns pixels set."""
    ny, nx = mask.shape
    n = 0
    for y0 in range(0, ny if streaks else 0, 256):  # in row bands: a full grid is 70 MB
        yy, xx = np.mgrid[y0 : min(y0 + 256, ny), 0:nx].astype(np.float32)
        on = np.zeros(yy.shape, bool)
        for st in streaks:
            along = st.along(xx, yy)
            on |= (st.distance(xx, yy) <= st.half_width) & (along >= st.s0) & (along <= st.s1)
        mask[y0 : y0 + on.shape[0]][on] |= int(_Bit.STREAK)
        n += int(on.sum())
    return n
