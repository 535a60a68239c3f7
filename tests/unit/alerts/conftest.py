"""Fixtures shared with the association tests: a fresh SQLite APDB per test."""

from tests.unit.association.conftest import apdb_template, sqlite_apdb

__all__ = ["apdb_template", "sqlite_apdb"]
