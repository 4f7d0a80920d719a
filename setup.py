"""Build script: metadata lives in pyproject.toml; this file carries the native extension.

The cffi build of twinchain/native is wired in here through ``cffi_modules`` (see the native
issue); until then the package runs on its pure-Python fallback.
"""

from setuptools import setup

setup()
