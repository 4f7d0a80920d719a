"""The Telemetry batch kernel (readings_survey, readings_scan): the C path equals the Python
reference bit for bit, on random batches and on the integer edges (i64 extremes, u64
timestamps, limits past 2**64), and each check and aggregate rule does what the pallet says."""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_helpers import native_module

from twinchain.native import fallback

R = fallback.READING
I64 = (-(2**63), 2**63 - 1)
U64 = 2**64 - 1


def pack(readings: list[tuple[int, int, int]]) -> bytes:
    return b"".join(R.pack(*r) for r in readings)


def both(name: str, *args: Any) -> Any:
    mod = native_module()
    if mod is None:
        pytest.skip("C extension not loaded")
    want = getattr(fallback, name)(*args)
    assert getattr(mod, name)(*args) == want
    return want


readings_st = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 3, 65535]),
        st.one_of(st.integers(0, 20_000), st.sampled_from([0, U64, 2**63, 10**13])),
        st.one_of(st.integers(-50, 50), st.sampled_from([*I64, 0, 1, -1])),
    ),
    max_size=300,
)


@st.composite
def scans(draw: Any) -> tuple[Any, ...]:
    readings = draw(readings_st)
    metrics = list(dict.fromkeys(m for m, _, _ in readings))
    slots = []
    for m in metrics:
        lo = draw(st.one_of(st.integers(-60, 60), st.sampled_from(I64)))
        hi = draw(st.one_of(st.integers(lo, 60) if lo <= 60 else st.just(lo), st.just(I64[1])))
        env = draw(st.one_of(st.none(), st.just((lo, hi, draw(st.sampled_from([0, 1, 30, U64]))))))
        last = draw(
            st.one_of(
                st.none(),
                st.tuples(st.one_of(st.integers(0, 20_000), st.just(U64)), st.sampled_from(I64)),
                st.tuples(st.integers(0, 20_000), st.integers(-50, 50)),
            )
        )
        min_interval = draw(st.sampled_from([0, 5, 2**32 - 1]))
        max_age = draw(st.sampled_from([0, 100, 5_000, U64]))
        slots.append((m, env, min_interval, max_age, last))
    now = draw(st.one_of(st.integers(0, 20_000), st.just(U64)))
    limit = draw(st.one_of(st.integers(0, 30_000), st.just(U64), st.just(2**70)))
    window = draw(st.one_of(st.integers(1, 5_000), st.just(U64)))
    newest = draw(st.one_of(st.just(-1), st.integers(0, 20_000)))
    return pack(readings), slots, now, limit, window, newest


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scans())
def test_scan_matches_the_reference(args: tuple[Any, ...]) -> None:
    both("readings_scan", *args)


@settings(max_examples=300, deadline=None)
@given(readings_st)
def test_survey_matches_the_reference(readings: list[tuple[int, int, int]]) -> None:
    metrics, first, last = both("readings_survey", pack(readings))
    assert list(metrics) == list(dict.fromkeys(m for m, _, _ in readings))
    stamps = [ts for _, ts, _ in readings]
    assert (first, last) == ((min(stamps), max(stamps)) if readings else (0, 0))


def test_rules(impl: ModuleType) -> None:
    """Each flag and aggregate rule on a hand-checked batch (both implementations)."""
    env, slot2 = (0, 100, 10), (2, None, 0, 10**9, None)
    batch = [
        (1, 1_000, 50),  # fine (last was 900: 100 ms later, step 0)
        (1, 1_050, 200),  # out of range and a jump of 150 > 10
        (1, 1_040, 60),  # older than the last: stale, no jump check, not the window's last
        (1, 1_055, 65),  # 5 ms after the last: too fast (min interval 10), a jump of 135
        (2, 99_999, 7),  # past the limit: from the future, still aggregated, opens no window
        (2, 2_500, -(2**63)),  # older than the future reading: stale; another window
        (1, 1_055, 64),  # same timestamp as the last: newer, it becomes the window's last
    ]
    flags, aggs, lasts, newest, flagged = impl.readings_scan(
        pack(batch), [(1, env, 10, 5_000, (900, 50)), slot2], 3_000, 60_000, 2_000, -1
    )
    f = fallback
    assert list(flags) == [
        0,
        f.FLAG_OUT_OF_RANGE | f.FLAG_JUMP,
        f.FLAG_STALE,
        f.FLAG_TOO_FAST | f.FLAG_JUMP,
        f.FLAG_FROM_FUTURE,
        f.FLAG_STALE,
        f.FLAG_TOO_FAST,
    ]
    assert flagged == 6
    assert aggs == [
        (0, 1, 5, 50, 200, 50 + 200 + 60 + 65 + 64, 64, 1_055, 4),
        (98_000, 2, 1, 7, 7, 7, 7, 99_999, 1),
        (2_000, 2, 1, -(2**63), -(2**63), -(2**63), -(2**63), 2_500, 1),
    ]
    assert lasts == [(1_055, 64), (99_999, 7)]
    assert newest == 2_000  # the future reading's window does not count


def test_sums_do_not_wrap(impl: ModuleType) -> None:
    batch = [(1, i, I64[1]) for i in range(256)] + [(2, i, I64[0]) for i in range(256)]
    _, aggs, _, _, _ = impl.readings_scan(
        pack(batch), [(1, None, 0, U64, None), (2, None, 0, U64, None)], 0, U64, U64, -1
    )
    assert [a[5] for a in aggs] == [256 * I64[1], 256 * I64[0]]


@pytest.mark.parametrize("bad", ["length", "window", "metric"])
def test_malformed_input_is_a_value_error(impl: ModuleType, bad: str) -> None:
    raw, slots, window = pack([(1, 5, 5)]), [(1, None, 0, 0, None)], 10
    if bad == "length":
        raw += b"\0"
    elif bad == "window":
        window = 0
    else:
        slots = [(2, None, 0, 0, None)]
    with pytest.raises(ValueError):
        impl.readings_scan(raw, slots, 0, 0, window, -1)
    if bad == "length":
        with pytest.raises(ValueError):
            impl.readings_survey(raw)


def test_random_batches_like_the_simulators() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(0, 256)
        t0 = 10**12
        readings = [
            (rng.randint(1, 15), t0 + rng.randint(0, 10**6), rng.randint(-(10**6), 10**6))
            for _ in range(n)
        ]
        metrics = list(dict.fromkeys(m for m, _, _ in readings))
        slots = [
            (m, (-(10**5), 10**5, rng.choice([0, 10**5])) if m % 3 else None, rng.choice([0, 50]),
             86_400_000, rng.choice([None, (t0, 0)]))
            for m in metrics
        ]  # fmt: skip
        now = t0 + 5 * 10**5
        both("readings_scan", pack(readings), slots, now, now + 60_000, 3_600_000, -1)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 255, 256, 1025, 3000])
@pytest.mark.parametrize("leaf_len", [1, 18, 64])
def test_merkle_root_of_packed_leaves(impl: ModuleType, n: int, leaf_len: int) -> None:
    data = random.Random(n * 100 + leaf_len).randbytes(n * leaf_len)
    leaves = [data[i : i + leaf_len] for i in range(0, len(data), leaf_len)]
    assert impl.merkle_root_packed(data, leaf_len) == fallback.merkle_root(leaves)
    bad = (data + b"\0", leaf_len) if leaf_len > 1 else (data, 0)  # a ragged end, a zero size
    with pytest.raises(ValueError):
        impl.merkle_root_packed(*bad)
