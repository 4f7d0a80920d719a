"""Build script: metadata lives in pyproject.toml; this file carries the native extension.

``cffi_modules`` compiles twinchain/native (C sources under twinchain/native/src) into
``twinchain.native._native`` with the platform's C compiler; cffi must be in
``[build-system].requires`` or pip would build a wheel without it and exit 0. The C sources
ship as package data so that an sdist builds, and so that the installed package can tell a
stale build from a current one (see twinchain/native/_spec.py).
"""

from setuptools import setup

setup(
    cffi_modules=["twinchain/native/build.py:ffibuilder"],
    package_data={"twinchain.native": ["src/*.c", "src/*.h"]},
)
