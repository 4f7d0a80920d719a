"""Authorized reads and archive deliveries over the live server: ``twin_readings`` and
``archive_deliver`` against a real finalized chain and a real ArchiveStore. Who may read
(owner, READ_TELEMETRY grantee, the facility's auditor), who may not (a clear FORBIDDEN, never
empty data), and every way a signed request or API key is refused: missing, replayed, forged,
altered, stale, unknown, expired, revoked, out of scope."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from custody_chain import (
    ALICE,
    BOB,
    CHARLIE,
    DAVE,
    DEVICE,
    EVE,
    FERDIE,
    NOW,
    RPC_URL,
    TWIN,
    archived_chain,
    readings,
    temperatures,
)

from twinchain.archive.store import ArchiveStore
from twinchain.primitives.keys import Keypair
from twinchain.protocol.access import sign_request
from twinchain.protocol.jsonrpc import (
    FORBIDDEN,
    INVALID_PARAMS,
    NO_ARCHIVE,
    OVERSIZED_RESPONSE,
    UNAUTHORIZED,
    RpcError,
    to_hex,
)
from twinchain.protocol.telemetry import (
    DEFAULT_PUBLIC,
    TEMPERATURE,
    UNITS_PRODUCED,
    Batch,
    reading_proof,
    sign_batch,
)
from twinchain.rpc import custody
from twinchain.rpc.auth import API_KEYS_FILE, ApiKeyStore, add_api_key_commands

if TYPE_CHECKING:
    from conftest import StartServer
    from stub_node import StubNode

LO, HI = NOW - 60_000, NOW


@pytest.fixture
def archive(node: StubNode, tmp_path: Path) -> Iterator[tuple[ArchiveStore, list[Batch]]]:
    with archived_chain(node, tmp_path / "archive") as found:
        yield found


@pytest.fixture
def keys(tmp_path: Path) -> ApiKeyStore:
    return ApiKeyStore(tmp_path / "base" / API_KEYS_FILE)


@pytest.fixture
async def url(
    start_server: StartServer, archive: tuple[ArchiveStore, list[Batch]], keys: ApiKeyStore
) -> str:
    return await start_server(archive=archive[0], api_keys=keys)


async def call(url: str, method: str, *params: Any) -> Any:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with httpx.AsyncClient() as http:
        r = await http.post(f"http://{url}/", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    if "error" in body:
        raise RpcError.from_json(body["error"])
    return body["result"]


async def refused(url: str, method: str, *params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await call(url, method, *params)
    return info.value


def signed(
    genesis: bytes, key: Keypair, twin: int = TWIN, metric: int = TEMPERATURE, **kw: Any
) -> list[Any]:
    params = {"twin": twin, "metric": metric, "from": LO, "to": HI}
    return [twin, metric, LO, HI, sign_request(key, genesis, "twin_readings", params, **kw)]


def values(answer: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted((r["timestamp"], r["value"]) for b in answer for r in b["readings"])


# --------------------------------------------------------------------------- who may read


@pytest.mark.parametrize("reader", [ALICE, EVE, BOB], ids=["owner", "grantee", "auditor"])
async def test_readers_with_a_right_get_the_readings_with_proofs(
    url: str, node: StubNode, archive: tuple[ArchiveStore, list[Batch]], reader: Keypair
) -> None:
    _, batches = archive
    answer = await call(url, "twin_readings", *signed(node.chain.genesis_hash, reader))
    assert values(answer) == temperatures(batches, LO, HI)
    rt = node.chain.runtime
    for b in answer:
        batch = next(x for x in batches if x.seq == b["seq"])
        rec = rt.telemetry.batch(batch.device, batch.seq)
        assert (b["device"], b["root"], b["count"]) == (
            to_hex(batch.device), to_hex(rec.root), rec.count
        )  # fmt: skip
        for r in b["readings"]:
            assert r["proof"] == [to_hex(h) for h in reading_proof(batch.readings, r["index"])]


async def test_named_params_and_a_sub_range(url: str, node: StubNode, archive: Any) -> None:
    _, batches = archive
    lo, hi = NOW - 50_000, NOW - 39_000
    params = {"twin": TWIN, "metric": TEMPERATURE, "from": lo, "to": hi}
    auth = sign_request(ALICE, node.chain.genesis_hash, "twin_readings", params)
    payload = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "twin_readings",
        "params": {**params, "auth": auth},
    }
    async with httpx.AsyncClient() as http:
        body = (await http.post(f"http://{url}/", json=payload)).json()
    got = values(body["result"])
    assert got == temperatures(batches, lo, hi) and got


async def test_a_reader_without_the_right_gets_a_clear_error(url: str, node: StubNode) -> None:
    g = node.chain.genesis_hash
    for who in (FERDIE, DAVE, CHARLIE):  # nobody, the facility's validator, the gateway
        err = await refused(url, "twin_readings", *signed(g, who))
        assert err.code == FORBIDDEN and err.data == {"reason": "no-right"}
        assert "may not read metric 1 of twin 0" in err.message
    # A grantee's right is the twin's, not another one's.
    err = await refused(url, "twin_readings", *signed(g, EVE, twin=5))
    assert err.code == INVALID_PARAMS and "no twin 5" in str(err.data)


async def test_private_metric_is_read_by_the_owner_only_with_rights(
    url: str, node: StubNode, archive: Any
) -> None:
    _, batches = archive
    g = node.chain.genesis_hash
    answer = await call(url, "twin_readings", *signed(g, ALICE, metric=UNITS_PRODUCED))
    assert len(values(answer)) == sum(
        1 for b in batches for m, *_ in b.readings if m == UNITS_PRODUCED
    )
    err = await refused(url, "twin_readings", *signed(g, FERDIE, metric=UNITS_PRODUCED))
    assert err.code == FORBIDDEN


# --------------------------------------------------------------------------- signed requests


async def test_unauthenticated_calls_are_refused(url: str) -> None:
    err = await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI)
    assert err.code == UNAUTHORIZED and err.data == {"reason": "missing"}
    assert "needs an auth param" in err.message
    err = await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"account": "0x00"})
    assert err.code == UNAUTHORIZED and err.data == {"reason": "malformed"}


async def test_a_replayed_request_is_refused(url: str, node: StubNode) -> None:
    params = signed(node.chain.genesis_hash, ALICE)
    assert await call(url, "twin_readings", *params)
    err = await refused(url, "twin_readings", *params)
    assert err.code == UNAUTHORIZED and err.data == {"reason": "replayed"}
    assert "replayed" in err.message


async def test_forged_and_altered_requests_are_refused(url: str, node: StubNode) -> None:
    g = node.chain.genesis_hash
    # Ferdie signs, claiming to be Alice.
    params = signed(g, FERDIE)
    params[4]["account"] = to_hex(ALICE.public)
    err = await refused(url, "twin_readings", *params)
    assert err.code == UNAUTHORIZED and err.data == {"reason": "bad-signature"}
    # Alice's request with another range, another method's signature, another chain.
    params = signed(g, ALICE)
    params[2] = LO - 1
    assert (await refused(url, "twin_readings", *params)).data == {"reason": "bad-signature"}
    other = {"twin": TWIN, "metric": TEMPERATURE, "from": LO, "to": HI}
    params = [*signed(g, ALICE)[:4], sign_request(ALICE, g, "archive_deliver", other)]
    assert (await refused(url, "twin_readings", *params)).data == {"reason": "bad-signature"}
    params = signed(b"\x01" * 32, ALICE)
    assert (await refused(url, "twin_readings", *params)).data == {"reason": "bad-signature"}


async def test_a_stale_request_is_refused(url: str, node: StubNode) -> None:
    import time

    old = int(time.time() * 1000) - 120_000
    err = await refused(url, "twin_readings", *signed(node.chain.genesis_hash, ALICE, now_ms=old))
    assert err.code == UNAUTHORIZED and err.data == {"reason": "stale"}


# --------------------------------------------------------------------------- API keys


async def test_api_keys(url: str, keys: ApiKeyStore, archive: Any) -> None:
    _, batches = archive
    key, rec = keys.create(EVE.public, ["readings"])
    assert (
        await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"apiKey": key + "x"})
    ).data == {"reason": "unknown-key"}
    answer = await call(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"apiKey": key})
    assert values(answer) == temperatures(batches, LO, HI)
    # The key speaks for its account only: Ferdie's key has no right to the twin.
    fkey, _ = keys.create(FERDIE.public, ["readings"])
    err = await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"apiKey": fkey})
    assert err.code == FORBIDDEN
    # Scopes.
    dkey, drec = keys.create(EVE.public, ["documents"])
    err = await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"apiKey": dkey})
    assert err.code == FORBIDDEN and err.data == {"reason": "scope"}
    assert f"API key {drec.id} lacks the scope 'readings'" in err.message
    # Revoked: takes effect at once, the server rereads the file.
    keys.revoke(rec.id)
    err = await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"apiKey": key})
    assert err.code == UNAUTHORIZED and err.data == {"reason": "revoked-key"}
    # Expired.
    ekey, erec = keys.create(EVE.public, ["readings"], expires_days=1, at_ms=0)
    err = await refused(url, "twin_readings", TWIN, TEMPERATURE, LO, HI, {"apiKey": ekey})
    assert err.code == UNAUTHORIZED and err.data == {"reason": "expired-key"}
    assert f"API key {erec.id} expired at 1970-01-02" in err.message


def test_api_keys_are_stored_hashed_and_private(keys: ApiKeyStore) -> None:
    key, rec = keys.create(EVE.public, ["readings", "documents"], expires_days=30)
    text = keys.path.read_text()
    assert key not in text and key.split("_")[2] not in text
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    assert json.loads(text)["keys"][0]["account"] == to_hex(EVE.public)
    assert keys.lookup(key) == rec and rec.scopes == ("readings", "documents")
    with pytest.raises(ValueError, match="scopes"):
        keys.create(EVE.public, ["admin"])
    with pytest.raises(KeyError):
        keys.revoke("nope")


def test_api_key_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    p = argparse.ArgumentParser()
    add_api_key_commands(p)
    base = ["api-key"]

    def run(*argv: str) -> str:
        args = p.parse_args([*base, *argv])
        assert args.fn(args) == 0
        return capsys.readouterr().out

    out = run("create", "-d", str(tmp_path), "--account", to_hex(EVE.public),
              "--scopes", "readings", "--expires-days", "7")  # fmt: skip
    key = next(line.split()[1] for line in out.splitlines() if line.startswith("key "))
    kid = next(line.split()[1] for line in out.splitlines() if line.startswith("id "))
    assert key.startswith(f"tck_{kid}_")
    listed = run("list", "-d", str(tmp_path))
    assert kid in listed and "active" in listed and key not in listed
    run("revoke", "-d", str(tmp_path), kid)
    assert "revoked" in run("list", "-d", str(tmp_path))
    store = ApiKeyStore(tmp_path / API_KEYS_FILE)
    assert store.lookup(key) is not None and store.lookup(key).status(0) == "revoked"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- archive_deliver


async def test_archive_deliver(url: str, node: StubNode, archive: Any, keys: ApiKeyStore) -> None:
    _, batches = archive
    g = node.chain.genesis_hash
    wire = [to_hex(b.to_bytes()) for b in batches]
    err = await refused(url, "archive_deliver", wire)
    assert err.code == UNAUTHORIZED
    # Charlie, the device's gateway: already archived, answered again (idempotent).
    auth = sign_request(CHARLIE, g, "archive_deliver", {"batches": wire})
    got = await call(url, "archive_deliver", wire, auth)
    assert [(d["device"], d["seq"], d["status"]) for d in got] == [
        (to_hex(b.device), b.seq, "archived") for b in batches
    ]
    # A new batch, not yet committed: staged for its gateway, refused for anyone else.
    new = sign_batch(DEVICE, g, TWIN, 2, readings(2, 5), DEFAULT_PUBLIC)
    wire = [to_hex(new.to_bytes())]
    auth = sign_request(FERDIE, g, "archive_deliver", {"batches": wire})
    [d] = await call(url, "archive_deliver", wire, auth)
    assert (d["status"], d["reason"]) == ("refused", "not the device's gateway")
    auth = sign_request(CHARLIE, g, "archive_deliver", {"batches": wire})
    [d] = await call(url, "archive_deliver", wire, auth)
    assert (d["seq"], d["status"], d["reason"]) == (2, "staged", None)
    # A gateway's service account may deliver with an API key of scope "deliver" only.
    key, _ = keys.create(CHARLIE.public, ["deliver"])
    [d] = await call(url, "archive_deliver", wire, {"apiKey": key})
    assert d["status"] == "staged"
    key, _ = keys.create(CHARLIE.public, ["readings"])
    err = await refused(url, "archive_deliver", wire, {"apiKey": key})
    assert err.code == FORBIDDEN and err.data == {"reason": "scope"}
    # Malformed batches.
    auth = sign_request(CHARLIE, g, "archive_deliver", {"batches": ["0x00"]})
    err = await refused(url, "archive_deliver", ["0x00"], auth)
    assert err.code == INVALID_PARAMS


# --------------------------------------------------------------------------- no archive


async def test_a_node_without_an_archive_says_so(start_server: StartServer, node: StubNode) -> None:
    url = await start_server()
    err = await refused(url, "twin_readings", *signed(node.chain.genesis_hash, ALICE))
    assert err.code == NO_ARCHIVE and err.message == "this node keeps no archive"
    err = await refused(url, "archive_deliver", ["0x00"], {"apiKey": "tck_x"})
    assert err.code == NO_ARCHIVE


async def test_another_facilitys_archive_sends_the_reader_on(
    start_server: StartServer, node: StubNode, archive: Any, tmp_path: Path
) -> None:
    other = ArchiveStore(tmp_path / "other", 7)
    try:
        url = await start_server(archive=lambda: other)
        err = await refused(url, "twin_readings", *signed(node.chain.genesis_hash, ALICE))
        assert err.code == NO_ARCHIVE and err.data["reason"] == "not-custodian"
        assert err.message == (
            "this node keeps facility 7's archive; twin 0's readings are in facility 0's "
            f"at {RPC_URL}"
        )
        assert err.data == {"reason": "not-custodian", "facility": 0, "rpcUrl": RPC_URL}
    finally:
        other.close()


# --------------------------------------------------------------------------- proofs


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 33])
def test_merkle_proofs_of_many_leaves_verify_against_the_native_root(n: int) -> None:
    from twinchain.native.merkle import merkle_proofs, merkle_root, verify_merkle_proof

    leaves = [b"%018d" % i for i in range(n)]
    root = merkle_root(leaves)
    proofs = merkle_proofs(leaves, list(range(n)))
    assert all(verify_merkle_proof(root, leaves[i], i, n, p) for i, p in enumerate(proofs))
    assert merkle_proofs(leaves, [n - 1]) == [proofs[-1]]
    if n > 1:  # a proof is bound to its leaf and position
        assert not verify_merkle_proof(root, leaves[0], 1, n, proofs[0])
    with pytest.raises(IndexError):
        merkle_proofs(leaves, [n])


async def test_a_range_too_large_is_refused_not_cut(
    url: str, node: StubNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(custody, "MAX_ANSWER_READINGS", 5)
    err = await refused(url, "twin_readings", *signed(node.chain.genesis_hash, ALICE))
    assert err.code == OVERSIZED_RESPONSE and "ask a shorter range" in str(err.data)
