"""Provisioning: a gateway folder (keystore with the gateway and device keys, gateway.toml)
and the chain-spec genesis entries that make its devices known on chain: for the built-in
simulator's machines, or for the units of a plant's history replayed against a class file
(``gateway init --class FILE --from-csv FILE``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twinchain.gateway.config import dump
from twinchain.machines.classes import class_spec
from twinchain.machines.simulator import MachineConfig
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.protocol.classdef import (
    FIRST_CLASS_METRIC_ID,
    EquipmentClass,
    class_record,
    record_to_json,
)
from twinchain.protocol.telemetry import DEFAULT_METRICS

VERIFIED_UNTIL_MS = 4_102_444_800_000  # 2100-01-01


@dataclass
class Provisioned:
    folder: Path
    config: Path
    gateway: Keypair
    devices: dict[str, Keypair]  # machine name -> device key


def write_gateway(
    folder: Path,
    *,
    node: str,
    machines: list[MachineConfig],
    first_twin: int,
    seed: int = 1,
    tick_ms: int = 1000,
    realtime: bool = True,
    prometheus_port: int = 0,
    faults: list[dict[str, Any]] | None = None,
    name: str = "gateway",
    batching: dict[str, Any] | None = None,
    extra_sources: list[dict[str, Any]] | None = None,
    simulator: bool = True,
    topics: dict[str, str] | None = None,
) -> Provisioned:
    """Keys and ``gateway.toml`` for a gateway whose machine ``i`` is twin ``first_twin + i``."""
    sources: list[dict[str, Any]] = []
    if simulator:
        sim: dict[str, Any] = {
            "type": "simulator",
            "seed": seed,
            "tick_ms": tick_ms,
            "realtime": realtime,
            "machines": [{"name": m.name, "class": m.equipment_class} for m in machines],
        }
        if faults:
            sim["faults"] = faults
        sources.append(sim)
    return write_devices(
        folder,
        node=node,
        devices=[m.name for m in machines],
        first_twin=first_twin,
        sources=sources + (extra_sources or []),
        prometheus_port=prometheus_port,
        name=name,
        batching=batching,
        topics=topics,
    )


def write_devices(
    folder: Path,
    *,
    node: str,
    devices: list[str],
    first_twin: int,
    sources: list[dict[str, Any]],
    prometheus_port: int = 0,
    name: str = "gateway",
    batching: dict[str, Any] | None = None,
    topics: dict[str, str] | None = None,
) -> Provisioned:
    """Keys and ``gateway.toml`` for a gateway whose device ``devices[i]`` reports for twin
    ``first_twin + i``, reading ``sources``."""
    folder.mkdir(parents=True, exist_ok=True)
    ks = Keystore(folder / "keystore")
    gw = ks.generate("gate")
    keys = {d: ks.generate("devc") for d in devices}
    data: dict[str, Any] = {
        "gateway": {
            "name": name,
            "node": node,
            "keystore": "keystore",
            "key": "0x" + gw.public.hex(),
            "spool": "spool.sqlite",
            "status_file": "status.json",
            "prometheus_port": prometheus_port,
        },
        "batching": batching or {},
        "devices": [
            {"name": d, "key": "0x" + keys[d].public.hex(), "twin": first_twin + i}
            | ({"topic": topics[d]} if topics and d in topics else {})
            for i, d in enumerate(devices)
        ],
        "sources": sources,
    }
    path = folder / "gateway.toml"
    path.write_text(dump(data))
    return Provisioned(folder, path, gw, keys)


def twin_entries(
    machines: list[MachineConfig],
    *,
    manufacturer: str,
    owner: str,
    facility: int | None,
    tick_ms: int = 1000,
) -> list[dict[str, Any]]:
    """``equipment.twins`` genesis entries: Active twins with the simulator's class specs."""
    out = []
    for m in machines:
        spec = class_spec(m.equipment_class, tick_ms)
        e: dict[str, Any] = {
            "manufacturer": manufacturer,
            "owner": owner,
            "class": m.equipment_class,
            "model": m.model,
            "serial": m.serial,
            "lifecycle": "Active",
            "rated": spec["rated"],
            "envelope": spec["envelope"],
        }
        if facility is not None:
            e["facility"] = facility
        out.append(e)
    return out


def device_entries(
    p: Provisioned, first_twin: int, machines: list[MachineConfig] | list[str]
) -> list[dict]:
    """``telemetry.devices`` genesis entries: each device (a machine, or a device name) bound
    to its twin, pinned to the gateway."""
    gw = "0x" + p.gateway.public.hex()
    names = [m if isinstance(m, str) else m.name for m in machines]
    return [
        {"device": "0x" + p.devices[n].public.hex(), "twin": first_twin + i, "gateway": gw}
        for i, n in enumerate(names)
    ]


def with_gateway(
    spec: dict[str, Any],
    p: Provisioned,
    machines: list[MachineConfig],
    *,
    tick_ms: int = 1000,
    window_ms: int = 60_000,
) -> dict[str, Any]:
    """A copy of ``spec`` (a chain spec's JSON, as ``twinchain build-spec --dev`` prints it)
    whose genesis also knows this gateway: Alice makes and owns the twins, which stand in
    facility 0 (a verified plant operated by Alice, whose node is Alice's validator: run it
    with ``--archive-facility 0`` to keep the raw readings), and the gateway account holds
    Gateway, endowed as the spec's richest account (the dev accounts, in a dev spec)."""
    twins = twin_entries(
        machines, manufacturer="//Alice", owner="//Alice", facility=0, tick_ms=tick_ms
    )
    spec = _with_plant(spec, p, twins)
    spec["genesis"]["telemetry"] = {
        "devices": device_entries(p, 0, machines),
        "window_ms": window_ms,
    }
    return spec


def _with_plant(
    spec: dict[str, Any],
    p: Provisioned,
    twins: list[dict[str, Any]],
    *,
    classes: list[dict[str, Any]] | None = None,
    worker: bool = False,
) -> dict[str, Any]:
    """``spec`` with Alice's verified facility 0 holding ``twins``, and the gateway's role
    and endowment (see :func:`with_gateway`); ``classes``: class records registered in
    genesis besides the spec's own (one of the same name replaces the spec's); ``worker``:
    Alice also holds PredictiveWorker (the plant's own prognostics worker runs as the
    twins' owner, who may read their private metrics)."""
    spec = copy.deepcopy(spec)
    g = spec["genesis"]
    gw = "0x" + p.gateway.public.hex()
    balances = g["balances"]["balances"]
    balances.append([gw, max(amount for _, amount in balances)])
    grants = [
        ["//Alice", "EquipmentManufacturer"],
        ["//Alice", "FacilityOperator"],
        [gw, "Gateway"],
    ]
    if worker:
        grants.append(["//Alice", "PredictiveWorker"])
    g["roles"] = {"grants": grants}
    g["facility"] = {
        "facilities": [
            {
                "operator": "//Alice",
                "name": "Dev Plant",
                "location": "Local",
                "capabilities": ["machining", "assembly"],
                "validator": "//Alice",
                "verified_until": VERIFIED_UNTIL_MS,
            }
        ]
    }
    before = g.get("equipment", {}).get("classes", [])
    g["equipment"] = {"twins": twins}
    if classes is not None:
        names = {c["name"] for c in classes}
        g["equipment"]["classes"] = [c for c in before if c["name"] not in names] + classes
    return spec


# --------------------------------------------------------------------------- a class's replay


def class_metric_ids(
    cls: EquipmentClass,
    registry: Sequence[Sequence[Any]] = DEFAULT_METRICS,
    first_new: int = FIRST_CLASS_METRIC_ID,
) -> tuple[dict[str, int], list[list[Any]]]:
    """The chain metric id of each of the class's metrics, and the registry entries
    ``[id, name, unit, scale, kind]`` to add for those the registry lacks: a metric binds
    the registry's metric of its name (same unit, scale and kind, else ``ValueError``), or
    its own ``id``, or the next free id at or above ``first_new`` (in the class's order:
    the ids ``Equipment.register_class`` would give them)."""
    by_name = {str(e[1]): e for e in registry}
    taken = {int(e[0]) for e in registry}
    ids: dict[str, int] = {}
    new: list[list[Any]] = []
    for m in cls.metrics:
        kind = m.kind.capitalize()
        e = by_name.get(m.name)
        if e is not None:
            if (str(e[2]), int(e[3]), str(e[4])) != (m.unit, m.scale, kind):
                raise ValueError(
                    f"metric {m.name!r}: the chain has it in {e[2]} at scale {e[3]} ({e[4]}), "
                    f"the class in {m.unit} at scale {m.scale} ({kind})"
                )
            if m.id is not None and m.id != int(e[0]):
                raise ValueError(f"metric {m.name!r}: the chain's id is {e[0]}, not {m.id}")
            ids[m.name] = int(e[0])
            continue
        mid = m.id
        if mid is None:
            mid = first_new
            while mid in taken:
                mid += 1
        if mid in taken:
            raise ValueError(f"metric {m.name!r}: id {mid} is another metric's")
        taken.add(mid)
        ids[m.name] = mid
        new.append([mid, m.name, m.unit, m.scale, kind])
    return ids, new


def class_twin_entries(
    cls: EquipmentClass,
    serials: list[str],
    ids: dict[str, int],
    *,
    manufacturer: str,
    owner: str,
    facility: int | None,
) -> list[dict[str, Any]]:
    """``equipment.twins`` genesis entries, one Active twin of ``cls`` per serial, with the
    class's rated values and envelope in the chain's fixed point."""
    rated = [[ids[m.name], cls.to_fixed(m, m.rated)] for m in cls.metrics if m.rated is not None]
    envelope = [
        [
            ids[m.name],
            cls.to_fixed(m, m.min),
            cls.to_fixed(m, m.max),
            0 if m.max_step is None else cls.to_fixed(m, m.max_step),
        ]
        for m in cls.metrics
        if m.min is not None and m.max is not None
    ]
    out = []
    for serial in serials:
        e: dict[str, Any] = {
            "manufacturer": manufacturer,
            "owner": owner,
            "class": cls.name,
            "model": cls.name,
            "serial": serial,
            "lifecycle": "Active",
            "rated": rated,
            "envelope": envelope,
        }
        if facility is not None:
            e["facility"] = facility
        out.append(e)
    return out


def with_class_gateway(
    spec: dict[str, Any],
    p: Provisioned,
    cls: EquipmentClass,
    units: list[str],
    *,
    window_ms: int = 60_000,
) -> dict[str, Any]:
    """:func:`with_gateway` for the units of a replay: one twin of ``cls`` per unit (its
    serial the unit's name, its device the gateway's device of that name); the class
    registered in genesis with its metrics bound (those the chain lacks registered in
    Telemetry's genesis under the ids the chain would give them), the class's public
    metrics the twins' default disclosure, and Alice (the twins' owner) a PredictiveWorker
    too, so that the plant's prognostics worker may raise alerts of the class's modes."""
    ids, new = class_metric_ids(cls)
    bound = replace(cls, metrics=tuple(replace(m, id=ids[m.name]) for m in cls.metrics))
    twins = class_twin_entries(cls, units, ids, manufacturer="//Alice", owner="//Alice", facility=0)
    record = record_to_json(class_record(bound))
    spec = _with_plant(spec, p, twins, classes=[record], worker=True)
    spec["genesis"]["telemetry"] = {
        "devices": device_entries(p, 0, units),
        "window_ms": window_ms,
        "metrics": [list(m) for m in DEFAULT_METRICS] + new,
        "default_public": sorted(ids[m.name] for m in cls.metrics if m.public),
    }
    return spec
