"""Server-side downsampling for the dashboard's charts (NumPy).

A chart a few hundred pixels wide cannot show 100,000 points: the browser would spend its time
on points that land on the same pixel. Two reducers, both keeping real samples (never an
average that no sensor reported):

* :func:`minmax` keeps, per pixel column, the first, minimum, maximum and last sample: every
  spike survives, which is what an alarm-minded reader looks for;
* :func:`lttb` (Largest-Triangle-Three-Buckets, Steinarsson 2013) keeps the one sample per
  bucket that spans the largest triangle with its neighbours: the line's shape, fewer points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: At most this many points go to a browser for one series, whatever it asks.
MAX_POINTS = 8_000


class DownsampleError(ValueError):
    """Bad input to a reducer (mismatched lengths, a target below the minimum)."""


def _check(t: NDArray[np.float64], v: NDArray[np.float64], target: int, least: int) -> None:
    if t.shape != v.shape or t.ndim != 1:
        raise DownsampleError("times and values must be 1-D arrays of one length")
    if target < least:
        raise DownsampleError(f"target must be at least {least} points")


def lttb(
    t: NDArray[np.float64], v: NDArray[np.float64], target: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Largest-Triangle-Three-Buckets down to ``target`` points (``t`` ascending); the first
    and last samples are always kept. Input of ``target`` points or fewer comes back as is."""
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    _check(t, v, target, 3)
    n = len(t)
    if n <= target:
        return t, v
    # Bucket edges over the inner points 1..n-2, target-2 buckets.
    edges = np.linspace(1, n - 1, target - 1).astype(np.int64)
    keep = np.empty(target, dtype=np.int64)
    keep[0], keep[-1] = 0, n - 1
    # The next bucket's mean for every bucket (the last uses the final sample).
    sums_t = np.add.reduceat(t[1 : n - 1], edges[:-1] - 1)
    sums_v = np.add.reduceat(v[1 : n - 1], edges[:-1] - 1)
    counts = np.diff(edges).astype(np.float64)
    mean_t = np.append(sums_t / counts, t[-1])[1:]
    mean_v = np.append(sums_v / counts, v[-1])[1:]
    prev = 0
    # One pass over the buckets; inside a bucket the areas are computed vectorised.
    for b in range(target - 2):
        lo, hi = edges[b], edges[b + 1]
        at, av = t[prev], v[prev]
        area = np.abs((at - mean_t[b]) * (v[lo:hi] - av) - (at - t[lo:hi]) * (mean_v[b] - av))
        prev = lo + int(np.argmax(area))
        keep[b + 1] = prev
    return t[keep], v[keep]


def minmax(
    t: NDArray[np.float64], v: NDArray[np.float64], pixels: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """First, min, max and last sample of each of ``pixels`` equal time columns, in time
    order (at most 4 per column); input of ``4 * pixels`` points or fewer comes back as is."""
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    _check(t, v, pixels, 1)
    n = len(t)
    if n <= 4 * pixels:
        return t, v
    span = t[-1] - t[0]
    col = (
        np.zeros(n, dtype=np.int64) if span <= 0 else ((t - t[0]) / span * pixels).astype(np.int64)
    )
    col = np.minimum(col, pixels - 1)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    ends = np.r_[starts[1:], n] - 1
    # Per column: index of min and max (reduceat on values, then locate within the column).
    order = np.lexsort((v, col))  # by column, then value
    col_sorted_starts = np.searchsorted(col[order], col[starts], side="left")
    col_sorted_ends = np.searchsorted(col[order], col[starts], side="right") - 1
    imin = order[col_sorted_starts]
    imax = order[col_sorted_ends]
    keep = np.unique(np.concatenate([starts, ends, imin, imax]))
    return t[keep], v[keep]


def reduce(
    t: NDArray[np.float64], v: NDArray[np.float64], width: int, method: str = "minmax"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Downsample for a chart ``width`` pixels wide with ``method`` ("minmax" or "lttb"),
    never above :data:`MAX_POINTS`."""
    if width < 1:
        raise DownsampleError("width must be at least 1 pixel")
    if method == "lttb":
        return lttb(t, v, max(3, min(2 * width, MAX_POINTS)))
    if method == "minmax":
        return minmax(t, v, max(1, min(width, MAX_POINTS // 4)))
    raise DownsampleError(f"unknown method {method!r} (minmax or lttb)")


__all__ = ["MAX_POINTS", "DownsampleError", "lttb", "minmax", "reduce"]
