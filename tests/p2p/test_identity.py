"""Persistent peer identity: the key file outlives restarts; it is private to its owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import trio
from p2p_helpers import make_handlers, same_chain, start_service, wait_until

from twinchain.p2p.host import IdentityError, load_or_create_identity, peer_id_of


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "node" / "network" / "secret_ed25519"
    first = peer_id_of(load_or_create_identity(key_file))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert peer_id_of(load_or_create_identity(key_file)) == first
    assert first.startswith("12D3KooW")  # an Ed25519 libp2p peer id
    assert peer_id_of(load_or_create_identity(tmp_path / "other")) != first


def test_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"not a key")
    with pytest.raises(IdentityError):
        load_or_create_identity(key_file)


async def test_same_peer_id_after_restart_and_peers_reconnect(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as outer:
            a = await start_service(outer, ha, tmp_path, "a")
            ids = []
            for _ in range(2):
                async with trio.open_nursery() as nursery:
                    b = await start_service(
                        nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],)
                    )
                    ids.append(b.peer_id)
                    await wait_until(lambda b=b: b.peer_id in {p["peerId"] for p in a.peers()})
                    (block,) = ha.author()
                    a.publish_block(block.encode())
                    await wait_until(lambda: same_chain(ha, hb))
                    nursery.cancel_scope.cancel()
                # a notices b went away before b comes back.
                await wait_until(lambda: not a.peers())
            assert ids[0] == ids[1]
            outer.cancel_scope.cancel()
