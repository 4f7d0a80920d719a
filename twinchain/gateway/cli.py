"""``twinchain gateway`` subcommands (heavy imports stay inside the commands).

twinchain gateway --config gateway.toml [--live]       run a gateway
twinchain gateway init --dir DIR [--machines 3] [--node URL] [--seed N]
                                                       keys, gateway.toml and a dev chain
                                                       spec that knows the devices
twinchain gateway init --dir DIR --class FILE|NAME --from-csv FILE [--unit-column unit]
        [--time-column t_seconds] [--time-unit s|ms|iso] [--speed max]
                                                       the same for replaying a plant's
                                                       history: a twin of the class and a
                                                       device per unit, a historian source
twinchain gateway status --config gateway.toml [--json]
twinchain gateway refused --config gateway.toml [--export DIR] [--retry]
                                                       batches the facility archive refused
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register this package's subcommands on the main CLI's subparsers."""
    g = sub.add_parser(
        "gateway",
        help="edge gateway: simulator, MQTT, OPC-UA, historian and Modbus readings to signed "
        "telemetry on chain",
        description="Run a gateway (--config), or prepare one (init), or show its status.",
    )
    g.add_argument("--config", "-c", type=Path, help="gateway.toml")
    g.add_argument("--live", action="store_true", help="live status table on the terminal")
    gsub = g.add_subparsers(dest="gateway_cmd")
    i = gsub.add_parser("init", help="write keys, gateway.toml and a dev chain spec for them")
    i.add_argument("--dir", type=Path, required=True, help="the gateway's folder")
    i.add_argument("--machines", type=int, default=3, help="simulated machines (one device each)")
    i.add_argument("--seed", type=int, default=1)
    i.add_argument("--tick-ms", type=int, default=1000)
    i.add_argument("--node", default="http://127.0.0.1:9944", help="the node's RPC URL")
    i.add_argument("--prometheus-port", type=int, default=9616, help="0: none")
    i.add_argument(
        "--class",
        dest="equipment_class",
        help="a class file (or built-in class name) for the twins of --from-csv",
    )
    i.add_argument(
        "--from-csv",
        type=Path,
        help="history (CSV or Parquet) to replay: a twin and a device per unit in it",
    )
    i.add_argument("--unit-column", default="unit")
    i.add_argument("--time-column", default="t_seconds")
    i.add_argument("--time-unit", choices=("s", "ms", "iso"), help="default: detected")
    i.add_argument(
        "--speed", default="max", help='replay speed: 1 real time, 10 ten times, "max" (default)'
    )
    s = gsub.add_parser("status", help="the status a running gateway writes (status.json)")
    s.add_argument("--config", "-c", dest="status_config", type=Path, help="gateway.toml")
    s.add_argument("--json", action="store_true")
    r = gsub.add_parser(
        "refused",
        help="batches the facility archive refused (kept in the spool): list, export, retry",
    )
    r.add_argument("--config", "-c", dest="refused_config", type=Path, help="gateway.toml")
    r.add_argument("--export", type=Path, help="write each as DIR/<device>-<seq>.batch (msgpack)")
    r.add_argument(
        "--retry", action="store_true", help="deliver them again (on the gateway's next start)"
    )
    g.set_defaults(fn=cmd_gateway)


def cmd_gateway(args: argparse.Namespace) -> int:
    from twinchain.gateway.config import ConfigError, load
    from twinchain.primitives.errors import CliError

    try:
        if args.gateway_cmd == "init":
            return _init(args)
        if args.gateway_cmd == "status":
            return _status(args.status_config or args.config, args.json)
        if args.gateway_cmd == "refused":
            return _refused(args.refused_config or args.config, args.export, args.retry)
        if args.config is None:
            raise CliError("--config FILE is required (or: gateway init --dir DIR)")
        cfg = load(args.config)
        from twinchain.gateway.runner import run

        run(cfg, live=args.live and sys.stderr.isatty())
        return 0
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _status(config: Path | None, as_json: bool) -> int:
    from rich.console import Console

    from twinchain.gateway.config import load
    from twinchain.gateway.status import read_status, table
    from twinchain.primitives.errors import CliError

    if config is None:
        raise CliError("--config FILE is required")
    cfg = load(config)
    if cfg.status_file is None:
        raise CliError("this gateway writes no status file (gateway.status_file)")
    s = read_status(cfg.status_file)
    if s is None:
        raise CliError(f"no status in {cfg.status_file}: is the gateway running?")
    if as_json:
        sys.stdout.write(json.dumps(s, indent=2) + "\n")
    else:
        Console().print(table(s))
    return 0


def _refused(config: Path | None, export: Path | None, retry: bool) -> int:
    """The batches the archive refused: a table (device, seq, readings, block, reason); their
    signed bytes exported for a look or another delivery; or marked for delivery again."""
    from rich.console import Console
    from rich.table import Table

    from twinchain.gateway.config import load
    from twinchain.gateway.spool import Spool
    from twinchain.primitives.errors import CliError

    if config is None:
        raise CliError("--config FILE is required")
    cfg = load(config)
    if not cfg.spool.exists():
        raise CliError(f"no spool at {cfg.spool}")
    sp = Spool(cfg.spool)
    try:
        rows = sp.refused()
        t = Table(title=f"batches the archive refused ({len(rows)})")
        for col in ("device", "seq", "readings", "final in", "reason"):
            t.add_column(col)
        for b in rows:
            t.add_row(f"0x{b.device.hex()[:16]}…", str(b.seq), str(b.n), f"#{b.final}", b.reason)
        Console().print(t)
        if export is not None:
            export.mkdir(parents=True, exist_ok=True)
            for b in rows:
                (export / f"{b.device.hex()}-{b.seq}.batch").write_bytes(b.body)
            Console().print(f"exported {len(rows)} batches to {export}")
        if retry:
            n = sp.retry_refused()
            Console().print(f"{n} batches will be delivered again when the gateway next starts")
    finally:
        sp.close()
    return 0


def _init(args: argparse.Namespace) -> int:
    from rich.console import Console

    if args.from_csv is not None or args.equipment_class is not None:
        return _init_replay(args)

    from twinchain.gateway.provision import with_gateway, write_gateway
    from twinchain.machines.simulator import default_machines

    machines = default_machines(args.machines, args.seed)
    p = write_gateway(
        args.dir,
        node=args.node,
        machines=machines,
        first_twin=0,
        seed=args.seed,
        tick_ms=args.tick_ms,
        prometheus_port=args.prometheus_port,
    )
    spec = with_gateway(_dev_spec(), p, machines, tick_ms=args.tick_ms)
    spec_path = args.dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    c = Console()
    c.print(f"gateway key {p.gateway.address} (0x{p.gateway.public.hex()})")
    for name, kp in p.devices.items():
        c.print(f"  device {name}: 0x{kp.public.hex()}")
    c.print(f"wrote {p.config} and {spec_path} (a dev chain whose genesis binds these devices)")
    chain = args.dir / "chain"
    c.print(
        "run:\n"
        f"  twinchain node --chain {spec_path} --validator --key //Alice --base-path {chain} "
        "--archive-facility 0\n"
        f"  twinchain gateway --config {p.config} --live"
    )
    return 0


def _init_replay(args: argparse.Namespace) -> int:
    """``init --class --from-csv``: the twins and devices of a replay of a plant's history."""
    from rich.console import Console

    from twinchain.gateway.historian import survey
    from twinchain.gateway.provision import with_class_gateway, write_devices
    from twinchain.primitives.errors import CliError
    from twinchain.protocol.classdef import ClassDefError, load_class

    if args.from_csv is None or args.equipment_class is None:
        raise CliError("--class and --from-csv go together")
    try:
        cls = load_class(args.equipment_class)
    except (ClassDefError, OSError) as exc:
        raise CliError(f"class {args.equipment_class}: {exc}") from None
    history = args.from_csv.resolve()
    try:
        header, units = survey(history, args.unit_column)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.time_column not in header:
        raise CliError(f"{history} has no column {args.time_column!r} (columns: {header})")
    if not units:
        raise CliError(f"{history} names no unit in column {args.unit_column!r}")
    too_long = [u for u in units if len(u.encode()) > 64]
    if too_long:
        raise CliError(f"unit names are twin serials, at most 64 bytes: {too_long[0][:80]!r}")
    names = {m.name for m in cls.metrics}
    metrics = [c for c in header if c in names]
    if not metrics:
        raise CliError(f"no column of {history} is a metric of class {cls.name!r}: {header}")
    speed: Any = args.speed
    if speed != "max":
        try:
            speed = float(speed)
        except ValueError:
            raise CliError('--speed is a number or "max"') from None
    ref = args.equipment_class
    source: dict[str, Any] = {
        "type": "historian",
        "path": str(history),
        "class": str(Path(ref).resolve()) if ref.endswith(".toml") or "/" in ref else ref,
        "unit_column": args.unit_column,
        "time_column": args.time_column,
        "speed": speed,
        "time_offset": "now",
    }
    if args.time_unit:
        source["time_unit"] = args.time_unit
    p = write_devices(
        args.dir,
        node=args.node,
        devices=units,
        first_twin=0,
        sources=[source],
        prometheus_port=args.prometheus_port,
    )
    try:
        spec = with_class_gateway(_dev_spec(), p, cls, units)
    except ValueError as exc:
        raise CliError(f"class {cls.name!r} on the dev chain: {exc}") from None
    spec_path = args.dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    c = Console()
    c.print(f"gateway key {p.gateway.address} (0x{p.gateway.public.hex()})")
    c.print(
        f"{len(units)} units of class {cls.name!r} in {history.name} (twins 0..{len(units) - 1}, "
        f"one device each); metrics {', '.join(metrics)}"
    )
    ignored = [
        c_ for c_ in header if c_ not in names and c_ not in (args.unit_column, args.time_column)
    ]
    if ignored:
        c.print(f"columns that are not metrics of the class (ignored): {', '.join(ignored)}")
    c.print(f"wrote {p.config} and {spec_path} (a dev chain whose genesis binds these devices)")
    chain = args.dir / "chain"
    c.print(
        "run:\n"
        f"  twinchain node --chain {spec_path} --validator --key //Alice --base-path {chain} "
        "--archive-facility 0\n"
        f"  twinchain gateway --config {p.config} --live"
    )
    return 0


def _dev_spec() -> dict[str, Any]:
    """The node's ``--dev`` chain spec, as ``twinchain build-spec --dev`` prints it: asked of
    the node program, as an operator would, since the gateway does not import node code."""
    from twinchain.primitives.errors import CliError

    cmd = [sys.executable, "-m", "twinchain", "build-spec", "--dev"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CliError(f"twinchain build-spec --dev failed: {done.stderr.strip()[-500:]}")
    spec: dict[str, Any] = json.loads(done.stdout)
    return spec
