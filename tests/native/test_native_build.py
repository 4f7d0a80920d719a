"""The extension is built, current and in use; the facade's switches and failure modes.

``test_extension_available`` is the guard against silent fallbacks: pip exits 0 when cffi is
missing from the build requirements, and a stale .so in the source tree can hide a broken
build. Only the fallback-only CI leg (TWINCHAIN_NATIVE=0) may run without the extension.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from native_helpers import native_module

from twinchain import native
from twinchain.native import _spec, fallback
from twinchain.native.merkle import merkle_root

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TWINCHAIN_NATIVE")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_extension_available() -> None:
    if native.forced_off():
        pytest.skip("TWINCHAIN_NATIVE=0: the fallback-only leg")
    assert native.available, (
        f"the C extension is not in use ({native.build_error}); build it: pip install -e ."
    )
    assert native.build_error is None
    assert native.merkle_root is not fallback.merkle_root


def test_build_is_current() -> None:
    mod = native_module()
    if mod is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    assert mod.built_digest() == _spec.source_digest()
    assert not mod.stale()


def test_stale_build_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if native_module() is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(_spec, "source_digest", lambda *a: "0" * 64)
    with pytest.raises(ImportError, match="stale"):
        native.load_native()


def test_build_configuration() -> None:
    """The traps of the issue: cffi in the build requirements, cffi_modules in setup.py, and
    every C file the build script names present (they ship as package data)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("cffi") for r in requires)
    setup = (ROOT / "setup.py").read_text()
    assert "twinchain/native/build.py:ffibuilder" in setup
    assert '"src/*.c"' in setup and '"src/*.h"' in setup
    assert _spec.source_digest() is not None


def test_forced_off_by_env() -> None:
    r = _python(
        "import twinchain.native as n; print(n.available, n.build_error)",
        TWINCHAIN_NATIVE="0",
    )
    assert r.stdout.split()[0] == "False"
    assert "TWINCHAIN_NATIVE" in r.stdout
    assert "unavailable" not in r.stderr


def test_missing_extension_warns_once() -> None:
    code = (
        "import sys; sys.modules['twinchain.native._native'] = None\n"  # import fails
        "import twinchain.native as n, twinchain.native.merkle as m\n"
        "import twinchain.storage.trie\n"
        "assert m.merkle_root([b'a']) == n.fallback.merkle_root([b'a'])\n"
        "print(n.available)"
    )
    r = _python(code)
    assert r.stdout.strip() == "False"
    assert r.stderr.count("C extension unavailable") == 1, r.stderr


def test_stale_extension_falls_back_and_reports(tmp_path: Path) -> None:
    """A built but stale extension (its sources edited since) is refused, and the facade
    still answers: it once lost its state to the extension's submodule of the same name."""
    if native_module() is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    shutil.copytree(ROOT / "twinchain", tmp_path / "twinchain")
    header = tmp_path / "twinchain" / "native" / "src" / "tc_native.h"
    header.write_text(header.read_text() + "/* edited */\n")
    code = (
        "import twinchain.native as n\nprint(n.available, n.info()['available'], n.get_threads())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "1"]
    assert "stale" in r.stderr


def test_threads_from_env() -> None:
    if native_module() is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    r = _python(
        "import twinchain.native as n; print(n.get_threads())", TWINCHAIN_NATIVE_THREADS="3"
    )
    assert r.stdout.strip() == "3"


def test_set_threads() -> None:
    if native_module() is None:
        assert native.set_threads(4) == 1  # fallback: single-threaded
        return
    before = native.get_threads()
    try:
        assert native.set_threads(3) == 3
        assert native.get_threads() == 3
        with pytest.raises(ValueError):
            native.set_threads(0)
    finally:
        native.set_threads(before)


def test_switch_at_run_time(facade_path: None) -> None:
    leaves = [bytes([i]) * i for i in range(37)]
    native.use_native(False)
    assert not native.available
    assert native.merkle_root is fallback.merkle_root
    expected = merkle_root(leaves)  # the callers' path goes through the facade
    mod = native_module()
    if mod is None:
        return
    native.use_native(True)
    assert native.available
    assert native.merkle_root is mod.merkle_root
    assert merkle_root(leaves) == expected
