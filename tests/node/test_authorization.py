"""Node authorization from chain state: the finalized state's authorized nodes reach the
network's admission, united with the node's reserved peers and authorized peers file."""

from __future__ import annotations

from twinchain.node.authorization import ChainAuthorization, ChainAuthorizer
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.p2p.permission import PeerPermissions
from twinchain.primitives.types import Header
from twinchain.runtime.pallets.facility.types import peer_id_text


def peer(i: int) -> str:
    """A valid libp2p peer id (an Ed25519 key's identity multihash), base58."""
    return peer_id_text(bytes([0, 36, 8, 1, 18, 32]) + bytes([i]) * 32)


A, B, C, D = (peer(i) for i in range(1, 5))


def authorizer(chain: set[str], base: PeerPermissions) -> ChainAuthorizer:
    a = ChainAuthorizer()
    a.attach(base)
    a.set_chain_peers(chain)
    return a


def test_chain_peers_unite_with_reserved_and_file_peers() -> None:
    a = authorizer({A}, PeerPermissions([B], [C]))
    assert [a.allows(p) for p in (A, B, C, D)] == [True, True, True, False]
    assert a.is_authorized(A) and a.is_authorized(C) and not a.is_authorized(B)
    assert a.is_reserved(B) and not a.is_reserved(A)


def test_an_open_node_turns_permissioned_once_the_chain_lists_nodes() -> None:
    a = authorizer(set(), PeerPermissions())
    assert a.chain_peers is None and a.allows(D)  # open: the chain lists no node
    assert a.set_chain_peers([A]) and not a.set_chain_peers([A])
    assert a.allows(A) and not a.allows(D)
    a.set_chain_peers([])
    assert a.allows(D)


def test_reserved_only_ignores_the_chain() -> None:
    a = authorizer({A}, PeerPermissions([B], reserved_only=True))
    assert a.allows(B) and not a.allows(A)


def test_nothing_is_allowed_before_the_network_attaches() -> None:
    assert not ChainAuthorizer().allows(A)


def test_the_finalized_states_nodes_reach_the_authorizer() -> None:
    spec = dev_spec()
    spec.genesis["roles"] = {"grants": [["//Bob", "FacilityOperator"]]}
    spec.genesis["facility"] = {
        "facilities": [
            {"operator": "//Bob", "name": "Plant", "verified_until": 10**13, "nodes": [A, B]},
            {"operator": "//Bob", "name": "Unverified", "nodes": [C]},
        ],
        "well_known_nodes": [D],
    }
    chain = Blockchain(spec, None)
    try:
        a = ChainAuthorizer()
        a.attach(PeerPermissions())
        auth = ChainAuthorization(chain, a)
        assert a.chain_peers == {A, B, D}  # read at start, from the finalized genesis
        assert auth.on_finalized in chain.finality_listeners
        # A listener never fails finalization: an unreadable block is logged and skipped.
        auth.on_finalized(Header(b"\x01" * 32, 5, b"\x02" * 32, b"\x03" * 32, 9))
        assert a.chain_peers == {A, B, D}
    finally:
        chain.close()
