"""``twinchain consortium``: members, propose, vote, motions and close against a live RPC
server over a real consortium chain (an in-memory node whose blocks the test authors)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from stub_node import ALICE, StubNode

from twinchain.client import consortium
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import FoundingFacility, consortium_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.rpc.hosting import serve_rpc

BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Bob", "Charlie", "Dave"))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StubNode]:
    spec = consortium_spec(
        "Test consortium",
        "test_consortium",
        [FoundingFacility(f"{n} Works", f"//{n}") for n in ("Alice", "Bob", "Charlie")],
        auditors=["//Dave"],  # funded, and no council member
        motion_duration=50,
    )
    # Alice alone authors and finalizes (the stand-in node's way); all three govern.
    spec.genesis["authority"]["authorities"] = ["//Alice"]
    chain = Blockchain(spec, None)
    yield StubNode(chain, TransactionPool(chain.validate_transaction), Keystore(tmp_path / "k"))
    chain.close()


@pytest.fixture
async def url(node: StubNode, nursery: trio.Nursery) -> str:
    port = await nursery.start(partial(serve_rpc, node, "127.0.0.1", 0, unsafe=False))
    return f"http://127.0.0.1:{port}"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    consortium.add_parser(p.add_subparsers(dest="cmd"))
    return p.parse_args(["consortium", *argv])


async def run(node: StubNode, url: str, *argv: str, submits: bool = True) -> None:
    """Run one command in a worker thread; author a finalized block once it submitted."""
    args = parse(*argv, "--rpc", url)
    result: list[Any] = []

    async def command() -> None:
        try:
            result.append(await trio.to_thread.run_sync(args.fn, args))
        except CliError as exc:  # raised again below, outside the nursery's group
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(command)
        if submits:
            with trio.fail_after(20):
                while node.pool.ready_count < 1 and not result:
                    await trio.sleep(0.01)
            if not result:
                node.author(finalize=True)
    if isinstance(result[0], CliError):
        raise result[0]
    assert result == [0]


async def test_propose_vote_close_from_the_command_line(
    node: StubNode, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(node, url, "members", submits=False)
    out = capsys.readouterr().out
    assert "3 members" in out and BOB.address in out

    await run(
        node,
        url,
        "propose",
        "--key",
        "//Alice",
        "Roles.force_grant",
        "who=//Dave",
        "role=ServiceProvider",
    )
    out = capsys.readouterr().out
    assert "Council.Proposed" in out and "Council.Voted" in out

    await run(node, url, "vote", "--key", "//Bob", "0", "--aye")
    assert "yes=2" in capsys.readouterr().out

    await run(node, url, "motions", submits=False)
    out = capsys.readouterr().out
    assert "#0 Roles.force_grant" in out and "Majority: 2/2 ayes" in out
    assert f"aye {ALICE.address}" in out and "1 open motions" in out

    await run(node, url, "close", "--key", "//Charlie", "0")
    out = capsys.readouterr().out
    assert "Council.Approved" in out and "Council.Executed" in out and "ok=ok" in out
    rt = node.chain.runtime
    state = node.chain.state_at(node.chain.finalized.hash)
    assert state.get(rt.roles.Grants.key(DAVE.public, "ServiceProvider")) is not None


async def test_a_non_member_is_told_why(node: StubNode, url: str) -> None:
    with pytest.raises(CliError, match=r"Council\.NotMember"):
        await run(node, url, "propose", "--key", "//Dave", "System.remark", "remark=hi")


async def test_arguments_are_checked_before_submitting(node: StubNode, url: str) -> None:
    for argv in (
        ("Nope.call",),
        ("Roles.force_grant", "who=//Dave"),
        ("Roles.force_grant", "who=not-an-address", "role=Gateway"),
    ):
        with pytest.raises(CliError):
            await run(node, url, "propose", "--key", "//Alice", *argv, submits=False)


def test_values_follow_the_call_argument_types() -> None:
    from twinchain.runtime.runtime import Runtime

    rt = Runtime()

    def typed(pallet: str, call: str, name: str, text: str) -> Any:
        t = dict(rt.by_name[pallet].calls_by_name[call].args)[name]
        return consortium.value_of(t, text)

    assert typed("Authority", "set_authorities", "authorities", '["//Alice", "//Bob"]') == [
        ALICE.public,
        BOB.public,
    ]
    assert typed("Facility", "suspend", "facility", "3") == 3
    assert typed("Facility", "suspend", "reason", "0x" + "11" * 32) == b"\x11" * 32
    assert typed("System", "remark", "remark", "hello") == b"hello"
    assert typed("Council", "vote", "approve", "true") is True
