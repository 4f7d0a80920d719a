"""``twinchain offchain``: the predictive-maintenance worker, model training and evaluation.

    twinchain offchain train --class NAME|FILE --csv HEALTHY.csv --out DIR [--window-s N]
    twinchain offchain train --class NAME|FILE --rpc URL --twin N --from-ms A --to-ms B --out DIR
    twinchain offchain train --out DIR [--classes ...] [--kinds ...]   (simulator models)
    twinchain offchain evaluate --models DIR --class NAME|FILE --csv RUNS.csv [--failures F]
    twinchain offchain pdm --rpc URL --key SEED_OR_KEYSTORE --facility N [--models DIR]

(heavy imports stay inside the commands)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

TRAINED = Path(__file__).with_name("trained")  # shipped models: trained/<profile>/


class CommandError(Exception):
    """A command's input is wrong: one line for the user, exit status 2."""


def _fail(exc: BaseException) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def _setting_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--set {pair!r}: expected NAME=VALUE")
        out[key.strip()] = _setting_value(value.strip())
    return out


def resolve_class(spec: str | None, csv: Path | None, out: Path | None) -> tuple[Any, bool]:
    """(class, derived?) for ``--class``: a built-in name, a class file, a derived class file
    already next to the models (``out/NAME.class.toml``), or, for a CSV no class file
    describes, a provisional class derived from its columns."""
    from twinchain.protocol.classdef import BUILTIN_CLASSES, load_class

    if spec is not None:
        if spec in BUILTIN_CLASSES or Path(spec).is_file():
            return load_class(spec), False
        if out is not None and (out / f"{spec}.class.toml").is_file():
            return load_class(out / f"{spec}.class.toml"), False
        if not re.fullmatch(r"[a-z0-9_]{1,48}", spec):
            raise CommandError(f"--class {spec}: no such built-in class or class file")
    if csv is None:
        raise CommandError(f"--class {spec}: no such class, and no CSV to derive one from")
    return None, True


def cmd_train(args: argparse.Namespace) -> int:
    if args.csv is None and args.rpc is None:
        return _train_simulator(args)
    from twinchain.offchain.history import CsvError
    from twinchain.offchain.models import ModelError
    from twinchain.offchain.prognostics import TrainingError
    from twinchain.protocol.classdef import ClassDefError

    try:
        if args.out is None:
            raise CommandError("--out DIR is required")
        return _train_prognostic(args)
    except (CommandError, CsvError, ClassDefError, ModelError, TrainingError) as exc:
        return _fail(exc)


def _train_prognostic(args: argparse.Namespace) -> int:
    from twinchain.offchain.history import read_history
    from twinchain.offchain.prognostics import (
        Settings,
        derive_class,
        suggest_window_s,
        train_prognostic,
    )
    from twinchain.protocol.classdef import dump_class

    overrides = _settings(args.set)
    try:
        settings = Settings(**overrides).check()
    except TypeError as exc:
        raise CommandError(f"--set: {exc}") from None
    out: Path = args.out
    if args.rpc is not None:
        return _train_chain(args, settings)
    cls, derive = resolve_class(args.cls, args.csv, out)
    history = read_history(
        args.csv,
        None if cls is None else [m.name for m in cls.metrics],
        unit_column=args.unit_column,
        time_column=args.time_column,
        time_unit=args.time_unit,
    )
    derived_path = None
    if derive:
        name = args.cls or re.sub(r"[^a-z0-9_]", "_", args.csv.stem.lower())[:48] or "machine"
        window = args.window_s or suggest_window_s(history)
        cls = derive_class(history, name, window_s=int(window) if window >= 1 else None)
        out.mkdir(parents=True, exist_ok=True)
        derived_path = out / f"{cls.name}.class.toml"
        derived_path.write_text(dump_class(cls))
    assert cls is not None
    window_s = args.window_s or cls.window_s or suggest_window_s(history)
    training = {"source": args.csv.name}
    model = train_prognostic(
        cls, history, window_s=window_s, settings=settings, version=args.version,
        training=training,
    )  # fmt: skip
    if args.tune_csv is not None:
        model = _tune(args, cls, model)
    return _report_trained(model, out, derived_path)


def _tune(args: argparse.Namespace, cls: Any, model: Any) -> Any:
    from twinchain.offchain.history import read_failures, read_history
    from twinchain.offchain.prognostics import tune

    if args.tune_failures is None:
        raise CommandError("--tune-csv needs --tune-failures")
    runs = read_history(
        args.tune_csv, [m.name for m in cls.metrics], unit_column=args.unit_column,
        time_column=args.time_column, time_unit=args.time_unit,
    )  # fmt: skip
    failures = read_failures(args.tune_failures)
    tuned, score = tune(model, cls, runs, failures)
    print(f"tuned on {args.tune_csv.name}: {json.dumps(score, sort_keys=True)}")
    return tuned


def _report_trained(model: Any, out: Path, derived: Path | None) -> int:
    path = model.save(out)
    if derived is not None:
        print(f"derived class {derived} (review its units, envelope and failure modes)")
    t = model.training
    print(
        f"{path}  0x{model.hash.hex()}\n  class {model.equipment_class}, "
        f"{model.window_ms / 1000:g} s windows, {t.get('units')} units, {t.get('windows')} "
        f"windows, {len(model.signals)} signals, modes: " + ", ".join(m.name for m in model.modes)
    )
    return 0


def _train_chain(args: argparse.Namespace, settings: Any) -> int:
    """Train on a twin's finalized history over ``[from_ms, to_ms)``, marked healthy."""
    from twinchain.client import Client
    from twinchain.offchain.chainread import archive_readings, bind, read_windows
    from twinchain.offchain.prognostics import train_tables
    from twinchain.offchain.worker import class_of_twin, keypair_from

    if args.twin is None or args.from_ms is None or args.to_ms is None:
        raise CommandError("--rpc needs --twin, --from-ms and --to-ms")
    if args.to_ms <= args.from_ms:
        raise CommandError("--to-ms must be after --from-ms")
    with Client(args.rpc) as client:
        head = client.rpc.finalized_head()
        cls = class_of_twin(client, args.twin, head, args.cls)
        binding = bind(client, cls.metrics, head)
        window_ms = round((args.window_s or cls.window_s or binding.chain_window_ms / 1000) * 1000)
        lo = args.from_ms - args.from_ms % window_ms
        key = keypair_from(args.key) if args.key else None
        reader = archive_readings(client, key=key, api_key=args.api_key)
        needs_key = key is not None or args.api_key is not None
        table = read_windows(
            client, args.twin, binding, window_ms, lo, args.to_ms, head,
            reader if needs_key else None,
        )  # fmt: skip
    model = train_tables(
        cls, [table], settings=settings, version=args.version,
        training={"source": f"twin {args.twin} [{args.from_ms}, {args.to_ms}) ms"},
    )  # fmt: skip
    return _report_trained(model, args.out, None)


def _train_simulator(args: argparse.Namespace) -> int:
    from rich.console import Console

    from twinchain.offchain.training import PROFILES, profile_runs, train

    console = Console()
    profile = PROFILES[args.profile]
    out = args.out if args.out is not None else TRAINED / args.profile
    for cls in args.classes:
        n = args.machines
        healthy = profile_runs(cls, args.seed, profile, machines=n)
        calib = profile_runs(cls, args.seed + 1, profile, machines=n, faulty=n // 2)
        for kind in args.kinds:
            model = train(
                cls, kind, seed=args.seed, version=args.version, profile=profile,
                healthy=healthy, calibration_runs=calib,
            )  # fmt: skip
            path = model.save(out)
            console.print(f"{path}  0x{model.hash.hex()}", soft_wrap=True)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from twinchain.offchain.history import CsvError
    from twinchain.offchain.models import ModelError
    from twinchain.protocol.classdef import ClassDefError

    try:
        return _evaluate(args)
    except (CommandError, CsvError, ClassDefError, ModelError) as exc:
        return _fail(exc)


def _evaluate(args: argparse.Namespace) -> int:
    from twinchain.offchain.history import read_failures, read_history
    from twinchain.offchain.prognostics import evaluate_unit, find_model, summarize

    cls, _ = resolve_class(args.cls, None, args.models)
    model = find_model(args.models, cls.name)
    model.check_class(cls)
    if args.window_s is not None and round(args.window_s * 1000) != model.window_ms:
        raise CommandError(
            f"--window-s {args.window_s:g}: the model was trained on "
            f"{model.window_ms / 1000:g} s windows"
        )
    history = read_history(
        args.csv, [m.name for m in cls.metrics], unit_column=args.unit_column,
        time_column=args.time_column, time_unit=args.time_unit,
    )  # fmt: skip
    failures = read_failures(args.failures) if args.failures is not None else None
    reports = [evaluate_unit(model, cls, u) for u in history.units]
    summary = summarize(reports, failures) if failures is not None else None
    if args.json:
        for r in reports:
            print(json.dumps(r.to_json(), sort_keys=True))
        if summary is not None:
            print(json.dumps({"summary": summary}, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model.filename} on {args.csv.name}")
    for col in ("unit", "first alert (s)", "P(fail in horizon)", "RUL P10", "P50", "P90", "mode"):
        table.add_column(col, justify="left" if col in ("unit", "mode") else "right")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    for r in reports:
        table.add_row(
            r.unit, fmt(r.first_alert_s), f"{r.probability:.2f}", fmt(r.rul_p10_s),
            fmt(r.rul_s), fmt(r.rul_p90_s), r.mode or "-",
        )  # fmt: skip
    console = Console()
    console.print(table)
    if summary is not None:
        console.print(json.dumps(summary, indent=1))
    return 0


def cmd_pdm(args: argparse.Namespace) -> int:
    import logging

    import httpx

    from twinchain.client import Client, ClientError
    from twinchain.offchain.models import DEFAULT_KIND
    from twinchain.offchain.training import PROFILES
    from twinchain.offchain.worker import PdmWorker, WorkerError, keypair_from, load_models
    from twinchain.protocol.jsonrpc import RpcError

    log = logging.getLogger("twinchain.offchain.pdm")
    try:
        keypair = keypair_from(args.key)
        with Client(args.rpc) as client:
            folder = args.models
            if folder is None:  # the shipped profile whose window is the chain's
                window = int(client.read_storage("Telemetry", "WindowMs"))
                names = [n for n, p in PROFILES.items() if p.window_ms == window]
                if not names:
                    raise WorkerError(f"no shipped models for {window} ms windows: train some")
                folder = TRAINED / names[0]
            models = load_models(folder, args.kind or DEFAULT_KIND)
            worker = PdmWorker(
                client, keypair, args.facility, models, since_ms=args.since_ms,
                evidence_dir=args.evidence_dir, api_key=args.api_key,
            )  # fmt: skip
            for cls, m in sorted(models.items()):
                log.info("%s: %s 0x%s", cls, m.filename, m.hash.hex())
            if args.once:
                worker.ensure_models_registered()
                worker.poll_once()
            else:
                worker.run(poll_s=args.poll)
    except (WorkerError, ClientError, RpcError, httpx.HTTPError) as exc:
        log.error("%s", exc or type(exc).__name__)
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """Register this package's subcommands on the main CLI's subparsers."""
    from twinchain.machines.classes import EQUIPMENT_CLASSES

    p = sub.add_parser("offchain", help="off-chain workers (predictive maintenance)")
    osub = p.add_subparsers(dest="offchain_cmd", required=True)

    t = osub.add_parser(
        "train",
        help="train a prognostic model from a plant's healthy history (CSV or chain), or "
        "the simulator's models",
    )
    t.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class file or name (a CSV without one: a class is derived)",
    )
    t.add_argument("--csv", type=Path, default=None, help="healthy history (wide CSV)")
    _history_args(t)
    t.add_argument(
        "--window-s", type=float, default=None, help="window length (default: the class's window_s)"
    )
    t.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="an engine setting (repeatable), e.g. --set confirm=4",
    )
    t.add_argument(
        "--tune-csv",
        type=Path,
        default=None,
        help="labelled runs to tune the alert settings on (with --tune-failures)",
    )
    t.add_argument("--tune-failures", type=Path, default=None)
    t.add_argument("--rpc", default=None, help="train on a twin's finalized history instead")
    t.add_argument("--twin", type=int, default=None)
    t.add_argument("--from-ms", type=int, default=None, help="healthy range start (ms)")
    t.add_argument("--to-ms", type=int, default=None, help="healthy range end (ms)")
    t.add_argument("--key", default=None, help="read private metrics as this key")
    t.add_argument("--api-key", default=None, help="read private metrics with an API key")
    t.add_argument("--out", type=Path, default=None, help="model folder (simulator: shipped)")
    t.add_argument("--version", type=int, default=1)
    t.add_argument(
        "--profile",
        choices=("plant", "devnet"),
        default="plant",
        help="simulator models: time scale, plant (1 h) or devnet (5 s windows)",
    )
    t.add_argument(
        "--classes", nargs="+", default=list(EQUIPMENT_CLASSES), help="simulator models: classes"
    )
    t.add_argument(
        "--kinds", nargs="+", default=["isolation_forest", "cusum"], help="simulator models: kinds"
    )
    t.add_argument("--seed", type=int, default=1, help="simulator models: seed")
    t.add_argument("--machines", type=int, default=24, help="simulator models: per class")
    t.set_defaults(fn=cmd_train)  # fmt: skip

    e = osub.add_parser(
        "evaluate", help="run the worker's detector over a CSV: first alert, probability, RUL"
    )
    e.add_argument("--models", type=Path, required=True, help="model folder")
    e.add_argument("--class", dest="cls", required=True, help="class file or name")
    e.add_argument("--csv", type=Path, required=True, help="runs (wide CSV)")
    _history_args(e)
    e.add_argument("--window-s", type=float, default=None, help="check the model's window")
    e.add_argument("--failures", type=Path, default=None,
                   help="unit,failure_time_s (empty: healthy): adds a summary")  # fmt: skip
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    e.set_defaults(fn=cmd_evaluate)

    w = osub.add_parser("pdm", help="follow finalized telemetry and submit maintenance alerts")
    w.add_argument("--rpc", default="127.0.0.1:9944", help="node RPC URL")
    w.add_argument("--key", required=True, help="//Name, hex seed, key file or keystore")
    w.add_argument("--facility", type=int, required=True, help="facility id to serve")
    w.add_argument(
        "--models", type=Path, default=None, help="model folder (default: shipped, by window)"
    )
    w.add_argument("--kind", default=None, help="model kind (default: the benchmark's best)")
    w.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
    w.add_argument("--since-ms", type=int, default=None, help="alert only on windows after")
    w.add_argument("--evidence-dir", type=Path, default=None, help="write evidence here")
    w.add_argument("--once", action="store_true", help="one poll, then exit")
    w.add_argument(
        "--api-key",
        default=None,
        help="read private telemetry with this API key (issued by the node's operator with "
        "'twinchain node api-key create'); default: signed requests with --key",
    )
    w.set_defaults(fn=cmd_pdm)


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unit-column", default="unit")
    p.add_argument("--time-column", default="t_seconds")
    p.add_argument("--time-unit", choices=("auto", "s", "ms"), default="auto",
                   help="numeric times: seconds or ms (auto: ms for a *_ms column)")  # fmt: skip
