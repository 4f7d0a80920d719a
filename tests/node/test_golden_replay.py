"""A chain recorded from a real 4-validator devnet replays to the same state roots.

The recording (``tests/data/replay``) was exported from a ``make run`` devnet: timestamps,
device-signed telemetry commitments (the readings went to each facility's archive),
maintenance and simulation calls, 96 blocks. Re-executing
it checks each block's state root against the one its author committed to, so any change to
the runtime's behaviour (weights, fees, storage layout, events) fails here.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import ChainSpec
from twinchain.primitives.types import Block

DATA = Path(__file__).resolve().parent.parent / "data" / "replay"
LAST = 96


def recorded_blocks() -> list[Block]:
    raw = (DATA / "devnet-blocks.bin").read_bytes()
    out, at = [], 0
    while at < len(raw):
        (n,) = struct.unpack_from(">I", raw, at)
        out.append(Block.decode(raw[at + 4 : at + 4 + n]))
        at += 4 + n
    return out


def test_recorded_devnet_chain_replays_to_the_same_state_roots(tmp_path: Path) -> None:
    spec = ChainSpec.from_json(json.loads((DATA / "devnet-spec.json").read_text()))
    blocks = recorded_blocks()
    assert [b.header.number for b in blocks] == list(range(LAST + 1))
    chain = Blockchain(spec, tmp_path, pruning=None)
    try:
        assert chain.genesis_hash == blocks[0].hash
        for block in blocks[1:]:
            chain.import_block(block, check_time=False)
            assert chain.best.state_root == block.header.state_root
        assert chain.best.hash == blocks[-1].hash
    finally:
        chain.close()
