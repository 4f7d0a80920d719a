"""author_rotateKeysWithOwner / author_hasSessionKeys: new session keys in the node's keystore
with their proof of ownership for Session.set_keys; unsafe (loopback only unless enabled)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from twinchain.primitives.keys import Keypair, verify
from twinchain.primitives.keystore import Keystore, SigningKeys
from twinchain.protocol import jsonrpc
from twinchain.protocol.jsonrpc import RpcError, from_hex, to_hex
from twinchain.rpc.transport import RpcApp
from twinchain.runtime.pallets.session import ownership_message

if TYPE_CHECKING:
    from tests.rpc.conftest import StubNode

ALICE = Keypair.from_dev_name("Alice")


async def call(url: str, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"http://{url}/",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
        )
    body = r.json()
    if "error" in body:
        e = body["error"]
        raise RpcError(e["code"], e["message"], e.get("data"))
    return body["result"]


async def test_rotate_with_owner_returns_keys_and_their_proof(server: str, node: StubNode) -> None:
    got = await call(server, "author_rotateKeysWithOwner", to_hex(ALICE.public))
    key = from_hex(got["keys"], "keys", 32)
    proof = from_hex(got["proof"], "proof", 64)
    assert verify(key, ownership_message(node.chain.genesis_hash, ALICE.public), proof)
    assert node.keystore.has("aura", key)
    assert await call(server, "author_hasSessionKeys", got["keys"]) is True
    assert await call(server, "author_hasSessionKeys", to_hex(ALICE.public)) is False
    # A validator's running node finds the new key by the public key the set names.
    signing = SigningKeys(node.keystore)
    kp = signing.get(key)
    assert kp is not None and kp.public == key
    assert signing.get(ALICE.public) is None
    assert signing.first_of([ALICE.public, key]) == kp


@pytest.mark.parametrize("owner", ["0x1234", "nope", None])
async def test_rotate_with_owner_needs_an_account(server: str, node: StubNode, owner: Any) -> None:
    with pytest.raises(RpcError) as e:
        await call(server, "author_rotateKeysWithOwner", owner)
    assert e.value.code == jsonrpc.INVALID_PARAMS
    assert node.keystore.keys("aura") == []


async def test_rotate_with_owner_is_unsafe(node: StubNode) -> None:
    for unsafe, peer, refused in (
        (False, "203.0.113.7", True),
        (False, "127.0.0.1", False),
        (True, "203.0.113.7", False),
    ):
        transport = httpx.ASGITransport(app=RpcApp(node, unsafe=unsafe), client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            r = await http.post(
                "/",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "author_rotateKeysWithOwner",
                    "params": [to_hex(ALICE.public)],
                },
            )
        assert ("error" in r.json()) is refused, (unsafe, peer, r.json())
    assert len(node.keystore.keys("aura")) == 2


def test_an_unusable_key_file_is_skipped_not_raised(tmp_path: Path) -> None:
    """A broken file for the key the set names leaves the node without that key (logged):
    the slot worker and the voter must not crash on it."""
    ks = Keystore(tmp_path / "ks")
    good = ks.generate("aura")
    bad = Keypair.from_seed(b"\x09" * 32)
    (ks.path / f"aura-{bad.public.hex()}").write_text("{not json")
    other = Keypair.from_seed(b"\x0a" * 32)
    (ks.path / f"aura-{other.public.hex()}").write_text(f'{{"seed": "{good.secret.hex()}"}}')
    signing = SigningKeys(ks)
    assert signing.get(bad.public) is None
    assert signing.get(other.public) is None  # a file named for one key, holding another
    assert signing.get(good.public) == good
