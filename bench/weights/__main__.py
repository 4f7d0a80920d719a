"""``make weights``: measure every weight and rewrite the runtime's weights modules.

    python -m bench.weights [--quick] [--repeat 3] [--out twinchain/runtime/weights]

Measures (see :mod:`bench.weights.measure`), charges each weight ``render.MARGIN`` times its
measured cost, writes one module per pallet into ``--out`` with this machine and today's date
in its header, and prints measured against the weights the runtime charges now.

Rewriting twinchain/runtime/weights changes fees, and so every state root: bump SPEC_VERSION
and re-record the golden chains in the same commit. ``--quick`` (small blocks, one import)
is for a smoke run; its figures are noisy.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.weights import measure
from bench.weights.catalogue import CATALOGUE
from bench.weights.render import Origin, charge, machine, render

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "twinchain" / "runtime" / "weights"


def generate(out: Path, *, quick: bool = False, repeat: int = 3) -> dict[str, dict[str, int]]:
    """Measure, write ``out/<pallet>.py`` for every pallet; returns the values written."""
    m = measure.run(quick=quick, repeat=repeat)
    mode = "a quick smoke run: small blocks, one import, noisy" if quick else f"best of {repeat}"
    origin = Origin(
        machine(),
        datetime.date.today().isoformat(),
        f"Measured by bench.weights ({mode}): each weight is its measured cost times the "
        "margin, rounded up to two significant digits.",
    )
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, int]] = {}
    for pallet, weights in CATALOGUE.items():
        raw = {w.name: w.rule(m) for w in weights}
        values = {w.name: charge(raw[w.name], w.per_unit) for w in weights}
        (out / f"{pallet}.py").write_text(render(pallet, values, origin, raw))
        written[pallet] = values
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small blocks, one import (smoke run)")
    ap.add_argument("--repeat", type=int, default=3, help="fresh clients per import timing")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the modules go")
    args = ap.parse_args(argv)
    current = {p: importlib.import_module(f"twinchain.runtime.weights.{p}") for p in CATALOGUE}
    before = {p: {w.name: getattr(mod, w.name) for w in CATALOGUE[p]} for p, mod in current.items()}
    written = generate(args.out, quick=args.quick, repeat=1 if args.quick else args.repeat)
    t = Table(title=f"weights written to {args.out}")
    for col in ("pallet", "weight", "was", "now", "now / was"):
        t.add_column(col, justify="left" if col in ("pallet", "weight") else "right")
    for pallet, values in written.items():
        for name, v in values.items():
            old = before[pallet][name]
            t.add_row(pallet, name, f"{old:,}", f"{v:,}", f"{v / old:.2f}x" if old else "-")
    Console().print(t)


if __name__ == "__main__":
    main()
