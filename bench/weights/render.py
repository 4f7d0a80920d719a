"""Write a pallet's weights module (twinchain/runtime/weights/<pallet>.py) from its values."""

from __future__ import annotations

import math
import os
import platform
import textwrap
from dataclasses import dataclass

from bench.weights.catalogue import CATALOGUE

# A weight charges this much more than the measured cost: the machines that import blocks
# are not the one measured, and a call's cost varies with the state it runs on.
MARGIN = 1.5

REGENERATE = (
    "Regenerating them is a runtime change: fees, and so every state root, depend on them. "
    "Bump SPEC_VERSION (twinchain/runtime/runtime.py) and re-record the golden chains "
    "(tests/runtime/test_golden_roots.py, tests/node/test_golden_replay.py) in the same commit."
)


@dataclass(frozen=True)
class Origin:
    """Where a module's values come from, for its header."""

    machine: str
    date: str
    note: str  # how they were obtained


def machine() -> str:
    """The CPU, the cores the benchmark was allowed, Python and the native extension."""
    from twinchain import native

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ext = "native extension" if native.available else "pure-Python fallback"
    return (
        f"{cpu}, one core of {os.cpu_count()}, Python {platform.python_version()}, {ext}, "
        f"{platform.system()} {platform.release()}"
    )


# No call is charged less than this, whatever a noisy difference of two blocks says: a call
# at least decodes its arguments, checks its origin and deposits an event.
MIN_CALL_WEIGHT = 10_000


def charge(raw_ns: float, per_unit: bool) -> int:
    """The weight charged for a measured cost: ``MARGIN`` times it, rounded up to two
    significant digits; at least ``MIN_CALL_WEIGHT`` (a per-unit cost: at least 1 ns)."""
    v = max(raw_ns * MARGIN, 1.0 if per_unit else MIN_CALL_WEIGHT)
    step = 10 ** max(0, math.floor(math.log10(v)) - 1)
    return int(math.ceil(v / step) * step)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        text, 96, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
    )


def render(
    pallet: str,
    values: dict[str, int],
    origin: Origin,
    measured: dict[str, float] | None = None,
) -> str:
    """The module's source: a docstring with the machine and date, then each weight with
    what it charges for (and, when measured, the measured cost)."""
    paras = [
        f"Weights of the {pallet.capitalize()} pallet (FRAME's weights.rs): nanoseconds of "
        "block import on one core, state root and database write included.",
        "Written by ``python -m bench.weights`` (``make weights``), which measures them and "
        "rewrites this module; do not edit the values by hand.",
        f"Machine: {origin.machine}",
        f"Date: {origin.date}",
        f"{origin.note} {REGENERATE}",
    ]
    wrapped = [
        textwrap.wrap(
            p,
            92,
            subsequent_indent="    " if p[:5] in ("Machi", "Date:") else "",
            break_on_hyphens=False,
        )
        for p in paras
    ]
    lines = ['"""' + wrapped[0][0], *wrapped[0][1:]]
    for i, para in enumerate(wrapped[1:], 1):
        if i != 3:  # Machine and Date go on consecutive lines
            lines.append("")
        lines += para
    lines += ['"""']
    for w in CATALOGUE[pallet]:
        lines.append("")
        lines += _comment(w.doc + ".")
        if measured is not None:
            lines += _comment(f"Measured: {measured[w.name]:,.0f} ns; charged x{MARGIN}.")
        lines.append(f"{w.name} = {values[w.name]:_}")
    return "\n".join(lines) + "\n"
