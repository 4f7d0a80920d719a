"""The Textual block explorer: a status header, a search box, and the tabs (blocks, node,
facilities, twins, maintenance) of :mod:`twinchain.explorer.tabs`.

All data comes from :class:`twinchain.explorer.data.ChainData` over one
:class:`twinchain.client.ReconnectingClient`; the application owns the connection and the status,
switches tabs and runs searches, and each tab renders its own part.
"""

from __future__ import annotations

import time
from typing import ClassVar, TypeVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import ContentSwitcher, Footer, Input

from twinchain.client import NodeUnavailable, ReconnectingClient
from twinchain.client.aio import DEFAULT_WS_URL
from twinchain.explorer.data import ChainData, SearchResult
from twinchain.explorer.screens import AccountScreen, BlockScreen
from twinchain.explorer.tabs import TABS, BlocksTab, TwinsTab
from twinchain.explorer.widgets import StatusBar, Tab
from twinchain.primitives.keys import Keypair
from twinchain.protocol.jsonrpc import RpcError, header_from_json

STATUS_POLL_S = 2.0
T = TypeVar("T", bound=Tab)


class ExplorerApp(App[None]):
    """``ExplorerApp(url).run()``; tests drive it with ``run_test()``."""

    TITLE = "twinchain explorer"
    AUTO_FOCUS = "BlockTable"
    ENABLE_COMMAND_PALETTE = False  # its footer slot is worth more at 80 columns
    CSS = """
    #search { dock: top; display: none; }
    #search.shown { display: block; }
    #views { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(t.KEY, f"view('{t.NAME}')", t.LABEL) for t in TABS),
        Binding("slash", "search", "Search"),
        Binding("l", "follow", "Follow"),
        Binding("r", "refresh_view", "Refresh", show=False),
        Binding("escape", "close_search", "Close", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        url: str = DEFAULT_WS_URL,
        *,
        key: Keypair | None = None,
        api_key: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        """``key`` / ``api_key``: the identity private telemetry is read as (the Twins tab
        charts a private metric only where the chain lets it read it)."""
        super().__init__()
        self.rpc = ReconnectingClient(url, ca_file=ca_file)
        self.data = ChainData(self.rpc, key=key, api_key=api_key)
        self.connected = False
        self.disconnect_reason = ""
        self.best_number = -1
        self.finalized_number = -1
        self.last_block_at: float | None = None
        self.peers = 0
        self.ready = 0
        self.view = TABS[0].NAME
        self.tabs: dict[str, Tab] = {}  # by name, whichever screen is on top
        self.last_search: SearchResult | None = None
        self._refreshing = False

    # -- layout
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Input(
            placeholder="block number, hash, extrinsic hash, account, or twin N",
            id="search",
            disabled=True,
        )
        with ContentSwitcher(initial=self.view, id="views"):
            for tab_class in TABS:
                tab = self.tabs[tab_class.NAME] = tab_class()
                yield tab
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.render_status()
        self.rpc.start()
        self.consume()
        self.set_interval(0.5, self.render_status)
        self.set_interval(STATUS_POLL_S, self.poll_status)

    async def on_unmount(self) -> None:
        await self.rpc.stop()

    def tab(self, name: str | None = None) -> Tab:
        """The tab called ``name``, or the one shown."""
        return self.tabs[name or self.view]

    def tab_of(self, tab_class: type[T]) -> T:
        """The tab of that class."""
        tab = self.tabs[tab_class.NAME]
        assert isinstance(tab, tab_class)
        return tab

    @property
    def blocks(self) -> BlocksTab:
        return self.tab_of(BlocksTab)

    # -- status
    def status_text(self) -> Text:
        d = self.data
        line1 = Text()
        line1.append(f"best #{max(self.best_number, 0)}", "bold")
        line1.append(f"  fin #{max(self.finalized_number, 0)}  ")
        if self.last_block_at is not None:
            age = time.monotonic() - self.last_block_at
            slot = d.slot_ms / 1000
            style = "green" if age <= 2 * slot else "yellow" if age <= 5 * slot else "red"
            line1.append(f"last block {age:.1f}s ago / slot {slot:g}s", style)
        line1.append(f"  peers {self.peers}  ready {self.ready}")
        if self.view == BlocksTab.NAME:
            line1.append("  following" if self.blocks.follow else "  paused (l)", "italic")
        line2 = Text()
        if self.connected:
            line2.append("● ", "green")
            line2.append(d.chain or "?", "bold cyan")
            line2.append(f" · {d.node_name or '?'} · {self.rpc.url}")
        else:
            line2.append("✖ DISCONNECTED", "bold red")
            line2.append(f" reconnecting to {self.rpc.url} (try {self.rpc.attempts + 1})… ")
            line2.append(self.disconnect_reason, "dim")
        line1.truncate(78)
        line2.truncate(78)
        return Text("\n").join([line1, line2])

    def render_status(self, bar: StatusBar | None = None) -> None:
        try:
            bars = [bar] if bar is not None else list(self.screen.query(StatusBar))
        except Exception:
            return
        text = self.status_text()
        for b in bars:
            b.update(text)
            b.set_class(not self.connected, "disconnected")

    async def poll_status(self) -> None:
        if not self.connected:
            return
        try:
            st = await self.data.status()
        except (NodeUnavailable, RpcError):
            return
        self.peers, self.ready = st["peers"], st["ready"]

    # -- the connection worker
    @work(exclusive=True, group="rpc")
    async def consume(self) -> None:
        while True:
            ev = await self.rpc.events.get()
            try:
                if ev.kind == "connected":
                    await self._on_connected()
                elif ev.kind == "disconnected":
                    self.connected = False
                    self.disconnect_reason = str(ev.data or "")
                elif ev.kind == "newHead":
                    await self._on_head(ev.data)
                elif ev.kind == "finalizedHead":
                    self.finalized_number = header_from_json(ev.data).number
                    self.blocks.mark_finalized(self.finalized_number)
            except ConnectionError:  # NodeUnavailable among them
                continue
            except Exception as exc:  # odd data from a node must not end the explorer
                self.log.warning(f"explorer: {ev.kind}: {exc!r}")
            self.render_status()

    async def _on_connected(self) -> None:
        changed = await self.data.refresh()
        self.connected, self.disconnect_reason = True, ""
        if changed:
            self.best_number = self.finalized_number = -1
        for tab in self.tabs.values():
            await tab.after_connect(changed)
        await self.refresh_view()

    async def _on_head(self, header_json: object) -> None:
        number = header_from_json(header_json).number
        self.last_block_at = time.monotonic()
        self.best_number = number
        self.render_status()
        await self.blocks.show_head(header_json, number)
        if not self._refreshing and self.view != BlocksTab.NAME:
            self.refresh_view_bg()

    # -- tabs
    def action_view(self, name: str) -> None:
        if name not in (t.NAME for t in TABS):
            return
        if len(self.screen_stack) > 1:
            while len(self.screen_stack) > 1:
                self.pop_screen()
        self.view = name
        self.query_one(ContentSwitcher).current = name
        self.render_status()
        if name != BlocksTab.NAME:
            self.refresh_view_bg()
        self._focus_view()

    def _focus_view(self) -> None:
        tab = self.tab()
        tab.query_one(tab.FOCUS).focus()

    def action_follow(self) -> None:
        self.blocks.follow = True
        self.action_view(BlocksTab.NAME)
        self.blocks.cursor_to_head()
        self.render_status()

    def action_refresh_view(self) -> None:
        self.refresh_view_bg()

    @work(exclusive=True, group="view", exit_on_error=False)
    async def refresh_view_bg(self) -> None:
        await self.refresh_view()

    async def refresh_view(self) -> None:
        if not self.connected or self._refreshing:
            return
        self._refreshing = True
        try:
            await self.tab().reload()
        except Exception as exc:  # a view that fails to load keeps its last content
            self.log.warning(f"explorer view {self.view}: {exc}")
        finally:
            self._refreshing = False

    # -- search
    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.disabled = False
        box.add_class("shown")
        box.value = ""
        box.focus()

    def action_close_search(self) -> None:
        box = self.query_one("#search", Input)
        if box.has_class("shown"):
            self._hide_search(box)

    def _hide_search(self, box: Input) -> None:
        box.remove_class("shown")
        box.disabled = True  # a hidden input must not take keys or focus
        self._focus_view()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "search":
            return
        self._hide_search(event.input)
        self.run_search(event.value)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def run_search(self, text: str) -> None:
        try:
            recent = list(self.blocks.rows.values())[-64:]
            res = await self.data.search(text, recent=recent)
        except Exception as exc:  # reported to the user like a miss
            res = SearchResult("none", message=f"search failed: {exc}")
        self.last_search = res
        if res.kind in ("block", "extrinsic") and res.block is not None:
            self.push_screen(BlockScreen(res.block, res.extrinsic))
        elif res.kind == "account":
            self.push_screen(AccountScreen(res))
        elif res.kind == "twin" and res.twin is not None:
            self.tab_of(TwinsTab).twin_id = res.twin
            self.action_view(TwinsTab.NAME)
        else:
            self.notify(res.message or "nothing found", severity="warning")


__all__ = ["ExplorerApp"]
