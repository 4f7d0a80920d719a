"""Key rotation without downtime on a live four-validator devnet (real processes, 1 s slots,
10-block sessions): `twinchain session rotate` gives one running validator a new session key;
from the next session boundary its blocks are sealed and its finality votes signed by the new
key, the old key signs nothing more, and finality runs across the boundary without a gap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from realnet import finalized, heights, wait_for

from twinchain.client import RpcClient
from twinchain.consensus.proofs import GrandpaJustification
from twinchain.devnet import manager
from twinchain.devnet.manager import SPEC_ID
from twinchain.primitives.keys import encode_address, verify
from twinchain.primitives.types import Header
from twinchain.protocol.jsonrpc import from_hex, header_from_json

SLOT_MS = 1000
SESSION = 10


class Net:
    def __init__(self, base: Path) -> None:
        self.base = base
        _, self.nodes = manager.plan(base, 4, SLOT_MS)
        spec = json.loads((base / "spec.json").read_text())
        spec["genesis"]["authority"]["session_length"] = SESSION  # short sessions
        (base / "spec.json").write_text(json.dumps(spec))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        boot = [self.nodes[0].multiaddr]
        for n in self.nodes:
            self.procs.append(manager.start_node(self.base, n, boot, reports=False))
        for n, p in zip(self.nodes, self.procs, strict=True):
            manager.wait_rpc(n, p).close()

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(10)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path / "devnet")
    try:
        yield n
    finally:
        n.close()


def header(rpc: RpcClient, number: int) -> Header:
    return header_from_json(rpc.call("chain_getHeader", rpc.call("chain_getBlockHash", number)))


def justification(rpc: RpcClient, number: int) -> GrandpaJustification | None:
    block = rpc.call("chain_getBlock", rpc.call("chain_getBlockHash", number))
    found = block["justifications"]
    return None if not found else GrandpaJustification.decode(from_hex(found[0][1], "just"))


@pytest.mark.slow
def test_rotate_a_running_validators_key(net: Net) -> None:
    net.start()
    a, b = net.nodes[0], net.nodes[1]
    wait_for(lambda: all(heights(n)[1] >= 3 for n in net.nodes), 60, "3 blocks finalized")
    old = bytes.fromhex(a.public_key)
    key_file = Path(a.base_path) / "chains" / SPEC_ID / "keystore" / f"aura-{a.public_key}"

    # One command, against the validator's own node (loopback): no restart anywhere.
    out = subprocess.run(
        [sys.executable, "-m", "twinchain", "session", "rotate", "--rpc", a.rpc_url,
         "--key", str(key_file), "--timeout", "60"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    new = bytes.fromhex(out.stdout.split("new session key 0x", 1)[1][:64])
    boundary = int(out.stdout.rsplit("from block #", 1)[1].split()[0])
    assert boundary % SESSION == 0

    # Finality across the boundary, sampled on another validator: no stall.
    samples: list[tuple[float, int]] = []

    def past_boundary() -> bool:
        samples.append((time.monotonic(), heights(b)[1]))
        return samples[-1][1] >= boundary + 8

    wait_for(past_boundary, 60, lambda: f"finality past #{boundary + 8}: {samples[-3:]}")
    wait_for(lambda: all(heights(n)[1] >= boundary + 8 for n in net.nodes), 30, "all finalize")
    # When the finalized height changed: the time between two changes is a finality gap.
    changes = [s for s, prev in zip(samples[1:], samples, strict=False) if s[1] != prev[1]]
    gaps = [t2 - t1 for (t1, _), (t2, _) in pairwise(changes)]
    assert max(gaps) < 6 * SLOT_MS / 1000, f"finality stalled {max(gaps):.1f} s: {changes}"

    with RpcClient(b.rpc_url, timeout=5) as rpc:
        fin, _ = finalized(b)
        # The set in force from the boundary has the new key in the rotated validator's place.
        sealed_old = sealed_new = 0
        new_slots: list[int] = []  # slots of the blocks the new key sealed
        for n in range(boundary - SESSION + 1, fin + 1):
            h = header(rpc, n)
            if n == boundary:
                boundary_slot = h.slot
            msg = h.seal_message()
            by_old, by_new = verify(old, msg, h.seal), verify(new, msg, h.seal)
            if n <= boundary:  # authored under the old set (the boundary block's parent's)
                assert not by_new, f"#{n} sealed by the new key before its session"
                sealed_old += by_old
            else:
                assert not by_old, f"#{n} sealed by the old key after the boundary"
                sealed_new += by_new
                if by_new:
                    new_slots.append(h.slot)
        assert sealed_old >= 1 and sealed_new >= 1, (sealed_old, sealed_new)
        # No missed slot at the switch: the rotated validator (first of the set: its slots
        # are the multiples of 4) authored its first slot after the boundary with the new key.
        first = boundary_slot + 4 - boundary_slot % 4
        assert new_slots and new_slots[0] == first, (boundary_slot, new_slots)

        # The boundary block is final by the old set; later blocks by the new one, whose
        # precommits include the new key's and never the old key's.
        set0 = justification(rpc, boundary)
        assert set0 is None or set0.set_id == 0
        voters_new: set[bytes] = set()
        for n in range(boundary + 1, fin + 1):
            j = justification(rpc, n)
            if j is not None:
                assert j.set_id == 1
                voters_new |= {v.voter for v in j.precommits}
        assert old not in voters_new
        assert new in voters_new, "no justification of the new set carries the new key's vote"
        state = rpc.call("grandpa_roundState")
        assert state["setId"] == 1
    print(
        f"boundary #{boundary}, finalized #{fin}; blocks sealed by the old key in the last "
        f"session {sealed_old}, by the new key after it {sealed_new}; longest finality gap "
        f"{max(gaps):.1f} s"
    )

    listed = subprocess.run(
        [sys.executable, "-m", "twinchain", "session", "keys", "--rpc", b.rpc_url],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert f"{encode_address(old)} key 0x{new.hex()}" in listed, listed
    assert "4 authorities" in listed

    # The rotated node still runs, keeps both keys, and every node agrees on the chain.
    assert all(p.poll() is None for p in net.procs)
    with RpcClient(a.rpc_url, timeout=5) as rpc:
        assert rpc.call("author_hasSessionKeys", "0x" + new.hex()) is True
        assert rpc.call("author_hasKey", "0x" + old.hex(), "aura") is True
    hashes = set()
    for n in net.nodes:
        with RpcClient(n.rpc_url, timeout=5) as rpc:
            hashes.add(rpc.call("chain_getBlockHash", boundary + 5))
    assert len(hashes) == 1
