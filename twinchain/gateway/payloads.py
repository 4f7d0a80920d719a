"""Decoding source payloads into readings, with a typed reason for every refusal.

An MQTT message (JSON or msgpack, same shape) is one object::

    {"device": "press-1",                     # optional when the topic names the device
     "readings": [
        {"metric": "temperature", "ts": 1763900000000, "value": 71.25},   # in the unit
        {"metric": 4, "ts": 1763900000000, "raw": 5120},                  # fixed-point
        [6, 1763900000000, 1480]                                          # [id, ts, raw]
     ]}

or a single reading at the top level (``{"device": …, "metric": …, "ts": …, "value": …}``).
``value`` is in the metric's unit and is scaled by the metric's decimal scale (exactly, as a
decimal); ``raw`` is the fixed-point integer the chain stores.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import msgpack

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
MAX_TS = 2**63 - 1
MAX_READINGS_PER_MESSAGE = 10_000


class Rejected(ValueError):
    """A payload or reading the gateway refuses; ``reason`` is the metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Metrics:
    """The chain's metric registry as the gateway knows it: id -> (name, scale)."""

    def __init__(self, table: dict[int, tuple[str, int]]) -> None:
        self.by_id = dict(table)
        self.by_name = {name: mid for mid, (name, _) in table.items()}

    def resolve(self, metric: Any) -> int:
        if type(metric) is int:
            if metric not in self.by_id:
                raise Rejected("unknown_metric", f"metric {metric} is not registered")
            return metric
        if isinstance(metric, str) and metric in self.by_name:
            return self.by_name[metric]
        raise Rejected("unknown_metric", f"metric {metric!r} is not registered")

    def to_raw(self, metric: int, value: Any) -> int:
        """A value in the metric's unit to its fixed-point integer."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise Rejected("malformed", f"value {value!r} is not a number")
        try:
            d = Decimal(str(value)) if not isinstance(value, int) else Decimal(value)
            raw = d.scaleb(self.by_id[metric][1]).quantize(Decimal(1), ROUND_HALF_EVEN)
        except (InvalidOperation, ValueError):
            raise Rejected("malformed", f"value {value!r} is not a finite number") from None
        if not raw.is_finite():
            raise Rejected("malformed", f"value {value!r} is not a finite number")
        return check_raw(int(raw))


def check_raw(v: Any) -> int:
    if type(v) is not int:
        raise Rejected("malformed", f"raw value {v!r} is not an integer")
    if not I64_MIN <= v <= I64_MAX:
        raise Rejected("out_of_range", f"raw value {v} does not fit an i64")
    return v


def check_ts(ts: Any) -> int:
    if type(ts) is not int or not 0 < ts <= MAX_TS:
        raise Rejected("malformed", f"timestamp {ts!r} is not a positive integer (ms)")
    return ts


def decode_body(body: bytes, fmt: str) -> Any:
    """JSON or msgpack (``auto``: JSON if it starts like JSON, else msgpack)."""
    if fmt == "auto":
        fmt = "json" if body[:1] in (b"{", b"[", b" ", b"\n") else "msgpack"
    try:
        if fmt == "json":
            return json.loads(body)
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # every decoder error is the same refusal
        raise Rejected("malformed", f"not valid {fmt}: {type(exc).__name__}") from None


def parse_message(
    obj: Any, metrics: Metrics, topic_device: str | None
) -> tuple[str, list[tuple[int, int, int]]]:
    """``(device name, [(metric id, ts, raw)])`` of one decoded message."""
    if not isinstance(obj, dict):
        raise Rejected("malformed", "a message is an object")
    device = obj.get("device", topic_device)
    if device is None:
        raise Rejected("unknown_device", "no 'device' field, and the topic names no device")
    if not isinstance(device, str) or not device:
        raise Rejected("malformed", "'device' must be a non-empty string")
    if "readings" in obj:
        items = obj["readings"]
        if not isinstance(items, list) or not items:
            raise Rejected("malformed", "'readings' must be a non-empty list")
        if len(items) > MAX_READINGS_PER_MESSAGE:
            raise Rejected("malformed", f"more than {MAX_READINGS_PER_MESSAGE} readings")
    else:
        items = [obj]
    return device, [parse_reading(r, metrics) for r in items]


def parse_reading(r: Any, metrics: Metrics) -> tuple[int, int, int]:
    if isinstance(r, list):
        if len(r) != 3:
            raise Rejected("malformed", "a reading array is [metric, ts, raw]")
        m = metrics.resolve(r[0])
        return m, check_ts(r[1]), check_raw(r[2])
    if not isinstance(r, dict):
        raise Rejected("malformed", "a reading is an object or [metric, ts, raw]")
    m = metrics.resolve(r.get("metric"))
    ts = check_ts(r.get("ts"))
    if "raw" in r:
        return m, ts, check_raw(r["raw"])
    if "value" in r:
        return m, ts, metrics.to_raw(m, r["value"])
    raise Rejected("malformed", "a reading needs 'value' or 'raw'")
