"""grandpa_roundState over real HTTP, from a real voter over the stand-in node's chain."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
from stub_node import ALICE, BOB

from twinchain.primitives.finality import PRECOMMIT, PREVOTE, SignedVote
from twinchain.primitives.keys import Keypair, decode_address

if TYPE_CHECKING:
    from stub_node import StubNode

CHARLIE = Keypair.from_dev_name("Charlie")
DAVE = Keypair.from_dev_name("Dave")


async def call(server: str, method: str, *params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"http://{server}/",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def stage(weight: int, *missing: Keypair) -> dict[str, Any]:
    return {"currentWeight": weight, "missing": [k.address for k in missing]}


async def test_round_state_dev_voter_votes_and_finalizes(node: StubNode, server: str) -> None:
    """Alice alone: her two votes fill the round, and the block is final."""
    before = (await call(server, "grandpa_roundState"))["result"]
    assert before == {
        "setId": 0,
        "best": {
            "round": 1,
            "totalWeight": 1,
            "thresholdWeight": 1,
            "prevotes": stage(0, ALICE),
            "precommits": stage(0, ALICE),
        },
        "background": [],
    }
    assert decode_address(before["best"]["prevotes"]["missing"][0]) == ALICE.public

    node.author()
    assert node.voter is not None
    votes, done = node.voter.tick(10_000)
    assert [v.kind for v in votes][:2] == [PREVOTE, PRECOMMIT]
    assert done and done[0].block[1] == 1
    after = (await call(server, "grandpa_roundState"))["result"]
    rounds = [after["best"], *after["background"]]
    # The round that finalized #1 is kept, complete, whether or not the next one began.
    full = [r for r in rounds if r["prevotes"] == stage(1) and r["precommits"] == stage(1)]
    assert full and full[0]["round"] == 1


async def test_round_state_lists_missing_voters_and_background(node: StubNode, server: str) -> None:
    """Four authorities: Alice votes here, Bob and Charlie's votes arrive, Dave never votes."""
    node.author()
    voter = node.voter = node.dev_voter([a.public for a in (ALICE, BOB, CHARLIE, DAVE)])
    voter.tick(10_000)  # Alice prevotes
    state = (await call(server, "grandpa_roundState"))["result"]
    assert state["best"] == {
        "round": 1,
        "totalWeight": 4,
        "thresholdWeight": 3,
        "prevotes": stage(1, BOB, CHARLIE, DAVE),
        "precommits": stage(0, ALICE, BOB, CHARLIE, DAVE),
    }

    best = (node.chain.best.hash, node.chain.best.number)
    genesis = node.chain.genesis_hash
    for kind in (PREVOTE, PRECOMMIT):
        for k in (BOB, CHARLIE):
            ok, _ = voter.on_vote(SignedVote.sign(k, kind, 1, 0, best, genesis))
            assert ok
        voter.tick(10_500)  # Alice precommits once three prevotes are in
    voter.tick(12_000)  # round 1 completable and a slot passed: round 2 starts

    state = (await call(server, "grandpa_roundState"))["result"]
    assert state["setId"] == 0
    assert state["best"]["round"] == 2
    assert state["best"]["prevotes"] == stage(1, BOB, CHARLIE, DAVE)
    round1 = state["background"][0]
    assert round1["round"] == 1
    assert round1["prevotes"] == stage(3, DAVE)
    assert round1["precommits"] == stage(3, DAVE)


async def test_round_state_without_voter(node: StubNode, server: str) -> None:
    node.voter = None
    err = (await call(server, "grandpa_roundState"))["error"]
    assert err == {"code": 1, "message": "GRANDPA RPC endpoint not ready"}
