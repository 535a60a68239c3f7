"""Checksums: CRC-32 for our repositories, blake2b understood for stock ones."""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from pathlib import Path

import numpy as np

from shutterline.butler import certify, checksums, repo

from .conftest import make_exposure


def test_crc32_matches_zlib_and_is_prefixed(tmp_path: Path) -> None:
    data = np.random.default_rng(3).bytes(3_000_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert checksums.file_checksum(str(path)) == f"crc32:{zlib.crc32(data):08x}"


def test_unprefixed_record_is_verified_as_blake2b(tmp_path: Path) -> None:
    data = np.random.default_rng(4).bytes(100_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    stock = hashlib.blake2b(data).hexdigest()
    assert checksums.file_checksum(str(path), recorded=stock) == stock


def test_one_flipped_bit_changes_the_checksum(tmp_path: Path) -> None:
    data = bytearray(np.random.default_rng(5).bytes(1_000_000))
    summer = checksums.Checksummer()
    summer.update(bytes(data))
    data[123_456] ^= 0x08
    flipped = checksums.Checksummer()
    flipped.update(bytes(data))
    assert summer.value() != flipped.value()


def test_repository_records_crc32_of_what_it_stores(tmp_path: Path) -> None:
    butler = repo.create_repo(str(tmp_path / "r"))
    ref = certify.certify_calibration(butler, "bias", make_exposure(1.0), {"detector": 2}, 1, None)
    path = butler.getURI(ref).ospath
    (recorded,) = (
        sqlite3.connect(tmp_path / "r" / "gen3.sqlite3")
        .execute("SELECT checksum FROM file_datastore_records")
        .fetchone()
    )
    assert recorded == checksums.file_checksum(path)
    assert recorded.startswith(checksums.CRC32_PREFIX)
