"""``--blocks-pruning N``: bodies of old finalized blocks are dropped, headers and
justifications stay, and a node reopened on the same LevelDB carries on."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.storage.blockstore import ChainStoreError

ALICE = Keypair.from_dev_name("Alice")


def grow(chain: Blockchain, blocks: int) -> None:
    """Author and finalize ``blocks`` blocks on the dev chain (Alice is its one authority)."""
    start = chain.best.number
    for i in range(1, blocks + 1):
        slot = start + i
        block, _ = chain.propose(ALICE, slot, slot * 1_000)
        assert chain.self_finalize(ALICE, block.header.hash)


def test_bodies_older_than_the_window_are_dropped(tmp_path: Path) -> None:
    chain = Blockchain(dev_spec(), tmp_path, blocks_pruning=4)
    try:
        grow(chain, 10)
        assert chain.finalized.number == 10
        for n in range(1, 11):
            h = chain.blocks.hash_at(n)
            assert h is not None and chain.blocks.header(h) is not None
            assert chain.blocks.justification(h) is not None
            kept = chain.blocks.block_bytes(h) is not None
            assert kept == (n > 6), n  # the last 4 finalized blocks keep their bodies
        assert chain.blocks.bodies_pruned_to() == 6
        with pytest.raises(ChainStoreError, match="pruned"):
            list(chain.iter_blocks(1, 10))
    finally:
        chain.close()
    # Reopened (a restart), it goes on from where it stopped.
    chain = Blockchain(dev_spec(), tmp_path, blocks_pruning=4)
    try:
        grow(chain, 3)
        assert chain.blocks.bodies_pruned_to() == 9
        assert chain.blocks.block_bytes(chain.blocks.hash_at(9)) is None  # type: ignore[arg-type]
        assert chain.blocks.block_bytes(chain.blocks.hash_at(10)) is not None  # type: ignore[arg-type]
    finally:
        chain.close()


def test_an_archive_node_keeps_every_body(tmp_path: Path) -> None:
    chain = Blockchain(dev_spec(), tmp_path)
    try:
        grow(chain, 6)
        assert chain.blocks.bodies_pruned_to() == 0
        assert len(list(chain.iter_blocks(0, 6))) == 7
    finally:
        chain.close()


def test_turning_pruning_on_later_catches_up(tmp_path: Path) -> None:
    chain = Blockchain(dev_spec(), tmp_path)
    try:
        grow(chain, 8)
    finally:
        chain.close()
    chain = Blockchain(dev_spec(), tmp_path, blocks_pruning=2)
    try:
        grow(chain, 1)
        assert chain.blocks.bodies_pruned_to() == 7
        assert all(chain.blocks.block_bytes(chain.blocks.hash_at(n)) is None for n in range(1, 8))  # type: ignore[arg-type]
    finally:
        chain.close()


def test_the_flag_refuses_a_window_too_small_for_gateways_and_peers() -> None:
    from twinchain.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["node", "--dev", "--blocks-pruning", "1000"])
    assert args.blocks_pruning == 1000
    assert (
        parser.parse_args(["node", "--dev", "--blocks-pruning", "archive"]).blocks_pruning is None
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["node", "--dev", "--blocks-pruning", "10"])
