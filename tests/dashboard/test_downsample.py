"""Server-side downsampling: real samples kept, spikes kept, bounded output, typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from twinchain.dashboard.downsample import MAX_POINTS, DownsampleError, lttb, minmax, reduce


def series(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(1, 20, n)).astype(np.float64)
    v = np.sin(t / 700) + rng.normal(0, 0.05, n)
    return t, v


def test_minmax_keeps_every_column_extreme_and_real_samples() -> None:
    t, v = series(100_000)
    v[12_345], v[67_890] = 50.0, -50.0  # one-sample spikes
    rt, rv = minmax(t, v, 800)
    assert len(rt) <= 4 * 800
    assert rv.max() == 50.0 and rv.min() == -50.0
    assert np.all(np.diff(rt) > 0)  # time order, no duplicates
    pairs = set(zip(t.tolist(), v.tolist(), strict=True))
    assert all((a, b) in pairs for a, b in zip(rt.tolist(), rv.tolist(), strict=True))
    # Each pixel column's min and max survive.
    col = np.minimum(((t - t[0]) / (t[-1] - t[0]) * 800).astype(int), 799)
    rcol = np.minimum(((rt - t[0]) / (t[-1] - t[0]) * 800).astype(int), 799)
    for c in (0, 123, 799):
        assert rv[rcol == c].max() == v[col == c].max()
        assert rv[rcol == c].min() == v[col == c].min()


def test_lttb_exact_count_endpoints_and_peaks() -> None:
    t, v = series(100_000, seed=2)
    v[50_000] = 9.0
    rt, rv = lttb(t, v, 2000)
    assert len(rt) == 2000
    assert rt[0] == t[0] and rt[-1] == t[-1]
    assert 9.0 in rv
    assert np.all(np.diff(rt) > 0)


def test_small_inputs_come_back_unchanged() -> None:
    t, v = series(50)
    for rt, rv in (lttb(t, v, 100), minmax(t, v, 100), reduce(t, v, 100)):
        assert np.array_equal(rt, t) and np.array_equal(rv, v)


def test_reduce_bounds_and_errors() -> None:
    t, v = series(200_000)
    rt, _ = reduce(t, v, 100_000, "lttb")
    assert len(rt) <= MAX_POINTS
    rt, _ = reduce(t, v, 100_000, "minmax")
    assert len(rt) <= MAX_POINTS
    with pytest.raises(DownsampleError, match="unknown method"):
        reduce(t, v, 100, "mean")
    with pytest.raises(DownsampleError, match="width"):
        reduce(t, v, 0)
    with pytest.raises(DownsampleError, match="one length"):
        lttb(t, v[:-1], 10)
    with pytest.raises(DownsampleError, match="at least 3"):
        lttb(t, v, 2)


def test_constant_time_does_not_divide_by_zero() -> None:
    t = np.zeros(1000)
    v = np.arange(1000, dtype=np.float64)
    _, rv = minmax(t, v, 10)
    assert rv.min() == 0 and rv.max() == 999
