"""``twinchain`` subcommands of this package (heavy imports stay inside the commands)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register this package's subcommands on the main CLI's subparsers."""
    del sub


__all__ = ["add_parser", "argparse"]
