"""Window aggregates exactly as the chain keeps them, from any source.

The telemetry pallet folds each twin's readings, per metric, into fixed windows aligned to
the epoch (``start = ts - ts % window_ms``) and keeps per window ``count, min, max, sum,
last`` of the fixed-point values. The prognostics engine sees nothing else, whatever the
readings came from:

* a CSV history (training, evaluation): :func:`aggregate` over a unit's readings;
* the chain (the worker): :func:`from_aggs` over ``twin_telemetryAggregates`` rows of the
  public metrics and the worker's own aggregation of the private ones read from the archive
  (the same :func:`aggregate`);
* a model window longer than the chain's (a multiple of it): :meth:`WindowTable.coarsen`
  merges the chain's windows, which is exact because both are aligned to the epoch.

So the same readings give the same table, hence the same features and alerts, whether they
are replayed through a gateway onto a chain or read from the CSV they came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

I64_MAX = 2**63 - 1


class AggLike(Protocol):
    count: int
    min: int
    max: int
    sum: int
    last: int


def to_fixed(values: np.ndarray, scale: int) -> np.ndarray:
    """Engineering values to the chain's fixed-point integers (``round(v * 10**scale)``,
    half to even as Python's ``round``)."""
    return np.rint(np.asarray(values, dtype=np.float64) * (10.0**scale)).astype(np.int64)


@dataclass
class WindowTable:
    """Windows of one unit, in start order; ``count[i, j]`` readings of metric ``j`` in
    window ``i`` (0: none, and the other fields are 0 there)."""

    window_ms: int
    starts: np.ndarray  # int64 (n,)
    count: np.ndarray  # int64 (n, m)
    min: np.ndarray
    max: np.ndarray
    sum: np.ndarray
    last: np.ndarray

    @classmethod
    def empty(cls, window_ms: int, n_metrics: int) -> WindowTable:
        z = np.zeros((0, n_metrics), dtype=np.int64)
        starts = np.zeros(0, dtype=np.int64)
        return cls(window_ms, starts, z, z.copy(), z.copy(), z.copy(), z.copy())

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def n_metrics(self) -> int:
        return int(self.count.shape[1])

    def rows(self, lo: int, hi: int) -> WindowTable:
        s = slice(lo, hi)
        return WindowTable(
            self.window_ms, self.starts[s], self.count[s], self.min[s], self.max[s],
            self.sum[s], self.last[s],
        )  # fmt: skip

    def coarsen(self, window_ms: int) -> WindowTable:
        """The same readings in windows of ``window_ms`` (a multiple of this table's)."""
        if window_ms == self.window_ms:
            return self
        if window_ms % self.window_ms:
            raise ValueError(f"{window_ms} ms windows are not a multiple of {self.window_ms} ms")
        big = self.starts - self.starts % window_ms
        return _merge_groups(window_ms, big, self)

    def equals(self, other: WindowTable) -> bool:
        return (
            self.window_ms == other.window_ms
            and np.array_equal(self.starts, other.starts)
            and all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in ("count", "min", "max", "sum", "last")
            )
        )


def _merge_groups(window_ms: int, keys: np.ndarray, t: WindowTable) -> WindowTable:
    """Merge consecutive rows of ``t`` sharing a key (rows are in start order)."""
    if len(keys) == 0:
        return WindowTable.empty(window_ms, t.n_metrics)
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    has = t.count > 0
    big = np.iinfo(np.int64)
    count = np.add.reduceat(t.count, bounds, axis=0)
    mn = np.minimum.reduceat(np.where(has, t.min, big.max), bounds, axis=0)
    mx = np.maximum.reduceat(np.where(has, t.max, big.min), bounds, axis=0)
    sm = np.add.reduceat(t.sum, bounds, axis=0)
    # last: the value of the latest row with readings in each group
    rows = np.arange(len(keys))[:, None]
    idx = np.maximum.accumulate(np.where(has, rows, -1), axis=0)
    ends = np.r_[bounds[1:], len(keys)] - 1
    last_row = idx[ends]
    cols = np.arange(t.n_metrics)[None, :]
    last = np.where(last_row >= 0, t.last[np.maximum(last_row, 0), cols], 0)
    empty = count == 0
    mn[empty] = 0
    mx[empty] = 0
    return WindowTable(window_ms, keys[bounds], count, mn, mx, sm, last)


def aggregate(t_ms: np.ndarray, fixed: Sequence[np.ndarray | None], window_ms: int) -> WindowTable:
    """Readings -> windows. ``fixed[j]``: metric ``j``'s fixed-point values at ``t_ms``, as
    float (NaN: no reading in that row) or None (no readings at all). ``t_ms`` must be in
    time order (the order the readings reach the chain, which makes ``last`` the same)."""
    if window_ms <= 0:
        raise ValueError("window_ms must be positive")
    t_ms = np.asarray(t_ms, dtype=np.int64)
    per: list[tuple[np.ndarray, np.ndarray] | None] = []
    all_starts: list[np.ndarray] = []
    for col in fixed:
        if col is None:
            per.append(None)
            continue
        col = np.asarray(col, dtype=np.float64)
        keep = ~np.isnan(col)
        t = t_ms[keep]
        v = col[keep].astype(np.int64)
        per.append((t - t % window_ms, v))
        all_starts.append(t - t % window_ms)
    m = len(fixed)
    if not all_starts:
        return WindowTable.empty(window_ms, m)
    starts = np.unique(np.concatenate(all_starts))
    n = len(starts)
    count = np.zeros((n, m), dtype=np.int64)
    mn, mx, sm, last = count.copy(), count.copy(), count.copy(), count.copy()
    for j, item in enumerate(per):
        if item is None or len(item[0]) == 0:
            continue
        w, v = item
        bounds = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
        rows = np.searchsorted(starts, w[bounds])
        ends = np.r_[bounds[1:], len(w)]
        count[rows, j] = ends - bounds
        mn[rows, j] = np.minimum.reduceat(v, bounds)
        mx[rows, j] = np.maximum.reduceat(v, bounds)
        sm[rows, j] = np.add.reduceat(v, bounds)
        last[rows, j] = v[ends - 1]
    return WindowTable(window_ms, starts, count, mn, mx, sm, last)


def from_aggs(
    windows: Mapping[int, Mapping[int, AggLike]], metric_ids: Sequence[int], window_ms: int
) -> WindowTable:
    """``{window start: {metric id: aggregate}}`` (the chain's rows, or the worker's own
    aggregation of archive readings) -> a table with columns in ``metric_ids`` order."""
    starts = np.asarray(sorted(windows), dtype=np.int64)
    n, m = len(starts), len(metric_ids)
    arrs = [np.zeros((n, m), dtype=np.int64) for _ in range(5)]
    col = {mid: j for j, mid in enumerate(metric_ids)}
    for i, s in enumerate(starts.tolist()):
        for mid, a in windows[s].items():
            j = col.get(mid)
            if j is None or a.count == 0:
                continue
            for arr, v in zip(arrs, (a.count, a.min, a.max, a.sum, a.last), strict=True):
                arr[i, j] = int(v)
    return WindowTable(window_ms, starts, *arrs)
