"""The gateway's TOML configuration (``twinchain gateway --config gateway.toml``).

Paths in the file are relative to the file's folder. A minimal file::

    [gateway]
    node = "http://127.0.0.1:9944"      # the node's JSON-RPC (http/ws, or https/wss: TLS)
    ca_file = "ca.pem"                  # optional: the CA that issued the node's certificate
    archive_replicas = []               # optional: more archive nodes of the facility (URLs)
    keystore = "keystore"               # gateway key ("gate") and device keys ("devc")
    spool = "spool.sqlite"
    prometheus_port = 9616              # 0: no metrics endpoint

    [batching]                          # all optional
    max_readings = 8192                 # per device batch (the protocol's limit)
    max_delay_ms = 1000                 # a partial batch leaves after this long at most
    slot_lead_ms = 300                  # all of them this long before a slot starts (0: off)
    max_batches_per_xt = 256            # commitments per extrinsic
    max_readings_per_xt = 65536         # readings those commitments stand for
    max_in_flight = 16                  # extrinsics submitted, not yet finalized (at most)
    target_latency_s = 6.0              # submit to finalized: fewer in flight above this
    resubmit_after_s = 12.0             # an unsettled extrinsic is sent again after this,
    resubmit_max_s = 120.0              # ... then after twice as long each time, up to this
    finality_lag_alert = 10             # best - finalized above this: finality is stalled
    high_water = 200000                 # spooled readings: sources pause above this
    low_water = 100000                  # ... and resume below this
    policy_refresh_blocks = 10          # the twins' disclosure policies, read again this often
    archive_retry_s = 2.0               # a batch the archive only staged is delivered again
    archive_max_bytes = 2097152         # batch bytes per archive_deliver request

    [[devices]]
    name = "press-1"
    key = "0x…"                         # its public key; the seed is in the keystore
    twin = 0
    topic = "factory/press-1"           # optional: MQTT topic naming this device

    [[sources]]
    type = "simulator"                  # or "mqtt", "opcua" (the sources module),
                                        # "historian", "modbus" (their modules)
    seed = 7
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinchain.primitives.keys import InvalidKey, Keypair, parse_account
from twinchain.primitives.keystore import Keystore
from twinchain.protocol.telemetry import MAX_BATCHES, MAX_READINGS

# Readings the commitments of one extrinsic may stand for. The readings are not in it (a
# commitment is ~170 bytes and 46 per public metric, whatever its count), so only the
# commitments per extrinsic bound its size; this knob paces how much the packer holds back.
MAX_READINGS_PER_XT = MAX_BATCHES * MAX_READINGS


class ConfigError(ValueError):
    """The configuration file is missing, not TOML, or inconsistent."""


@dataclass
class DeviceConfig:
    name: str
    key: bytes
    twin: int
    topic: str | None = None


@dataclass
class BatchingConfig:
    max_readings: int = MAX_READINGS
    max_delay_ms: int = 1000
    slot_lead_ms: int = 300
    max_batches_per_xt: int = MAX_BATCHES
    max_readings_per_xt: int = 65_536
    max_in_flight: int = 16
    high_water: int = 200_000
    low_water: int = 100_000
    resubmit_after_s: float = 12.0
    resubmit_max_s: float = 120.0
    target_latency_s: float = 6.0
    finality_lag_alert: int = 10
    policy_refresh_blocks: int = 10
    archive_retry_s: float = 2.0
    archive_max_bytes: int = 2 << 20


@dataclass
class GatewayConfig:
    node: str
    keystore: Path
    spool: Path
    gateway_key: bytes | None
    devices: list[DeviceConfig]
    sources: list[dict[str, Any]]
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    prometheus_port: int = 0
    prometheus_host: str = "127.0.0.1"
    status_file: Path | None = None
    name: str = "gateway"
    ca_file: Path | None = None
    #: Further nodes keeping the facility's archive (non-validators): a batch leaves the
    #: spool only once every one of them, and the node, holds it.
    archive_replicas: list[str] = field(default_factory=list)

    def gateway_keypair(self) -> Keypair:
        ks = Keystore(self.keystore)
        keys = ks.keys("gate")
        if self.gateway_key is not None:
            keys = [k for k in keys if k.public == self.gateway_key]
        if not keys:
            raise ConfigError(f"no gateway key ('gate') in the keystore {self.keystore}")
        return keys[0]

    def device_keypairs(self) -> dict[str, Keypair]:
        """Device name -> its key pair from the keystore."""
        # One pass over the keystore (``Keystore.get`` reads every key file per lookup).
        by_key = {kp.public: kp for kp in Keystore(self.keystore).keys("devc")}
        out = {}
        for d in self.devices:
            kp = by_key.get(d.key)
            if kp is None:
                raise ConfigError(f"device {d.name!r}: key 0x{d.key.hex()} not in the keystore")
            out[d.name] = kp
        return out


def _int(section: dict[str, Any], key: str, default: int, lo: int = 0, hi: int = 2**63) -> int:
    v = section.get(key, default)
    if type(v) is not int or not lo <= v <= hi:
        raise ConfigError(f"{key} must be an integer in {lo}..{hi}")
    return v


def load(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse(data, path.parent)


def parse(data: dict[str, Any], base: Path) -> GatewayConfig:
    gw = data.get("gateway", {})
    if not isinstance(gw, dict):
        raise ConfigError("[gateway] must be a table")
    b = data.get("batching", {})
    batching = BatchingConfig(
        max_readings=_int(b, "max_readings", MAX_READINGS, 1, MAX_READINGS),
        max_delay_ms=_int(b, "max_delay_ms", 1000, 0, 3_600_000),
        slot_lead_ms=_int(b, "slot_lead_ms", 300, 0, 60_000),
        max_batches_per_xt=_int(b, "max_batches_per_xt", MAX_BATCHES, 1, MAX_BATCHES),
        max_readings_per_xt=_int(b, "max_readings_per_xt", 65_536, 1, MAX_READINGS_PER_XT),
        max_in_flight=_int(b, "max_in_flight", 16, 1, 1024),
        high_water=_int(b, "high_water", 200_000, 1),
        low_water=_int(b, "low_water", 100_000, 0),
        resubmit_after_s=float(b.get("resubmit_after_s", 12.0)),
        resubmit_max_s=float(b.get("resubmit_max_s", 120.0)),
        target_latency_s=float(b.get("target_latency_s", 6.0)),
        finality_lag_alert=_int(b, "finality_lag_alert", 10, 1, 1_000_000),
        policy_refresh_blocks=_int(b, "policy_refresh_blocks", 10, 1, 1_000_000),
        archive_retry_s=float(b.get("archive_retry_s", 2.0)),
        archive_max_bytes=_int(b, "archive_max_bytes", 2 << 20, 1 << 16, 4 << 20),
    )
    if not 0 < batching.resubmit_after_s <= batching.resubmit_max_s:
        raise ConfigError("batching.resubmit_after_s must be positive and at most resubmit_max_s")
    if batching.low_water >= batching.high_water:
        raise ConfigError("batching.low_water must be below high_water")
    devices = []
    seen: set[str] = set()
    keys: set[bytes] = set()
    for d in data.get("devices", []):
        try:
            name = str(d["name"])
            key = parse_account(str(d["key"]))
            twin = int(d["twin"])
        except (KeyError, TypeError, ValueError, InvalidKey) as exc:
            raise ConfigError(f"bad [[devices]] entry {d!r}: {exc}") from None
        if name in seen or key in keys:
            raise ConfigError(f"device {name!r} or its key is configured twice")
        seen.add(name)
        keys.add(key)
        topic = d.get("topic")
        devices.append(DeviceConfig(name, key, twin, None if topic is None else str(topic)))
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise ConfigError("[[sources]] must be an array of tables")
    sources = [_source(i, s, base, seen) for i, s in enumerate(sources)]
    gkey = gw.get("key")
    try:
        gateway_key = None if gkey is None else parse_account(str(gkey))
    except (InvalidKey, ValueError) as exc:
        raise ConfigError(f"gateway.key: {exc}") from None
    status = gw.get("status_file", "status.json")
    return GatewayConfig(
        node=str(gw.get("node", "http://127.0.0.1:9944")),
        keystore=base / str(gw.get("keystore", "keystore")),
        spool=base / str(gw.get("spool", "spool.sqlite")),
        gateway_key=gateway_key,
        devices=devices,
        sources=sources,
        batching=batching,
        prometheus_port=_int(gw, "prometheus_port", 0, 0, 65535),
        prometheus_host=str(gw.get("prometheus_host", "127.0.0.1")),
        status_file=None if not status else base / str(status),
        name=str(gw.get("name", "gateway")),
        ca_file=None if gw.get("ca_file") is None else base / str(gw["ca_file"]),
        archive_replicas=_replicas(gw.get("archive_replicas", [])),
    )


SOURCE_TYPES = ("simulator", "mqtt", "opcua", "historian", "modbus")


def _source(index: int, s: dict[str, Any], base: Path, devices: set[str]) -> dict[str, Any]:
    """A ``[[sources]]`` table, checked; historian and Modbus tables are normalized (their
    paths made absolute) by their modules."""
    kind = s.get("type")
    if kind not in SOURCE_TYPES:
        raise ConfigError(f"unknown source type {kind!r} ({', '.join(SOURCE_TYPES)})")
    try:
        if kind == "historian":
            from twinchain.gateway.historian import normalized

            return normalized(s, base)
        if kind == "modbus":
            from twinchain.gateway.modbus import normalized as modbus_normalized

            return modbus_normalized(s, base, devices)
    except ValueError as exc:
        raise ConfigError(f"[[sources]] {index}: {exc}") from None
    return s


def _replicas(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(u, str) and u for u in value):
        raise ConfigError("gateway.archive_replicas must be a list of node URLs")
    return list(value)


# --------------------------------------------------------------------------- writing


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump(data: dict[str, Any]) -> str:
    """TOML text for a config dict of tables and arrays of tables (what :func:`parse` reads)."""
    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
            lines.append("")
        elif isinstance(value, list):
            for item in value:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
                lines.append("")
    return "\n".join(lines)
