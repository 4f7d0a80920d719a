"""Test-only crash points: kill the process at a named instant, to test restart safety.

``TWINCHAIN_CRASH_AT=name[:n]`` in a node's environment makes the ``n``-th (default first)
call of ``crash_point(name)`` end the process at once with ``os._exit`` (no clean-up, no
flush: as close to SIGKILL as a process can do to itself). Unset, a crash point costs one
dictionary lookup. Names in use:

* ``vote-decided``: a finality vote is chosen and signed, not yet recorded;
* ``vote-recorded``: the vote is on disk, not yet sent;
* ``vote-sent``: the vote was handed to the network.
"""

from __future__ import annotations

import os

ENV = "TWINCHAIN_CRASH_AT"
#: Exit status of a crash point (as a process killed by SIGKILL reports through a shell).
EXIT_STATUS = 137

_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, n = spec.partition(":")
    return name, int(n) if n.isdigit() else 1


def crash_point(name: str) -> None:
    """End the process here if ``TWINCHAIN_CRASH_AT`` names this point (and count)."""
    target = _target()
    if target is None or target[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= target[1]:
        os.write(2, f"crash point {name} reached: exiting\n".encode())
        os._exit(EXIT_STATUS)
