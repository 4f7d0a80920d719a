"""The Blocks tab: the list follows the head, pauses when the user moves in it, resumes on
``l``, and opens the block under the cursor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.screens import BlockScreen
from twinchain.explorer.tabs.blocks import BlockTable

if TYPE_CHECKING:
    from conftest import Chain, Explorer


def test_block_list_follows_pauses_and_resumes(chain: Chain, explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        tab = app.blocks
        table = tab.query_one(BlockTable)
        await explorer.connected(app, pilot, blocks=3)
        # The list grows with the head, and the cursor follows it.
        n0 = max(tab.rows)
        await explorer.until(pilot, lambda: max(tab.rows) > n0, 10, "a new block")
        assert tab.follow and table.cursor_row == table.row_count - 1
        assert "following" in str(app.status_text())
        await explorer.shows(app, pilot, (chain.facility, "following", "author", "fin"))

        # Moving the cursor stops following: new blocks no longer move it.
        await pilot.press("up")
        assert not tab.follow
        parked = table.cursor_row
        n1 = max(tab.rows)
        await explorer.until(pilot, lambda: max(tab.rows) > n1 + 1, 10, "blocks while paused")
        assert table.cursor_row == parked < table.row_count - 2
        assert "paused" in str(app.status_text())
        # "l" resumes: the cursor jumps to the head and tracks it again.
        await pilot.press("l")
        assert tab.follow and table.cursor_row == table.row_count - 1
        n2 = max(tab.rows)
        await explorer.until(pilot, lambda: max(tab.rows) > n2, 10, "a block after resuming")
        await pilot.pause(0.2)
        assert table.cursor_row == table.row_count - 1

    explorer.run(scenario)


def test_enter_opens_the_block_under_the_cursor(explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        tab = app.blocks
        await explorer.connected(app, pilot, blocks=3)
        await pilot.press("up")  # park the cursor, so the row stays put
        table = tab.query_one(BlockTable)
        number = int(table.get_row_at(table.cursor_row)[0])
        await pilot.press("enter")
        screen = await explorer.block_screen(app, pilot)
        assert screen.detail is not None and screen.detail.summary.number == number
        assert screen.block_hash == tab.rows[number]
        await pilot.press("escape")
        assert not isinstance(app.screen, BlockScreen)

    explorer.run(scenario)
