"""Fixtures of the native tests: every test runs on both implementations."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from native_helpers import SigCorpus, make_corpus, native_module

from twinchain import native
from twinchain.native import fallback


@pytest.fixture(params=["fallback", "native"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The module under test: fallback, then the C extension (same function names)."""
    if request.param == "fallback":
        return fallback
    mod = native_module()
    if mod is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    return mod


@pytest.fixture
def cimpl() -> Iterator[ModuleType]:
    """The C implementation alone (for its SIMD and thread knobs), restored afterwards."""
    mod = native_module()
    if mod is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    threads, simd = mod.get_threads(), mod.get_simd()
    try:
        yield mod
    finally:
        mod.set_threads(threads)
        mod.set_simd(simd)


@pytest.fixture
def facade_path() -> Iterator[None]:
    """Restores the facade's live path after a test that switches it."""
    was = native.available
    try:
        yield
    finally:
        native.use_native(was)


@pytest.fixture(scope="session")
def corpus() -> SigCorpus:
    """10,000 valid signatures, made once."""
    return make_corpus(10_000)
