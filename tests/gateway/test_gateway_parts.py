"""Gateway parts without a node: payload checks, the spool across a reopen, back-pressure
with the simulator, configuration errors, and the devnet's domain genesis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgpack
import pytest
from gateway.offline import offline_gateway

from twinchain.devnet import manager
from twinchain.gateway import config as gwconfig
from twinchain.gateway import sources
from twinchain.gateway.core import Gateway
from twinchain.gateway.cutting import take
from twinchain.gateway.payloads import Metrics, Rejected, decode_body, parse_message
from twinchain.gateway.spool import Spool, XtRow
from twinchain.node.chain_spec import ChainSpec
from twinchain.protocol.telemetry import DEFAULT_METRICS

METRICS = Metrics({m[0]: (m[1], m[3]) for m in DEFAULT_METRICS})


def test_payloads_decode_scale_and_refuse_with_a_reason() -> None:
    body = json.dumps(
        {
            "device": "press-1",
            "readings": [
                {"metric": "temperature", "ts": 10, "value": 21.5},
                {"metric": 4, "ts": 10, "raw": 1200},
                [2, 11, 1500],
                {"metric": "vibration_rms", "ts": 12, "value": "0.0005"},  # rounds half-even
            ],
        }
    ).encode()
    dev, rs = parse_message(decode_body(body, "auto"), METRICS, None)
    assert dev == "press-1"
    assert rs == [(1, 10, 21_500), (4, 10, 1200), (2, 11, 1500), (2, 12, 0)]
    packed = msgpack.packb({"metric": 1, "ts": 5, "value": -3.25})
    assert parse_message(decode_body(packed, "auto"), METRICS, "pump-1") == (
        "pump-1",
        [(1, 5, -3250)],
    )

    def reason(obj: object, topic: str | None = None) -> str:
        with pytest.raises(Rejected) as e:
            parse_message(obj, METRICS, topic)
        return e.value.reason

    assert reason({"metric": 1, "ts": 1, "raw": 1}) == "unknown_device"
    assert reason({"device": "d", "metric": "nope", "ts": 1, "raw": 1}) == "unknown_metric"
    assert reason({"device": "d", "metric": 1, "ts": -1, "raw": 1}) == "malformed"
    assert reason({"device": "d", "metric": 1, "ts": 1, "raw": 2**63}) == "out_of_range"
    assert reason({"device": "d", "metric": 1, "ts": 1, "value": "nan"}) == "malformed"
    assert reason({"device": "d", "metric": 1, "ts": 1, "value": True}) == "malformed"
    assert reason({"device": "d", "readings": []}) == "malformed"
    assert reason([1, 2, 3]) == "malformed"
    for bad, fmt in ((b"{oops", "json"), (b"\xc1", "msgpack"), (b"\x92\x01", "auto")):
        with pytest.raises(Rejected) as e:
            decode_body(bad, fmt)
        assert e.value.reason == "malformed"


def test_take_splits_receive_runs() -> None:
    segs = [(100, 3), (200, 2), (300, 4)]
    assert take(segs, 0, 3) == [(100, 3)]
    assert take(segs, 2, 4) == [(100, 1), (200, 2), (300, 1)]
    assert take(segs, 8, 1) == [(300, 1)]


def test_spool_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.sqlite")
    dev = b"\x01" * 32
    ids = sp.ingest([(dev, [(1, 10, 5), (1, 11, 6)], 1000)], {(dev, 1): 11}, {"k": b"v"})
    sp.ingest([(dev, [(1, 12, 7)], 1001)], {(dev, 1): 12})
    rid = sp.store_batches(dev, [(0, 2, [(1000, 2)], b"body0", b"commit0")], ids[0], None, 1)
    assert rid is None
    sp.store_xt(XtRow(7, b"h" * 32, b"raw", 1, 1, 2), [sp.unpacked(10)[0].id])
    sp.close()

    sp = Spool(tmp_path / "s.sqlite")
    assert sp.get_meta("k") == b"v"
    assert sp.load_last_ts() == {(dev, 1): 12}
    assert [(r.readings, r.segs) for r in sp.load_pending()] == [([(1, 12, 7)], [(1001, 1)])]
    assert sp.seqs() == {dev: 1}
    (xt,) = sp.xts()
    assert (xt.nonce, xt.raw) == (7, b"raw")
    (b,) = sp.xt_batches(7)
    assert (b.seq, b.n, b.body, b.commit) == (0, 2, b"body0", b"commit0")
    sp.settle([b.id], [], [], [7], (dev, 0, 42), 42, 5000)
    assert sp.xts() == [] and sp.xt_batches(7) == []
    assert sp.counters()["readings_finalized"] == 2
    # Final, the batch stays (readings and all) until the archive holds it.
    (f,) = sp.to_archive()
    assert (f.id, f.final, f.final_ms, f.body) == (b.id, 42, 5000, b"body0")
    assert sp.unpacked(10) == []
    sp.close()
    sp = Spool(tmp_path / "s.sqlite")
    assert [r.id for r in sp.to_archive()] == [b.id]
    sp.archived([b.id])
    assert sp.to_archive() == [] and sp.counters()["readings_archived"] == 2
    # A remainder keeps the id of the last row it came from: it stays ahead of newer rows.
    p1 = sp.load_pending()[0].id
    (p2,) = sp.ingest([(dev, [(1, 13, 8)], 1002)], {(dev, 1): 13})
    assert sp.store_batches(dev, [], p1, ([(1001, 1)], [(1, 12, 7)]), 1) == p1
    assert [r.id for r in sp.load_pending()] == [p1, p2]
    sp.close()


def _gateway(tmp: Path, **batching: int) -> Gateway:
    return offline_gateway(tmp, **batching)


def test_back_pressure_bounds_the_spool_while_the_node_is_down(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, high_water=3000, low_water=1000)

    async def main() -> dict:
        await gw.open()
        runs = [sources.build(i, s) for i, s in enumerate(gw.cfg.sources)]
        task = asyncio.create_task(gw.run(runs))
        await asyncio.sleep(3.0)
        s = gw.status()
        gw.stop()
        await task
        return s

    s = asyncio.run(main())
    assert s["connected"] is False and s["backpressure"] is True
    # The simulator stops at the high-water mark (plus the ticks in hand), far below what
    # 3 s of an unpaced simulator would make.
    assert 3000 <= s["backlog"] <= 3000 + 400, s["backlog"]
    assert s["rejected"] == {}

    # Reopened: the same readings are there.
    gw2 = Gateway(gwconfig.load(tmp_path / "gateway.toml"))

    async def again() -> int:
        await gw2.open()
        n = gw2.state.backlog()
        gw2.stop()
        await gw2.run([])
        return n

    assert asyncio.run(again()) == s["backlog"]


def test_out_of_order_and_unknown_metrics_are_refused_and_counted(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)

    async def main() -> None:
        await gw.open()
        d = gw.intake.device_for("m1")
        readings = [(1, 100, 1), (1, 90, 2), (1, 100, 3), (99, 101, 4), (1, 101, 5)]
        ok = gw.intake.accept(d, readings, "t")
        await gw.intake.commit_queued()
        assert await ok == 2
        with pytest.raises(Rejected):
            gw.intake.device_for("ghost")

    asyncio.run(main())
    assert gw.state.stats.rejected == {"out_of_order": 2, "unknown_metric": 1}


def test_config_errors_are_typed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sources]]\ntype = "carrier-pigeon"\n')
    with pytest.raises(gwconfig.ConfigError, match="unknown source type"):
        gwconfig.load(bad)
    bad.write_text("[batching]\nmax_readings = 8193\n")  # the protocol's MAX_READINGS
    with pytest.raises(gwconfig.ConfigError, match="max_readings"):
        gwconfig.load(bad)
    bad.write_text("[batching]\nmax_readings_per_xt = 2097153\n")
    with pytest.raises(gwconfig.ConfigError, match="max_readings_per_xt"):
        gwconfig.load(bad)
    bad.write_text("not toml [")
    with pytest.raises(gwconfig.ConfigError):
        gwconfig.load(bad)


def test_devnet_domain_genesis_builds(tmp_path: Path) -> None:
    spec, nodes, gws = manager.plan_all(tmp_path, 2, 1000)
    storage = ChainSpec.from_json(json.loads((tmp_path / "spec.json").read_text()))
    assert storage.genesis_storage() == spec.genesis_storage()
    assert len(gws) == 2 and all(Path(g.config).exists() for g in gws)
    g = spec.genesis
    assert len(g["facility"]["facilities"]) == 2
    assert len(g["equipment"]["twins"]) == 6 and len(g["telemetry"]["devices"]) == 6
    cfg = gwconfig.load(gws[1].config)
    assert cfg.node == nodes[1].rpc_url and [d.twin for d in cfg.devices] == [3, 4, 5]
    assert cfg.gateway_keypair().public.hex() == gws[1].account[2:]
    assert all(n.multiaddr.endswith("/p2p/" + n.multiaddr.rsplit("/", 1)[1]) for n in nodes)


def test_the_in_flight_window_halves_when_slow_and_grows_when_fast(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, max_in_flight=16)
    sub = gw.submitter
    target = gw.cfg.batching.target_latency_s
    assert sub.window == 4
    sub.adapt_window([1.0] * 4)  # slow start: a window's worth settled in time doubles it
    assert sub.window == 8
    sub.adapt_window([1.0, target + 1])  # one too slow: half, and slow start is over
    assert sub.window == 4
    sub.adapt_window([target + 1])  # not twice within one target latency
    assert sub.window == 4
    sub.adapt_window([1.0] * 4)  # then a window's worth settled in time: one more
    assert sub.window == 5
    for _ in range(200):
        sub.adapt_window([0.5] * 8)
    assert sub.window == 16  # never above max_in_flight


def test_spliced_extrinsics_and_fast_batches_are_the_generic_bytes() -> None:
    """encode_batch and XtBuilder produce what codec and Extrinsic.sign would: the same
    canonical bytes, decodable, with signatures (CachedKeypair's) that verify."""
    import os

    from twinchain.gateway.encoding import (
        CachedKeypair,
        XtBuilder,
        encode_batch,
        encode_commitment,
    )
    from twinchain.primitives import codec
    from twinchain.primitives.keys import Keypair, verify
    from twinchain.primitives.types import Era, Extrinsic, signing_payload
    from twinchain.protocol.telemetry import DEFAULT_PUBLIC, Batch, Commitment, sign_batch

    genesis = os.urandom(32)
    device = CachedKeypair.of(Keypair.generate())
    assert type(device) is CachedKeypair
    bodies = []
    for seq, n in enumerate((1, 7, 256)):
        readings = [(1 + i % 15, 1_750_000_000_000 + i, (-1) ** i * i * 1000) for i in range(n)]
        batch = sign_batch(device, genesis, 3, seq, readings, public=DEFAULT_PUBLIC)
        c = batch.commitment()
        assert verify(device.public, c.message(genesis, 3), batch.signature)
        assert encode_batch(batch) == codec.encode(Batch.wire_type().to_wire(batch))
        body = encode_commitment(c)
        assert body == codec.encode(Commitment.wire_type().to_wire(c))
        bodies.append(body)
    gateway = CachedKeypair.of(Keypair.generate())
    xb = XtBuilder(gateway, genesis, 7, (12, 0))
    for nonce in (0, 1, 70_000):
        raw = xb.build(bodies, nonce)
        assert xb.spliced  # the first one was checked against Extrinsic.sign's encoding
        xt = Extrinsic.decode(raw)
        assert xt.encode() == raw
        assert (xt.call.pallet, xt.call.index) == (12, 0)
        assert xt.call.args == ([codec.decode(b) for b in bodies],)
        assert xt.signed is not None and xt.signed.nonce == nonce
        digest = signing_payload(xt.call, nonce, 0, Era.immortal(), genesis, 7, genesis)
        assert verify(gateway.public, digest, xt.signed.signature)
    # A difference from the generic path is noticed.
    assert not xb._same_as_generic(bodies, 0, b"\x90", b"\x00" * 64, raw)


def test_newest_timestamps_survive_without_a_row_per_commit(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.sqlite")
    a, b = b"\x01" * 32, b"\x02" * 32
    ids = sp.ingest([(a, [(1, 10, 0), (2, 11, 0)], 5), (b, [(1, 20, 0)], 5)])
    (more,) = sp.ingest([(a, [(1, 12, 0)], 6)])
    assert [r.id for r in sp.load_pending()] == [*ids, more]  # ids as stored
    assert sp.load_last_ts() == {(a, 1): 12, (a, 2): 11, (b, 1): 20}  # from pending rows
    # Batched, device a's readings leave pending: the table keeps their newest timestamps.
    sp.store_batches(a, [(0, 3, [(5, 2), (6, 1)], b"b", b"c")], more, None, 1, {1: 12, 2: 11})
    assert [r.device for r in sp.load_pending()] == [b]
    sp.close()
    sp = Spool(tmp_path / "s.sqlite")
    assert sp.load_last_ts() == {(a, 1): 12, (a, 2): 11, (b, 1): 20}
    sp.close()


def test_accept_many_checks_each_device_and_a_reopen_remembers(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)

    async def main() -> int:
        await gw.open()
        m1, m2 = gw.intake.device_for("m1"), gw.intake.device_for("m2")
        fut = gw.intake.accept_many(
            [(m1, [(1, 100, 1), (2, 100, 2)]), (m2, [(1, 100, 3), (1, 100, 4), (99, 101, 5)])],
            "t",
            meta={"k": b"v"},
        )
        await gw.intake.commit_queued()
        n = await fut
        gw.stop()
        await gw.run([])
        return n

    assert asyncio.run(main()) == 3
    stats = gw.state.stats
    assert stats.rejected == {"out_of_order": 1, "unknown_metric": 1}
    assert stats.received == {"t": 5} and stats.spooled == 3

    gw2 = Gateway(gwconfig.load(tmp_path / "gateway.toml"))

    async def again() -> int:
        await gw2.open()
        state = gw2.state
        assert await state.db(state.spool.get_meta, "k") == b"v"  # type: ignore[union-attr]
        m1 = gw2.intake.device_for("m1")
        fut = gw2.intake.accept(m1, [(1, 100, 1), (2, 101, 2)], "t")  # spooled before: 1
        await gw2.intake.commit_queued()
        n = await fut
        gw2.stop()
        await gw2.run([])
        return n

    assert asyncio.run(again()) == 1
    assert gw2.state.stats.rejected == {"out_of_order": 1}


def test_partial_batches_flush_together_just_before_each_slot(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    cut = gw.cutter
    assert (cut.b.slot_lead_ms, cut.b.max_delay_ms) == (300, 1000)
    assert not cut.flush_due(10_000)  # the slot length is not known before connecting
    gw.state.chain.slot_ms = 1000
    assert not cut.flush_due(10_000)  # the first call only finds the next flush point
    assert cut.next_flush_ms == 10_700  # 300 ms before the slot starting at 11,000
    assert not cut.flush_due(10_699)
    assert cut.flush_due(10_700)
    assert cut.next_flush_ms == 11_700
    assert not cut.flush_due(10_750)  # once a slot
    assert cut.flush_due(12_950)  # a late wake-up flushes once and finds the next point
    assert cut.next_flush_ms == 13_700 and not cut.flush_due(13_000)
    off = _gateway(tmp_path / "off", slot_lead_ms=0)
    off.state.chain.slot_ms = 1000
    assert not any(off.cutter.flush_due(t) for t in range(10_000, 13_000, 50))


def test_the_largest_extrinsic_the_config_allows_fits_the_pool() -> None:
    """MAX_BATCHES commitments of full batches, each summarizing MAX_PUBLIC public metrics
    (the widest commitment), in a real signed extrinsic: under the pool's size limit."""
    from twinchain.gateway.encoding import XtBuilder, encode_commitment
    from twinchain.primitives.keys import Keypair
    from twinchain.primitives.types import MAX_EXTRINSIC_SIZE
    from twinchain.protocol.telemetry import MAX_BATCHES, MAX_PUBLIC, MAX_READINGS, sign_batch

    dev, gw = Keypair.from_dev_name("wide-dev"), Keypair.from_dev_name("wide-gw")
    assert gwconfig.MAX_READINGS_PER_XT == MAX_BATCHES * MAX_READINGS
    metrics = range(65_535 - MAX_PUBLIC + 1, 65_536)
    widest = [(m, 2**60 + j, -(2**50)) for j in range(MAX_READINGS // MAX_PUBLIC) for m in metrics]
    c = sign_batch(dev, b"\xff" * 32, 2**40, 2**40, widest, public=set(metrics)).commitment()
    assert len(c.public) == MAX_PUBLIC and c.count == MAX_READINGS
    bodies = [encode_commitment(c)] * MAX_BATCHES
    raw = XtBuilder(gw, b"\xff" * 32, 2**31, (255, 255)).build(bodies, 2**40)
    assert len(raw) < MAX_EXTRINSIC_SIZE


def test_resubmissions_back_off_doubling_up_to_the_cap(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, resubmit_after_s=2, resubmit_max_s=30)
    for tries, full in ((1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30), (200, 30)):
        for _ in range(20):  # jitter only ever shortens the wait, by at most a fifth
            assert 0.8 * full <= gw.submitter.backoff(tries) <= full
    with pytest.raises(gwconfig.ConfigError, match="resubmit_after_s"):
        _gateway(tmp_path / "bad", resubmit_after_s=60, resubmit_max_s=30)


def test_a_stalled_finality_is_said_once_then_every_30s_and_once_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rich.console import Console

    from twinchain.gateway.finality import LAG_LOG_EVERY_S
    from twinchain.gateway.status import table

    gw = _gateway(tmp_path, finality_lag_alert=10)
    fin = gw.finality
    gw.state.connected = True
    caplog.set_level("INFO", logger="twinchain.gateway")
    fin.best_number, fin.finalized_number = 10, 0
    fin.check()  # 10 behind: not more than the limit
    assert fin.stalled_since is None and "stalled" not in gw.status()["finality"]
    for best in (14, 15, 16):
        fin.best_number = best
        fin.check()
    said = [r.getMessage() for r in caplog.records if "behind the best block" in r.message]
    assert said == [said[0]] and said[0].startswith("finality is 14 blocks behind the best block")
    s = gw.status()
    assert s["finality_lag"] == 16 and s["best_block"] == 16 and s["finality_stalled_s"] == 0
    assert s["finality"].startswith("finality is 16 blocks behind the best block (stalled")
    text = Console(width=200, record=True)
    text.print(table(s))
    assert "finality is 16 blocks behind the best block" in text.export_text()

    assert fin.stalled_since is not None
    fin.stalled_since -= LAG_LOG_EVERY_S
    fin.lag_logged -= LAG_LOG_EVERY_S  # 30 s later, still stalled: said again
    fin.check()
    fin.check()
    again = [r.getMessage() for r in caplog.records if "behind the best block" in r.message]
    assert len(again) == 2 and "for 30 s" in again[1]

    fin.finalized_number = 11  # 5 behind: within half the limit, finality is back
    fin.check()
    fin.check()
    back = [r.getMessage() for r in caplog.records if r.message.startswith("finality resumed")]
    assert len(back) == 1 and "5 blocks behind" in back[0]
    assert gw.status()["finality_stalled_s"] is None


def test_gateway_init_writes_keys_config_and_a_dev_spec_that_knows_the_devices(
    tmp_path: Path,
) -> None:
    from twinchain.cli import main
    from twinchain.node.chain_spec import dev_spec

    assert main(["gateway", "init", "--dir", str(tmp_path), "--machines", "2"]) == 0
    cfg = gwconfig.load(tmp_path / "gateway.toml")
    spec = ChainSpec.load(tmp_path / "spec.json")
    assert spec.genesis_storage()  # the runtime takes the genesis as it is
    g, gw = spec.genesis, "0x" + cfg.gateway_keypair().public.hex()
    base = dev_spec().genesis
    assert g["authority"] == base["authority"]  # the node's dev spec, with the gateway added
    assert g["balances"]["balances"] == base["balances"]["balances"] + [[gw, 10**24]]
    assert [gw, "Gateway"] in g["roles"]["grants"]
    assert [t["class"] for t in g["equipment"]["twins"]] == ["cnc_mill", "pump"]
    devices = g["telemetry"]["devices"]
    assert [d["device"] for d in devices] == ["0x" + d.key.hex() for d in cfg.devices]
    assert all(d["gateway"] == gw for d in devices)
