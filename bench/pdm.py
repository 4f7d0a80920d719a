"""Predictive maintenance on the simulator's fault runs: detection lead time and false alarms.

    python -m bench.pdm [--quick] [--profile plant|devnet] [--models DIR] [--seeds N]

For each equipment class and evaluation seed (disjoint from the training seeds 1 and 2), a
run of ``--machines`` machines of the class, half of them with a fault of a random kind
(bearing wear, overheating, misalignment) that ramps to failure (``plant``: over 36-96 h,
hour windows; ``devnet``: over 45-90 s, 5 s windows), the other half healthy over the same
period. Every model kind in the folder (IsolationForest and the
EWMA/CUSUM alternative) sees the same runs through the worker's own feature and alert code.
Lead time = failure time - end of the window that raised the first alert after the fault
began; a fault without one is missed. False alarms: alerts on healthy machines, and on
faulty ones before their fault began, per machine-day of such healthy operation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from twinchain.machines.classes import EQUIPMENT_CLASSES
from twinchain.offchain.cli import TRAINED
from twinchain.offchain.models import KINDS, Model
from twinchain.offchain.training import PROFILES, Evaluation, evaluate, profile_runs

EVAL_SEED0 = 1000


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> dict[str, dict[str, object]]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one seed, six machines per class")
    ap.add_argument("--profile", choices=tuple(PROFILES), default="plant")
    ap.add_argument("--models", type=Path, default=None, help="default: the shipped ones")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--machines", type=int, default=16, help="per class and seed")
    args = ap.parse_args(argv)
    profile = PROFILES[args.profile]
    folder = args.models if args.models is not None else TRAINED / args.profile
    if args.quick:
        args.seeds, args.machines = 1, 6
    console = Console(width=150)
    models: dict[tuple[str, str], Model] = {}
    for f in sorted(folder.glob("*.json")):
        m = Model.load(f)
        key = (m.equipment_class, m.kind)
        if key not in models or m.version > models[key].version:
            models[key] = m
    t0 = time.perf_counter()
    per: dict[tuple[str, str], Evaluation] = {k: Evaluation() for k in models}
    for cls in EQUIPMENT_CLASSES:
        for s in range(args.seeds):
            runs = profile_runs(
                cls, EVAL_SEED0 + s, profile, machines=args.machines, faulty=args.machines // 2
            )
            for kind in KINDS:
                if (cls, kind) in models:
                    per[(cls, kind)].merge(evaluate(models[(cls, kind)], runs))
    elapsed = time.perf_counter() - t0

    title = f"PdM, {args.profile} profile, {args.seeds} seed(s) ({elapsed:.0f} s)"
    table = Table(title=title)
    unit, per_h = ("h", 1.0) if profile.window_ms >= 3_600_000 else ("s", 3600.0)
    for col in ("class", "model", "faults", "detected", f"lead {unit} median", f"lead {unit} min",
                "false alarms", "healthy machine-days", "FA / machine-day"):  # fmt: skip
        table.add_column(col, justify="right" if col not in ("class", "model") else "left")
    totals: dict[str, Evaluation] = {k: Evaluation() for k in KINDS}
    for (_, kind), ev in sorted(per.items()):
        totals[kind].merge(ev)
    rows = [((cls, kind), ev) for (cls, kind), ev in sorted(per.items())]
    rows += [(("all", kind), ev) for kind, ev in totals.items() if ev.detected + ev.missed]
    out: dict[str, dict[str, object]] = {}
    for (cls, kind), ev in rows:
        s = ev.summary()
        out[f"{cls}/{kind}"] = s
        table.add_row(
            cls, kind, str(s["faults"]), str(s["detected"]), _fmt(_scaled(s, "median", per_h)),
            _fmt(_scaled(s, "min", per_h)), str(s["false_alarms"]),
            _fmt(s["healthy_machine_days"], 2),
            _fmt(ev.false_alarms_per_machine_day, 3),
        )  # fmt: skip
    console.print(table)
    ranked = sorted(
        (k for k in KINDS if totals[k].detected + totals[k].missed),
        key=lambda k: (totals[k].missed, totals[k].false_alarms, -_median(totals[k])),
    )
    if ranked:
        console.print(
            f"best on these runs (fewest misses, then false alarms, then lead): [bold]{ranked[0]}"
        )
    return out


def _scaled(summary: dict[str, object], which: str, factor: float) -> float | None:
    v = summary[f"lead_h_{which}"]
    return None if v is None else float(v) * factor  # type: ignore[arg-type]


def _median(ev: Evaluation) -> float:
    s = ev.summary()["lead_h_median"]
    return float(s) if s is not None else 0.0


if __name__ == "__main__":
    main()
