"""The application around the tabs: the status header, tab keys, searches that find nothing,
and a node restart (the tests after it find the node running again)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.screens import AccountScreen, BlockScreen
from twinchain.explorer.tabs import TABS

if TYPE_CHECKING:
    from conftest import Chain, Explorer


def test_status_header_and_tab_keys(chain: Chain, explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot, blocks=2)
        # The header shows chain, node, heights, slot, peers and ready count.
        status = str(app.status_text())
        for word in (chain.name, chain.node_name, "best #", "fin #", "slot 1s", "peers", "ready"):
            assert word in status, (word, status)
        words = (chain.name, "Blocks", "Node", "Twins", "Search", "Follow", "Quit")
        await explorer.shows(app, pilot, words)
        # Each tab's key shows it and focuses its main widget.
        for tab in (*TABS[1:], TABS[0]):
            await pilot.press(tab.KEY)
            assert app.view == tab.NAME and app.tab().has_focus_within, tab.NAME

    explorer.run(scenario)


def test_search_that_finds_nothing_says_so(explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        for query, message in (("99999999", "no block #99999999"), ("nope", "nothing found")):
            app.last_search = None
            await explorer.search(app, pilot, query)
            await explorer.until(pilot, lambda: app.last_search, 10, "a search result")
            assert app.last_search is not None and app.last_search.kind == "none"
            assert message in app.last_search.message
            assert not isinstance(app.screen, BlockScreen | AccountScreen)

    explorer.run(scenario)


def test_node_restart_disconnects_and_recovers(chain: Chain, explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot, blocks=2)
        rows = app.blocks.rows
        before = max(rows)
        await asyncio.get_running_loop().run_in_executor(None, chain.node.stop)
        await explorer.until(pilot, lambda: not app.connected, 10, "the explorer to notice")
        await explorer.shows(app, pilot, ("DISCONNECTED", "reconnecting"))
        await asyncio.get_running_loop().run_in_executor(None, chain.node.start)
        await explorer.until(pilot, lambda: app.connected, 15, "reconnection")
        await explorer.until(pilot, lambda: max(rows) > before + 1, 15, "blocks after restart")
        await explorer.shows(app, pilot, ("●",), absent=("DISCONNECTED",))
        # The list continued without a hole across the restart.
        assert sorted(rows) == list(range(min(rows), max(rows) + 1))

    explorer.run(scenario)
