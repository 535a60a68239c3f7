"""Reading an exposure's planes and WCS at close to the speed of astropy's plain reads.

Two costs used to double `shutterline.images.exposure.read_exposure`'s time (issue 11):

- FITS arrays are big-endian; astropy read each plane whole and then swapped it in place,
  a second pass over memory the first had already pushed out of the caches. `read_plane`
  reads a plane in cache-sized chunks straight into a native array and swaps each chunk
  while it is still in the cache.
- ``astropy.wcs.WCS(header)`` turns the whole ``Header`` into text and parses it back three
  times. `wcs_from_block` hands it only the cards a WCS can use, cut from the header's raw
  bytes (no ``Card`` objects): the core keys, SIP (``A_*``, ``B_*``, ``AP_*``, ``BP_*``),
  ``RADESYS``, ``EQUINOX``, the time keys (``DATE-OBS``, ``MJD-OBS``...) and ``NAXISn`` (the
  pixel shape). A header with lookup-table distortions (``D2IM``, ``CPDIS``) gets the full
  parse, which is what those need. Even cut, a parse costs about 1 ms (astropy turns the
  cards into a ``Header`` and back twice); a detector's 15 template patches come from two
  tracts, and a patch's WCS is its tract's with its own ``CRPIX``, so a tangent-plane WCS
  that differs from one already parsed only there is a copy of it moved (0.1-0.3 ms).
"""

from __future__ import annotations

import dataclasses
import io
import re
import sys
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, Sip

__all__ = [
    "SCALING",
    "WCS_KEY",
    "Hdu",
    "clear_wcs_bases",
    "read_hdus",
    "read_plane",
    "wcs_cards",
    "wcs_from_block",
]

CARD = 80
BLOCK = 2880
#: Bytes read, then swapped, at a time: well inside a core's L2 cache.
CHUNK = 1 << 17
#: Keywords wcslib and astropy's WCS read from a celestial image header (any alternate
#: key letter after them). Anything else in the header cannot change the WCS.
WCS_KEY = re.compile(
    r"(WCSAXES|WCSNAME|NAXIS\d*|CRPIX\d|CRVAL\d|CTYPE\d|CUNIT\d|CDELT\d|CROTA\d|CRDER\d|CSYER\d"
    r"|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH"
    r"|MJDREF[IF]?|JDREF[IF]?|DATEREF|MJD-?OBS|MJD-(AVG|BEG|END)|DATE-(OBS|AVG|BEG|END)"
    r"|TIMESYS|TREFPOS|TREFDIR|PLEPHEM|TIMEUNIT|TIMEOFFS|TSTART|TSTOP|XPOSURE|TELAPSE"
    r"|SPECSYS|SSYSOBS|SSYSSRC|VELOSYS|ZSOURCE|VELANGL|RESTFRQ|RESTFREQ|RESTWAV|VELREF"
    r"|OBSGEO-[XYZBLH]|OBSORBIT|(A|B|AP|BP)_(ORDER|DMAX|\d+_\d+)|DP\d|DQ\d)[A-Z]?"
)
_LOOKUP = re.compile(r"(D2IM|CPDIS|CQDIS|CPERR|CQERR)")


def wcs_cards(block: bytes) -> str:
    """The cards of a raw header ``block`` (80-byte cards) whose keywords `WCS_KEY` matches."""
    cards = (block[i : i + CARD] for i in range(0, len(block), CARD))
    return "".join(
        card.decode("ascii")
        for card in cards
        if WCS_KEY.fullmatch(card[:8].decode("ascii").rstrip())
    )


def wcs_from_block(block: bytes, header: fits.Header) -> WCS:
    """The WCS of a header, parsed from its raw bytes ``block`` (``header`` is the same parsed).

    Identical to ``WCS(header)``: same keys in, so the same wcslib and SIP state out (the
    unit tests compare both on a SIP-distorted field). A tangent-plane WCS whose cards match
    one already parsed in all but ``CRPIX1``/``CRPIX2`` (the template patches of one tract)
    is that one's copy moved to its own reference pixel (`_moved`), not parsed again.
    """
    if any(_LOOKUP.match(key) for key in header):
        return WCS(header)
    cards = wcs_cards(block)
    crpix = (header.get("CRPIX1"), header.get("CRPIX2"))
    ctypes = (header.get("CTYPE1"), header.get("CTYPE2"))
    if not (
        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in crpix)
        and all(isinstance(c, str) and c.endswith(_MOVABLE) for c in ctypes)
    ):
        return WCS(cards)
    key = "".join(c for c in _card_list(cards) if c[:8] not in ("CRPIX1  ", "CRPIX2  "))
    base = _BASES.get(key)
    if base is None:
        parsed = WCS(cards)
        if len(_BASES) >= _MAX_BASES:
            _BASES.clear()
        base = parsed.deepcopy()
        base.wcs.set()  # set up now, so copies made in other threads only read it
        _BASES[key] = base
        return parsed
    return _moved(base, (float(crpix[0]), float(crpix[1])))


#: Projections whose parsed state does not depend on the reference pixel: wcslib's fixes
#: (``cylfix`` reads the pixel grid for cylindrical ones) and set-up leave a zenithal
#: tangent plane's alone, so moving CRPIX after the parse is the parse with it moved.
_MOVABLE = ("-TAN", "-TAN-SIP")
#: Parsed WCSs by their WCS cards less CRPIX1/2 (this process's, as long as it reads
#: exposures; a handful per detector: one per tract and patch shape).
_BASES: dict[str, WCS] = {}
_MAX_BASES = 64


def _card_list(cards: str) -> list[str]:
    return [cards[i : i + CARD] for i in range(0, len(cards), CARD)]


def _moved(base: WCS, crpix: tuple[float, float]) -> WCS:
    """A copy of ``base`` with reference pixel ``crpix`` (SIP's copy of it too)."""
    wcs = base.deepcopy()
    wcs.wcs.crpix = crpix
    if wcs.sip is not None:
        sip = wcs.sip
        wcs.sip = Sip(sip.a, sip.b, sip.ap, sip.bp, crpix)
    wcs.wcs.set()
    return wcs


def clear_wcs_bases() -> None:
    """Forget the parsed WCSs `wcs_from_block` copies from (the next of each is parsed)."""
    _BASES.clear()


def read_plane(
    f: io.BufferedReader, offset: int, shape: tuple[int, ...], dtype: Any, what: str
) -> np.ndarray:
    """A native-endian ``dtype`` array of ``shape`` from the big-endian bytes at ``offset``.

    Raises
    ------
    ValueError
        The file ends before the plane does (``what`` names it).
    """
    out = np.empty(shape, np.dtype(dtype).newbyteorder("="))
    flat = out.reshape(-1)
    raw = flat.view(np.uint8)
    step = CHUNK - CHUNK % out.itemsize
    f.seek(offset)
    for start in range(0, raw.size, step):
        got = f.readinto(raw[start : start + step].data)
        if got != min(step, raw.size - start):
            raise ValueError(f"{what}: the file ends {raw.size - start - (got or 0)} bytes early")
        if out.itemsize > 1 and sys.byteorder == "little":
            chunk = flat[start // out.itemsize : (start + step) // out.itemsize]
            chunk.byteswap(inplace=True)
    return out


#: Keys that make a plane scaled: read through astropy, which applies them.
SCALING = ("BSCALE", "BZERO", "BLANK")
_STRUCTURE = re.compile(r"(BITPIX|NAXIS\d*|PCOUNT|GCOUNT|EXTNAME|BSCALE|BZERO|BLANK)")


@dataclasses.dataclass(frozen=True)
class Hdu:
    """One HDU: its structural keys, its raw header bytes and where its data start."""

    keys: dict[str, str | int]
    block: bytes
    data_offset: int

    @property
    def name(self) -> str:
        """``EXTNAME`` (``PRIMARY`` for an HDU without one)."""
        return str(self.keys.get("EXTNAME", "PRIMARY")).upper()

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's numpy shape (``NAXISn`` reversed)."""
        return tuple(int(self.keys[f"NAXIS{n}"]) for n in range(int(self.keys["NAXIS"]), 0, -1))

    def header(self) -> fits.Header:
        """The whole header, parsed by astropy."""
        return fits.Header.fromstring(self.block.decode("ascii"))


def _structure(block: bytes) -> dict[str, str | int]:
    """The structural keys of a raw header: integers, and ``EXTNAME`` as a stripped string."""
    keys: dict[str, str | int] = {}
    for i in range(0, len(block), CARD):
        key = block[i : i + 8].decode("ascii").rstrip()
        if not _STRUCTURE.fullmatch(key) or block[i + 8 : i + 10] != b"= ":
            continue
        value = block[i + 10 : i + CARD].decode("ascii").strip()
        if value.startswith("'"):
            keys[key] = value[1:].split("'", 1)[0].strip()
        elif key in SCALING:  # only their presence matters: such a plane goes to astropy
            keys[key] = value
        else:
            keys[key] = int(value.split("/", 1)[0])
    return keys


def _data_size(keys: dict[str, str | int]) -> int:
    naxis = int(keys.get("NAXIS", 0))
    if naxis == 0:
        return 0
    pixels = int(np.prod([int(keys[f"NAXIS{i + 1}"]) for i in range(naxis)]))
    size = abs(int(keys["BITPIX"])) // 8 * int(keys.get("GCOUNT", 1))
    return -(-size * (int(keys.get("PCOUNT", 0)) + pixels) // BLOCK) * BLOCK


def read_hdus(f: io.BufferedReader) -> list[Hdu]:
    """Every HDU's header of a FITS file, walking its blocks (no data read, no header parsed
    beyond its structural keys: astropy's ``HDUList`` parses every card and re-serialises each
    header to find the same offsets, which cost more than reading the headers).

    Raises
    ------
    ValueError
        A header has no ``END`` card before the file ends.
    """
    hdus: list[Hdu] = []
    f.seek(0)
    offset = 0
    while True:
        block = b""
        while True:
            chunk = f.read(BLOCK)
            if not chunk:
                if block:
                    raise ValueError(f"{f.name}: the header at byte {offset} has no END card")
                return hdus
            block += chunk
            end = _end_card(chunk)
            if end >= 0:
                break
        block = block[: len(block) - len(chunk) + end]
        keys = _structure(block)
        data_offset = offset + -(-(len(block) + CARD) // BLOCK) * BLOCK
        hdus.append(Hdu(keys, block, data_offset))
        offset = data_offset + _data_size(keys)
        f.seek(offset)


def _end_card(chunk: bytes) -> int:
    """Byte position of the ``END`` card in a header block, or -1."""
    for i in range(0, len(chunk), CARD):
        if chunk[i : i + 8] == b"END     ":
            return i
    return -1
