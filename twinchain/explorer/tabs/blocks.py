"""The Blocks tab: the live block list, following the head until the user moves in it."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from twinchain.explorer.data import BlockSummary, short_hash
from twinchain.explorer.screens import BlockScreen
from twinchain.explorer.widgets import Tab

MAX_ROWS = 1000
BACKFILL = 30  # blocks loaded on (re)connect and the largest gap filled from the chain
COLUMNS = (  # (key, label, width)
    ("num", "#", 7),
    ("hash", "hash", 13),
    ("author", "author", 20),
    ("xt", "xt", 3),
    ("ev", "ev", 4),
    ("fin", "fin", 3),
)


class BlockTable(DataTable[Any]):
    """The block list; any cursor move or scroll by the user stops following the head."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]

    class UserScrolled(Message):
        pass

    def _user(self) -> None:
        self.post_message(self.UserScrolled())

    def action_cursor_up(self) -> None:
        self._user()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._user()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._user()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._user()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._user()
        super().action_scroll_top()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._user()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._user()


class BlocksTab(Tab):
    """Block number, hash, author, extrinsic and event counts, and finality, one row a block;
    ``rows`` maps each number shown to the hash in its row."""

    NAME, KEY, LABEL, FOCUS = "blocks", "b", "Blocks", "BlockTable"
    DEFAULT_CSS = "BlockTable { height: 1fr; }"

    def __init__(self) -> None:
        super().__init__()
        self.follow = True
        self.rows: dict[int, bytes] = {}

    def compose(self) -> ComposeResult:
        yield BlockTable(id="block-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        t = self.query_one(BlockTable)
        for key, label, width in COLUMNS:
            t.add_column(label, key=key, width=width)

    async def after_connect(self, chain_changed: bool) -> None:
        if chain_changed:  # another chain behind the same URL: start over
            self.query_one(BlockTable).clear()
            self.rows.clear()

    async def show_head(self, header_json: Any, number: int) -> None:
        """Add the new best block, first filling a gap (start-up, reconnect, missed
        notifications) from the canonical chain."""
        shown = max(self.rows) if self.rows else -1
        start = max(shown + 1, number - BACKFILL + 1, 0)
        for n in range(start, number):
            if n not in self.rows:
                hj = await self.data.header_at(n)
                if hj is not None:
                    self._add_row(await self.data.summary(hj))
        self._add_row(await self.data.summary(header_json))

    def mark_finalized(self, number: int) -> None:
        table = self.query_one(BlockTable)
        for n in self.rows:
            if n <= number:
                try:
                    if table.get_cell(str(n), "fin") != "✓":
                        table.update_cell(str(n), "fin", "✓")
                except Exception:
                    continue

    def _add_row(self, s: BlockSummary) -> None:
        table = self.query_one(BlockTable)
        cells = (
            str(s.number),
            short_hash(s.hash),
            s.author_label,
            str(s.extrinsics),
            str(s.events),
            "✓" if s.number <= self.host.finalized_number else "",
        )
        key = str(s.number)
        if s.number in self.rows:
            if self.rows[s.number] != s.hash:  # a re-org replaced this height
                for (col, _, _), value in zip(COLUMNS, cells, strict=True):
                    table.update_cell(key, col, value)
                self.rows[s.number] = s.hash
            return
        if self.rows and s.number < max(self.rows):
            return  # older than what is shown: only the head grows the list
        self.rows[s.number] = s.hash
        table.add_row(*cells, key=key)
        while len(self.rows) > MAX_ROWS:
            oldest = min(self.rows)
            del self.rows[oldest]
            table.remove_row(str(oldest))
        if self.follow:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def cursor_to_head(self) -> None:
        table = self.query_one(BlockTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def on_block_table_user_scrolled(self, _: BlockTable.UserScrolled) -> None:
        self.follow = False
        self.host.render_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        h = None if key is None else self.rows.get(int(key))
        if h is not None:
            self.app.push_screen(BlockScreen(h))


__all__ = ["BlockTable", "BlocksTab"]
