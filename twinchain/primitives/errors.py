"""Errors shared across the command-line programs."""

from __future__ import annotations


class CliError(Exception):
    """A user error: the command line prints it in one line and exits with status 1."""
