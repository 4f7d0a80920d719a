"""``twinchain simulate ...``: run, anchor and verify twin scenarios against a node.

    twinchain simulate model --class pump --param wear_per_hour=2000 --param ...
        print a degradation model's canonical params and hash (``--register`` submits it)
    twinchain simulate run --rpc URL --twin N --model HASH --seed S [--kind failure-risk]
        run a scenario from the chain's twin state (``twin_state``), print the result and its
        output hash; ``--submit --suri //Name`` anchors it (``Simulation.anchor_scenario``)
    twinchain simulate verify --rpc URL --scenario ID [--challenge --suri //Name]
        re-run an anchored scenario; exit 0 when it matches, 2 when it does not (and
        challenge it on chain with ``--challenge``)

Ratios on the command line are decimals (``--load 0.8``) turned into integer ppm exactly
(no float); the engine itself is integer-only (:mod:`twinchain.twinsim.engine`).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

PPM = 1_000_000
DEFAULT_RPC = "127.0.0.1:9944"


class SimError(Exception):
    """A user error of these commands (printed in one line, exit status 1)."""


def ppm(text: str) -> int:
    """``"0.8"`` -> 800000, exactly."""
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    v = d * PPM
    if v != v.to_integral_value() or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative multiple of 1e-6")
    return int(v)


def _alt(text: str) -> tuple[int, int]:
    load, _, duty = text.partition(":")
    return ppm(load), ppm(duty or "1")


def _param(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("--param takes name=integer")
    try:
        return name, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not an integer") from None


def _hex32(text: str) -> bytes:
    try:
        b = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected 32 bytes of 0x-hex") from None
    if len(b) != 32:
        raise argparse.ArgumentTypeError("expected 32 bytes of 0x-hex")
    return b


def _keypair(suri: str | None) -> Any:
    from twinchain.primitives.keys import Keypair

    if not suri:
        raise SimError("--suri is required to sign (//Name or a 32-byte hex seed)")
    if suri.startswith("//"):
        return Keypair.from_dev_name(suri)
    try:
        return Keypair.from_seed(bytes.fromhex(suri.removeprefix("0x")))
    except ValueError as exc:
        raise SimError(f"--suri must be //Name or a 32-byte hex seed: {exc}") from None


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _client(url: str) -> Any:
    from twinchain.client.common import ClientError
    from twinchain.client.sync import Client

    try:
        return Client(url)
    except (ClientError, OSError) as exc:
        raise SimError(f"cannot reach {url}: {exc}") from None
    except Exception as exc:  # httpx transport errors
        raise SimError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None


def _submit(client: Any, call: Any, keypair: Any, wait: bool, timeout: float) -> dict[str, Any]:
    from twinchain.protocol.jsonrpc import to_hex

    if not wait:
        return {"extrinsic": to_hex(client.sign_and_submit(call, keypair)), "status": "submitted"}
    statuses = client.submit_and_watch(call, keypair, timeout=timeout)
    last = statuses[-1]
    return {
        "status": last.kind,
        "block": None if last.block is None else to_hex(last.block),
    }


# --------------------------------------------------------------------------- commands


def cmd_model(args: argparse.Namespace) -> int:
    from twinchain.twinsim import engine

    try:
        m = engine.DegradationModel(**dict(args.param))
        params = m.encode()
    except TypeError as exc:
        raise SimError(f"model parameters: {exc}") from None
    except engine.EngineError as exc:
        raise SimError(str(exc)) from None
    h = engine.model_hash(args.equipment_class, engine.DEGRADATION, params, args.version)
    out: dict[str, Any] = {
        "model": "0x" + h.hex(),
        "equipmentClass": args.equipment_class,
        "kind": engine.DEGRADATION,
        "version": args.version,
        "params": "0x" + params.hex(),
        "decoded": {f: getattr(m, f) for f in engine.DegradationModel.FIELDS},
    }
    if args.register:
        client = _client(args.rpc)
        call = client.call_function(
            "Simulation",
            "register_model",
            model=h,
            equipment_class=args.equipment_class,
            kind=engine.DEGRADATION,
            params=params,
            version=args.version,
        )
        out["submitted"] = _submit(client, call, _keypair(args.suri), args.wait, args.timeout)
    _print(out)
    return 0


def _from_state(
    state: dict[str, Any] | None, equipment: dict[str, Any] | None
) -> dict[str, int | None]:
    """Health, temperature, load and duty of a twin from ``twin_state``/``twin_equipment``."""
    if state is None:
        return {"health": None, "temperature": None, "load": None, "duty": None, "now": None}
    means = {m["metric"]: m for m in state["metrics"]}
    temp = means.get(1, {}).get("mean")
    load = None
    rated = {}
    if equipment is not None:
        rated = {m: v for m, v in (equipment.get("spec") or {}).get("rated", [])}
    if 4 in means and rated.get(4):
        load = max(0, means[4]["mean"]) * PPM // rated[4]
    duty = None
    if 11 in means and state["windowMs"]:
        run_s = max(0, means[11]["mean"]) * means[11]["count"]
        duty = min(PPM, run_s * 1000 * PPM // state["windowMs"])
    return {
        "health": state["healthBp"],
        "temperature": temp,
        "load": load,
        "duty": duty,
        "now": state.get("now"),
    }


def _model_params(client: Any, model: bytes) -> tuple[bytes, dict[str, Any]]:
    models = client.call("twin_models")
    info = next((m for m in models if m["model"] == "0x" + model.hex()), None)
    if info is None:
        raise SimError(f"model 0x{model.hex()} is not registered")
    return bytes.fromhex(info["params"].removeprefix("0x")), info


def cmd_run(args: argparse.Namespace) -> int:
    from twinchain.twinsim import engine

    kind = {"failure-risk": "FailureRisk", "what-if": "WhatIf"}[args.kind]
    client = _client(args.rpc)
    params, info = _model_params(client, args.model)
    if not info["active"]:
        raise SimError("the model is deactivated")
    model = engine.DegradationModel.decode(params)
    state = client.call("twin_state", args.twin)
    equipment = client.call("twin_equipment", args.twin)
    if equipment is None:
        raise SimError(f"no twin {args.twin}")
    s = _from_state(state, equipment)
    start_ms = args.start_ms if args.start_ms is not None else s["now"]
    if start_ms is None:  # no state yet: the chain's current time
        start_ms = int(client.read_storage("Timestamp", "Now", verify=False) or 0)
    alts = tuple(args.alt or ())
    if kind == "WhatIf" and not alts:
        raise SimError("a what-if needs at least one --alt LOAD[:DUTY]")
    if kind == "FailureRisk" and alts:
        raise SimError("--alt is for what-if scenarios")
    try:
        inputs = engine.default_inputs(
            model,
            start_ms=start_ms,
            health_bp=args.health_bp if args.health_bp is not None else s["health"],
            temperature_milli=(
                args.temperature_milli
                if args.temperature_milli is not None
                else (s["temperature"] if s["temperature"] is not None else model.temp_ref_milli)
            ),
            load_ppm=args.load if args.load is not None else (s["load"] or PPM),
            duty_ppm=args.duty if args.duty is not None else (s["duty"] or PPM),
            step_ms=args.step_ms,
            steps=args.steps,
            paths=args.paths,
            risk_bp=args.risk_bp,
            alternatives=alts,
        )
        data = inputs.encode()
        out, h = engine.run_encoded(args.model, params, kind, data, args.seed)
    except engine.EngineError as exc:
        raise SimError(str(exc)) from None
    failure_bp, ttf, w0, w1 = out.summary()
    result: dict[str, Any] = {
        "twin": args.twin,
        "model": "0x" + args.model.hex(),
        "kind": kind,
        "seed": args.seed,
        "fromState": state is not None,
        "inputs": "0x" + data.hex(),
        "outputHash": "0x" + h.hex(),
        "summary": {"failureBp": failure_bp, "ttfMs": ttf, "windowStart": w0, "windowEnd": w1},
        "results": [
            {
                "failureBp": r.failure_bp,
                "meanTtfMs": r.mean_ttf_ms,
                "windowStartMs": r.window_start_ms,
                "windowEndMs": r.window_end_ms,
                "meanFinalWear": r.mean_final_wear,
                "operatingMs": r.operating_ms,
                "loadMs": r.load_ms,
                "failDeciles": list(r.fail_deciles),
            }
            for r in out.results
        ],
    }
    if args.submit:
        call = client.call_function(
            "Simulation",
            "anchor_scenario",
            twin=args.twin,
            model=args.model,
            kind=kind,
            inputs=data,
            seed=args.seed,
            output_hash=h,
            failure_bp=failure_bp,
            ttf_ms=ttf,
            window_start=w0,
            window_end=w1,
        )
        result["submitted"] = _submit(client, call, _keypair(args.suri), args.wait, args.timeout)
    _print(result)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from twinchain.twinsim import engine

    client = _client(args.rpc)
    sc = client.call("twin_scenario", args.scenario)
    if sc is None:
        raise SimError(f"no scenario {args.scenario}")
    model = bytes.fromhex(sc["model"].removeprefix("0x"))
    params, _ = _model_params(client, model)
    inputs = bytes.fromhex(sc["inputs"].removeprefix("0x"))
    try:
        out, h = engine.run_encoded(model, params, sc["kind"], inputs, sc["seed"])
    except engine.EngineError as exc:
        raise SimError(f"the anchored scenario does not run: {exc}") from None
    claimed = (sc["failureBp"], sc["ttfMs"], sc["windowStart"], sc["windowEnd"])
    matches = "0x" + h.hex() == sc["outputHash"] and out.summary() == claimed
    result: dict[str, Any] = {
        "scenario": args.scenario,
        "status": sc["status"],
        "anchoredHash": sc["outputHash"],
        "recomputedHash": "0x" + h.hex(),
        "anchoredSummary": list(claimed),
        "recomputedSummary": list(out.summary()),
        "matches": matches,
    }
    if not matches and args.challenge:
        if sc["status"] != "Anchored":
            raise SimError(f"scenario {args.scenario} is {sc['status']}: nothing to challenge")
        call = client.call_function("Simulation", "challenge", scenario_id=args.scenario)
        result["challenge"] = _submit(client, call, _keypair(args.suri), args.wait, args.timeout)
    _print(result)
    return 0 if matches else 2


def _run(fn: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except SimError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1

    return wrapped


def _common(p: argparse.ArgumentParser, *, signer: bool) -> None:
    p.add_argument("--rpc", default=DEFAULT_RPC, help="node RPC address (host:port or URL)")
    if signer:
        p.add_argument("--suri", help="signing key: //Name or a 32-byte hex seed")
        p.add_argument("--no-wait", dest="wait", action="store_false", help="submit only")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to watch")


def add_parser(sub: Any) -> None:
    """Register this package's subcommands on the main CLI's subparsers."""
    sp = sub.add_parser("simulate", help="twin simulation: models, scenarios, verification")
    ssub = sp.add_subparsers(dest="simulate_cmd", required=True)

    m = ssub.add_parser("model", help="a degradation model's params and hash")
    m.add_argument("--class", dest="equipment_class", required=True)
    m.add_argument("--param", type=_param, action="append", default=[], help="name=integer")
    m.add_argument("--version", type=int, default=1)
    m.add_argument("--register", action="store_true", help="submit Simulation.register_model")
    _common(m, signer=True)
    m.set_defaults(fn=_run(cmd_model))

    r = ssub.add_parser("run", help="run a scenario from a twin's chain state")
    _common(r, signer=True)
    r.add_argument("--twin", type=int, required=True)
    r.add_argument("--model", type=_hex32, required=True, help="registered model hash")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--kind", choices=("failure-risk", "what-if"), default="failure-risk")
    r.add_argument("--steps", type=int, default=168)
    r.add_argument("--step-ms", type=int, default=3_600_000)
    r.add_argument("--paths", type=int, default=200)
    r.add_argument("--risk-bp", type=int, default=1_000, help="risk closing the window")
    r.add_argument("--load", type=ppm, help="load vs rated (default: from the twin's power)")
    r.add_argument("--duty", type=ppm, help="running share (default: from run_time)")
    r.add_argument("--alt", type=_alt, action="append", help="what-if LOAD[:DUTY]")
    r.add_argument("--health-bp", type=int, help="override the twin's health score")
    r.add_argument("--temperature-milli", type=int, help="override the temperature (mdegC)")
    r.add_argument("--start-ms", type=int, help="horizon start (default: the chain's time)")
    r.add_argument("--submit", action="store_true", help="anchor the result on chain")
    r.set_defaults(fn=_run(cmd_run))

    v = ssub.add_parser("verify", help="re-run an anchored scenario and compare")
    _common(v, signer=True)
    v.add_argument("--scenario", type=int, required=True)
    v.add_argument("--challenge", action="store_true", help="challenge it on a mismatch")
    v.set_defaults(fn=_run(cmd_verify))
