"""Where readings come from: the built-in factory simulator, MQTT and OPC-UA here; a
plant's recorded history (``historian``, :mod:`.historian`) and Modbus TCP registers
(``modbus``, :mod:`.modbus`) in their own modules.

Each source is an ``async def run(gateway)`` built from its ``[[sources]]`` table by
:func:`build`. Sources hand readings to the gateway's intake (:meth:`Intake.accept
<twinchain.gateway.intake.Intake.accept>`) in arrival order and acknowledge them only when its
future resolves (the readings are durable in the spool); they wait on ``Intake.wait_space``
first, which is the back-pressure.

``simulator``: ``seed``, ``tick_ms`` (1000), ``realtime`` (true: one tick per ``tick_ms``
of wall time, timestamps from the wall clock at the first start; false: as fast as the spool
takes them, starting a day back), ``machines`` ([{name, class, initial_wear?,
wear_per_day?}]; each name is a configured device) and ``faults`` ([{machine, kind, at_s,
ramp_s, repair_after_s?}], seconds after the simulator's start); ``ticks`` (0: no end) stops
it after that many ticks. Its position is stored with
each tick's readings, so a restart goes on where the spool left off (the same seed replays
the same run).

``mqtt``: ``host``, ``port`` (1883), ``topics`` (["twinchain/#"]), ``format`` (json, msgpack
or auto), ``qos`` (1), ``client_id``, ``username``, ``password``. A persistent session
(clean_session false) and manual acknowledgements: a QoS 1 message is acknowledged after
its readings are in the spool, or after it was refused (a refused message is never worth
redelivering). A message names its device in a ``device`` field or through a device's
``topic``. Back-pressure reaches the broker as acknowledgements held back: a broker with an
in-flight window (Mosquitto: 20) stops sending.

``opcua``: ``endpoint``, ``interval_ms`` (250) and ``nodes`` ([{node, device, metric,
raw?}]): a subscription on each node id; a data change becomes a reading with the value's
source timestamp (server timestamp if absent); ``raw = true`` takes integer values as the
fixed-point value, otherwise values are in the metric's unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from twinchain.gateway.core import Gateway
from twinchain.gateway.payloads import Rejected, decode_body, parse_message
from twinchain.gateway.state import now_ms

log = logging.getLogger("twinchain.gateway.sources")

Source = Callable[[Gateway], Awaitable[None]]


def build(index: int, cfg: dict[str, Any]) -> Source:
    kind = cfg["type"]
    if kind == "simulator":
        return lambda gw: run_simulator(gw, index, cfg)
    if kind == "mqtt":
        return lambda gw: run_mqtt(gw, cfg)
    if kind == "opcua":
        return lambda gw: run_opcua(gw, cfg)
    if kind == "historian":
        from twinchain.gateway.historian import run_historian

        return lambda gw: run_historian(gw, index, cfg)
    if kind == "modbus":
        from twinchain.gateway.modbus import run_modbus

        return lambda gw: run_modbus(gw, index, cfg)
    raise ValueError(f"unknown source type {kind!r}")


# --------------------------------------------------------------------------- simulator


async def run_simulator(gw: Gateway, index: int, cfg: dict[str, Any]) -> None:
    from twinchain.machines.simulator import FactorySimulator, MachineConfig

    intake, state = gw.intake, gw.state
    spool = state.spool
    assert spool is not None
    seed = int(cfg.get("seed", 0))
    tick = int(cfg.get("tick_ms", 1000))
    realtime = bool(cfg.get("realtime", True))
    machines = [
        MachineConfig(
            str(m["name"]),
            str(m["class"]),
            initial_wear=float(m.get("initial_wear", 0.0)),
            wear_per_day=float(m.get("wear_per_day", 0.003)),
        )
        for m in cfg.get("machines", [])
    ]
    devices = {m.name: intake.device_for(m.name) for m in machines}
    k_start, k_ticks = f"sim:{index}:start", f"sim:{index}:ticks"
    start_b = await state.db(spool.get_meta, k_start)
    if start_b:
        start = int(start_b)
    else:  # unpaced runs start a day back, so that they do not run ahead of the clock soon
        start = (now_ms() - (0 if realtime else 86_000_000)) // tick * tick
    done_b = await state.db(spool.get_meta, k_ticks)
    done = int(done_b) if done_b else 0
    sim = FactorySimulator(seed, machines, start_ms=start, tick_ms=tick)
    for f in cfg.get("faults", []):
        at = start + int(float(f["at_s"]) * 1000)
        sim.inject(str(f["machine"]), str(f["kind"]), at, int(float(f["ramp_s"]) * 1000))
        if "repair_after_s" in f:
            ramp = int(float(f["ramp_s"]) * 1000)
            sim.repair(str(f["machine"]), at + ramp + int(float(f["repair_after_s"]) * 1000))
    for _ in range(done):  # replay up to where the spool is (deterministic: same seed)
        sim.step_rows()
    log.info(
        "simulator %d: %d machines, seed %d, tick %d ms, resuming at tick %d",
        index,
        len(machines),
        seed,
        tick,
        done,
    )
    meta = {k_start: str(start).encode()}
    k = done
    last = int(cfg.get("ticks", 0))  # 0: forever
    while not last or k < last:
        await intake.wait_space()
        if realtime:
            due = (start + (k + 1) * tick) / 1000 - time.time()
            if due > 0:
                await asyncio.sleep(due)
        k += 1
        # A tick's readings and the tick counter: one future, one transaction.
        fut = intake.accept_many(
            [(devices[name], rs) for name, rs in sim.step_rows()],
            "simulator",
            meta=dict(meta, **{k_ticks: str(k).encode()}),
            received=now_ms(),
        )
        if not realtime:
            # Keep a few ticks in flight so commits group; then let the event loop breathe.
            if k % 8 == 0:
                await fut
            else:
                await asyncio.sleep(0)
        else:
            await fut


# --------------------------------------------------------------------------- MQTT


async def run_mqtt(gw: Gateway, cfg: dict[str, Any]) -> None:
    import aiomqtt

    host = str(cfg.get("host", "127.0.0.1"))
    port = int(cfg.get("port", 1883))
    topics = [str(t) for t in cfg.get("topics", ["twinchain/#"])]
    fmt = str(cfg.get("format", "auto"))
    qos = int(cfg.get("qos", 1))
    client_id = str(cfg.get("client_id", f"twinchain-{gw.cfg.name}"))
    delay = 0.5
    while True:
        try:
            client = aiomqtt.Client(
                host,
                port,
                identifier=client_id,
                username=cfg.get("username"),
                password=cfg.get("password"),
                clean_session=False,
                keepalive=30,
            )
            # aiomqtt has no switch for it: paho's manual acknowledgements, so that PUBACK
            # goes out after the spool commit and not on receipt.
            client._client.manual_ack_set(True)
            async with client:
                for t in topics:
                    await client.subscribe(t, qos=qos)
                log.info("MQTT %s:%d subscribed to %s", host, port, ", ".join(topics))
                delay = 0.5
                acks: set[asyncio.Task[None]] = set()
                async for msg in client.messages:
                    await gw.intake.wait_space()
                    fut = _mqtt_accept(gw, msg, fmt)
                    task = asyncio.create_task(_ack_after(client, msg, fut))
                    acks.add(task)
                    task.add_done_callback(acks.discard)
        except aiomqtt.MqttError as exc:
            log.warning("MQTT %s:%d: %s; reconnecting in %.1f s", host, port, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def _mqtt_accept(gw: Gateway, msg: Any, fmt: str) -> asyncio.Future[int] | None:
    topic = str(msg.topic)
    body = msg.payload if isinstance(msg.payload, bytes | bytearray) else str(msg.payload).encode()
    intake, state = gw.intake, gw.state
    try:
        obj = decode_body(bytes(body), fmt)
        by_topic = state.by_topic.get(topic)
        name, readings = parse_message(obj, state.metrics, by_topic.name if by_topic else None)
        device = intake.device_for(name)
    except Rejected as exc:
        state.stats.received["mqtt"] = state.stats.received.get("mqtt", 0) + 1
        intake.reject("mqtt", exc, f" topic {topic}")
        return None
    except Exception as exc:  # a payload must never stop the source
        intake.reject("mqtt", Rejected("malformed", f"{type(exc).__name__}: {exc}"), f" {topic}")
        return None
    return intake.accept(device, readings, "mqtt")


async def _ack_after(client: Any, msg: Any, fut: asyncio.Future[int] | None) -> None:
    if fut is not None:
        await fut
    if msg.qos > 0:
        client._client.ack(msg.mid, msg.qos)


# --------------------------------------------------------------------------- OPC-UA


class _Handler:
    """asyncua calls ``datachange_notification`` synchronously: hand changes to a queue."""

    def __init__(self, queue: asyncio.Queue[tuple[Any, Any, Any]]) -> None:
        self.queue = queue

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.queue.put_nowait((node, val, data))

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC-UA subscription status: %s", status)


def _ms(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


async def run_opcua(gw: Gateway, cfg: dict[str, Any]) -> None:
    from asyncua import Client, ua

    endpoint = str(cfg["endpoint"])
    interval = float(cfg.get("interval_ms", 250))
    nodes = list(cfg.get("nodes", []))
    delay = 0.5
    while True:
        queue: asyncio.Queue[tuple[Any, Any, Any]] = asyncio.Queue(maxsize=100_000)
        client = Client(endpoint, timeout=10)
        try:
            async with client:
                sub = await client.create_subscription(interval, _Handler(queue))
                by_node: dict[str, dict[str, Any]] = {}
                handles = []
                for spec in nodes:
                    node = client.get_node(str(spec["node"]))
                    by_node[node.nodeid.to_string()] = spec
                    handles.append(node)
                await sub.subscribe_data_change(handles)
                log.info("OPC-UA %s: subscribed to %d nodes", endpoint, len(handles))
                delay = 0.5
                while True:
                    node, val, data = await queue.get()
                    await gw.intake.wait_space()
                    spec = by_node.get(node.nodeid.to_string())
                    if spec is None:
                        continue
                    try:
                        device = gw.intake.device_for(str(spec["device"]))
                        metric = gw.state.metrics.resolve(spec["metric"])
                        dv = data.monitored_item.Value
                        ts = _ms(dv.SourceTimestamp) or _ms(dv.ServerTimestamp) or now_ms()
                        if spec.get("raw") and isinstance(val, int) and not isinstance(val, bool):
                            raw = val
                        else:
                            raw = gw.state.metrics.to_raw(metric, val)
                    except Rejected as exc:
                        received = gw.state.stats.received
                        received["opcua"] = received.get("opcua", 0) + 1
                        gw.intake.reject("opcua", exc, f" node {spec.get('node')}")
                        continue
                    gw.intake.accept(device, [(metric, ts, raw)], "opcua")
        except (OSError, TimeoutError, ua.UaError) as exc:
            log.warning("OPC-UA %s: %s; reconnecting in %.1f s", endpoint, exc, delay)
        with contextlib.suppress(Exception):
            await client.disconnect()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
