"""cffi build script of the native extension ``twinchain.native._native``.

Wired into setup.py through ``cffi_modules``, so ``pip install .`` (and ``pip install -e .``,
which puts the .so into the source tree) compiles it with the platform's C compiler. It needs
nothing but cffi and setuptools: libsecp256k1 is coincurve's, reached at run time through
function addresses, so no headers or system libraries are involved.

A failed compilation does not fail the install (an optional extension): the package then runs
on its fallback. To rebuild after editing the C sources: ``pip install -e .`` (the facade
refuses a stale build, see _spec.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from cffi import FFI

_HERE = Path(__file__).resolve().parent


def _load_spec() -> ModuleType:
    # By path: importing the twinchain package here would pull in its runtime dependencies,
    # which setuptools' isolated build environment does not have.
    spec = importlib.util.spec_from_file_location("_twinchain_native_spec", _HERE / "_spec.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rel(p: Path) -> str:
    # setuptools wants source paths relative to setup.py's directory (the working directory).
    try:
        return os.path.relpath(p)
    except ValueError:  # another drive on Windows
        return str(p)


_spec = _load_spec()

if sys.platform == "win32":
    _cflags: list[str] = ["/O2"]
    _ldflags: list[str] = []
else:
    # C99; the SIMD kernels use GCC/clang extensions (vector types, target attributes) that
    # are compiled only where the compiler has them.
    _cflags = ["-O3", "-std=c99", "-pthread"]
    _ldflags = ["-pthread"]

ffibuilder = FFI()
ffibuilder.cdef(_spec.CDEF)
ffibuilder.set_source(
    "twinchain.native._native",
    '#include "tc_native.h"\n'
    f'static const char tc_digest[] = "{_spec.source_digest()}";\n'
    "const char *tc_source_digest(void) { return tc_digest; }\n",
    sources=[_rel(_spec.SRC_DIR / s) for s in _spec.SOURCES],
    include_dirs=[_rel(_spec.SRC_DIR)],
    depends=[_rel(_spec.SRC_DIR / h) for h in _spec.HEADERS],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
    # Without a working C compiler the package still installs and runs on the pure-Python
    # fallback (the facade says so at import; tests/native fails so that CI notices).
    optional=True,
)
