"""The devnet's domain: facilities, people, twins, devices and a simulating gateway each.

For each facility validator, genesis holds:

* the facility, registered and verified (until 2100), run by an operator account, with the
  facility's validator key;
* an owner (EquipmentOwner), three Active twins (cnc_mill, pump, compressor) made by the
  devnet's manufacturer, with the simulator's rated values and operating envelope;
* a device key per twin, bound to it and pinned to the facility's gateway (Gateway role), and
  a PredictiveWorker account for the off-chain workers;

and chain-wide: a certified auditor, short telemetry windows (5 s) so that windows close
often, benchmark targets and alert thresholds per class, a one-minute analytics period, a
funded treasury and a degradation model per class. Every gateway runs the factory simulator
with one fault injected (and repaired later) so that alerts and KPIs move within a minute.

Keys: ``DIR/keys`` holds the domain accounts (``acct``: operators, owners, the manufacturer
and the auditor; ``work``: predictive workers), ``DIR/<facility>/gateway/keystore`` the
gateway and device keys; ``DIR/domain.json`` names every account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinchain.gateway.provision import device_entries, twin_entries, write_gateway
from twinchain.machines.classes import class_spec
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import DEV_ENDOWMENT
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.protocol.classdef import genesis_classes
from twinchain.protocol.telemetry import POWER, TEMPERATURE, UNITS_PRODUCED, VIBRATION
from twinchain.runtime.pallets.equipment.types import READ_TELEMETRY

CLASSES = ("cnc_mill", "pump", "compressor")
WINDOW_MS = 5_000
VERIFIED_UNTIL_MS = 4_102_444_800_000  # 2100-01-01
TREASURY = 10**21  # a billion TWIN at 12 decimals
FAULT_KINDS = ("bearing_wear", "misalignment", "bearing_wear", "misalignment")
TICK_MS = 1000
KPI_PERIOD_MS = 60_000


@dataclass
class GatewayInfo:
    facility: str
    slug: str
    folder: str
    config: str
    account: str
    prometheus_port: int = 0
    pid: int = 0


def _hex(kp: Keypair) -> str:
    return "0x" + kp.public.hex()


def _machines(slug: str, index: int, n: int) -> list[MachineConfig]:
    if n == len(CLASSES):
        return [
            MachineConfig(f"{slug}-{cls}", cls, serial=f"DEV-{index:02d}-{k + 1}")
            for k, cls in enumerate(CLASSES)
        ]
    return [
        MachineConfig(f"{slug}-{CLASSES[k % 3]}-{k + 1}", CLASSES[k % 3], serial=f"DEV-{index}-{k}")
        for k in range(n)
    ]


def build(
    base_dir: Path,
    facilities: list[tuple[str, str, int, str]],
    prometheus_ports: list[int],
    *,
    machines: int = 3,
    tick_ms: int = TICK_MS,
    faults: bool = True,
    batching: dict[str, Any] | None = None,
    node_hosts: list[str] | None = None,
) -> tuple[dict[str, Any], list[GatewayInfo]]:
    """Genesis sections and gateway folders for ``facilities``: (name, slug, rpc port,
    validator public key hex) each; ``machines`` simulated per gateway every ``tick_ms``
    (the benchmark runs many, fast); ``node_hosts``: each validator's IP (127.0.0.1)."""
    keys = Keystore(base_dir / "keys")
    manufacturer = keys.generate("acct")
    auditor = keys.generate("acct")
    accounts: dict[str, Any] = {"manufacturer": _hex(manufacturer), "auditor": _hex(auditor)}
    grants: list[list[str]] = [
        [_hex(manufacturer), "EquipmentManufacturer"],
        [_hex(auditor), "CertifiedAuditor"],
    ]
    endow = [_hex(manufacturer), _hex(auditor)]
    fac_entries, twins, devices, ideal = [], [], [], []
    gateways: list[GatewayInfo] = []
    for i, (name, slug, rpc_port, validator) in enumerate(facilities):
        operator, owner = keys.generate("acct"), keys.generate("acct")
        worker = keys.generate("work")
        ms = _machines(slug, i, machines)
        first = len(twins)
        fault = {
            "machine": ms[i % 3].name,
            "kind": FAULT_KINDS[i % len(FAULT_KINDS)],
            "at_s": 15 + 5 * i,
            "ramp_s": 60,
            "repair_after_s": 45,
        }
        p = write_gateway(
            base_dir / slug / "gateway",
            node=f"http://{node_hosts[i] if node_hosts else '127.0.0.1'}:{rpc_port}",
            machines=ms,
            first_twin=first,
            seed=1000 + i,
            tick_ms=tick_ms,
            prometheus_port=prometheus_ports[i] if i < len(prometheus_ports) else 0,
            faults=[fault] if faults else None,
            name=slug,
            batching=batching,
        )
        fac_entries.append(
            {
                "operator": _hex(operator),
                "name": name,
                "location": name.split()[0],
                "capabilities": ["machining", "assembly"],
                "validator": "0x" + validator,
                "verified_until": VERIFIED_UNTIL_MS,
            }
        )
        entries = twin_entries(
            ms, manufacturer=_hex(manufacturer), owner=_hex(owner), facility=i, tick_ms=tick_ms
        )
        for e in entries:
            # The facility's PdM worker reads its twins' private metrics from the archive.
            e["access"] = [[_hex(worker), READ_TELEMETRY, VERIFIED_UNTIL_MS]]
        twins += entries
        devices += device_entries(p, first, ms)
        for k, m in enumerate(ms):
            rated = dict(map(tuple, class_spec(m.equipment_class, tick_ms)["rated"]))
            ideal.append([first + k, rated[UNITS_PRODUCED] * 1000])
        gw = _hex(p.gateway)
        grants += [
            [_hex(operator), "FacilityOperator"],
            [_hex(owner), "EquipmentOwner"],
            [gw, "Gateway"],
            [_hex(worker), "PredictiveWorker"],
        ]
        endow += [_hex(operator), _hex(owner), gw, _hex(worker)]
        accounts[slug] = {
            "facility": i,
            "operator": _hex(operator),
            "owner": _hex(owner),
            "worker": _hex(worker),
            "gateway": gw,
            "twins": {m.name: first + k for k, m in enumerate(ms)},
            "devices": {m: _hex(kp) for m, kp in p.devices.items()},
        }
        gateways.append(
            GatewayInfo(name, slug, str(p.folder), str(p.config), gw,
                        prometheus_ports[i] if i < len(prometheus_ports) else 0)
        )  # fmt: skip
    if len(gateways) > 1:
        # A grant between competitors: the first facility lets the second's auditor read
        # the raw telemetry of its first twin (from the first facility's archive node).
        owner_slug, reader_slug = gateways[0].slug, gateways[1].slug
        reader = _hex(keys.generate("acct"))
        accounts[reader_slug]["auditor"] = reader
        twins[0]["access"].append([reader, READ_TELEMETRY, VERIFIED_UNTIL_MS])
        accounts[owner_slug]["grants"] = [
            {"twin": 0, "reader": reader, "reader_facility": reader_slug, "rights": "read"}
        ]
    (base_dir / "domain.json").write_text(json.dumps(accounts, indent=2))
    genesis: dict[str, Any] = {
        "balances_extra": [[a, DEV_ENDOWMENT] for a in endow],
        "roles": {"grants": grants},
        "facility": {"facilities": fac_entries},
        # The built-in classes registered: each twin specifies its class's metrics.
        "equipment": {"twins": twins, "classes": genesis_classes()},
        "telemetry": {"window_ms": WINDOW_MS, "devices": devices},
        **operations(_hex(manufacturer), ideal),
    }
    return genesis, gateways


def operations(manufacturer: str, ideal: list[list[int]]) -> dict[str, Any]:
    """Benchmark, maintenance, analytics and simulation sections that make a fault show
    within a minute: class targets at the rated values, vibration/temperature thresholds over
    two 5 s windows, a one-minute KPI period."""
    specs, thresholds, models = [], [], []
    for cls in CLASSES:
        rated = dict(map(tuple, class_spec(cls, TICK_MS)["rated"]))
        for metric, tol_pct in ((TEMPERATURE, 15), (VIBRATION, 25), (POWER, 40)):
            specs.append([cls, metric, rated[metric], rated[metric] * tol_pct // 100])
        thresholds += [[cls, VIBRATION, 3_000, 1_500, 2], [cls, TEMPERATURE, 2_500, 1_200, 2]]
        models.append(
            {
                "equipment_class": cls,
                "params": {"wear_per_hour": 30, "failure_threshold": 1_000_000,
                           "noise_ppm": 50_000, "spread_ppm": 100_000},
                "registered_by": manufacturer,
            }
        )  # fmt: skip
    return {
        "benchmark": {
            "baseline_windows": 5,
            "class_specs": specs,
            "class_owners": [[cls, manufacturer] for cls in CLASSES],
        },
        "maintenance": {"verify_windows": 3, "class_thresholds": thresholds},
        "analytics": {
            "period_ms": KPI_PERIOD_MS,
            "treasury": TREASURY,
            "ideal_rates": ideal,
            "planned": [[twin, KPI_PERIOD_MS] for twin, _ in ideal],  # all hours are planned
        },
        "simulation": {"models": models},
    }
