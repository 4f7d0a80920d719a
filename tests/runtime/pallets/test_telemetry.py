"""Telemetry: device binding, signed commitments, replays and gaps, batch flags, public
aggregates, the disclosure policy, later disclosure grants, anchored results, who may read
raw readings, and block-level signature pre-verification."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain import native
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import Keypair
from twinchain.protocol import telemetry as tp
from twinchain.protocol.telemetry import (
    DEFAULT_METRICS,
    DEFAULT_PUBLIC,
    MAX_FUTURE_DRIFT_MS,
    Commitment,
    MetricSummary,
    batch_root,
    commitment_message,
    reading_proof,
    sign_batch,
    verify_reading,
)
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.equipment.types import OPERATE, READ_TELEMETRY
from twinchain.runtime.pallets.facility.types import Verification
from twinchain.runtime.pallets.telemetry import (
    MAX_DEVICES_PER_TWIN,
    forget_good_signatures,
    ingest,
    windows,
)
from twinchain.runtime.pallets.telemetry import types as tt
from twinchain.runtime.weights import telemetry as tw

ALICE, BOB, CHARLIE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie"))
OWNER, DEV1, DEV2, DEV3, NOBODY = (
    Keypair.from_dev_name(n) for n in ("Owner", "Device1", "Device2", "Device3", "Nobody")
)
OPERATOR, AUDITOR = Keypair.from_dev_name("Operator"), Keypair.from_dev_name("Auditor")
GW, GW2 = BOB, CHARLIE  # funded, so they can also sign real extrinsics
FAR = 10**12
SLOT = 100
NOW = SLOT * 1000
WINDOW = 10_000
TEMP, ENERGY, GOOD = 1, 5, 8  # temperature public by default; energy and good units private
ENVELOPE = [TEMP, -20_000, 90_000, 10_000]  # milli-degrees, max step 10 degrees


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world() -> dict[str, Any]:
    twin = {"manufacturer": "//Maker", "owner": "//Owner", "class": "cnc-mill", "model": "M"}
    return {
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Operator", "FacilityOperator"],
                ["//Bob", "Gateway"],
                ["//Charlie", "Gateway"],
            ]
        },
        "facility": {"facilities": [{"operator": "//Operator", "name": "Plant A"}]},
        "equipment": {
            "twins": [
                twin
                | {"serial": "A", "lifecycle": "Active", "envelope": [ENVELOPE], "facility": 0},
                twin | {"serial": "B"},
            ]
        },
        "telemetry": {
            "window_ms": WINDOW,
            "devices": [
                {"device": "//Device1", "twin": 0},
                {"device": "//Device2", "twin": 0, "gateway": "//Charlie"},
            ],
        },
    }


@pytest.fixture
def chain(make_chain: Any) -> Any:
    return make_chain(extra=world())


@pytest.fixture
def blk(chain: Any) -> Any:
    chain.start_block(SLOT)
    return chain


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the ``native.verify_batch`` calls made from here on (the real one runs)."""
    calls: list[int] = []
    real = native.verify_batch

    def counting(*args: Any) -> list[bool]:
        calls.append(len(args[0]))
        return real(*args)

    monkeypatch.setattr(native, "verify_batch", counting)
    return calls


def batch(
    chain: Any,
    dev: Keypair,
    seq: int,
    readings: list[tuple[int, int, int]],
    twin: int = 0,
    public: Any = DEFAULT_PUBLIC,
) -> Commitment:
    """The commitment of a batch the device signed, summarizing ``public``."""
    return sign_batch(dev, chain.rt.genesis_hash, twin, seq, readings, public).commitment()


def forge(chain: Any, dev: Keypair, c: Commitment, twin: int = 0, **changes: Any) -> Commitment:
    """``c`` with ``changes``, signed again by ``dev``: what a faulty device could send."""
    for k, v in changes.items():
        setattr(c, k, v)
    c.signature = dev.sign(c.message(chain.rt.genesis_hash, twin))
    return c


def temps(
    start: int = NOW - 5_000, n: int = 5, step: int = 1_000, value: int = 20_000
) -> list[tuple[int, int, int]]:
    return [(TEMP, start + i * step, value + i) for i in range(n)]


def submit(chain: Any, *batches: Commitment, gw: Keypair = GW) -> list[Any]:
    return chain.dispatch(signed(gw), "Telemetry", "submit", list(batches))  # type: ignore[no-any-return]


def owner_call(chain: Any, name: str, *args: Any, who: Keypair = OWNER) -> list[Any]:
    return chain.dispatch(signed(who), "Telemetry", name, *args)  # type: ignore[no-any-return]


def snapshot(chain: Any) -> list[tuple[bytes, bytes]]:
    return list(chain.rt.state.iter_prefix(b""))


def flags(chain: Any, evs: list[Any]) -> list[tuple[int, str]]:
    return [
        (chain.args(e)["metric"], chain.args(e)["flag"]) for e in evs if e.name == "BatchFlagged"
    ]


def recompute(
    readings: list[tuple[int, int, int]], public: Any = DEFAULT_PUBLIC, window: int = WINDOW
) -> dict[tuple[int, int], tuple[int, ...]]:
    """Aggregates from scratch: (count, min, max, sum, last, last_ts) per (public metric,
    window)."""
    out: dict[tuple[int, int], list[int]] = {}
    for m, ts, v in readings:
        if m not in public:
            continue
        key = (m, ts - ts % window)
        a = out.get(key)
        if a is None:
            out[key] = [1, v, v, v, v, ts]
            continue
        a[0] += 1
        a[1], a[2], a[3] = min(a[1], v), max(a[2], v), a[3] + v
        if ts >= a[5]:
            a[4], a[5] = v, ts
    return {k: tuple(v) for k, v in out.items()}


def stored(chain: Any, twin: int = 0) -> dict[tuple[int, int], tuple[int, ...]]:
    return {
        k: (a.count, a.min, a.max, a.sum, a.last, a.last_ts)
        for k, a in chain.rt.telemetry.aggregates(twin)
    }


# --------------------------------------------------------------------------- happy path


def test_genesis(chain: Any) -> None:
    t = chain.rt.telemetry
    assert t.WindowMs.get() == WINDOW
    assert {m for m, _ in t.Metrics.iter()} == {m[0] for m in DEFAULT_METRICS}
    d = t.device(DEV2.public)
    assert (d.twin, d.gateway, d.active, d.next_seq, d.bound_by) == (
        0,
        GW2.public,
        True,
        0,
        OWNER.public,
    )
    assert chain.rt.roles.has(DEV1.public, "Device")
    assert t.TwinDeviceCount.get(0) == 2
    # Condition metrics public, what the plant makes and spends private.
    assert t.public_metrics(0) == t.public_metrics(1) == DEFAULT_PUBLIC
    assert TEMP in DEFAULT_PUBLIC and not {ENERGY, GOOD} & DEFAULT_PUBLIC


def test_genesis_sets_the_chain_default_and_twin_policies(make_chain: Any) -> None:
    cfg = world()
    cfg["telemetry"] |= {"default_public": [TEMP, ENERGY], "disclosure": [[1, [GOOD]]]}
    t = make_chain(extra=cfg).rt.telemetry
    assert t.public_metrics(0) == {TEMP, ENERGY} and t.public_metrics(1) == {GOOD}
    cfg["telemetry"]["disclosure"] = [[9, [GOOD]]]
    with pytest.raises(ValueError, match="unknown twin"):
        make_chain(extra=cfg)


def test_accepted_commitment_keeps_its_record_and_public_aggregates_only(blk: Any) -> None:
    readings = [
        *temps(),
        (ENERGY, NOW - 4_000, 120),
        (GOOD, NOW - 3_000, 17),
        (ENERGY, NOW - 1, 80),
    ]
    c = batch(blk, DEV1, 0, readings)
    assert [s.metric for s in c.public] == [TEMP]  # energy and good units stay private
    evs = submit(blk, c)
    assert blk.names(evs) == ["Telemetry.BatchAccepted"]
    root = batch_root(readings)
    assert blk.args(evs[0]) == {
        "twin": 0, "device": DEV1.public, "seq": 0, "root": root, "count": 8, "flagged": 0
    }  # fmt: skip
    t = blk.rt.telemetry
    rec = t.batch(DEV1.public, 0)
    assert (rec.twin, rec.root, rec.count, rec.gateway, rec.block) == (0, root, 8, GW.public, 1)
    assert (rec.first_ts, rec.last_ts, rec.flagged) == (NOW - 5_000, NOW - 1, 0)
    assert t.twin_batch(0, 0) == (DEV1.public, 0) and t.twin_batch_count(0) == 1
    assert t.twin_batch(0, 1) is None and t.twin_batch(0, -1) is None
    d = t.device(DEV1.public)
    assert (d.next_seq, d.batches, d.readings, d.gaps, d.last_seen) == (1, 1, 8, 0, NOW)
    assert t.last_readings(DEV1.public) == {TEMP: (NOW - 1_000, 20_004)}
    assert stored(blk) == recompute(readings)
    assert t.aggregate(0, ENERGY, NOW - WINDOW) is None
    # No private value anywhere in state.
    for _, value in snapshot(blk):
        assert (120).to_bytes(8, "big", signed=True) not in value
        assert (17).to_bytes(8, "big", signed=True) not in value


def test_a_metric_made_public_is_aggregated_from_then_on(blk: Any) -> None:
    evs = owner_call(blk, "set_disclosure", 0, ENERGY, True)
    assert blk.args(evs[0]) == {"twin": 0, "metric": ENERGY, "public": True}
    t = blk.rt.telemetry
    assert t.public_metrics(0) == DEFAULT_PUBLIC | {ENERGY}
    assert t.public_metrics(1) == DEFAULT_PUBLIC  # per twin
    readings = [(ENERGY, NOW - 4_000, 120), (ENERGY, NOW - 1, 80), *temps(n=2)]
    submit(blk, batch(blk, DEV1, 0, readings, public=t.public_metrics(0)))
    # Energy is a Delta metric: its window sum is the total consumed.
    assert stored(blk)[(ENERGY, NOW - WINDOW)] == (2, 80, 120, 200, 80, NOW - 1)
    assert t.last_readings(DEV1.public)[ENERGY] == (NOW - 1, 80)
    # Private again: its aggregates and latest values are no longer handed out.
    owner_call(blk, "set_disclosure", 0, ENERGY, False)
    assert t.public_metrics(0) == DEFAULT_PUBLIC
    assert t.aggregate(0, ENERGY, NOW - WINDOW) is None
    assert ENERGY not in t.last_readings(DEV1.public)
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV1, 1, readings, public={TEMP, ENERGY}))
    assert err(e) == "Telemetry.NotPublic"


def test_set_disclosure_errors(blk: Any) -> None:
    for who, twin, metric, error in [
        (NOBODY, 0, ENERGY, "NotOwner"),
        (OPERATOR, 0, ENERGY, "NotOwner"),
        (OWNER, 9, ENERGY, "UnknownTwin"),
        (OWNER, 0, 999, "UnknownMetric"),
    ]:
        with pytest.raises(DispatchError) as e:
            owner_call(blk, "set_disclosure", twin, metric, True, who=who)
        assert err(e) == f"Telemetry.{error}"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Telemetry", "set_disclosure", 0, ENERGY, True)
    assert err(e) == "System.BadOrigin"
    for m in range(100, 100 + tt.MAX_PUBLIC_METRICS - len(DEFAULT_PUBLIC)):
        blk.dispatch(Origin.root(), "Telemetry", "register_metric", m, f"m{m}", "", 0, "Gauge")
        owner_call(blk, "set_disclosure", 0, m, True)
    with pytest.raises(DispatchError) as e:
        owner_call(blk, "set_disclosure", 0, ENERGY, True)
    assert err(e) == "Telemetry.TooManyPublic"
    owner_call(blk, "set_disclosure", 0, 100, False)
    owner_call(blk, "set_disclosure", 0, ENERGY, True)


def test_several_batches_and_devices_in_one_extrinsic(blk: Any) -> None:
    a = batch(blk, DEV1, 0, temps(n=3))
    b = batch(blk, DEV1, 1, temps(start=NOW - 1_500, n=2))
    c = batch(blk, DEV2, 0, temps(n=4, value=30_000))
    evs = submit(blk, a, b, c, gw=GW2)
    assert blk.names(evs) == ["Telemetry.BatchAccepted"] * 3
    assert blk.rt.telemetry.device(DEV1.public).next_seq == 2
    assert stored(blk) == recompute(
        temps(n=3) + temps(start=NOW - 1_500, n=2) + temps(n=4, value=30_000)
    )


def test_a_batch_lies_in_one_window(blk: Any) -> None:
    readings = temps(start=NOW - 25_000, n=5, step=5_000)
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV1, 0, readings))
    assert err(e) == "Telemetry.SpansWindows"
    assert snapshot(blk) == before
    # Cut at the window boundaries, as a gateway does: one batch per window.
    cuts: dict[int, list[tuple[int, int, int]]] = {}
    for r in readings:
        cuts.setdefault(r[1] // WINDOW, []).append(r)
    submit(blk, *(batch(blk, DEV1, i, rs) for i, rs in enumerate(cuts.values())))
    keys = sorted(stored(blk))
    assert keys == [(TEMP, NOW - 30_000), (TEMP, NOW - 20_000), (TEMP, NOW - 10_000)]
    assert stored(blk) == recompute(readings)
    # A span ending on the last millisecond of its window is still in it.
    submit(blk, batch(blk, DEV1, 9, [(TEMP, NOW, 1), (TEMP, NOW + WINDOW - 1, 2)]))


# --------------------------------------------------------------------------- signatures


def test_one_bad_signature_rejects_the_whole_extrinsic(blk: Any) -> None:
    good = batch(blk, DEV1, 0, temps())
    bad = batch(blk, DEV2, 0, temps())
    bad.signature = DEV3.sign(b"\x00" * 32)
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        submit(blk, good, bad, gw=GW2)
    assert err(e) == "Telemetry.BadDeviceSignature"
    assert snapshot(blk) == before
    submit(blk, good)  # the good batch alone goes through
    assert blk.rt.telemetry.device(DEV1.public).next_seq == 1


@pytest.mark.parametrize(
    "tamper", ["root", "count", "span", "summary", "summary dropped", "seq", "other device key"]
)
def test_tampered_commitment_fails_its_signature(blk: Any, tamper: str) -> None:
    c = batch(blk, DEV1, 0, temps())
    s = c.public[0]
    if tamper == "root":
        c.root = batch_root(temps(value=1))
    elif tamper == "count":
        c.count += 1
    elif tamper == "span":
        c.first_ts += 1
    elif tamper == "summary":
        c.public = (s._replace(max=s.max + 1, sum=s.sum + 1),)
    elif tamper == "summary dropped":
        c.public = ()
    elif tamper == "seq":
        c.seq = 1
    else:
        c.signature = batch(blk, DEV3, 0, temps()).signature
    with pytest.raises(DispatchError) as e:
        submit(blk, c)
    assert err(e) == "Telemetry.BadDeviceSignature"


def test_signature_is_bound_to_chain_and_twin(blk: Any) -> None:
    other_chain = sign_batch(DEV1, b"\x99" * 32, 0, 0, temps(), DEFAULT_PUBLIC).commitment()
    other_twin = batch(blk, DEV1, 0, temps(), twin=1)
    for c in (other_chain, other_twin):
        with pytest.raises(DispatchError) as e:
            submit(blk, c)
        assert err(e) == "Telemetry.BadDeviceSignature"


def test_bad_signature_in_a_signed_extrinsic_fails_it_but_charges_the_gateway(chain: Any) -> None:
    c = batch(chain, DEV1, 0, temps())
    c.signature = bytes(64)
    xt = chain.sign(GW, chain.call("Telemetry", "submit", [c]))
    out = chain.produce(xt)[0]
    assert not out.success and out.error.error == "BadDeviceSignature"
    assert chain.nonce(GW.public) == 1
    assert chain.rt.telemetry.device(DEV1.public).next_seq == 0


def test_one_verify_batch_call_per_extrinsic(blk: Any, verify_calls: list[int]) -> None:
    calls = verify_calls
    submit(blk, *(batch(blk, DEV1, s, temps(start=NOW - 9_000 + s * 1_000, n=1)) for s in range(5)))
    assert calls == [5]


def test_the_extrinsic_carries_no_reading(chain: Any) -> None:
    readings = [(GOOD, NOW - 3_000 + i, 7_770_000 + i) for i in range(100)]
    c = batch(chain, DEV1, 0, readings)
    raw = chain.sign(GW, chain.call("Telemetry", "submit", [c]))
    assert len(raw) < 400  # a commitment, whatever the batch's size
    for i in range(100):
        assert (7_770_000 + i).to_bytes(8, "big", signed=True) not in raw
    assert chain.produce(raw)[0].success


# --------------------------------------------------------------------------- sequence numbers


def test_replayed_batch_is_rejected(chain: Any) -> None:
    c = batch(chain, DEV1, 0, temps())
    chain.start_block(SLOT)
    submit(chain, c)
    chain.finish_block()
    chain.start_block(SLOT + 1)
    before = snapshot(chain)
    with pytest.raises(DispatchError) as e:
        submit(chain, c)
    assert err(e) == "Telemetry.DuplicateBatch"
    assert snapshot(chain) == before


def test_duplicate_within_one_extrinsic_and_lower_seq(blk: Any) -> None:
    c = batch(blk, DEV1, 4, temps())
    with pytest.raises(DispatchError) as e:
        submit(blk, c, c)
    assert err(e) == "Telemetry.DuplicateBatch"
    submit(blk, c)
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV1, 2, temps()))
    assert err(e) == "Telemetry.DuplicateBatch"


def test_gaps_are_recorded(blk: Any) -> None:
    submit(blk, batch(blk, DEV1, 0, temps(n=1)))
    evs = submit(blk, batch(blk, DEV1, 3, temps(start=NOW - 1_000, n=1)))
    assert blk.names(evs) == ["Telemetry.SequenceGap", "Telemetry.BatchAccepted"]
    assert blk.args(evs[0]) == {"device": DEV1.public, "expected": 1, "got": 3}
    d = blk.rt.telemetry.device(DEV1.public)
    assert (d.gaps, d.next_seq, d.batches) == (2, 4, 2)


def test_batch_records_are_packed_per_device_chunk_across_gaps_and_boundaries(blk: Any) -> None:
    t = blk.rt.telemetry
    chunk = tp.BATCH_CHUNK
    seqs = [0, 1, chunk - 1, chunk, chunk + 5, 3 * chunk + 2]  # gaps, a skipped chunk
    for i, seq in enumerate(seqs):
        submit(blk, batch(blk, DEV1, seq, temps(start=NOW - 900 + 10 * i, n=1, value=i)))
    submit(blk, batch(blk, DEV2, 1, temps(n=2)), gw=GW2)
    for i, seq in enumerate(seqs):
        rec = t.batch(DEV1.public, seq)
        assert rec is not None and rec.first_ts == NOW - 900 + 10 * i and rec.count == 1
        assert rec.root == batch_root([(TEMP, NOW - 900 + 10 * i, i)])
    absent = {*range(4 * chunk)} - set(seqs)
    assert all(t.batch(DEV1.public, s) is None for s in absent)
    assert t.batch(DEV1.public, -1) is None and t.batch(DEV1.public, 2**64) is None
    assert t.batch(DEV2.public, 1).count == 2 and t.batch(DEV2.public, 0) is None
    # One key per device and chunk, its records in sequence order.
    raw = t.BatchChunks.get(DEV1.public, 1)
    assert [s for s, *_ in tp.BATCH_RECORD.iter_unpack(raw)] == [chunk, chunk + 5]
    assert t.BatchChunks.get(DEV1.public, 2) == b""
    assert tp.chunk_record(raw, chunk + 1) is None
    with pytest.raises(CodecError):
        tt.BatchRecords(chunk).encode(b"\x00" * (tp.BATCH_RECORD.size + 1))


def test_rebinding_keeps_the_sequence(blk: Any) -> None:
    c = batch(blk, DEV1, 0, temps())
    submit(blk, c)
    blk.dispatch(signed(OWNER), "Telemetry", "unbind_device", DEV1.public)
    assert not blk.rt.roles.has(DEV1.public, "Device")
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV1, 1, temps()))
    assert err(e) == "Telemetry.UnknownDevice"
    blk.dispatch(signed(OWNER), "Telemetry", "bind_device", 0, DEV1.public, None)
    with pytest.raises(DispatchError) as e:
        submit(blk, c)
    assert err(e) == "Telemetry.DuplicateBatch"


# --------------------------------------------------------------------------- batch flags


def test_out_of_range_from_the_public_summary(blk: Any) -> None:
    readings = [
        (TEMP, NOW - 5_000, 20_000),
        (TEMP, NOW - 4_000, 95_000),  # above max
        (TEMP, NOW - 2_000, -25_000),  # below min
        (GOOD, NOW - 2_000, 10**12),  # private, and no envelope: never out of range
    ]
    evs = submit(blk, batch(blk, DEV1, 0, readings))
    assert flags(blk, evs) == [(TEMP, "OutOfRange")]
    ev = next(e for e in evs if e.name == "BatchFlagged")
    assert blk.args(ev) == {
        "twin": 0, "device": DEV1.public, "seq": 0, "metric": TEMP, "flag": "OutOfRange"
    }  # fmt: skip
    accepted = next(e for e in evs if e.name == "BatchAccepted")
    assert blk.args(accepted)["flagged"] == 3  # the summary's readings
    # Flagged batches are kept: committed by the root and counted in the aggregates.
    assert stored(blk) == recompute(readings)
    assert blk.rt.telemetry.aggregate(0, TEMP, NOW - WINDOW).flagged == 3
    assert blk.rt.telemetry.batch(DEV1.public, 0).flagged == 3
    # Within the envelope: nothing flagged.
    evs = submit(blk, batch(blk, DEV1, 1, temps(start=NOW - 900, n=2, step=100)))
    assert flags(blk, evs) == []


def test_stale_and_future_batches(blk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "DEFAULT_MAX_AGE_MS", 70_000)
    blk.dispatch(signed(OWNER), "Telemetry", "set_capture_config", 0, TEMP, 0, 60_000)
    cases = [
        (temps(start=NOW - 60_000, n=1), []),  # exactly max_age old: fine
        (temps(start=NOW - 60_001, n=1), [(0, "Stale")]),
        ([(TEMP, NOW + MAX_FUTURE_DRIFT_MS, 20_000)], []),  # at the drift limit: fine
        ([(TEMP, NOW + MAX_FUTURE_DRIFT_MS + 1, 20_000)], [(0, "FromFuture")]),
        # Without a public metric, the default max age applies.
        ([(GOOD, NOW - 70_001, 1)], [(0, "Stale")]),
        ([(GOOD, NOW - 60_001, 1)], []),
    ]
    for seq, (readings, expected) in enumerate(cases):
        evs = submit(blk, batch(blk, DEV1, seq, readings))
        assert flags(blk, evs) == expected, readings
        accepted = next(e for e in evs if e.name == "BatchAccepted")
        assert blk.args(accepted)["flagged"] == (len(readings) if expected else 0)
    assert blk.rt.telemetry.last_reading(DEV1.public, TEMP) == (
        NOW + MAX_FUTURE_DRIFT_MS + 1, 20_000
    )  # fmt: skip


# --------------------------------------------------------------------------- reading proofs


def test_selective_disclosure_of_one_reading(blk: Any) -> None:
    readings = temps(start=NOW - 7_000, n=7)
    submit(blk, batch(blk, DEV1, 0, readings))
    rec = blk.rt.telemetry.batch(DEV1.public, 0)
    root = rec.root
    assert rec.count == 7  # the verifier takes the count from chain, next to the root
    for i, r in enumerate(readings):
        assert verify_reading(root, r, i, rec.count, reading_proof(readings, i))
    proof = reading_proof(readings, 3)
    m, ts, v = readings[3]
    assert not verify_reading(root, (m, ts, v + 1), 3, 7, proof)
    assert not verify_reading(root, (m, ts + 1, v), 3, 7, proof)
    assert not verify_reading(root, readings[3], 4, 7, proof)
    assert not verify_reading(root, readings[6], 6, 8, reading_proof(readings, 6))
    assert not verify_reading(root, readings[3], 3, 7, [b"\x00" * 32, *proof[1:]])
    assert not verify_reading(root, (TEMP, -1, 0), 3, 7, proof)  # not even encodable


# --------------------------------------------------------------------------- submit errors


def test_submit_errors(blk: Any) -> None:
    blk.dispatch(signed(OWNER), "Telemetry", "unbind_device", DEV2.public)
    t = blk.rt.telemetry
    empty = batch(blk, DEV1, 0, temps())
    empty.count = 0
    backwards = forge(blk, DEV1, batch(blk, DEV1, 0, temps()), first_ts=NOW - 1)
    s = MetricSummary(TEMP, 2, 1, 5, 6, NOW - 1_000, 5)
    bad_summaries = [
        s._replace(count=6),  # more than the batch's readings
        s._replace(last_ts=NOW - 5_001),  # outside the span
        s._replace(last=6),  # above max
        s._replace(sum=11),  # more than count * max
        s._replace(sum=1),  # less than count * min
    ]
    cases = [
        (NOBODY, [batch(blk, DEV1, 0, temps())], "NotGateway"),
        (OWNER, [batch(blk, DEV1, 0, temps())], "NotGateway"),
        (GW, [], "EmptyBatch"),
        (GW, [empty], "EmptyBatch"),
        (GW, [batch(blk, DEV3, 0, temps())], "UnknownDevice"),
        (GW, [batch(blk, DEV2, 0, temps())], "UnknownDevice"),
        (GW, [batch(blk, DEV1, 0, [(999, NOW, 1)], public={999})], "UnknownMetric"),
        (GW, [batch(blk, DEV1, 0, [(GOOD, NOW, 1)], public={GOOD})], "NotPublic"),
        (GW, [batch(blk, DEV1, 0, [(TEMP, NOW - 1, 1), (TEMP, NOW, 1)])], "SpansWindows"),
        (GW, [backwards], "BadSummary"),
        *(
            (GW, [forge(blk, DEV1, batch(blk, DEV1, 0, temps()), public=(bad,))], "BadSummary")
            for bad in bad_summaries
        ),
        # Two summaries whose counts add up to more than the batch's readings.
        (
            GW,
            [
                forge(
                    blk,
                    DEV1,
                    batch(blk, DEV1, 0, temps(n=3)),
                    public=(
                        MetricSummary(TEMP, 2, 1, 1, 2, NOW - 4_000, 1),
                        MetricSummary(tp.VIBRATION, 2, 1, 1, 2, NOW - 4_000, 1),
                    ),
                )
            ],
            "BadSummary",
        ),
    ]
    assert t.public_metrics(0) >= {TEMP, tp.VIBRATION}
    before = snapshot(blk)
    for who, batches, error in cases:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Telemetry", "submit", batches)
        assert err(e) == f"Telemetry.{error}", batches
    assert snapshot(blk) == before
    # A private metric's readings are the archive's business: the chain takes the commitment.
    submit(blk, batch(blk, DEV1, 0, [(999, NOW - 1, 1), (GOOD, NOW - 1, 1)]))


def test_pinned_gateway(blk: Any) -> None:
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV2, 0, temps()), gw=GW)
    assert err(e) == "Telemetry.WrongGateway"
    submit(blk, batch(blk, DEV2, 0, temps()), gw=GW2)


def test_revoked_device_role_stops_its_batches(blk: Any) -> None:
    blk.dispatch(Origin.root(), "Roles", "force_revoke", DEV1.public, "Device")
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV1, 0, temps()))
    assert err(e) == "Telemetry.UnknownDevice"


@pytest.mark.parametrize("state", ["Manufactured", "Decommissioned"])
def test_twin_must_be_operational(blk: Any, state: str) -> None:
    t = blk.rt.equipment.Twins.get(0)
    t.lifecycle = state
    blk.rt.equipment.Twins.insert(0, t)
    with pytest.raises(DispatchError) as e:
        submit(blk, batch(blk, DEV1, 0, temps()))
    assert err(e) == "Telemetry.TwinNotOperational"


# --------------------------------------------------------------------------- later disclosure


def test_disclose_and_withdraw(blk: Any) -> None:
    t = blk.rt.telemetry
    evs = owner_call(blk, "disclose", 0, GOOD, 1_000, 2_000, AUDITOR.public)
    assert blk.args(evs[0]) == {
        "twin": 0, "id": 0, "metric": GOOD, "from_ms": 1_000, "to_ms": 2_000,
        "reader": AUDITOR.public,
    }  # fmt: skip
    owner_call(blk, "disclose", 0, ENERGY, 0, 10_000, None)
    assert [(i, g.metric, g.reader) for i, g in t.grants(0)] == [
        (0, GOOD, AUDITOR.public),
        (1, ENERGY, None),
    ]
    assert t.grants(0)[0][1].at == NOW
    evs = owner_call(blk, "withdraw_disclosure", 0, 0)
    assert blk.args(evs[0]) == {"twin": 0, "id": 0}
    assert [i for i, _ in t.grants(0)] == [1]
    assert t.GrantIds.get(0) == (2, 1)
    for who, args, error in [
        (NOBODY, (0, GOOD, 0, 1, None), "NotOwner"),
        (OWNER, (9, GOOD, 0, 1, None), "UnknownTwin"),
        (OWNER, (0, 999, 0, 1, None), "UnknownMetric"),
        (OWNER, (0, GOOD, 2, 1, None), "InvalidRange"),
    ]:
        with pytest.raises(DispatchError) as e:
            owner_call(blk, "disclose", *args, who=who)
        assert err(e) == f"Telemetry.{error}"
    for who, args, error in [
        (NOBODY, (0, 1), "NotOwner"),
        (OWNER, (0, 0), "UnknownGrant"),
        (OWNER, (1, 1), "UnknownGrant"),
    ]:
        with pytest.raises(DispatchError) as e:
            owner_call(blk, "withdraw_disclosure", *args, who=who)
        assert err(e) == f"Telemetry.{error}"


def test_grants_per_twin_are_bounded(blk: Any) -> None:
    for i in range(tt.MAX_GRANTS - 1):
        owner_call(blk, "disclose", 0, GOOD, i, i, None)
    owner_call(blk, "disclose", 0, GOOD, 0, 0, None)
    with pytest.raises(DispatchError) as e:
        owner_call(blk, "disclose", 0, GOOD, 0, 0, None)
    assert err(e) == "Telemetry.TooManyGrants"
    owner_call(blk, "withdraw_disclosure", 0, 3)
    owner_call(blk, "disclose", 0, GOOD, 0, 0, None)
    assert blk.rt.telemetry.GrantIds.get(0) == (tt.MAX_GRANTS + 1, tt.MAX_GRANTS)


def test_may_read(blk: Any) -> None:
    t = blk.rt.telemetry
    fac = blk.rt.facility
    f = fac.Facilities.get(0)
    f.verification = Verification(AUDITOR.public, b"\x01" * 32, True, 0, NOW + 5_000)
    fac.Facilities.insert(0, f)

    def may(who: Keypair, metric: int | None = GOOD, span: tuple[int, int] = (1_000, 2_000),
            now: int = NOW, twin: int = 0) -> bool:  # fmt: skip
        return t.may_read(twin, metric, who.public, *span, now)

    assert may(OWNER) and may(OWNER, None)
    assert not may(NOBODY) and not may(OPERATOR) and not may(OWNER, twin=9)
    # The facility's auditor, while its verification runs.
    assert may(AUDITOR) and may(AUDITOR, None)
    assert not may(AUDITOR, now=NOW + 5_000)
    assert not may(AUDITOR, twin=1)  # twin 1 is in no facility
    # A READ_TELEMETRY right, unexpired at the time asked; not another right.
    blk.dispatch(
        signed(OWNER), "Equipment", "grant_access", 0, ALICE.public, READ_TELEMETRY, NOW + 10
    )
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", 0, BOB.public, OPERATE, FAR)
    assert may(ALICE) and may(ALICE, None) and not may(ALICE, now=NOW + 10)
    assert not may(BOB)
    # A grant covers its metric and range, for its reader or everyone.
    owner_call(blk, "disclose", 0, GOOD, 1_000, 2_000, CHARLIE.public)
    assert may(CHARLIE) and may(CHARLIE, span=(1_500, 1_500))
    assert not may(CHARLIE, span=(999, 2_000)) and not may(CHARLIE, span=(1_000, 2_001))
    assert not may(CHARLIE, ENERGY) and not may(CHARLIE, None) and not may(NOBODY)
    owner_call(blk, "disclose", 0, ENERGY, 0, 5_000, None)
    assert may(NOBODY, ENERGY) and may(CHARLIE, ENERGY) and not may(NOBODY, ENERGY, (0, 5_001))
    owner_call(blk, "withdraw_disclosure", 0, 1)
    assert not may(NOBODY, ENERGY)


# --------------------------------------------------------------------------- anchored results


def test_anchor(blk: Any) -> None:
    t = blk.rt.telemetry
    digest = b"\x42" * 32
    evs = owner_call(blk, "anchor", 0, tt.ANCHOR_KPI, 0, NOW, digest)
    assert blk.args(evs[0]) == {
        "twin": 0, "id": 0, "kind": 0, "from_ms": 0, "to_ms": NOW, "digest": digest,
        "by": OWNER.public,
    }  # fmt: skip
    owner_call(blk, "anchor", 0, tt.ANCHOR_ALERT, NOW, NOW, digest, who=OPERATOR)
    assert [(i, a.kind, a.by, a.block) for i, a in t.anchors(0)] == [
        (0, 0, OWNER.public, 1),
        (1, 1, OPERATOR.public, 1),
    ]
    for who, args, error in [
        (NOBODY, (0, 0, 0, 1, digest), "NotOwnerOrOperator"),
        (OPERATOR, (1, 0, 0, 1, digest), "NotOwnerOrOperator"),  # not in its facility
        (OWNER, (9, 0, 0, 1, digest), "UnknownTwin"),
        (OWNER, (0, 0, 2, 1, digest), "InvalidRange"),
    ]:
        with pytest.raises(DispatchError) as e:
            owner_call(blk, "anchor", *args, who=who)
        assert err(e) == f"Telemetry.{error}"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Telemetry", "anchor", 0, 0, 0, 1, digest)
    assert err(e) == "System.BadOrigin"
    # An operator who lost the role no longer speaks for the facility.
    blk.dispatch(Origin.root(), "Roles", "force_revoke", OPERATOR.public, "FacilityOperator")
    with pytest.raises(DispatchError) as e:
        owner_call(blk, "anchor", 0, 0, 0, 1, digest, who=OPERATOR)
    assert err(e) == "Telemetry.NotOwnerOrOperator"


# --------------------------------------------------------------------------- binding & config


def test_bind_device(blk: Any) -> None:
    evs = blk.dispatch(signed(OWNER), "Telemetry", "bind_device", 1, DEV3.public, GW.public)
    assert blk.names(evs) == ["Roles.RoleGranted", "Telemetry.DeviceBound"]
    assert blk.rt.roles.Grants.get(DEV3.public, "Device").granted_by == OWNER.public
    assert blk.rt.telemetry.TwinDevices.get(1, DEV3.public)
    for who, twin, dev, error in [
        (NOBODY, 1, NOBODY.public, "NotOwner"),
        (OWNER, 7, NOBODY.public, "UnknownTwin"),
        (OWNER, 1, b"\xff" * 32, "InvalidDeviceKey"),
        (OWNER, 1, DEV1.public, "DeviceAlreadyBound"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Telemetry", "bind_device", twin, dev, None)
        assert err(e) == f"Telemetry.{error}"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(NOBODY), "Telemetry", "unbind_device", DEV3.public)
    assert err(e) == "Telemetry.NotOwner"


def test_device_limit_per_twin(blk: Any) -> None:
    for i in range(MAX_DEVICES_PER_TWIN):
        blk.dispatch(
            signed(OWNER),
            "Telemetry",
            "bind_device",
            1,
            Keypair.from_dev_name(f"d{i}").public,
            None,
        )
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Telemetry", "bind_device", 1, DEV3.public, None)
    assert err(e) == "Telemetry.TooManyDevices"


def test_twin_batch_log_spans_chunks(blk: Any) -> None:
    t = blk.rt.telemetry
    refs = [(bytes([i % 3]) * 32, i) for i in range(2 * tt.BATCH_LOG_CHUNK + 5)]
    for i, (dev, seq) in enumerate(refs):
        ingest.log_batch(t, 0, dev, seq)
        assert t.twin_batch_count(0) == i + 1 and t.twin_batch(0, i) == (dev, seq)
    assert [t.twin_batch(0, n) for n in range(len(refs))] == refs
    assert t.twin_batch(0, len(refs)) is None and t.twin_batch_count(1) == 0
    # Two full chunks are stored apart; the log keeps only the 5 since.
    assert sorted(k for k, _ in t.TwinBatchChunks.iter_prefix(0)) == [0, 1]
    assert t.TwinBatchLog.get(0) == (
        len(refs),
        b"".join(d + s.to_bytes(8, "big") for d, s in refs[-5:]),
    )


def test_capture_config(blk: Any) -> None:
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", 0, ALICE.public, OPERATE, FAR)
    blk.dispatch(signed(ALICE), "Telemetry", "set_capture_config", 0, TEMP, 500, 3_600_000)
    blk.dispatch(signed(ALICE), "Telemetry", "set_capture_config", 0, GOOD, 7, 9_000)
    tel = blk.rt.telemetry
    c = tel.capture(0, TEMP)
    assert (c.min_interval_ms, c.max_age_ms) == (500, 3_600_000)
    assert tel.capture(0, GOOD) == tt.CaptureConfig(7, 9_000)  # one table, both entries
    assert tel.capture(0, ENERGY) == tel.capture(1, TEMP) == tt.DEFAULT_CAPTURE
    for who, metric, max_age, error in [
        (NOBODY, TEMP, 1, "NoPermission"),
        (OWNER, 999, 1, "UnknownMetric"),
        (OWNER, TEMP, 0, "InvalidCaptureConfig"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Telemetry", "set_capture_config", 0, metric, 0, max_age)
        assert err(e) == f"Telemetry.{error}"


def test_register_metric(blk: Any) -> None:
    blk.dispatch(Origin.root(), "Telemetry", "register_metric", 100, "torque", "N.m", 2, "Gauge")
    assert blk.rt.telemetry.Metrics.get(100).name == "torque"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Telemetry", "register_metric", 100, "x", "", 0, "Gauge")
    assert err(e) == "Telemetry.MetricExists"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Telemetry", "register_metric", 101, "x", "", 0, "Gauge")
    assert err(e) == "System.BadOrigin"


# --------------------------------------------------------------------------- block pre-verification


def decoded(chain: Any, raws: list[bytes]) -> list[tuple[bytes, Any, Any, list[Any]]]:
    """What the executive holds for a block's extrinsics: signer, pallet, call, decoded args."""
    checked = [chain.ex._check(raw) for raw in raws]
    return [(c.xt.signed.signer, c.pallet, c.call, c.args) for c in checked]


def test_pre_verify_checks_a_block_in_one_call(chain: Any, verify_calls: list[int]) -> None:
    xts = [
        chain.sign(GW, chain.call("Telemetry", "submit", [batch(chain, DEV1, 0, temps())]), 0),
        chain.sign(
            GW, chain.call("Telemetry", "submit", [batch(chain, DEV1, 1, temps(NOW - 500, 1))]), 1
        ),
        chain.sign(GW2, chain.call("Telemetry", "submit", [batch(chain, DEV2, 0, temps())]), 0),
        chain.sign(GW, chain.call("System", "remark", b"x"), 2),
    ]
    chain.start_block(SLOT)
    items = decoded(chain, xts)
    calls = verify_calls
    assert chain.rt.telemetry.pre_verify([item[1:] for item in items]) == 3
    assert calls == [3]
    # Applying the same decoded calls verifies no device signature again.
    for signer, pallet, cd, args in items:
        chain.rt.dispatch(Origin.signed(signer), pallet, cd, args)
    assert calls == [3]
    assert chain.rt.telemetry.device(DEV1.public).next_seq == 2


def test_pre_verify_never_vouches_for_a_bad_or_changed_batch(chain: Any) -> None:
    good = batch(chain, DEV1, 0, temps())
    bad = batch(chain, DEV1, 1, temps(NOW - 500, 1))
    bad.signature = bytes(64)
    chain.start_block(SLOT)
    t = chain.rt.telemetry
    cd = t.calls_by_name["submit"]
    assert t.pre_verify([(t, cd, [[good, bad]])]) == 2
    with pytest.raises(DispatchError) as e:
        submit(chain, bad)
    assert err(e) == "Telemetry.BadDeviceSignature"
    # Same device, seq and signature but another root: the verdict is not reused.
    forged = Commitment(**{**vars(good), "root": batch_root(temps(value=99))})
    with pytest.raises(DispatchError) as e:
        submit(chain, forged)
    assert err(e) == "Telemetry.BadDeviceSignature"
    submit(chain, good)


def test_collect_and_note_let_the_executive_merge_batches(chain: Any) -> None:
    b = batch(chain, DEV1, 0, temps())
    chain.start_block(SLOT)
    t = chain.rt.telemetry
    triples = t.extra_signatures([(t, t.calls_by_name["submit"], [[b]])])
    msg = commitment_message(
        chain.rt.genesis_hash, DEV1.public, 0, 0, 5, NOW - 5_000, NOW - 1_000, b.root, b.public
    )
    assert triples == [(DEV1.public, msg, b.signature)]
    t.note_verified(triples, [True])
    assert triples[0] in chain.rt.block.notes["telemetry.verified"]


def test_device_signatures_checked_on_admission_are_not_checked_again(
    chain: Any, verify_calls: list[int]
) -> None:
    good = chain.sign(GW, chain.call("Telemetry", "submit", [batch(chain, DEV1, 0, temps())]), 0)
    forged = batch(chain, DEV2, 0, temps())
    forged.signature = bytes(64)
    bad = chain.sign(GW2, chain.call("Telemetry", "submit", [forged]), 0)
    batches = verify_calls
    # Pool admission: both gateways' signatures and both devices' in one call. A bad device
    # signature is no verdict on the sender: its extrinsic fails on chain.
    oks = chain.ex.signature_batch(chain.state, [good, bad], chain.head_number, chain.head_hash)
    assert oks == [True, True] and batches == [4]
    # Authoring: the good batch is known; only the bad one is checked (and fails) again.
    batches.clear()
    outs = chain.produce(good, bad)
    assert outs[0].success and not outs[1].success
    assert f"{outs[1].error.module}.{outs[1].error.error}" == "Telemetry.BadDeviceSignature"
    assert sorted(batches) == [1, 1, 1]  # each extrinsic signature, and the bad device one
    # Import of that block elsewhere in this process: one call, without the good device.
    batches.clear()
    result = chain.ex.execute_block(chain.pre_states[-1], chain.blocks[-1])
    assert [o.success for o in result.outcomes[-2:]] == [True, False]
    # Two extrinsic signatures and the bad device one, which its submit checks again to fail.
    assert batches == [3, 1]
    # Without the memo the import checks both devices.
    forget_good_signatures()
    batches.clear()
    chain.ex.execute_block(chain.pre_states[-1], chain.blocks[-1])
    assert batches == [4, 1]


def test_pre_verified_batch_changed_in_place_is_checked_again(chain: Any) -> None:
    b = batch(chain, DEV1, 0, temps())
    chain.start_block(SLOT)
    t = chain.rt.telemetry
    t.pre_verify([(t, t.calls_by_name["submit"], [[b]])])
    b.count += 1  # the very object that was checked
    with pytest.raises(DispatchError) as e:
        submit(chain, b)
    assert err(e) == "Telemetry.BadDeviceSignature"


@pytest.mark.parametrize(
    ("devices", "match"),
    [
        ([{"device": "//Device3", "twin": 9}], "unknown twin"),
        ([{"device": "//Device1", "twin": 1}], "twice"),
    ],
)
def test_genesis_rejects_bad_devices(make_chain: Any, devices: list[Any], match: str) -> None:
    cfg = world()
    cfg["telemetry"]["devices"] += devices
    with pytest.raises(ValueError, match=match):
        make_chain(extra=cfg)


def test_a_later_window_closes_the_open_one_for_every_listener(
    blk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int, int, int, dict[int, int]]] = []

    def spy(self: Any, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        seen.append((self.name, twin, start, window_ms, {m: a.count for m, a in aggs.items()}))

    for p in blk.rt.telemetry.config.window_listeners:
        monkeypatch.setattr(type(p), "on_window_closed", spy)
    w0 = NOW - NOW % WINDOW - 2 * WINDOW
    owner_call(blk, "set_disclosure", 0, GOOD, True)
    first = [(TEMP, w0 + 1_000, 20_000), (ENERGY, w0 + 2_000, 5), (TEMP, w0 + 3_000, 20_100)]
    first += [(GOOD, w0 + 3_000, 4)]
    submit(blk, batch(blk, DEV1, 0, first, public=blk.rt.telemetry.public_metrics(0)))
    owner_call(blk, "set_disclosure", 0, GOOD, False)  # private again before the close
    assert blk.rt.telemetry.OpenWindow.get(0) == w0
    assert seen == []  # still open
    submit(blk, batch(blk, DEV1, 1, [(TEMP, w0 + 4_000, 20_200)]))
    assert seen == []  # same window: still open
    evs = submit(blk, batch(blk, DEV1, 2, [(TEMP, w0 + WINDOW + 500, 20_300)]))
    assert seen == [] and blk.rt.telemetry.queued_closes() == 1  # for the next block's start
    evs += blk.close_windows()
    assert blk.rt.telemetry.queued_closes() == 0
    names = ["Benchmark", "Maintenance", "Analytics", "Simulation"]  # wired in this order
    # Only what is public at the close: energy never was, good units are no longer.
    assert seen == [(n, 0, w0, WINDOW, {TEMP: 3}) for n in names]
    assert [blk.args(e) for e in evs if e.name == "WindowClosed"] == [{"twin": 0, "start": w0}]
    assert blk.rt.telemetry.OpenWindow.get(0) == w0 + WINDOW
    # A late batch for the closed window updates its aggregate but closes nothing again.
    seen.clear()
    submit(blk, batch(blk, DEV1, 3, [(TEMP, w0 + 9_000, 7)]))
    assert blk.rt.telemetry.aggregate(0, TEMP, w0).count == 4
    assert seen == [] and blk.rt.telemetry.queued_closes() == 0
    assert blk.rt.telemetry.OpenWindow.get(0) == w0 + WINDOW


def test_window_closes_are_weighed_where_they_run(blk: Any) -> None:
    """A submit's weight covers queueing a close per batch (the bound) and each public
    summary, whatever its readings; the block whose start runs a close counts
    W_WINDOW_CLOSE for it."""
    submit_call = blk.rt.telemetry.calls_by_name["submit"]
    w0 = NOW - NOW % WINDOW - 2 * WINDOW

    def weight(*batches: Commitment) -> int:
        return submit_call.weigh(blk.rt, [list(batches)])

    first = batch(blk, DEV1, 0, [(TEMP, w0 + 1_000, 20_000)])
    base = tw.W_SUBMIT_BASE + tw.W_PER_BATCH + tw.W_CLOSE_QUEUE + tw.W_PER_SUMMARY
    assert weight(first) == base
    submit(blk, first)
    later = batch(blk, DEV1, 1, [(TEMP, w0 + WINDOW, 20_000), (TEMP, w0 + WINDOW + 1, 20_000)])
    other = batch(blk, DEV2, 0, [(TEMP, w0 + WINDOW + 1, 20_000), (tp.PRESSURE, w0 + WINDOW, 1)])
    private = batch(blk, DEV2, 0, [(GOOD, w0 + WINDOW + 1, 1)] * 100)
    assert weight(later) == base
    assert weight(later, other) == 2 * base - tw.W_SUBMIT_BASE + tw.W_PER_SUMMARY
    assert weight(private) == base - tw.W_PER_SUMMARY
    future = batch(blk, DEV1, 1, [(TEMP, NOW + MAX_FUTURE_DRIFT_MS + WINDOW, 20_000)])
    evs = submit(blk, future)  # a reading from the future closes nothing
    assert "Telemetry.WindowClosed" not in blk.names(evs)
    assert blk.rt.telemetry.OpenWindow.get(0) == w0
    assert blk.rt.telemetry.on_initialize(2) == tw.W_CLOSE_INIT  # nothing queued
    submit(blk, batch(blk, DEV1, 2, [(TEMP, w0 + WINDOW, 20_000)]))
    assert blk.rt.telemetry.queued_closes() == 1
    assert blk.rt.telemetry.on_initialize(2) == tw.W_CLOSE_INIT + tw.W_WINDOW_CLOSE


def _wave_world(n: int) -> dict[str, Any]:
    """``n`` active twins, one device each (//Wave0, //Wave1, ...), any gateway."""
    w = world()
    twin = {"manufacturer": "//Maker", "owner": "//Owner", "class": "cnc-mill", "model": "M"}
    w["equipment"]["twins"] = [
        twin | {"serial": f"W{i}", "lifecycle": "Active", "envelope": [ENVELOPE]} for i in range(n)
    ]
    w["telemetry"]["devices"] = [{"device": f"//Wave{i}", "twin": i} for i in range(n)]
    return w


def test_a_wave_of_closes_spreads_over_blocks_oldest_first(
    make_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twins' windows end together; their closes run at most MAX_CLOSES_PER_BLOCK a block,
    in the order they were queued, each counted in the weight of the block that runs it."""
    monkeypatch.setattr(windows, "MAX_CLOSES_PER_BLOCK", 2)
    chain = make_chain(extra=_wave_world(5))
    devs = [Keypair.from_dev_name(f"Wave{i}") for i in range(5)]
    tel = chain.rt.telemetry
    w0 = NOW - NOW % WINDOW - 2 * WINDOW

    def feed(seq: int, ts: int, order: list[int]) -> None:
        bs = [batch(chain, devs[i], seq, [(TEMP, ts + i, 20_000)], twin=i) for i in order]
        chain.start_block(SLOT + seq)
        chain.apply(chain.sign(GW, chain.call("Telemetry", "submit", bs)))
        chain.finish_block()

    def closed() -> list[tuple[str, int]]:
        evs = chain.events()
        return [(e["phase"], e["args"]["twin"]) for e in evs if e["event"] == "WindowClosed"]

    feed(0, w0 + 1_000, [0, 1, 2, 3, 4])
    feed(1, w0 + WINDOW + 1_000, [3, 1, 4, 0, 2])  # queued in twin order, as the submit sorts
    assert closed() == [] and tel.queued_closes() == 5
    weights: list[int] = []
    order: list[tuple[str, int]] = []
    for slot in range(SLOT + 2, SLOT + 6):
        chain.start_block(slot)
        chain.finish_block()
        weights.append(chain.view().system.BlockWeight.get())
        order += closed()
    assert tel.queued_closes() == 0
    assert order == [("initialization", i) for i in range(5)]
    base = weights[-1]  # nothing left to close
    assert weights[:3] == [base + 2 * tw.W_WINDOW_CLOSE] * 2 + [base + tw.W_WINDOW_CLOSE]
    # Every twin's window closed exactly once, with its aggregates.
    assert sorted(chain.rt.benchmark.Twins.get(i).windows for i in range(5)) == [1] * 5


# --------------------------------------------------------------------------- packed encodings


def test_window_aggregates_and_last_readings_round_trip_packed() -> None:
    aggs = {
        TEMP: tt.Aggregate(3, -7, 9, -(2**100), 4, NOW, 1),
        GOOD: tt.Aggregate(1, 5, 5, 2**120, 5, NOW + 1, 0),
    }
    wtype = tt.WindowAggregates()
    assert wtype.decode_stored(wtype.encode(aggs)) == aggs
    assert list(wtype.decode_stored(wtype.encode(aggs))) == [TEMP, GOOD]  # sorted by metric
    with pytest.raises(CodecError):
        wtype.encode({TEMP: tt.Aggregate(1, 0, 0, 2**127, 0, 0, 0)})  # sum over i128
    with pytest.raises(CodecError):
        wtype.encode({TEMP: (1, 2)})
    ltype = tt.LastReadings()
    lasts = {GOOD: (NOW, -1), TEMP: (NOW - 5, 20_000)}
    assert ltype.decode_stored(ltype.encode(lasts)) == lasts
    with pytest.raises(CodecError):
        ltype.from_wire(b"\x00" * 19)
    mtype = tt.MetricSet()
    assert mtype.decode_stored(mtype.encode({9, 1, 3})) == frozenset({1, 3, 9})
    assert mtype.to_wire([3, 1]) == b"\x00\x01\x00\x03"
    for bad in (b"\x00\x03\x00\x01", b"\x00\x01\x00\x01", b"\x00", b"\x00\x01" * 33):
        with pytest.raises(CodecError):
            mtype.from_wire(bad)
    with pytest.raises(CodecError):
        mtype.to_wire(set(range(33)))


def test_a_failing_close_is_reverted_and_reported_not_the_block(
    make_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook that raises (a bug, an overflow) in on_initialize would fail every block: the
    close is reverted alone, reported, and the queue moves on."""
    chain = make_chain(extra=_wave_world(2))
    devs = [Keypair.from_dev_name(f"Wave{i}") for i in range(2)]
    w0 = NOW - NOW % WINDOW - 2 * WINDOW
    for seq, ts in ((0, w0 + 1_000), (1, w0 + WINDOW + 1_000)):
        bs = [batch(chain, devs[i], seq, [(TEMP, ts, 20_000)], twin=i) for i in range(2)]
        chain.start_block(SLOT + seq)
        assert chain.apply(chain.sign(GW, chain.call("Telemetry", "submit", bs))).success
        chain.finish_block()
    assert chain.rt.telemetry.queued_closes() == 2
    real = type(chain.rt.benchmark).on_window_closed

    def flaky(self: Any, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        real(self, twin, start, window_ms, aggs)  # its writes must be reverted too
        if twin == 0:
            raise ValueError("a bug after the writes")

    monkeypatch.setattr(type(chain.rt.benchmark), "on_window_closed", flaky)
    chain.start_block(SLOT + 2)
    chain.finish_block()
    evs = [(e["event"], e["args"]["twin"]) for e in chain.events() if "Window" in e["event"]]
    assert evs == [("WindowCloseFailed", 0), ("WindowClosed", 1)]
    assert chain.rt.telemetry.queued_closes() == 0
    assert chain.rt.benchmark.Twins.get(0) is None and chain.rt.benchmark.Twins.get(1) is not None
