"""The chain feeds the authorized set: a dev node whose finalized state (here a stand-in
reader) authorizes a peer admits it, and drops another one once the state stops naming it."""

from __future__ import annotations

from pathlib import Path

import trio
from p2p_helpers import ChainHandler, wait_until

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.peer_authorization import ChainAuthorizedPeers
from twinchain.node.service import Node, NodeConfig
from twinchain.p2p import NetworkService, Verdict
from twinchain.p2p.host import is_connected, load_or_create_identity, peer_id_of
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Header


class Bystander(ChainHandler):
    """A peer that takes no block or vote (the test handler cannot rebuild a real node's
    compact blocks nor check its votes, and would ban it: the test is about admission)."""

    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        return Verdict.IGNORE

    def on_block(self, peer_id: str, raw: bytes) -> Verdict:
        return Verdict.IGNORE

    def import_synced(self, raw: bytes, justification: bytes | None) -> Verdict:
        return Verdict.IGNORE


async def test_finalized_state_authorizes_peers_and_drops_the_removed(tmp_path: Path) -> None:
    keys = {n: tmp_path / n / "network" / "secret_ed25519" for n in ("early", "late")}
    early, late = (peer_id_of(load_or_create_identity(k)) for k in keys.values())
    switch = 3  # the "state" names the early peer before block #3, the late one from it

    def read(chain: Blockchain, header: Header) -> list[str]:
        assert chain.blocks.header(header.hash) is not None
        return [early] if header.number < switch else [late]

    node = Node(
        NodeConfig(
            spec=dev_spec(),
            base_path=tmp_path / "node",
            validator=True,
            author_key=Keypair.from_dev_name("Alice"),
            port=0,
            services=[ChainAuthorizedPeers(read)],
        )
    )
    net = node.network
    assert net is not None
    handlers = [Bystander(), Bystander()]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            assert net.permissions.authorized == {early}  # applied at start, from genesis
            peers: dict[str, NetworkService] = {}
            for (name, key), handler in zip(keys.items(), handlers, strict=True):
                peers[name] = svc = NetworkService(
                    handler,
                    genesis_hash=handler.chain.genesis_hash,
                    key_file=key,
                    listen_port=0,
                    bootnodes=net.listen_addrs[:1],
                )
                await nursery.start(svc.run)
            host = net.host
            assert host is not None
            await wait_until(lambda: is_connected(host, early), what="the early peer admitted")
            assert not is_connected(host, late)
            await wait_until(
                lambda: node.chain.finalized.number >= switch and is_connected(host, late),
                timeout=20,
                what="the late peer admitted once finalized state names it",
            )
            await wait_until(lambda: not is_connected(host, early), what="the early peer dropped")
            assert net.refused_connections().get("deauthorized", 0) >= 1
            nursery.cancel_scope.cancel()
    finally:
        for h in handlers:
            h.chain.close()
