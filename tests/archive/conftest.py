"""Fixtures of the archive tests; the fake chain and plant they share are in ``plant.py``
(imported as ``archive.plant``: a module of its own, since ``from conftest import`` can meet
another folder's conftest when pytest collects several folders)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from archive.plant import Plant


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    p = Plant(tmp_path / "archive")
    yield p
    try:
        p.store.close()
    except Exception:
        pass
