"""Fixtures: a fresh SQLite APDB per test, copied from one created per session (fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shutterline.association import apdb


@pytest.fixture(scope="session")
def apdb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("apdb-template") / "apdb.sqlite3"
    apdb.open_apdb(path, create=True)
    return path


@pytest.fixture
def sqlite_apdb(apdb_template: Path, tmp_path: Path) -> apdb.ApdbHandle:
    path = tmp_path / "apdb.sqlite3"
    shutil.copy(apdb_template, path)
    return apdb.open_apdb(path)
