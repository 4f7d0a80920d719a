"""``python -m bench.fleets``: generate one fleet, or the tuning kinds' standard splits.

    python -m bench.fleets KIND --units N --seed S --out DIR [--healthy-fraction F]
    python -m bench.fleets splits [--out DIR] [--kinds pump,battery]

``splits`` writes, per tuning kind, ``<kind>-train.csv`` (healthy units only: what a plant
has to train on) and ``<kind>-tune.csv`` with ``<kind>-tune-failures.csv`` (run-to-failure
and healthy units, for tuning), plus ``<kind>.class.toml``. The held-out kind is never
written by ``splits``; see :mod:`bench.fleets.heldout`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.fleets import CACHE, HELDOUT_KIND, KINDS, TUNING_KINDS, generate

# (units, seed) of each split; the held-out kind's live in bench.fleets.heldout
SPLITS: dict[str, dict[str, tuple[int, int]]] = {
    "pump": {"train": (24, 11), "tune": (40, 12)},
    "battery": {"train": (24, 21), "tune": (40, 22)},
}


def splits(out: Path, kinds: tuple[str, ...] = TUNING_KINDS) -> None:
    for kind in kinds:
        if kind == HELDOUT_KIND:
            raise SystemExit(f"{kind} is the held-out kind: see bench.fleets.heldout")
        (n_train, s_train), (n_tune, s_tune) = SPLITS[kind]["train"], SPLITS[kind]["tune"]
        t0 = time.perf_counter()
        tr = generate(kind, n_train, s_train, out, healthy_fraction=1.0, stem=f"{kind}-train")
        tu = generate(kind, n_tune, s_tune, out, healthy_fraction=0.3, stem=f"{kind}-tune")
        mb = (tr.csv.stat().st_size + tu.csv.stat().st_size) / 1e6
        print(f"{kind}: {tr.csv.name}, {tu.csv.name} ({mb:.1f} MB) "
              f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.fleets", description=__doc__)
    ap.add_argument("kind", choices=(*KINDS, "splits"))
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--healthy-fraction", type=float, default=0.3)
    ap.add_argument("--horizon-s", type=float, default=None, help="pump, valve: horizon")
    ap.add_argument("--cycles", type=int, default=None, help="battery: cycles observed")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--kinds", default=",".join(TUNING_KINDS), help="for splits")
    a = ap.parse_args(argv)
    if a.kind == "splits":
        splits(a.out or CACHE / "tuning", tuple(k for k in a.kinds.split(",") if k))
        return
    kw: dict[str, float] = {}
    if a.horizon_s is not None and a.kind != "battery":
        kw["horizon_s"] = a.horizon_s
    if a.cycles is not None and a.kind == "battery":
        kw["cycles"] = a.cycles
    t0 = time.perf_counter()
    # the held-out kind never lands beside the tuning data unless asked for
    default = CACHE / "heldout" / "adhoc" if a.kind == HELDOUT_KIND else CACHE / a.kind
    files = generate(a.kind, a.units, a.seed, a.out or default,
                     a.healthy_fraction, **kw)  # fmt: skip
    print(f"{files.csv} ({files.csv.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
