"""A permissioned network: reserved and authorized peers only, refused in the handshake.

Real py-libp2p hosts over TCP on 127.0.0.1 (services in this process), and real node processes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from p2p_helpers import FAST, ChainHandler, make_handlers, same_chain, wait_until

from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo
from twinchain.node.chain_spec import dev_spec
from twinchain.p2p import NetworkService
from twinchain.p2p.host import is_connected, load_or_create_identity, peer_id_of
from twinchain.p2p.permission import (
    AuthorizedPeersError,
    AuthorizedPeersFile,
    PeerIdError,
    PeerPermissions,
    parse_peer_id,
)


async def start(
    nursery: trio.Nursery, handler: ChainHandler, tmp_path: Path, name: str, **kwargs: Any
) -> NetworkService:
    kwargs.setdefault("config", FAST)
    svc = NetworkService(
        handler,
        genesis_hash=handler.chain.genesis_hash,
        key_file=tmp_path / name / "network" / "secret_ed25519",
        listen_port=0,
        node_name=name,
        **kwargs,
    )
    await nursery.start(svc.run)
    return svc


def key_id(tmp_path: Path, name: str) -> str:
    """The peer id the service called ``name`` will have (its key made ahead)."""
    return peer_id_of(load_or_create_identity(tmp_path / name / "network" / "secret_ed25519"))


def connected(a: NetworkService, b: NetworkService) -> bool:
    assert a.host is not None
    return is_connected(a.host, b.peer_id)


# --------------------------------------------------------------------------- unit


def test_peer_ids_parse_from_ids_and_multiaddrs() -> None:
    pid = "12D3KooWGRUVh6c4Ym1Tfuxg5S7A1ZBhRSVZAjzv5Q5oPk3v4i6C"
    assert parse_peer_id(pid) == pid
    assert parse_peer_id(f"/ip4/10.0.0.1/tcp/30333/p2p/{pid}") == pid
    for bad in ("", "hello", "/ip4/1.2.3.4/tcp/1", pid[:-3]):
        with pytest.raises(PeerIdError):
            parse_peer_id(bad)


def test_modes() -> None:
    a, b, r = (
        "12D3KooWGRUVh6c4Ym1Tfuxg5S7A1ZBhRSVZAjzv5Q5oPk3v4i6C",
        "12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X",
        "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp",
    )
    open_ = PeerPermissions()
    assert not open_.permissioned and open_.allows(a) and not open_.is_authorized(a)
    perm = PeerPermissions([r], [a])
    assert perm.permissioned and perm.allows(a) and perm.allows(r) and not perm.allows(b)
    perm.set_authorized([b])
    assert perm.allows(b) and not perm.allows(a) and perm.is_authorized(b)
    only = PeerPermissions([r], [a], reserved_only=True)
    assert only.allows(r) and not only.allows(a)
    empty = PeerPermissions(authorized=[])
    assert empty.permissioned and not empty.allows(a)


def test_authorized_peers_file(tmp_path: Path) -> None:
    a = "12D3KooWGRUVh6c4Ym1Tfuxg5S7A1ZBhRSVZAjzv5Q5oPk3v4i6C"
    path = tmp_path / "authorized"
    path.write_text(f"# facility nodes\n{a}  # Aachen\n\n")
    f = AuthorizedPeersFile(path)
    assert f.load() == {a}
    assert f.changed() is None
    path.write_text("not-a-peer-id\n")
    assert f.changed() is None  # a broken edit keeps the previous set
    path.write_text("")
    assert f.changed() == frozenset()
    path.write_text("garbage\n")
    with pytest.raises(AuthorizedPeersError):
        AuthorizedPeersFile(path).load()


# --------------------------------------------------------------------------- real hosts


async def test_unknown_peer_is_refused_in_the_handshake_and_gets_no_gossip_or_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "twinchain.p2p.guard")
    with make_handlers(3) as (ha, hb, hc):
        ha.author(3)
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a", authorized=[key_id(tmp_path, "b")])
            boot = (a.listen_addrs[0],)
            await start(nursery, hb, tmp_path, "b", bootnodes=boot)
            stranger = await start(nursery, hc, tmp_path, "stranger", bootnodes=boot)
            await wait_until(lambda: same_chain(ha, hb), what="the authorized peer syncs")
            (block,) = ha.author()
            a.publish_block(block.encode())
            await wait_until(lambda: hb.chain.best.hash == block.hash)
            # The stranger redials every 0.5-2 s; each try is refused after Noise.
            await wait_until(lambda: a.refused_connections().get("not authorized", 0) >= 3)
            assert not connected(a, stranger) and not connected(stranger, a)
            assert stranger.peer_id not in {p["peerId"] for p in a.peers()}
            assert a.peer_id not in {p["peerId"] for p in stranger.peers()}
            # No gossip, no sync: still at genesis while a and b are at #4.
            assert hc.chain.best.number == 0 and hc.gossip_accepted == 0
            # No identify answer either: the stranger never learned a's protocols.
            assert stranger.host is not None and a.host is not None
            pid = a.host.get_id()
            assert not stranger.host.get_peerstore().get_protocols(pid)
            # One log line per (peer, reason) every 10 s, however many refusals.
            lines = [r for r in caplog.records if stranger.peer_id in r.getMessage()]
            assert len(lines) == 1, [r.getMessage() for r in lines]
            nursery.cancel_scope.cancel()


async def test_reserved_peer_connects_and_syncs_under_reserved_only(tmp_path: Path) -> None:
    with make_handlers(3) as (ha, hb, hc):
        hb.author(4)
        async with trio.open_nursery() as nursery:
            b = await start(nursery, hb, tmp_path, "b")
            # a dials its reserved peer itself and keeps the connection.
            a = await start(
                nursery, ha, tmp_path, "a", reserved_nodes=[b.listen_addrs[0]], reserved_only=True
            )
            await wait_until(lambda: same_chain(ha, hb), what="a syncs from its reserved peer")
            other = await start(nursery, hc, tmp_path, "other", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: a.refused_connections().get("not authorized", 0) >= 1)
            assert not connected(a, other) and hc.chain.best.number == 0
            assert connected(a, b)
            nursery.cancel_scope.cancel()


async def test_peer_authorized_at_runtime_connects_afterwards_and_is_dropped_when_removed(
    tmp_path: Path,
) -> None:
    allowed = tmp_path / "authorized-peers"
    allowed.write_text("# nobody yet\n")
    with make_handlers(2) as (ha, hn):
        ha.author(2)
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a", authorized_peers_file=allowed)
            newcomer = await start(nursery, hn, tmp_path, "new", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: a.refused_connections().get("not authorized", 0) >= 1)
            assert hn.chain.best.number == 0
            # The operator (later: the chain) authorizes it: it connects and syncs.
            allowed.write_text(f"{newcomer.peer_id}  # approved\n")
            await wait_until(lambda: same_chain(ha, hn), what="the newcomer syncs once approved")
            # Through the seam the chain will use: removed, it is disconnected and refused.
            a.permissions.set_authorized([])
            await wait_until(lambda: not connected(a, newcomer), what="the removed peer dropped")
            assert a.refused_connections().get("deauthorized", 0) >= 1
            before = a.refused_connections()["not authorized"]
            await wait_until(lambda: a.refused_connections()["not authorized"] > before)
            assert not connected(a, newcomer)
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- processes


def test_a_node_process_with_a_fresh_key_is_refused_until_authorized(tmp_path: Path) -> None:
    """Two real ``twinchain node`` processes: the dev validator is permissioned (an empty
    authorized peers file); a node with a fresh key dials it and gets nothing, then the
    operator adds its peer id to the file and it syncs."""
    from realnet import heights, peers, wait_for

    spec_id = dev_spec().id
    allowed = tmp_path / "authorized-peers"
    allowed.write_text("")
    spec_file = tmp_path / "dev.json"  # the dev chain, without --dev's validator role
    spec_file.write_text(json.dumps(dev_spec().to_json()))
    p2p_a, rpc_a, p2p_b, rpc_b = manager.free_ports(4)
    a = NodeInfo("A", "a", str(tmp_path / "a"), p2p_a, rpc_a, "")
    b = NodeInfo("B", "b", str(tmp_path / "b"), p2p_b, rpc_b, "")
    a_id = peer_id_of(
        load_or_create_identity(tmp_path / "a" / "chains" / spec_id / "network" / "secret_ed25519")
    )
    b_id = peer_id_of(
        load_or_create_identity(tmp_path / "b" / "chains" / spec_id / "network" / "secret_ed25519")
    )
    base = [sys.executable, "-m", "twinchain", "node", "--no-prometheus"]
    procs = []
    try:
        for node, extra in (
            (a, ["--dev", "--authorized-peers-file", str(allowed)]),
            (
                b,
                [
                    "--chain",
                    str(spec_file),
                    "--bootnodes",
                    f"/ip4/127.0.0.1/tcp/{p2p_a}/p2p/{a_id}",
                ],
            ),
        ):
            log = open(Path(node.base_path) / "node.log", "ab")
            cmd = [*base, "--base-path", node.base_path, "--name", node.name]
            cmd += ["--port", str(node.p2p_port), "--rpc-port", str(node.rpc_port), *extra]
            env = {**os.environ, "COLUMNS": "200"}  # one log line a record
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
            manager.wait_rpc(node, procs[-1])
        wait_for(lambda: heights(a)[0] >= 3, 30, "the dev validator authors")
        time.sleep(3)  # several redials of b, each refused
        assert heights(b)[0] == 0 and peers(b) == 0 and peers(a) == 0
        log_a = (Path(a.base_path) / "node.log").read_text()
        assert f"refused {b_id}" in log_a and "not authorized" in log_a
        allowed.write_text(f"{b_id}\n")
        wait_for(lambda: heights(b)[0] >= heights(a)[0] - 1 > 3, 30, "b syncs once authorized")
        assert peers(a) == 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)


def test_authorized_set_is_the_union_of_its_sources_and_fails_closed(tmp_path: Path) -> None:
    ids = [key_id(tmp_path, n) for n in ("x", "y", "z")]
    path = tmp_path / "authorized"
    path.write_text(f"{ids[1]}\n")
    with make_handlers(1) as (h,):
        svc = NetworkService(
            h,
            genesis_hash=h.chain.genesis_hash,
            key_file=tmp_path / "svc" / "key",
            authorized=[ids[0]],
            authorized_peers_file=path,
        )
        assert svc.permissions.authorized == {ids[0], ids[1]}
        svc.set_authorized_peers("extra", [ids[2], "not-a-peer-id"])  # the bad one skipped
        assert svc.permissions.authorized == set(ids)
        for source in ("config", "file", "extra"):
            svc.set_authorized_peers(source, None)
        assert svc.permissions.authorized == frozenset()  # permissioned, nobody: fail closed
        assert svc.permissions.permissioned and not svc.permissions.allows(ids[0])
        open_svc = NetworkService(
            h, genesis_hash=h.chain.genesis_hash, key_file=tmp_path / "open" / "key"
        )
        assert not open_svc.permissions.permissioned
