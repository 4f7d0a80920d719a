"""The clients' authorized reads and deliveries against a live node with a real archive:
``readings`` verifies every reading's proof against its batch's finalized record, read with a
state proof (a tampered answer or record fails), and refusals arrive as AccessDenied;
``deliver`` as the gateway; the same over TLS (https and wss, trustme's CA), where a client
without the CA is refused."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
import trustme

from twinchain.client import AccessDenied, AsyncClient, Client, ProofMismatch, RpcClient, plans
from twinchain.protocol.jsonrpc import FORBIDDEN, UNAUTHORIZED, to_hex
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, TEMPERATURE, sign_batch
from twinchain.rpc.auth import API_KEYS_FILE, ApiKeyStore
from twinchain.rpc.hosting import serve_rpc

if TYPE_CHECKING:
    from stub_node import StubNode

# The chain and archive the server-side tests use (tests/rpc/custody_chain.py).
from rpc.custody_chain import (
    ALICE,
    BOB,
    CHARLIE,
    DEVICE,
    EVE,
    FERDIE,
    NOW,
    TWIN,
    archived_chain,
    readings,
    temperatures,
)

LO, HI = NOW - 60_000, NOW


async def _on_asyncio(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on an asyncio loop in a worker thread."""
    return await trio.to_thread.run_sync(lambda: asyncio.run(main()))  # type: ignore[arg-type]


@pytest.fixture
async def served(
    chain: StubNode, nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[tuple[str, list[Any], ApiKeyStore]]:
    keys = ApiKeyStore(tmp_path / API_KEYS_FILE)
    with archived_chain(chain, tmp_path / "archive") as (store, batches):
        port = await nursery.start(
            partial(serve_rpc, chain, "127.0.0.1", 0, unsafe=False, archive=store, api_keys=keys)
        )
        yield f"http://127.0.0.1:{port}", batches, keys


def _pairs(found: list[Any]) -> list[tuple[int, int]]:
    return [(r.timestamp, r.value) for r in found]


async def test_sync_client_reads_verified_readings(served: Any) -> None:
    url, batches, _ = served

    def main() -> list[Any]:
        with Client(url) as c:
            return [c.readings(TWIN, TEMPERATURE, LO, HI, key=k) for k in (ALICE, EVE, BOB)]

    for found in await trio.to_thread.run_sync(main):
        assert _pairs(found) == temperatures(batches, LO, HI)
        assert {(r.device, r.metric) for r in found} == {(DEVICE.public, TEMPERATURE)}


async def test_async_client_reads_with_an_api_key(served: Any) -> None:
    url, batches, keys = served
    key, _ = keys.create(EVE.public, ["readings"])

    async def main() -> list[Any]:
        async with AsyncClient(url) as c:
            return await c.readings(TWIN, TEMPERATURE, LO, HI, api_key=key)

    assert _pairs(await _on_asyncio(main)) == temperatures(batches, LO, HI)


async def test_refusals_are_typed(served: Any) -> None:
    url, _, keys = served
    revoked, rec = keys.create(EVE.public, ["readings"])
    keys.revoke(rec.id)

    def main() -> list[AccessDenied]:
        out = []
        with Client(url) as c:
            for kw in ({"key": FERDIE}, {"api_key": revoked}):
                with pytest.raises(AccessDenied) as info:
                    c.readings(TWIN, TEMPERATURE, LO, HI, **kw)
                out.append(info.value)
        return out

    no_right, bad_key = await trio.to_thread.run_sync(main)
    assert no_right.code == FORBIDDEN and "may not read" in no_right.message
    assert bad_key.code == UNAUTHORIZED and "revoked" in bad_key.message


def _tamper(kind: str) -> Callable[[str, Any], Any]:
    """A change to the node's answers that verification must catch."""

    def readings(answer: list[dict[str, Any]]) -> None:
        r = answer[0]["readings"]
        if kind == "value":
            r[0]["value"] += 1
        elif kind == "timestamp":
            r[0]["timestamp"] += 1
        elif kind == "index":
            r[0]["index"], r[1]["index"] = r[1]["index"], r[0]["index"]
        elif kind == "proof":
            r[0]["proof"][0] = to_hex(b"\x00" * 32)
        elif kind == "injected":
            r.append({**r[0], "value": 1, "index": r[-1]["index"] + 2})
        elif kind == "duplicate":
            r.append(copy.deepcopy(r[0]))
        elif kind == "out-of-range":
            answer[0]["readings"] = [{**r[0], "timestamp": HI + 1}]

    def change(method: str, result: Any) -> Any:
        result = copy.deepcopy(result)
        if method == "twin_readings" and kind not in ("record", "read-proof"):
            readings(result)
        elif method == "state_getStorage" and kind == "record":
            # The batch record's root, as the node serves it from state, changed.
            raw = bytearray.fromhex(result[2:])
            raw[20] ^= 1
            result = to_hex(bytes(raw))
        elif method == "state_getReadProof" and kind == "read-proof":
            result["proof"] = result["proof"][:-1]
        return result

    return change


KINDS = ["value", "timestamp", "index", "proof", "injected", "duplicate", "out-of-range",
         "record", "read-proof"]  # fmt: skip


async def test_a_tampered_answer_fails_verification(served: Any) -> None:
    url, batches, _ = served

    def main() -> dict[str, str]:
        out = {}
        with Client(url) as c:
            for kind in KINDS:
                change = _tamper(kind)

                def call(method: str, *params: Any, change: Any = change) -> Any:
                    return change(method, c.call(method, *params))

                plan = plans.readings(c.codec, TWIN, TEMPERATURE, LO, HI, key=ALICE)
                with pytest.raises(ProofMismatch) as info:
                    plans.run(plan, call)
                out[kind] = str(info.value)
            # Untouched, the same path verifies.
            plan = plans.readings(c.codec, TWIN, TEMPERATURE, LO, HI, key=ALICE)
            assert len(plans.run(plan, c.call)) == len(temperatures(batches, LO, HI))
        return out

    why = await trio.to_thread.run_sync(main)
    assert "does not verify" in why["value"] and "outside the range" in why["out-of-range"]
    assert "answered twice" in why["duplicate"]
    assert "served value differs" in why["record"] and "read proof refused" in why["read-proof"]


async def test_deliver_as_the_gateway(served: Any, chain: StubNode) -> None:
    url, batches, _ = served
    new = sign_batch(DEVICE, chain.chain.genesis_hash, TWIN, 2, readings(2, 4), DEFAULT_PUBLIC)

    def main() -> tuple[list[Any], list[Any]]:
        with Client(url) as c:
            return c.deliver([*batches, new], CHARLIE), c.deliver([new], FERDIE)

    mine, theirs = await trio.to_thread.run_sync(main)
    assert [(d.device, d.seq, d.status) for d in mine] == [
        (DEVICE.public, 0, "archived"), (DEVICE.public, 1, "archived"),
        (DEVICE.public, 2, "staged"),
    ]  # fmt: skip
    assert [(d.status, d.reason) for d in theirs] == [("refused", "not the device's gateway")]


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA file, certificate chain, key) for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, chain_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(chain_file), append=i > 0)
    cert.private_key_pem.write_to_path(str(key_file))
    return ca_file, chain_file, key_file


async def test_tls_round_trip(
    chain: StubNode, nursery: trio.Nursery, tmp_path: Path, tls: tuple[Path, Path, Path]
) -> None:
    ca_file, cert, key = tls
    with archived_chain(chain, tmp_path / "archive") as (store, batches):
        serve = partial(serve_rpc, archive=store, tls_cert=cert, tls_key=key)
        port = await nursery.start(partial(serve, chain, "127.0.0.1", 0, unsafe=False))
        url = f"https://127.0.0.1:{port}"

        def blocking() -> tuple[str, list[Any], bool]:
            with Client(url, ca_file=ca_file) as c:
                name = c.call("system_name")
                found = c.readings(TWIN, TEMPERATURE, LO, HI, key=ALICE)
                # Unsafe methods stay loopback-only, as over plain http: here we are local.
                has = c.call("author_hasKey", to_hex(ALICE.public), "aura")
            return name, found, has

        name, found, has = await trio.to_thread.run_sync(blocking)
        assert name == "test-node" and has is False
        assert _pairs(found) == temperatures(batches, LO, HI)

        async def over_wss() -> list[Any]:
            async with AsyncClient(f"wss://127.0.0.1:{port}", ca_file=ca_file) as c:
                return await c.readings(TWIN, TEMPERATURE, LO, HI, key=EVE)

        assert _pairs(await _on_asyncio(over_wss)) == temperatures(batches, LO, HI)

        def untrusted() -> None:
            with RpcClient(url) as c:  # the system's authorities do not know trustme's CA
                c.call("system_name")

        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await trio.to_thread.run_sync(untrusted)


async def test_readings_command_writes_verified_rows_and_says_why_it_is_refused(
    served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from twinchain.cli import main as twinchain

    url, batches, _ = served
    out = tmp_path / "readings.csv"
    base = ["readings", "--rpc", url, "--twin", str(TWIN), "--metric", "temperature"]
    span = ["--from-ms", str(LO), "--to-ms", str(HI)]

    def run(*extra: str) -> int:
        return twinchain([*base, *span, *extra])

    eve, ferdie = "0x" + EVE.secret.hex(), "0x" + FERDIE.secret.hex()
    assert await trio.to_thread.run_sync(run, "--key", eve, "--csv", str(out)) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert [(int(ts), int(v)) for ts, v, *_ in rows] == temperatures(batches, LO, HI)
    assert await trio.to_thread.run_sync(run, "--key", ferdie) == 1
    assert "may not read" in capsys.readouterr().err.replace("\n", "")
