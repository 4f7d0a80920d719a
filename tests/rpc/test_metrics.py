"""The Prometheus endpoint: scrape it and find Substrate's metric names with live values."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import TYPE_CHECKING

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from twinchain.rpc.hosting import serve_metrics

if TYPE_CHECKING:
    from tests.rpc.conftest import StubNode


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


async def test_metrics_endpoint(node: StubNode, nursery: trio.Nursery, server: str) -> None:
    port = await nursery.start(partial(serve_metrics, node, "127.0.0.1", 0))
    url = f"127.0.0.1:{port}"
    node.pool.submit(node.transfer(0).encode())
    node.pool.submit(node.transfer(1).encode())
    before = await scrape(url)
    assert before[("substrate_block_height", (("status", "best"),))] == 0
    assert before[("substrate_ready_transactions_number", ())] == 2
    assert before[("substrate_sub_libp2p_peers_count", ())] == 0

    node.author()
    node.author(finalize=True)
    body = {"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": []}
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            r = await http.post(
                f"http://{server}/",
                content=json.dumps(body),
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 200
        assert (await http.get(f"http://{url}/nope")).status_code == 404

    after = await scrape(url)
    assert after[("substrate_block_height", (("status", "best"),))] == 2
    assert after[("substrate_block_height", (("status", "finalized"),))] == 2
    assert after[("substrate_ready_transactions_number", ())] == 0
    assert after[("substrate_block_verification_and_import_time_count", ())] == 2
    started = (
        "substrate_rpc_calls_started_total",
        (("method", "system_name"), ("protocol", "http")),
    )
    finished = (
        "substrate_rpc_calls_finished_total",
        (("is_error", "false"), ("method", "system_name"), ("protocol", "http")),
    )
    # Counters are process-wide: other tests may have called system_name too.
    assert after[started] - before.get(started, 0) == 3
    assert after[finished] - before.get(finished, 0) == 3


async def test_finality_metrics(node: StubNode, nursery: trio.Nursery) -> None:
    """Round, vote weights and finality lag, from the node's real voter and chain."""
    from stub_node import ALICE, BOB

    from twinchain.primitives.finality import PREVOTE, SignedVote

    port = await nursery.start(partial(serve_metrics, node, "127.0.0.1", 0))
    url = f"127.0.0.1:{port}"
    slot_ms = node.chain.slot_duration()
    node.slot = int(time.time() * 1000) // slot_ms - 21  # author() takes the next: -20, -19
    node.author()
    node.author()
    voter = node.voter = node.dev_voter([ALICE.public, BOB.public])
    voter.tick(0)  # Alice prevotes #2
    best = (node.chain.best.hash, 2)
    voter.on_vote(SignedVote.sign(BOB, PREVOTE, 1, 0, best, node.chain.genesis_hash))

    m = await scrape(url)
    assert m[("substrate_finality_grandpa_round", ())] == 1
    assert m[("substrate_finality_grandpa_set_id", ())] == 0
    assert m[("substrate_finality_grandpa_total_weight", ())] == 2
    assert m[("substrate_finality_grandpa_threshold_weight", ())] == 2
    weight = "substrate_finality_grandpa_round_votes_weight"
    assert m[(weight, (("stage", "prevote"),))] == 2
    assert m[(weight, (("stage", "precommit"),))] == 0
    missing = "substrate_finality_grandpa_round_missing_voters"
    assert m[(missing, (("stage", "precommit"),))] == 2
    assert m[("substrate_finality_lag_blocks", ())] == 2
    # Only genesis is final: the lag counts from block #1's slot, 20 slots ago.
    assert 20 * slot_ms / 1000 <= m[("substrate_finality_lag_seconds", ())] < 30 * slot_ms / 1000

    voter.tick(0)  # both prevotes in: Alice precommits
    m = await scrape(url)
    assert m[(weight, (("stage", "precommit"),))] == 1
    assert m[(missing, (("stage", "precommit"),))] == 1

    assert node.chain.self_finalize(ALICE, node.chain.best.hash)
    m = await scrape(url)
    assert m[("substrate_finality_lag_blocks", ())] == 0
    assert 19 * slot_ms / 1000 <= m[("substrate_finality_lag_seconds", ())] < 29 * slot_ms / 1000
    if hasattr(voter, "rounds_completed"):  # the voter's own counters
        assert m[("substrate_finality_grandpa_rounds_completed_total", ())] == 0


async def test_refused_connections_by_reason(node: StubNode, nursery: trio.Nursery) -> None:
    port = await nursery.start(partial(serve_metrics, node, "127.0.0.1", 0))
    refused = {"not-authorized": 3, "per-ip": 1}
    node.refused_connections = lambda: refused  # type: ignore[attr-defined]
    got = await scrape(f"127.0.0.1:{port}")
    for reason, n in refused.items():
        assert got[("twinchain_p2p_connections_refused_total", (("reason", reason),))] == n
