"""Batch BIP-340 verification: both paths agree, on valid, invalid, malformed and mixed batches
of 0, 1 and 10,000 items, whatever the thread count."""

from __future__ import annotations

import random
from types import ModuleType

import pytest
from coincurve import PublicKeyXOnly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_helpers import SigCorpus, make_corpus

from twinchain.native import fallback

P = 2**256 - 2**32 - 977  # field size
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # group order


def _be(x: int) -> bytes:
    return x.to_bytes(32, "big")


def _off_curve_xs(count: int) -> list[bytes]:
    """x coordinates below p with no curve point (x^3 + 7 is not a square mod p)."""
    out, x = [], 1
    while len(out) < count:
        if pow(x**3 + 7, (P - 1) // 2, P) == P - 1:
            out.append(_be(x))
        x += 1
    return out


def _flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


def test_empty_batch(impl: ModuleType) -> None:
    assert impl.verify_batch([], [], []) == []


def test_lists_of_different_lengths_raise(impl: ModuleType, corpus: SigCorpus) -> None:
    with pytest.raises(ValueError):
        impl.verify_batch(corpus.pubkeys[:2], corpus.messages[:1], corpus.signatures[:2])


def test_single(impl: ModuleType, corpus: SigCorpus) -> None:
    pk, msg, sig = corpus.pubkeys[0], corpus.messages[0], corpus.signatures[0]
    assert impl.verify_batch([pk], [msg], [sig]) == [True]
    assert impl.verify_batch([pk], [_flip(msg, 5)], [sig]) == [False]
    assert impl.verify_batch([pk], [msg], [_flip(sig, 40)]) == [False]


def test_10000_valid(impl: ModuleType, corpus: SigCorpus) -> None:
    assert impl.verify_batch(corpus.pubkeys, corpus.messages, corpus.signatures) == [True] * 10_000


def test_10000_mixed(impl: ModuleType, corpus: SigCorpus) -> None:
    """Every 7th item is broken in its key, message or signature; only those fail."""
    pks, msgs, sigs = list(corpus.pubkeys), list(corpus.messages), list(corpus.signatures)
    expected = [True] * len(pks)
    rng = random.Random(7)
    for i in range(0, len(pks), 7):
        which = rng.randrange(3)
        if which == 0:
            pks[i] = _flip(pks[i], rng.randrange(32))
        elif which == 1:
            msgs[i] = _flip(msgs[i], rng.randrange(32))
        else:
            sigs[i] = _flip(sigs[i], rng.randrange(64))
        expected[i] = False
    assert impl.verify_batch(pks, msgs, sigs) == expected


def _malformed(c: SigCorpus) -> list[tuple[str, bytes, bytes, bytes]]:
    pk, msg, sig = c.pubkeys[1], c.messages[1], c.signatures[1]
    r, s = sig[:32], sig[32:]
    s_int = int.from_bytes(s, "big")
    cases = [
        ("pubkey short", pk[:31], msg, sig),
        ("pubkey long", pk + b"\x00", msg, sig),
        ("pubkey empty", b"", msg, sig),
        ("message short", pk, msg[:31], sig),
        ("message long", pk, msg + b"\x00", sig),
        ("message empty", pk, b"", sig),
        ("signature short", pk, msg, sig[:63]),
        ("signature long", pk, msg, sig + b"\x00"),
        ("signature empty", pk, msg, b""),
        ("pubkey x = 0", bytes(32), msg, sig),
        ("pubkey x = p", _be(P), msg, sig),
        ("pubkey x = p + 1", _be(P + 1), msg, sig),
        ("pubkey x = 2^256 - 1", b"\xff" * 32, msg, sig),
        ("s = n", pk, msg, r + _be(N)),
        ("s = s + n", pk, msg, r + _be(s_int + N)) if s_int + N < 2**256 else None,
        ("s = 2^256 - 1", pk, msg, r + b"\xff" * 32),
        ("r = p", pk, msg, _be(P) + s),
        ("r = 2^256 - 1", pk, msg, b"\xff" * 32 + s),
        ("r = 0, s = 0", pk, msg, bytes(64)),
    ]
    cases += [("pubkey off the curve", x, msg, sig) for x in _off_curve_xs(4)]
    return [c for c in cases if c is not None]


def test_malformed_items_are_false(impl: ModuleType, corpus: SigCorpus) -> None:
    cases = _malformed(corpus)
    for name, pk, msg, sig in cases:
        assert impl.verify_batch([pk], [msg], [sig]) == [False], name
    # The same cases interleaved with valid items, in one batch.
    pks, msgs, sigs, expected = [], [], [], []
    for i, (_, pk, msg, sig) in enumerate(cases):
        pks += [corpus.pubkeys[i], pk]
        msgs += [corpus.messages[i], msg]
        sigs += [corpus.signatures[i], sig]
        expected += [True, False]
    assert impl.verify_batch(pks, msgs, sigs) == expected


def test_off_curve_helper_is_right() -> None:
    for x in _off_curve_xs(4):
        with pytest.raises(ValueError):
            PublicKeyXOnly(x)


def test_bytes_like_and_foreign_items(impl: ModuleType, corpus: SigCorpus) -> None:
    pk, msg, sig = corpus.pubkeys[2], corpus.messages[2], corpus.signatures[2]
    assert impl.verify_batch([pk], [bytearray(msg)], [memoryview(sig)]) == [True]
    text = "x" * 32
    assert impl.verify_batch([pk, text, pk], [msg, msg, 32], [sig, sig, sig]) == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize("threads", [1, 2, 3, 8, 64])
def test_thread_counts_agree(cimpl: ModuleType, threads: int) -> None:
    c = make_corpus(600, seed=3)
    pks, msgs, sigs = c.pubkeys, list(c.messages), c.signatures
    for i in range(0, 600, 5):
        msgs[i] = _flip(msgs[i], 0)
    cimpl.set_threads(threads)
    expected = fallback.verify_batch(pks, msgs, sigs)
    assert cimpl.verify_batch(pks, msgs, sigs) == expected
    assert expected.count(False) == 120


_SMALL = make_corpus(8, seed=5)


def _triple(draw: st.DrawFn, i: int) -> tuple[bytes, bytes, bytes]:
    """A valid triple, or one with random damage (lengths, bytes, whole fields)."""
    pk, msg, sig = _SMALL.pubkeys[i], _SMALL.messages[i], _SMALL.signatures[i]
    kind = draw(st.sampled_from(["valid", "random", "flip", "resize"]))
    if kind == "random":
        pk = draw(st.binary(min_size=30, max_size=34))
        msg = draw(st.binary(min_size=30, max_size=34))
        sig = draw(st.binary(min_size=62, max_size=66))
    elif kind == "flip":
        field = draw(st.integers(0, 2))
        pos = draw(st.integers(0, 31))
        if field == 0:
            pk = _flip(pk, pos)
        elif field == 1:
            msg = _flip(msg, pos)
        else:
            sig = _flip(sig, pos * 2)
    elif kind == "resize":
        cut = draw(st.integers(0, 2))
        extra = draw(st.binary(max_size=2))
        if cut == 0:
            pk = pk[: draw(st.integers(0, 32))] + extra
        elif cut == 1:
            msg = msg[: draw(st.integers(0, 32))] + extra
        else:
            sig = sig[: draw(st.integers(0, 64))] + extra
    return pk, msg, sig


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[bytes, bytes, bytes]]:
    return [_triple(draw, i) for i in range(draw(st.integers(0, 8)))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_paths_agree_on_random_batches(batch: list[tuple[bytes, bytes, bytes]]) -> None:
    from native_helpers import native_module

    mod = native_module()
    if mod is None:
        pytest.skip("C extension not loaded")
    pks = [t[0] for t in batch]
    msgs = [t[1] for t in batch]
    sigs = [t[2] for t in batch]
    assert mod.verify_batch(pks, msgs, sigs) == fallback.verify_batch(pks, msgs, sigs)
