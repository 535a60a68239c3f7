"""A synthetic known-object catalogue the size of the Minor Planet Center's, in seconds.

Classes and their shares of the catalogue follow the MPC's: main belt (about 95%), near-Earth
objects (2.5%), Jupiter Trojans (1%), Hildas (0.4%) and a few hundred Jupiter-family comets.
Elements follow the known shapes: main-belt ``a`` a three-part mixture (inner, middle, outer
belt) with the Kirkwood gaps at the 3:1, 5:2, 7:3 and 2:1 resonances emptied; ``e`` and ``i``
Rayleigh-distributed (sigma 0.08 and 7 degrees in the belt); NEOs with ``q < 1.3 au``;
Trojans at 5.2 au leading and trailing Jupiter by 60 degrees; Hildas at 3.97 au. Absolute
magnitudes follow ``N(<H) ~ 10^(alpha H)`` per class, cut at the catalogue's completeness.
Orbit-quality uncertainties come from a drawn MPC ``U`` parameter. Everything is drawn from
one seeded generator, so a seed gives the same catalogue bit for bit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from shutterline.solarsystem import mpcorbits
from shutterline.solarsystem import orbits as orbits_mod

__all__ = ["CLASS_SHARES", "merge_night", "synthesize"]

FloatArray = npt.NDArray[np.float64]

#: Fraction of the catalogue per class; the main belt takes the rest.
CLASS_SHARES = {"neo": 0.025, "trojan": 0.010, "hilda": 0.004, "comet": 0.0003}
#: (H_min, H_max, alpha) of each class's absolute-magnitude distribution.
_H_LAWS = {
    "main_belt": (8.0, 19.5, 0.35),
    "neo": (15.0, 26.0, 0.35),
    "trojan": (8.0, 16.0, 0.4),
    "hilda": (10.0, 17.5, 0.4),
    "comet": (10.0, 17.0, 0.3),
}
#: Kirkwood gaps (au) and their half-widths.
_GAPS = ((2.502, 0.02), (2.825, 0.015), (2.958, 0.01), (3.279, 0.02))
#: Jupiter's mean longitude at J2000 (deg) and its rate (deg/day), for the Trojans' places.
_JUPITER_L0_DEG, _JUPITER_RATE = 34.40438, 0.0830853
_MJD_J2000 = 51544.5


def _rayleigh(rng: np.random.Generator, sigma: float, n: int, cap: float) -> FloatArray:
    return np.minimum(rng.rayleigh(sigma, n), cap)


def _main_belt(rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    parts = rng.choice(3, size=2 * n, p=[0.3, 0.35, 0.35])
    a = rng.normal(np.array([2.35, 2.7, 3.1])[parts], 0.13)
    ok = (a > 2.1) & (a < 3.3)
    for centre, half in _GAPS:
        ok &= np.abs(a - centre) > half
    a = a[ok][:n]
    if len(a) < n:  # never for the mixture above (over 60% kept), but say so if it happens
        raise RuntimeError("main-belt draw kept too few semi-major axes")
    e = _rayleigh(rng, 0.08, n, 0.35)
    return a, np.minimum(e, 1.0 - 1.7 / a), _rayleigh(rng, 7.0, n, 40.0)


def _class_elements(
    rng: np.random.Generator, kind: str, n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(a, e, i) of ``n`` objects of class ``kind``."""
    if kind == "main_belt":
        return _main_belt(rng, n)
    if kind == "neo":
        a = np.clip(rng.lognormal(np.log(1.7), 0.35, n), 0.6, 4.0)
        e_min = np.maximum(0.02, 1.0 - 1.3 / a)
        return a, rng.uniform(e_min, np.maximum(e_min + 0.01, 0.9)), _rayleigh(rng, 12.0, n, 70)
    if kind == "trojan":
        a = rng.normal(5.203, 0.04, n)
        return a, _rayleigh(rng, 0.05, n, 0.2), _rayleigh(rng, 12.0, n, 40.0)
    if kind == "hilda":
        return rng.normal(3.97, 0.03, n), _rayleigh(rng, 0.12, n, 0.3), _rayleigh(rng, 6.0, n, 30)
    a = rng.uniform(3.0, 7.0, n)  # Jupiter-family comets
    return a, 1.0 - rng.uniform(1.0, 2.5, n) / a, _rayleigh(rng, 10.0, n, 40.0)


def _h_mags(rng: np.random.Generator, kind: str, n: int) -> FloatArray:
    """Inverse-CDF draw from ``N(<H) ~ 10^(alpha H)`` between the class's limits."""
    h_min, h_max, alpha = _H_LAWS[kind]
    lo, hi = 10.0 ** (alpha * h_min), 10.0 ** (alpha * h_max)
    return np.log10(lo + rng.uniform(0.0, 1.0, n) * (hi - lo)) / alpha


def _designations(index: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.bytes_], ...]:
    """Unique provisional designations (unpacked "1998 CK12", packed "J98C12K") per index.

    Built as byte matrices viewed as fixed-width strings: a per-row Python format would
    take most of the catalogue's time.
    """
    half_months = np.frombuffer(b"ABCDEFGHJKLMNOPQRSTUVWXY", np.uint8)
    orders = np.frombuffer(b"ABCDEFGHJKLMNOPQRSTUVWXYZ", np.uint8)
    k = index.copy()
    order, k = orders[k % 25], k // 25
    half, k = half_months[k % 24], k // 24
    cycle, year = k % 100, 1995 + k // 100
    digit = np.uint8(ord("0"))
    unpacked = np.zeros((len(index), 9), np.uint8)  # trailing NULs end a bytes string
    for col, power in enumerate((1000, 100, 10, 1)):
        unpacked[:, col] = digit + (year // power) % 10
    unpacked[:, 4], unpacked[:, 5], unpacked[:, 6] = ord(" "), half, order
    tens, ones = cycle // 10, cycle % 10
    unpacked[:, 7] = np.where(tens > 0, digit + tens, np.where(ones > 0, digit + ones, 0))
    unpacked[:, 8] = np.where(tens > 0, digit + ones, 0)
    packed = np.empty((len(index), 7), np.uint8)
    packed[:, 0] = np.where(year < 2000, ord("J"), ord("K"))
    packed[:, 1], packed[:, 2] = digit + (year // 10) % 10, digit + year % 10
    packed[:, 3], packed[:, 4], packed[:, 5], packed[:, 6] = half, digit + tens, digit + ones, order
    return unpacked.view("S9")[:, 0], packed.view("S7")[:, 0]


def _angles(
    rng: np.random.Generator, kinds: npt.NDArray[np.str_], epoch_mjd: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(node, argperi, mean anomaly) in degrees; Trojans placed at Jupiter's L4 and L5."""
    n = len(kinds)
    node, peri, mean = (rng.uniform(0.0, 360.0, n) for _ in range(3))
    trojan = kinds == "trojan"
    jupiter = _JUPITER_L0_DEG + _JUPITER_RATE * (epoch_mjd - _MJD_J2000)
    lead = np.where(rng.uniform(size=n) < 0.6, 60.0, -60.0)  # L4 is the richer cloud
    longitude = jupiter + lead + rng.normal(0.0, 12.0, n)
    mean = np.where(trojan, longitude - node - peri, mean) % 360.0
    return node, peri, mean


def synthesize(n: int, seed: int, epoch_mjd: float) -> mpcorbits.Catalog:
    """A catalogue of ``n`` objects with elements at ``epoch_mjd`` (MJD, TAI).

    Raises
    ------
    ValueError
        If ``n`` is not positive.
    """
    if n <= 0:
        raise ValueError(f"catalogue size must be positive, not {n}")
    rng = np.random.default_rng(seed)
    counts = {kind: round(share * n) for kind, share in CLASS_SHARES.items()}
    counts["main_belt"] = n - sum(counts.values())
    kinds = np.concatenate([np.full(c, kind, dtype="U9") for kind, c in counts.items()])
    types = np.concatenate([np.full(c, mpcorbits.ORBIT_TYPES[k]) for k, c in counts.items()])
    a, e, incl, h = (np.empty(n) for _ in range(4))
    for kind, count in counts.items():
        sel = kinds == kind
        a[sel], e[sel], incl[sel] = _class_elements(rng, kind, count)
        h[sel] = _h_mags(rng, kind, count)
    order = rng.permutation(n)  # classes interleaved, so any shard holds every class
    kinds, types = kinds[order], types[order]
    a, e, incl, h = a[order], e[order], incl[order], h[order]
    node, peri, mean = _angles(rng, kinds, epoch_mjd)
    u_param = rng.choice(10, size=n, p=[0.3, 0.25, 0.15, 0.1, 0.06, 0.05, 0.04, 0.02, 0.02, 0.01])
    return _catalog(
        np.arange(1, n + 1, dtype=np.int32),
        types,
        (a, e, incl, node, peri, mean, np.full(n, float(epoch_mjd)), h),
        u_param,
        rng.poisson(2.0, n),
    )


def _catalog(
    ids: npt.NDArray[np.int32],
    orbit_type: npt.NDArray[np.int64],
    elements: tuple[FloatArray, ...],
    u_param: npt.NDArray[np.int64],
    extra_opps: npt.NDArray[np.int64],
) -> mpcorbits.Catalog:
    """All ``mpc_orbits`` columns from the elements, the U parameter and derived quantities."""
    a, e, incl, node, peri, mean, epoch, h = elements
    unpacked, packed = _designations(ids.astype(np.int64) - 1)
    n_deg = np.rad2deg(np.sqrt(orbits_mod.GM_SUN / a**3))
    growth = 3.0 ** u_param.astype(float)  # MPC U: each step ~3x the longitude runoff
    return {
        "id": ids,
        "designation": np.array(unpacked),
        "packed_primary_provisional_designation": np.array(packed),
        "unpacked_primary_provisional_designation": np.array(unpacked),
        "orbit_type_int": orbit_type,
        "u_param": u_param,
        "nopp": np.maximum(1, 12 - u_param + extra_opps),
        "a": a,
        "q": a * (1.0 - e),
        "e": e,
        "i": incl,
        "node": node,
        "argperi": peri,
        "peri_time": mean / n_deg,
        "mean_anomaly": mean,
        "period": 360.0 / n_deg,
        "mean_motion": n_deg,
        "a_unc": a * 1e-9 * growth,
        "e_unc": 1e-8 * growth,
        "i_unc": 1e-6 * growth,
        "mean_anomaly_unc": 2e-6 * growth,
        "epoch_mjd": epoch,
        "h": h,
        "g": np.full(len(ids), 0.15),
    }


def merge_night(catalog: mpcorbits.Catalog, night_orbits: Table) -> mpcorbits.Catalog:
    """The catalogue with a simulated night's asteroids (``solarsystem/orbits.csv``) in it.

    The night's objects keep their ids (the truth refers to them) and replace the same
    number of synthetic ones at the end, so the catalogue keeps its size. Their designation
    is the id, as `shutterline.solarsystem.predict` names them.

    Raises
    ------
    ValueError
        If a night id is also a synthetic id kept, or the night has more objects than the
        catalogue.
    """
    k, n = len(night_orbits), len(catalog["id"])
    if k > n:
        raise ValueError(f"night has {k} orbits, more than the catalogue's {n}")
    ids = np.asarray(night_orbits["id"], dtype=np.int64)
    if np.isin(ids, catalog["id"][: n - k]).any():
        raise ValueError("night orbit ids collide with synthetic catalogue ids")
    columns = ("a_au", "e", "incl_deg", "node_deg", "argperi_deg", "mean_anomaly_deg")
    elements = tuple(np.asarray(night_orbits[c], dtype=float) for c in columns)
    extra = _catalog(
        ids.astype(np.int32),
        np.full(k, mpcorbits.ORBIT_TYPES["night"]),
        (
            *elements,
            np.asarray(night_orbits["epoch_mjd"], float),
            np.asarray(night_orbits["h_mag"], float),
        ),
        np.zeros(k, dtype=np.int64),
        np.zeros(k, dtype=np.int64),
    )
    name = np.array([str(v) for v in ids], dtype="S12")
    extra["designation"] = extra["unpacked_primary_provisional_designation"] = name
    return {
        col: np.concatenate([catalog[col][: n - k], extra[col].astype(catalog[col].dtype)])
        for col, _ in mpcorbits.COLUMNS
    }
