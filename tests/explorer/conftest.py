"""The explorer TUI, headless (Textual's run_test and Pilot), against a real node process.

One node for the folder: a single-validator chain whose genesis holds a verified facility
(Alice's, so blocks are authored by "Aachen Press Shop"), an active twin with a bound device
and a Gateway; the fixture submits a transfer and device-signed telemetry through the Python
client. Tests are sync and drive the app with ``asyncio.run`` (pytest runs trio_mode; Textual
runs on asyncio). Test modules get all of this through the ``chain`` and ``explorer``
fixtures rather than by importing this module. The node outlives each module but not the
folder: it stops with the folder's last test, not at the end of the whole suite.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from realnet import free_port, wait_for

from twinchain.client import Client
from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.screens import BlockScreen
from twinchain.explorer.widgets import Tab
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import extrinsic_hash
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
DEVICE = Keypair.from_dev_name("Device1")
FACILITY = "Aachen Press Shop"
CHAIN = "Explorer Test"
NODE_NAME = "explorer-test-node"
WINDOW_MS = 10_000
SIZE = (80, 24)
T = TypeVar("T", bound=Tab)
HERE = Path(__file__).parent
_running: list[NodeProc] = []


def _hex(k: Keypair) -> str:
    return "0x" + k.public.hex()


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
    g["telemetry"] = {
        "window_ms": WINDOW_MS,
        "devices": [{"device": _hex(DEVICE), "twin": 0, "gateway": _hex(CHARLIE)}],
    }
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

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
                NODE_NAME,
                "--base-path",
                str(self.base),
                "--rpc-port",
                str(self.port),
                "--no-p2p",
                "--no-prometheus",
                "--archive-facility",  # twin 0's facility: its node keeps the raw readings
                "0",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = self.log.read_bytes()[-2000:].decode(errors="replace")
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{tail}")
            try:
                with Client(self.http_url, timeout=2) as c:
                    if int(c.call("chain_getHeader")["number"], 16) >= 1:
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
    """The test node and what the fixture put on its chain."""

    node: NodeProc
    name: str
    node_name: str
    facility: str
    bob: Keypair
    dave: Keypair
    transfer_hash: str  # Bob's transfer to Dave
    transfer_block: str
    telemetry_windows: int  # windows of temperature readings (metric 1) of twin 0


def _block_of(c: Client, xt_hash: str) -> str | None:
    best = int(c.call("chain_getHeader")["number"], 16)
    for n in range(best, 0, -1):
        h = c.call("chain_getBlockHash", n)
        xts = c.call("chain_getBlock", h)["block"]["extrinsics"]
        if any("0x" + extrinsic_hash(bytes.fromhex(x[2:])).hex() == xt_hash for x in xts):
            return str(h)
    return None


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("explorer-node")
    spec = tmp / "spec.json"
    write_spec(spec)
    node = NodeProc(spec, tmp / "db", tmp / "node.log", free_port())
    node.start()
    _running.append(node)
    try:
        with Client(node.http_url) as c:
            call = c.call_function("Balances", "transfer", dest=DAVE.public, value=10**12)
            xt = "0x" + c.sign_and_submit(call, BOB).hex()
            # Its own block, so that the block detail fits one 80x24 screen.
            wait_for(lambda: _block_of(c, xt), 20, "the transfer in a block")
            block = _block_of(c, xt)
            assert block is not None
            # Telemetry over six windows, so the twin view has a series to chart.
            now = int(time.time() * 1000)
            start = (now // WINDOW_MS - 6) * WINDOW_MS
            readings = [(1, start + i * 2_000, 20_000 + 500 * i) for i in range(30)]
            readings += [(2, start + i * 2_000, 1_000 + 10 * i) for i in range(30)]
            readings += [(4, start + i * 2_000, 5_000 + 100 * i) for i in range(30)]  # private
            readings.sort(key=lambda r: (r[1], r[0]))
            # The chain takes commitments, one per window (a batch never spans two), and
            # aggregates their public summaries (temperature and vibration are public).
            by_window: dict[int, list[tuple[int, int, int]]] = {}
            for r in readings:
                by_window.setdefault(r[1] // WINDOW_MS, []).append(r)
            batches = [
                sign_batch(DEVICE, c.info.genesis_hash, 0, seq, rs, DEFAULT_PUBLIC)
                for seq, (_, rs) in enumerate(sorted(by_window.items()))
            ]
            submit = c.call_function(
                "Telemetry", "submit", batches=[b.commitment() for b in batches]
            )
            final = c.submit_and_watch(submit, CHARLIE, timeout=30)[-1]
            assert final.kind == "finalized", final
            # The readings to the facility's archive, as the gateway delivers them.
            assert {d.status for d in c.deliver(batches, CHARLIE)} == {"archived"}

            def windows() -> int:
                return len([a for a in c.call("twin_telemetryAggregates", 0, 1) if a["count"]])

            wait_for(windows, 20, "telemetry aggregates")
            n_windows = windows()
        yield Chain(node, CHAIN, NODE_NAME, FACILITY, BOB, DAVE, xt, block, n_windows)
    finally:
        node.stop()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After this folder's last test, the node stops (other folders' tests need the CPU)."""
    if nextitem is None or HERE not in nextitem.path.parents:
        while _running:
            _running.pop().stop()


class Explorer:
    """Runs :class:`ExplorerApp` against the test node, and the steps scenarios share."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def run(
        self,
        scenario: Callable[[ExplorerApp, Any], Awaitable[None]],
        app_class: type[ExplorerApp] = ExplorerApp,
        key: Keypair | None = None,
    ) -> None:
        async def main() -> None:
            app = app_class(self.chain.node.url, key=key)
            async with app.run_test(size=SIZE) as pilot:
                await scenario(app, pilot)

        asyncio.run(main())

    @staticmethod
    async def until(pilot: Any, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = cond()
            if got:
                return got
            await pilot.pause(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    async def connected(self, app: ExplorerApp, pilot: Any, blocks: int = 1) -> None:
        """Until the app is connected and lists ``blocks`` blocks."""
        rows = app.blocks.rows
        await self.until(pilot, lambda: app.connected and len(rows) >= blocks, 15, "connection")

    async def show(self, app: ExplorerApp, pilot: Any, tab_class: type[T]) -> T:
        """Press the tab's key; the tab, once it has rendered."""
        tab = app.tab_of(tab_class)
        await pilot.press(tab.KEY)
        await self.until(pilot, lambda: tab.text, 10, f"the {tab.NAME} tab")
        return tab

    @staticmethod
    async def search(app: ExplorerApp, pilot: Any, text: str) -> None:
        """Open the search box with its key, type the query, and submit it."""
        await pilot.press("slash")
        box = app.query_one("#search")
        assert box.has_focus
        box.value = text  # type: ignore[attr-defined]
        await pilot.press("enter")

    async def block_screen(self, app: ExplorerApp, pilot: Any) -> BlockScreen:
        """The block screen, once its detail has loaded."""
        screen = await self.until(
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

    async def shows(
        self,
        app: ExplorerApp,
        pilot: Any,
        words: Iterable[str],
        absent: Iterable[str] = (),
        timeout: float = 5,
    ) -> str:
        """The screen's text once it shows every word in ``words`` and none in ``absent``.

        A screenshot can catch the compositor between two refreshes, with only the widgets that
        changed drawn, so one-shot checks of the screen are flaky; this polls instead."""
        words, absent = tuple(words), tuple(absent)
        end = time.monotonic() + timeout
        while True:
            text = self.screen_text(app)
            if all(w in text for w in words) and not any(w in text for w in absent):
                return text
            if time.monotonic() >= end:
                missing = [w for w in words if w not in text]
                present = [w for w in absent if w in text]
                raise AssertionError(f"screen lacks {missing} / shows {present}:\n{text}")
            await pilot.pause(0.1)

    @staticmethod
    def screen_text(app: ExplorerApp) -> str:
        """The characters on the screen, line by line, from Textual's SVG screenshot (spaces
        that are only background are not in the SVG, so checks look for words, not padding)."""
        svg = app.export_screenshot()
        rows: dict[float, list[tuple[float, str]]] = {}
        pattern = r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>'
        for m in re.finditer(pattern, svg):
            text = html.unescape(m.group(3)).replace("\xa0", " ")
            rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), text))
        return "\n".join("".join(t for _, t in sorted(v)) for _, v in sorted(rows.items()))


@pytest.fixture
def explorer(chain: Chain) -> Explorer:
    return Explorer(chain)
