"""Provisioning: a gateway folder (keystore with the gateway and device keys, gateway.toml)
and the chain-spec genesis entries that make its devices known on chain."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinchain.gateway.config import dump
from twinchain.machines.classes import class_spec
from twinchain.machines.simulator import MachineConfig
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore

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
    folder.mkdir(parents=True, exist_ok=True)
    ks = Keystore(folder / "keystore")
    gw = ks.generate("gate")
    devices = {m.name: ks.generate("devc") for m in machines}
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
            {"name": m.name, "key": "0x" + devices[m.name].public.hex(), "twin": first_twin + i}
            | ({"topic": topics[m.name]} if topics and m.name in topics else {})
            for i, m in enumerate(machines)
        ],
        "sources": [],
    }
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
        data["sources"].append(sim)
    data["sources"] += extra_sources or []
    path = folder / "gateway.toml"
    path.write_text(dump(data))
    return Provisioned(folder, path, gw, devices)


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


def device_entries(p: Provisioned, first_twin: int, machines: list[MachineConfig]) -> list[dict]:
    """``telemetry.devices`` genesis entries: each device bound to its twin, pinned to the
    gateway."""
    gw = "0x" + p.gateway.public.hex()
    return [
        {"device": "0x" + p.devices[m.name].public.hex(), "twin": first_twin + i, "gateway": gw}
        for i, m in enumerate(machines)
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
    spec = copy.deepcopy(spec)
    g = spec["genesis"]
    gw = "0x" + p.gateway.public.hex()
    balances = g["balances"]["balances"]
    balances.append([gw, max(amount for _, amount in balances)])
    g["roles"] = {
        "grants": [
            ["//Alice", "EquipmentManufacturer"],
            ["//Alice", "FacilityOperator"],
            [gw, "Gateway"],
        ]
    }
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
    g["equipment"] = {
        "twins": twin_entries(
            machines, manufacturer="//Alice", owner="//Alice", facility=0, tick_ms=tick_ms
        )
    }
    g["telemetry"] = {"devices": device_entries(p, 0, machines), "window_ms": window_ms}
    return spec
