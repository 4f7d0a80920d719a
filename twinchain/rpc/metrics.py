"""Prometheus metrics on their own port (Substrate's default 9615), with Substrate's names.

Chain and pool gauges are read from the node at scrape time (never stale, nothing to keep in
step); block import time is observed by a client import listener; RPC call counters are
module-level because the RPC server and this endpoint are started separately (two nodes in
one process, as in tests, share them). prometheus_client appends ``_total`` to counter names.
:func:`twinchain.rpc.hosting.serve_metrics` serves :class:`MetricsApp`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from twinchain.node.blockchain import ImportResult
from twinchain.primitives.types import Block
from twinchain.rpc.api import NodeHandle
from twinchain.rpc.asgi import Receive, Scope, Send, lifespan

DEFAULT_PORT = 9615

RPC_REGISTRY = CollectorRegistry()
RPC_CALLS_STARTED = Counter(
    "substrate_rpc_calls_started",
    "Number of received RPC calls (unique un-batched requests)",
    ["protocol", "method"],
    registry=RPC_REGISTRY,
)
RPC_CALLS_FINISHED = Counter(
    "substrate_rpc_calls_finished",
    "Number of processed RPC calls (unique un-batched requests)",
    ["protocol", "method", "is_error"],
    registry=RPC_REGISTRY,
)


def rpc_call_started(protocol: str, method: str) -> None:
    RPC_CALLS_STARTED.labels(protocol, method).inc()


def rpc_call_finished(protocol: str, method: str, is_error: bool) -> None:
    RPC_CALLS_FINISHED.labels(protocol, method, "true" if is_error else "false").inc()


class _NodeCollector(Collector):
    """Gauges read from the node on each scrape."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node

    def collect(self) -> Iterable[Metric]:
        client = self.node.chain
        height = GaugeMetricFamily(
            "substrate_block_height", "Block height info of the chain", labels=["status"]
        )
        height.add_metric(["best"], client.best.number)
        height.add_metric(["finalized"], client.finalized.number)
        yield height
        yield GaugeMetricFamily(
            "substrate_ready_transactions_number",
            "Number of transactions in the ready queue",
            value=self.node.pool.ready_count,
        )
        yield GaugeMetricFamily(
            "substrate_sub_libp2p_peers_count",
            "Number of connected peers",
            value=len(self.node.peers),
        )
        refused = getattr(self.node, "refused_connections", None)
        if callable(refused):  # p2p nodes: connections refused in the handshake or by a cap
            family = CounterMetricFamily(
                "twinchain_p2p_connections_refused",
                "Connections the network refused, by reason",
                labels=["reason"],
            )
            for reason, count in sorted(refused().items()):
                family.add_metric([reason], count)
            yield family
        yield from self._finality()

    def _finality(self) -> Iterable[Metric]:
        """Finality lag, and the voter's round and vote weights (read on each scrape)."""
        client = self.node.chain
        best, fin = client.best, client.finalized
        yield GaugeMetricFamily(
            "substrate_finality_lag_blocks",
            "Best block number minus finalized block number",
            value=best.number - fin.number,
        )
        yield GaugeMetricFamily(
            "substrate_finality_lag_seconds",
            "Seconds since the start of the finalized block's slot",
            value=finality_lag_seconds(self.node, time.time()),
        )
        voter = self.node.voter
        if voter is None:
            return
        state = voter.round_state()
        current = state["best"]
        yield GaugeMetricFamily(
            "substrate_finality_grandpa_round", "Highest GRANDPA round", value=current["round"]
        )
        yield GaugeMetricFamily(
            "substrate_finality_grandpa_set_id", "GRANDPA authority set id", value=state["setId"]
        )
        yield GaugeMetricFamily(
            "substrate_finality_grandpa_total_weight",
            "Voting weight of the authority set",
            value=current["totalWeight"],
        )
        yield GaugeMetricFamily(
            "substrate_finality_grandpa_threshold_weight",
            "Voting weight a round's prevote or precommit stage needs",
            value=current["thresholdWeight"],
        )
        weight = GaugeMetricFamily(
            "substrate_finality_grandpa_round_votes_weight",
            "Weight of the votes received in the current round, by stage",
            labels=["stage"],
        )
        missing = GaugeMetricFamily(
            "substrate_finality_grandpa_round_missing_voters",
            "Authorities yet to vote in the current round, by stage",
            labels=["stage"],
        )
        for stage, key in (("prevote", "prevotes"), ("precommit", "precommits")):
            weight.add_metric([stage], current[key]["currentWeight"])
            missing.add_metric([stage], len(current[key]["missing"]))
        yield weight
        yield missing
        # Counters the voter keeps (a new authority set starts them again, read as a reset).
        for attr, name, doc in VOTER_COUNTERS:
            value = getattr(voter, attr, None)
            if isinstance(value, int):
                yield CounterMetricFamily(name, doc, value=value)
        seen = getattr(voter, "highest_seen", None)
        if isinstance(seen, int):
            yield GaugeMetricFamily(
                "substrate_finality_grandpa_highest_seen_round",
                "Highest round any authority was seen voting in",
                value=seen,
            )


#: (Voter attribute, metric name, help) of the voter's counters; ``_total`` is appended.
VOTER_COUNTERS = (
    ("rounds_completed", "substrate_finality_grandpa_rounds_completed", "GRANDPA rounds completed"),
    ("catch_ups", "substrate_finality_grandpa_catch_ups", "GRANDPA catch-ups applied"),
)


def finality_lag_seconds(node: NodeHandle, now: float) -> float:
    """Seconds since the finalized block's slot started. Genesis has no slot: with only it
    final, the wait is counted from block #1's slot (0 while there is no block #1)."""
    client = node.chain
    fin = client.finalized
    if fin.number == 0:
        first = client.blocks.hash_at(1)
        header = None if first is None else client.blocks.header(first)
        if header is None:
            return 0.0
        fin = header
    return max(now - fin.slot * client.slot_duration() / 1000, 0.0)


class _RpcForward(Collector):
    """The process-wide RPC counters, exposed in each node's registry."""

    def collect(self) -> Iterable[Metric]:
        yield from RPC_REGISTRY.collect()


class MetricsApp:
    """ASGI: GET /metrics (or /) in the Prometheus text format; 404 elsewhere."""

    def __init__(self, node: NodeHandle) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_NodeCollector(node))
        self.registry.register(_RpcForward())
        self.import_time = Histogram(
            "substrate_block_verification_and_import_time",
            "Time taken to verify and import blocks (seconds)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self._metrics = make_asgi_app(self.registry)

    def on_import(self, result: ImportResult, block: Block) -> None:
        self.import_time.observe(result.seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        if scope["method"] in ("GET", "HEAD") and scope["path"] in ("/metrics", "/"):
            await self._metrics(scope, receive, send)
            return
        status = 404 if scope["method"] in ("GET", "HEAD") else 405
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"Use GET /metrics"})


__all__ = ["DEFAULT_PORT", "MetricsApp", "rpc_call_finished", "rpc_call_started"]
