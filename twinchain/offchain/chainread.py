"""A twin's window aggregates from a node, for the prognostics engine (worker and training).

Public metrics: the chain's own window aggregates (``twin_telemetryAggregates`` at a
finalized block), merged into the model's windows when those are a multiple of the chain's
(exact: both are aligned to the epoch). Private metrics: the twin's raw readings from the
facility's archive (``twin_readings``, every reading verified against its batch root on
chain, as the worker's key or with an API key), aggregated here exactly as the chain
aggregates (:func:`twinchain.offchain.windows.aggregate`). A model window that is not a
multiple of the chain's is built from archive readings for every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinchain.client import Client, Reading
from twinchain.offchain.features import Agg
from twinchain.offchain.windows import WindowTable, aggregate, from_aggs
from twinchain.protocol.jsonrpc import OVERSIZED_RESPONSE, RpcError, to_hex

ReadingsFn = Callable[[int, int, int, int], list[Reading]]  # twin, metric, lo, hi (incl.)


class ChainReadError(Exception):
    """The chain cannot serve the model: a metric it lacks, another scale, another window."""


@dataclass(frozen=True)
class Binding:
    """The chain's ids of a model's metrics (in the model's metric order) and its window."""

    ids: tuple[int, ...]
    chain_window_ms: int


def bind(client: Client, metrics: Sequence[Any], at: bytes) -> Binding:
    """Map a model's metrics (``name``, ``scale``) to the chain's metric ids by name; the
    scales must agree (the fixed-point values would mean something else)."""
    rows = client.call("twin_metrics", to_hex(at))
    by_name = {str(r["name"]): r for r in rows}
    ids = []
    for m in metrics:
        r = by_name.get(m.name)
        if r is None:
            raise ChainReadError(f"the chain has no metric {m.name!r}: register the class first")
        if int(r["scale"]) != int(m.scale):
            raise ChainReadError(
                f"metric {m.name!r} has scale {r['scale']} on chain, {m.scale} in the model"
            )
        ids.append(int(r["id"]))
    window = int(client.read_storage("Telemetry", "WindowMs", at=at))
    return Binding(tuple(ids), window)


def archive_readings(client: Client, *, key: Any = None, api_key: str | None = None) -> ReadingsFn:
    """A readings function over the node's archive that asks in halves while the node finds
    a range too large for one answer."""

    def read(twin: int, metric: int, lo: int, hi: int) -> list[Reading]:
        try:
            return client.readings(twin, metric, lo, hi, key=key, api_key=api_key)
        except RpcError as exc:
            if exc.code != OVERSIZED_RESPONSE or hi - lo < 2:
                raise
        mid = lo + (hi - lo) // 2
        return read(twin, metric, lo, mid) + read(twin, metric, mid + 1, hi)

    return read


def merge_columns(a: WindowTable, b: WindowTable) -> WindowTable:
    """Two tables of the same windows length over disjoint metrics (zero columns where a
    table has none) as one: the union of their windows."""
    starts = np.union1d(a.starts, b.starts)
    out = WindowTable.empty(a.window_ms, a.n_metrics)
    out.starts = starts
    for f in ("count", "min", "max", "sum", "last"):
        arr = np.zeros((len(starts), a.n_metrics), dtype=np.int64)
        for t in (a, b):
            rows = np.searchsorted(starts, t.starts)
            arr[rows] += getattr(t, f)
        setattr(out, f, arr)
    return out


def read_windows(
    client: Client,
    twin: int,
    binding: Binding,
    window_ms: int,
    lo_ms: int,
    hi_ms: int,
    at: bytes,
    readings: ReadingsFn | None,
    public: set[int] | None = None,
) -> WindowTable:
    """The twin's windows of ``window_ms`` with readings in ``[lo_ms, hi_ms)`` (``lo_ms`` a
    window start); the last one may still be open. Private metrics need ``readings``."""
    if public is None:
        public = set(client.call("twin_disclosure", twin, to_hex(at))["public"])
    ids = binding.ids
    n = len(ids)
    from_chain = window_ms % binding.chain_window_ms == 0
    agg_cols = [j for j, mid in enumerate(ids) if mid in public] if from_chain else []
    raw_cols = [j for j in range(n) if j not in agg_cols]
    table = WindowTable.empty(window_ms, n)
    if agg_cols:
        rows = client.call("twin_telemetryAggregates", twin, None, to_hex(at), lo_ms)
        windows: dict[int, dict[int, Agg]] = {}
        for r in rows:
            start = int(r["windowStart"])
            if start >= hi_ms:
                continue
            windows.setdefault(start, {})[int(r["metric"])] = Agg.from_json(r)
        wanted = [ids[j] if j in agg_cols else -1 for j in range(n)]
        chain = from_aggs(windows, wanted, binding.chain_window_ms)
        table = chain.coarsen(window_ms)
    if raw_cols:
        if readings is None:
            names = ", ".join(str(ids[j]) for j in raw_cols)
            raise ChainReadError(f"metrics {names} are private: reading them needs a key")
        cols: list[np.ndarray | None] = [None] * n
        times: list[np.ndarray] = []
        series: list[tuple[int, np.ndarray, np.ndarray]] = []
        for j in raw_cols:
            got = readings(twin, ids[j], lo_ms, hi_ms - 1)
            t = np.asarray([r.timestamp for r in got], dtype=np.int64)
            v = np.asarray([r.value for r in got], dtype=np.float64)
            series.append((j, t, v))
            times.append(t)
        # one time axis: a row per reading (metrics never share a row, which aggregates the same)
        t_all = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
        order = np.argsort(t_all, kind="stable")
        offset = 0
        for j, t, v in series:
            col = np.full(len(t_all), np.nan)
            col[offset : offset + len(t)] = v
            cols[j] = col[order]
            offset += len(t)
        raw = aggregate(t_all[order], cols, window_ms)
        table = merge_columns(table, raw) if len(table) else raw
    return table
