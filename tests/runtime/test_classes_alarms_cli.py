"""``twinchain equipment class`` and ``twinchain maintenance alert`` against a live RPC server
over a real dev chain (an in-memory node whose blocks the test authors): a manufacturer
registers a class file, lists and shows it; an owner acknowledges, assigns and comments on an
alert raised with a prognosis, and lists it with its RUL band."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from stub_node import ALICE, StubNode

from twinchain.client import equipment, maintenance
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives import codec
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.types import Extrinsic
from twinchain.rpc.hosting import serve_rpc

BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Bob", "Charlie", "Dave"))
MODEL = b"\x42" * 32
GEARBOX = """
[class]
name = "gearbox"

[[metrics]]
name = "oil_temperature"
unit = "degC"
scale = 2
rated = 65.0
min = -20.0
max = 120.0

[[failure_modes]]
name = "overheating"
metric = "oil_temperature"
direction = "up"
limit = 105.0
horizon_s = 172800
"""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StubNode]:
    spec = dev_spec()
    g = spec.genesis
    g["roles"] = {
        "grants": [
            ["//Alice", "EquipmentManufacturer"],
            ["//Charlie", "EquipmentOwner"],
            ["//Dave", "PredictiveWorker"],
        ]
    }
    g["equipment"]["twins"] = [
        {"manufacturer": "//Alice", "owner": "//Charlie", "class": "pump", "serial": "P-1",
         "lifecycle": "Active"}
    ]  # fmt: skip
    chain = Blockchain(spec, None)
    yield StubNode(chain, TransactionPool(chain.validate_transaction), Keystore(tmp_path / "k"))
    chain.close()


@pytest.fixture
async def url(node: StubNode, nursery: trio.Nursery) -> str:
    port = await nursery.start(partial(serve_rpc, node, "127.0.0.1", 0, unsafe=False))
    return f"http://127.0.0.1:{port}"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    equipment.add_parser(sub)
    maintenance.add_parser(sub)
    return p.parse_args(list(argv))


async def run(node: StubNode, url: str, *argv: str, submits: bool = True) -> None:
    """Run one command in a worker thread; author a finalized block once it submitted."""
    args = parse(*argv, "--rpc", url)
    result: list[Any] = []

    async def command() -> None:
        try:
            result.append(await trio.to_thread.run_sync(args.fn, args))
        except CliError as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(command)
        if submits:
            with trio.fail_after(20):
                while node.pool.ready_count < 1 and not result:
                    await trio.sleep(0.01)
            if not result:
                node.author(finalize=True)
    if isinstance(result[0], CliError):
        raise result[0]
    assert result == [0]


def raise_prognosis(node: StubNode) -> None:
    """The worker registers its model and submits a bearing-wear prognosis for twin 0."""
    chain = node.chain
    rt = chain.runtime
    calls = [
        rt.call_by_name("Simulation", "register_model", MODEL, "pump", "pdm", codec.encode([1]), 1),
        rt.call_by_name(
            "Maintenance", "submit_prognosis", 0, "bearing_wear", 9_200, 172_800_000,
            36_000_000, 72_000_000, 108_000_000, MODEL, b"\x01" * 32,
        ),
    ]  # fmt: skip
    for nonce, call in enumerate(calls):
        xt = Extrinsic.sign(call, DAVE, nonce, chain.genesis_hash, rt.spec_version)
        node.submit_extrinsic(xt.encode())
    node.author(finalize=True)


async def test_register_list_show_a_class(
    node: StubNode, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gearbox.toml"
    path.write_text(GEARBOX)
    await run(node, url, "equipment", "class", "register", str(path), "--key", "//Alice")
    out = capsys.readouterr().out
    assert "Telemetry.MetricRegistered(metric=256, name=oil_temperature)" in out
    assert "Equipment.ClassRegistered(class=gearbox, version=1" in out
    await run(node, url, "equipment", "class", "list", submits=False)
    out = capsys.readouterr().out
    assert "gearbox v1 by " + ALICE.address in out and "4 classes" in out
    assert "pump v1 by Root: 14 metrics, failure modes bearing_wear" in out
    await run(node, url, "equipment", "class", "show", "gearbox", submits=False)
    out = capsys.readouterr().out
    assert "metric   256 oil_temperature (degC, scale 2, gauge) rated 65.0" in out
    assert "failure mode overheating: oil_temperature up to 105.0 (P(failure) within 48 h)" in out
    await run(node, url, "equipment", "class", "show", "gearbox", "--toml", submits=False)
    assert 'name = "gearbox"' in capsys.readouterr().out
    # Someone without the role is told why; a broken file names its key.
    with pytest.raises(CliError, match=r"Equipment\.NotManufacturer"):
        await run(node, url, "equipment", "class", "register", str(path), "--key", "//Bob")
    path.write_text(GEARBOX.replace("scale = 2", "scale = 19"))
    with pytest.raises(CliError, match=r"metrics\[0\]\.scale"):
        await run(node, url, "equipment", "class", "register", str(path), "--key", "//Alice")


async def test_alarm_lifecycle_from_the_command_line(
    node: StubNode, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raise_prognosis(node)
    await run(node, url, "maintenance", "alert", "list", "--open", submits=False)
    out = capsys.readouterr().out
    assert "#0 twin 0 [ACTIVE] bearing_wear: P(failure) 92.0 % within 48 h" in out
    assert "RUL 20.0 h (P10 10.0, P90 30.0)" in out
    await run(node, url, "maintenance", "alert", "ack", "0", "--key", "//Charlie")
    assert f"Maintenance.AlertAcknowledged(alert=0, twin=0, by=0x{CHARLIE.public.hex()})" in (
        capsys.readouterr().out
    )
    await run(node, url, "maintenance", "alert", "assign", "0", "//Bob", "--key", "//Charlie")
    assert "Maintenance.AlertAssigned" in capsys.readouterr().out
    await run(
        node, url, "maintenance", "alert", "comment", "0", "bearing ordered", "--key", "//Charlie"
    )
    assert "Maintenance.AlertCommented(alert=0, twin=0, index=0" in capsys.readouterr().out
    await run(node, url, "maintenance", "alert", "show", "0", submits=False)
    out = capsys.readouterr().out
    assert "[ACKED]" in out and f"assigned to {BOB.address}" in out
    assert f"{CHARLIE.address}: bearing ordered" in out
    with pytest.raises(CliError, match=r"Maintenance\.NotAlertHandler"):
        await run(node, url, "maintenance", "alert", "comment", "0", "hi", "--key", "//Bob")
    with pytest.raises(CliError, match=r"Maintenance\.AlreadyAcknowledged"):
        await run(node, url, "maintenance", "alert", "ack", "0", "--key", "//Charlie")
