"""Documents by hash: the twin's owner keeps a document in its facility's archive, the chain
lists its hash, and accounts the chain lets read the twin fetch it, checked against the hash;
everyone else gets a typed refusal, and a damaged or unlisted document is never served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from twinchain.client import AccessDenied, Client
from twinchain.primitives.hashing import blake3_hash
from twinchain.protocol.jsonrpc import FORBIDDEN, NOT_FOUND, RpcError
from twinchain.rpc.auth import API_KEYS_FILE, ApiKeyStore
from twinchain.rpc.hosting import serve_rpc

if TYPE_CHECKING:
    from stub_node import StubNode

from rpc.custody_chain import ALICE, BOB, EVE, FERDIE, MANUAL, TWIN, archived_chain


@pytest.fixture
async def served(
    chain: StubNode, nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[tuple[str, Any, ApiKeyStore]]:
    keys = ApiKeyStore(tmp_path / API_KEYS_FILE)
    with archived_chain(chain, tmp_path / "archive") as (store, _):
        port = await nursery.start(
            partial(serve_rpc, chain, "127.0.0.1", 0, unsafe=False, archive=store, api_keys=keys)
        )
        yield f"http://127.0.0.1:{port}", store, keys


async def test_owner_keeps_readers_fetch_others_are_refused(served: Any) -> None:
    url, store, keys = served
    digest = blake3_hash(MANUAL)
    docs_key, _ = keys.create(EVE.public, ["documents"])
    readings_key, _ = keys.create(EVE.public, ["readings"])

    def main() -> None:
        with Client(url) as c:
            # Before it is kept, the hash on chain finds nothing to serve.
            with pytest.raises(RpcError) as missing:
                c.document(TWIN, digest, key=ALICE)
            assert missing.value.code == NOT_FOUND and "does not hold" in missing.value.message
            assert c.put_document(TWIN, MANUAL, key=ALICE) == digest
            assert c.put_document(TWIN, MANUAL, key=ALICE) == digest  # idempotent
            # The owner, a READ_TELEMETRY grantee (signed, or with a documents key), the
            # facility's auditor.
            for kw in ({"key": ALICE}, {"key": EVE}, {"api_key": docs_key}, {"key": BOB}):
                assert c.document(TWIN, digest, **kw) == MANUAL
            # No right, a key without the scope, a writer that is not the owner or operator.
            for kw in ({"key": FERDIE}, {"api_key": readings_key}):
                with pytest.raises(AccessDenied) as refused:
                    c.document(TWIN, digest, **kw)
                assert refused.value.code == FORBIDDEN
            with pytest.raises(AccessDenied):
                c.put_document(TWIN, b"forged manual", key=FERDIE)
            # A document the archive holds but the chain does not list for the twin.
            other = c.put_document(TWIN, b"an internal report", key=ALICE)
            with pytest.raises(RpcError) as unlisted:
                c.document(TWIN, other, key=EVE)
            assert unlisted.value.code == NOT_FOUND
            assert "neither a document nor an anchor" in unlisted.value.message

    await trio.to_thread.run_sync(main)
    # Damaged on disk: refused, not served.
    path = store.documents.path / f"twin={TWIN}" / digest.hex()
    path.write_bytes(MANUAL[:-1] + b"!")

    def damaged() -> None:
        with Client(url) as c, pytest.raises(RpcError) as bad:
            c.document(TWIN, digest, key=ALICE)
        assert bad.value.code == NOT_FOUND and "damaged" in bad.value.message

    await trio.to_thread.run_sync(damaged)


async def test_document_commands(served: Any, tmp_path: Path) -> None:
    from twinchain.cli import main as twinchain

    url, _, _ = served
    src, out = tmp_path / "manual.txt", tmp_path / "fetched.txt"
    src.write_bytes(MANUAL)
    base = ["--rpc", url, "--twin", str(TWIN)]
    alice, eve = "0x" + ALICE.secret.hex(), "0x" + EVE.secret.hex()
    digest = "0x" + blake3_hash(MANUAL).hex()

    def run(*argv: str) -> int:
        return twinchain(["document", *argv])

    assert await trio.to_thread.run_sync(run, "put", *base, "--key", alice, str(src)) == 0
    get = ("get", *base, "--key", eve, "--hash", digest, "--out", str(out))
    assert await trio.to_thread.run_sync(run, *get) == 0
    assert out.read_bytes() == MANUAL
    ferdie = "0x" + FERDIE.secret.hex()
    refused = ("get", *base, "--key", ferdie, "--hash", digest, "--out", str(tmp_path / "x"))
    assert await trio.to_thread.run_sync(run, *refused) == 1
