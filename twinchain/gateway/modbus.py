"""Modbus TCP: holding and input registers of a PLC or a meter, polled at a fixed rate
through a register map, each poll's values readings stamped with the poll's time.

``[[sources]]`` with ``type = "modbus"``::

    host = "10.0.0.5"
    port = 502
    unit_id = 1                     # the server's unit (slave) id
    interval_ms = 1000              # poll period
    timeout_s = 2.0                 # per request
    reconnect_max_s = 5.0           # back-off ceiling (0.5 s, doubling) after a failure
    max_gap = 0                     # unmapped registers one read may span between two ranges
    class = "pump"                  # optional class file or built-in name: its min/max
                                    # bound the values of its metrics

    [[sources.registers]]
    device = "pump-1"               # a configured device
    metric = "temperature"          # a chain metric (name or id)
    table = "input"                 # holding | input
    address = 0                     # 0-based register address
    type = "int16"                  # int16 uint16 int32 uint32 int64 uint64 float32 float64
    word_order = "big"              # big: the first register holds the most significant word
    byte_order = "big"              # big (Modbus): a register's high byte first
    scale = 0.1                     # engineering value = raw * scale + offset
    offset = 0.0
    min = -20.0                     # optional limits (engineering units), else the class's
    max = 150.0

Registers of one table are read in as few requests as their addresses allow: contiguous (or
``max_gap`` apart) ranges of at most 125 registers, the protocol's limit, one request each.
A value is decoded with :mod:`struct` from the registers' bytes, scaled exactly and made
fixed point as :mod:`.engineering` describes.

Refused, counted by reason, logged, never fatal: a poll whose connection fails or times out
is dropped whole (``read_error``; the source reconnects with back-off); an exception
response refuses that request's registers (``modbus_exception``); a value that is not a
finite number (``malformed``), outside its limits or i64 (``out_of_range``), of a metric the
chain does not know (``unknown_metric``) or for a device the chain does not bind
(``unknown_device``) refuses that one reading.

Modbus has no acknowledgements: a value the gateway did not poll is gone, so at-least-once
from the device cannot be had. What holds is that every poll the gateway accepted is in the
spool before the next one is read, and from there lands on chain exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinchain.gateway.engineering import (
    Channel,
    Limits,
    SourceReport,
    chain_known,
    class_limits,
    class_ref,
    scaled,
    to_decimal,
    to_fixed,
)
from twinchain.gateway.payloads import Rejected
from twinchain.gateway.spool import ReadingT
from twinchain.gateway.state import now_ms

if TYPE_CHECKING:
    from twinchain.gateway.core import Gateway
    from twinchain.gateway.state import Device

log = logging.getLogger("twinchain.gateway.modbus")

# type -> (struct format, registers)
TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float64": ("d", 4),
}
MAX_READ = 125  # registers per read request (Modbus application protocol)


@dataclass(frozen=True)
class Register:
    """One map entry: where a value is, how to decode it, where it goes."""

    device: str
    metric: str | int
    table: str
    address: int
    type: str
    word_order: str = "big"
    byte_order: str = "big"
    scale: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)
    limits: Limits | None = None  # None: the class's (or none)

    @property
    def words(self) -> int:
        return TYPES[self.type][1]

    def decode(self, regs: Sequence[int]) -> int | float:
        """The raw value of this entry's registers (``regs``: exactly :attr:`words`)."""
        return decode(regs, self.type, self.word_order, self.byte_order)


def decode(regs: Sequence[int], kind: str, word_order: str = "big", byte_order: str = "big") -> Any:
    """Registers (16-bit words) as a value of ``kind``: ``word_order`` big puts the first
    register's word first; ``byte_order`` big reads each register high byte first."""
    fmt, n = TYPES[kind]
    if len(regs) != n:
        raise Rejected("malformed", f"{kind} needs {n} registers, got {len(regs)}")
    words = list(regs) if word_order == "big" else list(reversed(regs))
    order = "big" if byte_order == "big" else "little"
    return struct.unpack(">" + fmt, b"".join(w.to_bytes(2, order) for w in words))[0]


def encode(value: Any, kind: str, word_order: str = "big", byte_order: str = "big") -> list[int]:
    """The registers that hold ``value`` as ``kind`` (the inverse of :func:`decode`; for
    servers, tests and simulators)."""
    fmt, _ = TYPES[kind]
    raw = struct.pack(">" + fmt, value)
    order = "big" if byte_order == "big" else "little"
    words = [int.from_bytes(raw[i : i + 2], order) for i in range(0, len(raw), 2)]
    return words if word_order == "big" else words[::-1]


@dataclass(frozen=True)
class ModbusConfig:
    host: str
    port: int
    unit_id: int
    interval_ms: int
    timeout_s: float
    reconnect_max_s: float
    max_gap: int
    class_ref: str | None
    registers: tuple[Register, ...]


def _num(v: Any, what: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"modbus: {what} must be a number")
    return to_decimal(v)


def parse_config(raw: dict[str, Any], base: Path, devices: set[str] | None) -> ModbusConfig:
    """Check a ``modbus`` source table (``ValueError`` says what is wrong); ``devices``: the
    configured device names the map may use (None: not checked)."""

    def integer(key: str, default: int, lo: int, hi: int) -> int:
        v = raw.get(key, default)
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"modbus: {key} must be an integer in {lo}..{hi}")
        return v

    regs = []
    entries = raw.get("registers", [])
    if not isinstance(entries, list) or not entries:
        raise ValueError("modbus: registers must be a non-empty array of tables")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"modbus: registers[{i}] must be a table")
        where = f"modbus: registers[{i}]"
        dev = e.get("device")
        if not isinstance(dev, str) or (devices is not None and dev not in devices):
            raise ValueError(f"{where}: device {dev!r} is not a configured device")
        metric = e.get("metric")
        if not isinstance(metric, str | int) or isinstance(metric, bool):
            raise ValueError(f"{where}: metric must be a metric name or id")
        table = e.get("table", "holding")
        if table not in ("holding", "input"):
            raise ValueError(f"{where}: table must be holding or input")
        addr = e.get("address")
        if type(addr) is not int or not 0 <= addr <= 65535:
            raise ValueError(f"{where}: address must be an integer in 0..65535")
        kind = e.get("type", "uint16")
        if kind not in TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(TYPES)}")
        if addr + TYPES[kind][1] > 65536:
            raise ValueError(f"{where}: {kind} at {addr} runs past register 65535")
        wo, bo = e.get("word_order", "big"), e.get("byte_order", "big")
        if wo not in ("big", "little") or bo not in ("big", "little"):
            raise ValueError(f"{where}: word_order and byte_order are big or little")
        lo, hi = e.get("min"), e.get("max")
        limits = None
        if lo is not None or hi is not None:
            limits = Limits(
                None if lo is None else _num(lo, "min"), None if hi is None else _num(hi, "max")
            )
        regs.append(
            Register(
                dev, metric, table, addr, kind, wo, bo,
                _num(e.get("scale", 1), "scale"), _num(e.get("offset", 0), "offset"), limits,
            )
        )  # fmt: skip
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ValueError("modbus: host must be a host name or address")
    timeout = raw.get("timeout_s", 2.0)
    back = raw.get("reconnect_max_s", 5.0)
    for key, v in (("timeout_s", timeout), ("reconnect_max_s", back)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 3600:
            raise ValueError(f"modbus: {key} must be a number of seconds in (0, 3600]")
    cls = raw.get("class")
    return ModbusConfig(
        host=host,
        port=integer("port", 502, 1, 65535),
        unit_id=integer("unit_id", int(raw.get("slave", 1)) if "slave" in raw else 1, 0, 255),
        interval_ms=integer("interval_ms", 1000, 10, 86_400_000),
        timeout_s=float(timeout),
        reconnect_max_s=float(back),
        max_gap=integer("max_gap", 0, 0, MAX_READ),
        class_ref=None if cls is None else class_ref(cls, base),
        registers=tuple(regs),
    )


def normalized(raw: dict[str, Any], base: Path, devices: set[str]) -> dict[str, Any]:
    """The source table as the gateway keeps it: checked (its devices configured), a class
    file's path made absolute."""
    cfg = parse_config(raw, base, devices)
    return raw if cfg.class_ref is None else dict(raw, **{"class": cfg.class_ref})


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers of ``table`` from ``start``, and the map
    entries they hold."""

    table: str
    start: int
    count: int
    registers: tuple[Register, ...]


def plan(registers: Sequence[Register], max_gap: int = 0) -> list[Block]:
    """The fewest read requests that cover the map: per table, by address, ranges merged
    when they overlap, touch or lie at most ``max_gap`` registers apart, and each request
    at most ``MAX_READ`` registers."""
    out: list[Block] = []
    for table in ("holding", "input"):
        regs = sorted((r for r in registers if r.table == table), key=lambda r: r.address)
        cur: list[Register] = []
        start = end = 0
        for r in regs:
            r_end = r.address + r.words
            if cur and r.address <= end + max_gap and max(end, r_end) - start <= MAX_READ:
                cur.append(r)
                end = max(end, r_end)
                continue
            if cur:
                out.append(Block(table, start, end - start, tuple(cur)))
            cur, start, end = [r], r.address, r_end
        if cur:
            out.append(Block(table, start, end - start, tuple(cur)))
    return out


class Poller:
    """One ``modbus`` source's polling of one server into one gateway (``run``)."""

    def __init__(self, gw: Gateway, index: int, cfg: ModbusConfig) -> None:
        self.gw = gw
        self.cfg = cfg
        self.report = SourceReport(f"modbus-{index}", "modbus").attach(gw)
        self.report.info.update(
            endpoint=f"{cfg.host}:{cfg.port}", unit_id=cfg.unit_id, connected=False, polls=0,
            readings=0, reconnects=0,
        )  # fmt: skip
        self.blocks = plan(cfg.registers, cfg.max_gap)
        self.channels: dict[Register, Channel | None] = {}
        self._last_ts = 0

    async def run(self) -> None:
        cfg = self.cfg
        await chain_known(self.gw)
        self._bind()
        log.info(
            "modbus %s:%d unit %d: %d registers in %d requests every %d ms",
            cfg.host, cfg.port, cfg.unit_id, len(cfg.registers), len(self.blocks),
            cfg.interval_ms,
        )  # fmt: skip
        from pymodbus.client import AsyncModbusTcpClient

        # pymodbus logs every failed connection itself; the source reports them (counted).
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        delay = 0.5
        info = self.report.info
        while True:
            client = AsyncModbusTcpClient(
                cfg.host, port=cfg.port, timeout=cfg.timeout_s, retries=0, reconnect_delay=0
            )
            try:
                if not await client.connect():
                    raise ConnectionError(f"cannot connect to {cfg.host}:{cfg.port}")
                info["connected"], info["error"] = True, ""
                delay = 0.5
                await self._poll_forever(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server went away, timed out, or spoke nonsense
                info["error"] = f"{type(exc).__name__}: {exc}"[:200]
                self.report.refuse(self.gw, Rejected("read_error", info["error"]), "")
            finally:
                info["connected"] = False
                with contextlib.suppress(Exception):
                    client.close()
            info["reconnects"] += 1
            log.warning("modbus %s:%d: reconnecting in %.1f s", cfg.host, cfg.port, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cfg.reconnect_max_s)

    def _bind(self) -> None:
        """Each register's chain metric and limits (None: a metric the chain lacks)."""
        metrics = self.gw.state.metrics
        limits = class_limits(self.cfg.class_ref) if self.cfg.class_ref else {}
        for r in self.cfg.registers:
            try:
                mid = metrics.resolve(r.metric)
            except Rejected:
                log.error("modbus: metric %r is not registered on chain; refused", r.metric)
                self.channels[r] = None
                continue
            name = metrics.by_id[mid][0]
            lim = r.limits if r.limits is not None else limits.get(name, Limits())
            self.channels[r] = Channel(name, mid, metrics.by_id[mid][1], lim)

    async def _poll_forever(self, client: Any) -> None:
        period = self.cfg.interval_ms / 1000
        due = time.monotonic()
        while True:
            await self.gw.intake.wait_space()
            await self._poll(client)
            due += period
            late = time.monotonic() - due
            if late > 0:  # a slow server or a pause: skip the polls missed, keep the phase
                due += (late // period + 1) * period
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _poll(self, client: Any) -> None:
        """One poll: every request, then the readings handed to the intake together."""
        ts = max(now_ms(), self._last_ts + 1)  # strictly after the last poll, per metric
        results = []
        for block in self.blocks:  # a connection error drops the whole poll (raised)
            results.append((block, await _read(client, block, self.cfg.unit_id)))
        self._last_ts = ts
        groups: dict[str, tuple[Device, list[ReadingT]]] = {}  # by device name
        for block, rr in results:
            if rr.isError():
                code = getattr(rr, "exception_code", "?")
                exc = Rejected("modbus_exception", f"{block.table} {block.start}+{block.count}: "
                               f"exception code {code}")  # fmt: skip
                for _ in block.registers:
                    self.report.refuse(self.gw, exc, "")
                continue
            regs = list(rr.registers)
            for r in block.registers:
                at = r.address - block.start
                try:
                    device, reading = self._reading(r, regs[at : at + r.words], ts)
                except Rejected as exc:
                    self.report.refuse(self.gw, exc, f" {r.device} {r.metric}@{r.address}")
                    continue
                groups.setdefault(device.name, (device, []))[1].append(reading)
        info = self.report.info
        info["polls"] += 1
        if groups:
            # Durable before the next poll is read (nothing to acknowledge to the server).
            fut = self.gw.intake.accept_many(list(groups.values()), "modbus", received=ts)
            info["readings"] += await fut  # what the intake kept (all, unless out of order)

    def _reading(self, r: Register, words: Sequence[int], ts: int) -> tuple[Device, ReadingT]:
        ch = self.channels[r]
        if ch is None:
            raise Rejected("unknown_metric", f"metric {r.metric!r} is not on chain")
        device = self.gw.intake.device_for(r.device)
        value = scaled(to_decimal(r.decode(words)), r.scale, r.offset)
        ch.limits.check(value)
        return device, (ch.metric, ts, to_fixed(value, ch.scale))


_UNIT_KW: str | None = None


async def _read(client: Any, block: Block, unit: int) -> Any:
    """One read request; pymodbus named the unit id ``slave`` before 3.10, ``device_id``
    since."""
    global _UNIT_KW
    fn = client.read_holding_registers if block.table == "holding" else client.read_input_registers
    if _UNIT_KW is None:
        params = inspect.signature(fn).parameters
        _UNIT_KW = "device_id" if "device_id" in params else "slave"
    return await fn(block.start, count=block.count, **{_UNIT_KW: unit})


async def run_modbus(gw: Gateway, index: int, raw: dict[str, Any]) -> None:
    """The ``modbus`` source (see the module's docstring)."""
    cfg = parse_config(raw, gw.cfg.spool.parent, None)
    await Poller(gw, index, cfg).run()


__all__ = ["TYPES", "Block", "ModbusConfig", "Poller", "Register", "decode", "encode", "plan",
           "run_modbus"]  # fmt: skip
