"""The explorer TUI, headless (Textual's run_test and Pilot), against a real node process.

One node per module: a single-validator chain whose genesis holds a verified facility
(Alice's, so blocks are authored by "Aachen Press Shop"), an active twin with a bound device
and a Gateway; the fixture submits a transfer and device-signed telemetry through the Python
client. Tests are sync and drive the app with ``asyncio.run`` (pytest runs trio_mode; Textual
runs on asyncio). The reconnect test restarts the node, so it runs last.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from twinchain.client import Client
from twinchain.explorer.app import AccountScreen, BlockScreen, ExplorerApp
from twinchain.explorer.cli import add_parser
from twinchain.explorer.data import NotAvailable
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import sign_batch
from twinchain.rpc.client import RpcClient

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
DEVICE = Keypair.from_dev_name("Device1")
FACILITY = "Aachen Press Shop"
CHAIN = "Explorer Test"
WINDOW_MS = 10_000
SIZE = (80, 24)


def _hex(k: Keypair) -> str:
    return "0x" + k.public.hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_spec(path: Path) -> None:
    spec = dev_spec()
    spec.name, spec.id = CHAIN, "explorer_test"
    g = spec.genesis
    g["roles"] = {
        "grants": [
            [_hex(ALICE), "FacilityOperator"],
            [_hex(ALICE), "EquipmentManufacturer"],
            [_hex(BOB), "CertifiedAuditor"],
            [_hex(CHARLIE), "Gateway"],
        ]
    }
    g["facility"] = {
        "facilities": [
            {
                "operator": _hex(ALICE),
                "name": FACILITY,
                "location": "Aachen",
                "capabilities": ["stamping"],
                "validator": _hex(ALICE),
                "verified_until": 10**14,
            }
        ]
    }
    g["equipment"] = {
        "twins": [
            {
                "manufacturer": _hex(ALICE),
                "class": "cnc_mill",
                "model": "Mill-7",
                "serial": "SN-EXPLORER-1",
                "lifecycle": "Active",
                "facility": 0,
            }
        ]
    }
    g["telemetry"] = {"window_ms": WINDOW_MS, "devices": [{"device": _hex(DEVICE), "twin": 0}]}
    path.write_text(json.dumps(spec.to_json()))


@dataclass
class NodeProc:
    spec: Path
    base: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twinchain",
                "--log",
                "warning",
                "node",
                "--chain",
                str(self.spec),
                "--validator",
                "--key",
                "//Alice",
                "--name",
                "explorer-test-node",
                "--base-path",
                str(self.base),
                "--rpc-port",
                str(self.port),
                "--no-p2p",
                "--no-prometheus",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        rpc = RpcClient(f"http://127.0.0.1:{self.port}", timeout=2)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = self.log.read_bytes()[-2000:].decode(errors="replace")
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{tail}")
            try:
                if int(rpc.call("chain_getHeader")["number"], 16) >= 1:
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise AssertionError("node did not author a block in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Chain:
    node: NodeProc
    transfer_hash: str
    transfer_block: str
    telemetry_windows: int


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _find_block_of(rpc: RpcClient, xt_hash: str) -> str | None:
    from twinchain.primitives.types import extrinsic_hash

    best = int(rpc.call("chain_getHeader")["number"], 16)
    for n in range(best, 0, -1):
        h = rpc.call("chain_getBlockHash", n)
        xts = rpc.call("chain_getBlock", h)["block"]["extrinsics"]
        if any("0x" + extrinsic_hash(bytes.fromhex(x[2:])).hex() == xt_hash for x in xts):
            return str(h)
    return None


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("explorer-node")
    spec = tmp / "spec.json"
    write_spec(spec)
    node = NodeProc(spec, tmp / "db", tmp / "node.log", free_port())
    node.start()
    try:
        with Client(f"http://127.0.0.1:{node.port}") as c:
            call = c.call_function("Balances", "transfer", dest=DAVE.public, value=10**12)
            xt = "0x" + c.sign_and_submit(call, BOB).hex()
            rpc = c.rpc
            # Its own block, so that the block detail fits one 80x24 screen.
            block = _wait(lambda: _find_block_of(rpc, xt), 20, "the transfer in a block")
            # Telemetry over six windows, so the twin view has a series to chart.
            now = int(time.time() * 1000)
            start = (now // WINDOW_MS - 6) * WINDOW_MS
            readings = [(1, start + i * 2_000, 20_000 + 500 * i) for i in range(30)]
            readings += [(2, start + i * 2_000, 1_000 + 10 * i) for i in range(30)]
            readings.sort(key=lambda r: (r[1], r[0]))
            batch = sign_batch(DEVICE, c.info.genesis_hash, 0, 0, readings)
            c.sign_and_submit(c.call_function("Telemetry", "submit", batches=[batch]), CHARLIE)
            aggs = _wait(
                lambda: [a for a in rpc.call("twin_telemetryAggregates", 0, 1) if a["count"]],
                20,
                "telemetry aggregates",
            )
        yield Chain(node, xt, block, len(aggs))
    finally:
        node.stop()


def svg_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, line by line (spaces that are only
    background are not in the SVG, so checks look for words, not padding)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        text = html.unescape(m.group(3)).replace("\xa0", " ")
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), text))
    return "\n".join("".join(t for _, t in sorted(v)) for _, v in sorted(rows.items()))


async def until(pilot: Any, cond: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class ProbeApp(ExplorerApp):
    """The explorer with one more maintenance source, one no node serves: the view must say
    so instead of failing (the real methods are served or not, depending on the node)."""

    MAINTENANCE_SOURCES = (*ExplorerApp.MAINTENANCE_SOURCES, ("Missing", "twin_noSuchMethod"))


def run_app(url: str, scenario: Callable[[ExplorerApp, Any], Awaitable[None]]) -> None:
    async def main() -> None:
        app = ProbeApp(url)
        async with app.run_test(size=SIZE) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())


async def search(app: ExplorerApp, pilot: Any, text: str) -> None:
    """Open the search box with its key, type the query, and submit it."""
    await pilot.press("slash")
    box = app.query_one("#search")
    assert box.has_focus
    box.value = text  # type: ignore[attr-defined]
    await pilot.press("enter")


async def loaded_detail(app: ExplorerApp, pilot: Any) -> BlockScreen:
    screen = await until(
        pilot,
        lambda: (
            app.screen
            if isinstance(app.screen, BlockScreen) and app.screen.detail is not None
            else None
        ),
        10,
        "block detail",
    )
    await pilot.pause(0.2)
    return screen  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- tests


def test_cli_parses_rpc_url() -> None:
    import argparse

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(["explorer", "--rpc", "ws://10.0.0.1:9944"])
    assert args.rpc == "ws://10.0.0.1:9944" and callable(args.fn)
    assert p.parse_args(["explorer"]).rpc == "ws://127.0.0.1:9944"


def test_block_list_follows_search_and_detail(chain: Chain, tmp_path: Path) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        table = app.query_one("#blocks")
        await until(pilot, lambda: app.connected and len(app.rows) >= 3, 15, "first blocks")
        # The list grows with the head, and the cursor follows it.
        n0 = max(app.rows)
        await until(pilot, lambda: max(app.rows) > n0, 10, "a new block")
        assert app.follow and table.cursor_row == table.row_count - 1  # type: ignore[attr-defined]
        assert app.rows[max(app.rows)] is not None
        # The header shows chain, node, heights, slot, peers and ready count.
        status = str(app.status_text())
        for word in (CHAIN, "explorer-test-node", "best #", "fin #", "slot 1s", "peers", "ready"):
            assert word in status, (word, status)

        # Moving the cursor stops following: new blocks no longer move it.
        await pilot.press("up")
        assert not app.follow
        parked = table.cursor_row  # type: ignore[attr-defined]
        n1 = max(app.rows)
        await until(pilot, lambda: max(app.rows) > n1 + 1, 10, "blocks while paused")
        assert table.cursor_row == parked < table.row_count - 2  # type: ignore[attr-defined]
        assert "paused" in str(app.status_text())
        # "l" resumes: the cursor jumps to the head and tracks it again.
        await pilot.press("l")
        assert app.follow and table.cursor_row == table.row_count - 1  # type: ignore[attr-defined]
        n2 = max(app.rows)
        await until(pilot, lambda: max(app.rows) > n2, 10, "a block after resuming")
        await pilot.pause(0.2)
        assert table.cursor_row == table.row_count - 1  # type: ignore[attr-defined]

        main_svg = Path(app.save_screenshot("main.svg", str(tmp_path)))
        text = svg_text(main_svg.read_text())
        for word in (CHAIN, FACILITY, "following", "Blocks", "Search", "Follow", "Quit"):
            assert word in text, (word, text)

        # Search by extrinsic hash: the block that holds it, decoded, that extrinsic marked.
        await search(app, pilot, chain.transfer_hash)
        screen = await loaded_detail(app, pilot)
        d = screen.detail
        assert d is not None and "0x" + d.summary.hash.hex() == chain.transfer_block
        assert screen.highlight is not None
        x = d.extrinsics[screen.highlight]
        assert (x.call.pallet, x.call.call) == ("Balances", "transfer")
        assert x.call.args == {"dest": DAVE.address, "value": 10**12}
        assert x.signer == BOB.public and x.success is True and x.fee and x.fee > 0
        assert d.extrinsics[0].call.name == "Timestamp.set" and d.extrinsics[0].signer is None
        names = {e.full_name for e in d.events}
        assert {"Balances.Transfer", "System.ExtrinsicSuccess", "Balances.FeePaid"} <= names
        transfer = next(e for e in d.events if e.full_name == "Balances.Transfer")
        assert transfer.args == {"from": BOB.address, "to": DAVE.address, "amount": 10**12}
        detail_svg = Path(app.save_screenshot("detail.svg", str(tmp_path)))
        text = svg_text(detail_svg.read_text())
        for word in ("Balances.transfer", "Timestamp.set", "Balances.Transfer", "Bob", "Events"):
            assert word in text, (word, text)
        await pilot.press("escape")
        assert not isinstance(app.screen, BlockScreen)

        # Search by number: a finalized block with its justification (who voted).
        await until(pilot, lambda: app.finalized_number >= 3, 10, "finality")
        await search(app, pilot, str(app.finalized_number))
        screen = await loaded_detail(app, pilot)
        assert screen.detail is not None and screen.detail.finalized
        j = screen.detail.justification
        assert j is not None and [v.label for v in j.voters] == [FACILITY]
        assert j.target_number >= screen.detail.summary.number
        await pilot.press("escape")

        # Search by account: nonce, balance and roles of Bob.
        await search(app, pilot, BOB.address)
        acct = await until(
            pilot,
            lambda: app.screen if isinstance(app.screen, AccountScreen) else None,
            5,
            "account screen",
        )
        assert acct.result.data["label"] == "Bob"
        assert acct.result.data["roles"] == ["CertifiedAuditor"]
        assert acct.result.data["nonce"] == 1
        await pilot.press("escape")

        # Something that is not there says so and opens nothing.
        for query, message in (("99999999", "no block #99999999"), ("nope", "nothing found")):
            app.last_search = None
            await search(app, pilot, query)
            await until(pilot, lambda: app.last_search, 10, "a search result")
            assert app.last_search is not None and app.last_search.kind == "none"
            assert message in app.last_search.message
            assert not isinstance(app.screen, BlockScreen | AccountScreen)

    run_app(chain.node.url, scenario)


def test_domain_views(chain: Chain, tmp_path: Path) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await until(pilot, lambda: app.connected and app.rows, 15, "connection")
        # Search "twin 0" opens the twin view with its telemetry.
        await search(app, pilot, "twin 0")
        await until(pilot, lambda: app.view == "twins" and app.twin_text, 10, "twin view")
        assert app.twin_id == 0
        # One mean per closed or open window of temperature, rising as the readings do.
        assert len(app.chart) == chain.telemetry_windows >= 4
        assert app.chart == sorted(app.chart) and app.chart[0] < app.chart[-1]
        twins_svg = Path(app.save_screenshot("twins.svg", str(tmp_path)))
        text = svg_text(twins_svg.read_text())
        for word in ("SN-EXPLORER-1", "temperature", "vibration_rms", "Active", "health"):
            assert word in text, (word, text)
        # "c" charts the next metric.
        before = app.twin_metric
        await pilot.press("c")
        await until(pilot, lambda: app.twin_metric != before and app.chart, 10, "next metric")
        assert app.twin_metric == 2 and app.chart == sorted(app.chart)

        await pilot.press("f")
        await until(pilot, lambda: app.facility_text, 10, "facility view")
        assert app.facility_text == f"{FACILITY} Verified"

        await pilot.press("m")
        await until(pilot, lambda: "Open work orders" in app.maint_text, 10, "maintenance view")
        maint = svg_text(app.export_screenshot())
        assert "Open alerts" in maint and "Open work orders" in maint, maint
        assert "Missing" in maint and "not available on this node" in maint, maint
        with pytest.raises(NotAvailable):
            await app.data.optional("twin_noSuchMethod")

        await pilot.press("n")
        await until(pilot, lambda: app.node_text, 10, "node view")
        assert "explorer-test-node" in app.node_text and CHAIN in app.node_text
        node = svg_text(app.export_screenshot())
        assert "no peers connected" in node or "not available" in node, node

    run_app(chain.node.url, scenario)


def test_node_restart_disconnects_and_recovers(chain: Chain) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await until(pilot, lambda: app.connected and len(app.rows) >= 2, 15, "connection")
        before = max(app.rows)
        await asyncio.get_running_loop().run_in_executor(None, chain.node.stop)
        await until(pilot, lambda: not app.connected, 10, "the explorer to notice")
        await pilot.pause(0.6)  # the status bar redraws twice a second
        text = svg_text(app.export_screenshot())
        assert "DISCONNECTED" in text and "reconnecting" in text, text
        await asyncio.get_running_loop().run_in_executor(None, chain.node.start)
        await until(pilot, lambda: app.connected, 15, "reconnection")
        await until(pilot, lambda: max(app.rows) > before + 1, 15, "blocks after the restart")
        await pilot.pause(0.6)
        text = svg_text(app.export_screenshot())
        assert "DISCONNECTED" not in text and "●" in text, text
        # The list continued without a hole across the restart.
        assert sorted(app.rows) == list(range(min(app.rows), max(app.rows) + 1))

    run_app(chain.node.url, scenario)
