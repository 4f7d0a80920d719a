"""The Textual block explorer: a status header, a live block list, block details, search,
node and peers, facilities, twins with a live metric chart, and maintenance.

All data comes from :class:`twinchain.explorer.data.ChainData` over one reconnecting
:class:`twinchain.explorer.rpc.NodeRpc`; the widgets only render it.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Sparkline, Static

from twinchain.explorer.data import (
    BlockDetail,
    BlockSummary,
    ChainData,
    NotAvailable,
    SearchResult,
    short_address,
    short_hash,
)
from twinchain.explorer.rpc import DEFAULT_URL, Disconnected, NodeRpc
from twinchain.primitives.keys import parse_account
from twinchain.protocol.jsonrpc import RpcError, from_hex, header_from_json, to_hex

MAX_ROWS = 1000
BACKFILL = 30  # blocks loaded on (re)connect and the largest gap filled from the chain
STATUS_POLL_S = 2.0
COLUMNS = ("num", "hash", "author", "xt", "ev", "fin")
VIEWS = ("blocks", "node", "facilities", "twins", "maintenance")


def _fmt(value: Any, width: int = 60) -> str:
    """A compact one-line rendering of a decoded value."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _scaled(value: int, scale: int) -> str:
    """A fixed-point integer with ``scale`` decimals, exactly (no float)."""
    if scale <= 0:
        return str(value)
    sign = "-" if value < 0 else ""
    q, r = divmod(abs(value), 10**scale)
    return f"{sign}{q}.{r:0{scale}d}"


def _account_label(data: ChainData, value: Any) -> str:
    if isinstance(value, str):
        try:
            return data.label(parse_account(value))
        except ValueError:
            return value
    return "-"


def _grid(label_width: int = 12, fold: bool = False) -> Table:
    """Label/value rows; the labels keep their width when values are long."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", width=label_width, no_wrap=True)
    if fold:
        grid.add_column(overflow="fold", ratio=1)
    else:
        grid.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
    return grid


def _table(title: str) -> Table:
    from rich import box

    return Table(
        title=f"[bold]{title}[/]",
        title_justify="left",
        expand=True,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
    )


def _clock(ms: Any, date: bool = False) -> str:
    """A chain timestamp (ms since the epoch) as UTC time of day, or date."""
    if type(ms) is not int:
        return "-"
    if ms >= 2**42:  # "forever" sentinels read better as such than as a year 30000 date
        return "never"
    return time.strftime("%Y-%m-%d" if date else "%H:%M:%S", time.gmtime(ms // 1000))


def _generic_table(title: str, items: list[dict[str, Any]], keys: int = 6) -> Table:
    """A table of records whose shape this package does not know in advance."""
    table = _table(title)
    cols: list[str] = []
    for item in items:
        for k in item:
            if k not in cols and len(cols) < keys:
                cols.append(k)
    for c in cols:
        table.add_column(c, overflow="ellipsis", no_wrap=True)
    for item in items:
        table.add_row(*(_fmt(item.get(c), 24) for c in cols))
    if not items:
        table.add_row(*(["none"] + [""] * (len(cols) - 1) if cols else ["none"]))
    return table


# --------------------------------------------------------------------------- widgets


class StatusBar(Static):
    """Chain, node, heights, time since the last block against the slot, peers, ready txs;
    and the connection state on its second line."""

    DEFAULT_CSS = """
    StatusBar { height: 2; background: $boost; padding: 0 1; }
    StatusBar.disconnected { background: $error 40%; }
    """


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


# --------------------------------------------------------------------------- screens


class BlockScreen(Screen[None]):
    """One block: header fields, decoded extrinsics and events, the justification."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, block_hash: bytes, highlight: int | None = None) -> None:
        super().__init__()
        self.block_hash = block_hash
        self.highlight = highlight
        self.detail: BlockDetail | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with VerticalScroll(id="detail-scroll"):
            yield Static(f"loading block {short_hash(self.block_hash)}…", id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        app = self.app
        assert isinstance(app, ExplorerApp)
        app.render_status(self.query_one(StatusBar))
        self.load()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def load(self) -> None:
        app = self.app
        assert isinstance(app, ExplorerApp)
        try:
            self.detail = await app.data.detail(self.block_hash)
        except Exception as exc:  # shown, not raised: the explorer keeps running
            self.error = str(exc)
            msg = Text.assemble(("cannot load the block: ", "red"), str(exc))
            self.query_one("#detail", Static).update(msg)
            return
        if self.detail is None:
            self.error = "unknown block"
            self.query_one("#detail", Static).update("[red]unknown block[/]")
            return
        self.query_one("#detail", Static).update(self._build(self.detail, app.data))

    def _build(self, d: BlockDetail, data: ChainData) -> Any:
        """Compact enough that a small block's header, calls and events fit 80x24."""
        from rich.console import Group

        h = d.header
        head = _grid(6)
        fin = "[green]finalized ✓[/]" if d.finalized else "[yellow]not finalized[/]"
        head.add_row(f"#{h['number']}", f"{fin} · slot {h['slot']} · author {h['author']}")
        head.add_row("hash", h["hash"])
        head.add_row("parent", h["parentHash"])
        head.add_row(
            "roots",
            f"state {_fmt(h['stateRoot'], 18)} xts {_fmt(h['extrinsicsRoot'], 18)} "
            f"seal {_fmt(h['seal'], 12)}",
        )
        xts = _table(f"Extrinsics ({len(d.extrinsics)})")
        xts.add_column("#", no_wrap=True, width=3)
        xts.add_column("call · args", no_wrap=True, overflow="ellipsis", ratio=1)
        for col in ("signer", "ok", "fee"):
            xts.add_column(col, no_wrap=True, overflow="ellipsis")
        for x in d.extrinsics:
            ok = {True: "[green]ok[/]", False: f"[red]FAIL {x.error}[/]", None: "?"}[x.success]
            mark = "▶" if self.highlight == x.index else ""
            xts.add_row(
                f"{mark}{x.index}",
                f"{x.call.name} {_fmt(x.call.args, 200)}",
                "inherent" if x.signer is None else data.label(x.signer),
                ok,
                "-" if x.fee is None else str(x.fee),
            )
            if self.highlight == x.index:
                xts.add_row("", f"hash {to_hex(x.hash)}", "", "", "")
        evs = _table(f"Events ({len(d.events)})")
        evs.add_column("xt", no_wrap=True, width=4)
        evs.add_column("event", no_wrap=True)
        evs.add_column("args", no_wrap=True, overflow="ellipsis", ratio=1)
        for e in d.events:
            where = str(e.extrinsic) if e.phase == "apply" else e.phase[:4]
            evs.add_row(where, e.full_name, _fmt(e.args, 200))
        j = d.justification
        if j is None:
            just = Text("Justification: none stored for this block")
        else:
            voters = ", ".join(v.label for v in j.voters) or "none"
            just = Text.from_markup(
                f"[bold]Justification[/] round {j.round} set {j.set_id} "
                f"target #{j.target_number}; precommits: {voters}"
            )
        return Group(head, just, xts, evs)


class AccountScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, result: SearchResult) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        d = self.result.data
        grid = _grid(8, fold=True)
        grid.add_row("Account", f"{d.get('label', '')}")
        grid.add_row("address", str(d.get("address")))
        grid.add_row("hex", to_hex(self.result.account or b""))
        grid.add_row("nonce", str(d.get("nonce")))
        bal = d.get("balance") or {}
        grid.add_row("balance", f"free {bal.get('free', 0)}  reserved {bal.get('reserved', 0)}")
        grid.add_row("roles", ", ".join(map(str, d.get("roles") or [])) or "none")
        grid.add_row("twins", ", ".join(map(str, d.get("twins") or [])) or "none")
        with VerticalScroll():
            yield Static(grid, id="account")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        app = self.app
        assert isinstance(app, ExplorerApp)
        app.render_status(self.query_one(StatusBar))


# --------------------------------------------------------------------------- the app


class ExplorerApp(App[None]):
    """``ExplorerApp(url).run()``; tests drive it with ``run_test()``."""

    TITLE = "twinchain explorer"
    AUTO_FOCUS = "#blocks"
    ENABLE_COMMAND_PALETTE = False  # its footer slot is worth more at 80 columns
    CSS = """
    #search { dock: top; display: none; }
    #search.shown { display: block; }
    #views { height: 1fr; }
    BlockTable { height: 1fr; }
    #node-info { height: auto; max-height: 10; }
    #peers { height: 1fr; }
    #facility-table { height: 7; }
    #facility-detail { height: 1fr; }
    #twin-table { height: 5; }
    #twin-chart { height: 3; margin: 0 1; }
    #twin-detail { height: 1fr; }
    #maint { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "view('blocks')", "Blocks"),
        Binding("n", "view('node')", "Node"),
        Binding("f", "view('facilities')", "Facil."),
        Binding("t", "view('twins')", "Twins"),
        Binding("m", "view('maintenance')", "Maint."),
        Binding("slash", "search", "Search"),
        Binding("l", "follow", "Follow"),
        Binding("c", "next_metric", "Metric", show=False),
        Binding("r", "refresh_view", "Refresh", show=False),
        Binding("escape", "close_search", "Close", show=False),
        Binding("q", "quit", "Quit"),
    ]

    # (title, method called as method(twin=None, openOnly=True)) of the maintenance view.
    MAINTENANCE_SOURCES: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Open alerts", "twin_alerts"),
        ("Open work orders", "twin_workOrders"),
    )

    def __init__(self, url: str = DEFAULT_URL) -> None:
        super().__init__()
        self.rpc = NodeRpc(url)
        self.data = ChainData(self.rpc)
        self.follow = True
        self.connected = False
        self.disconnect_reason = ""
        self.best_number = -1
        self.finalized_number = -1
        self.last_block_at: float | None = None
        self.peers = 0
        self.ready = 0
        self.rows: dict[int, bytes] = {}  # block number -> hash shown in that row
        self.view = "blocks"
        self.twin_id: int | None = None
        self.twin_metric = 1
        self.metric_info: dict[int, dict[str, Any]] = {}
        self.chart: list[int] = []
        self.twin_text = ""
        self.maint_text = ""
        self.facility_text = ""
        self.node_text = ""
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
        with ContentSwitcher(initial="blocks", id="views"):
            table = BlockTable(id="blocks", cursor_type="row", zebra_stripes=True)
            yield table
            with Vertical(id="node"):
                yield Static("node info", id="node-info")
                yield DataTable(id="peers", cursor_type="row")
            with Vertical(id="facilities"):
                yield DataTable(id="facility-table", cursor_type="row")
                yield VerticalScroll(Static("", id="facility-detail-text"), id="facility-detail")
            with Vertical(id="twins"):
                yield DataTable(id="twin-table", cursor_type="row")
                yield Sparkline([], id="twin-chart")
                yield VerticalScroll(Static("", id="twin-detail-text"), id="twin-detail")
            yield VerticalScroll(Static("", id="maint-text"), id="maintenance")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        t = self.query_one(BlockTable)
        t.add_column("#", key="num", width=7)
        t.add_column("hash", key="hash", width=13)
        t.add_column("author", key="author", width=20)
        t.add_column("xt", key="xt", width=3)
        t.add_column("ev", key="ev", width=4)
        t.add_column("fin", key="fin", width=3)
        peers = self.query_one("#peers", DataTable)
        for c in ("peer id", "address", "best", "final", "score"):
            peers.add_column(c, key=c)
        ft = self.query_one("#facility-table", DataTable)
        for c in ("id", "name", "status", "verified", "rep", "location"):
            ft.add_column(c, key=c)
        tt = self.query_one("#twin-table", DataTable)
        for c in ("id", "class", "model", "owner", "lifecycle", "fac"):
            tt.add_column(c, key=c)
        self.render_status()
        self.rpc.start()
        self.consume()
        self.set_interval(0.5, self.render_status)
        self.set_interval(STATUS_POLL_S, self.poll_status)

    async def on_unmount(self) -> None:
        await self.rpc.stop()

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
        if self.view == "blocks":
            line1.append("  following" if self.follow else "  paused (l)", "italic")
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
        except (Disconnected, RpcError):
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
                    self._on_finalized(ev.data)
            except (Disconnected, ConnectionError):
                continue
            except Exception as exc:  # odd data from a node must not end the explorer
                self.log.warning(f"explorer: {ev.kind}: {exc!r}")
            self.render_status()

    async def _on_connected(self) -> None:
        changed = await self.data.refresh()
        self.connected, self.disconnect_reason = True, ""
        if changed:  # another chain behind the same URL: start over
            self.query_one(BlockTable).clear()
            self.rows.clear()
            self.best_number = self.finalized_number = -1
        try:
            self.metric_info = await self.data.metrics()
        except RpcError:
            self.metric_info = {}
        await self.refresh_view()

    async def _on_head(self, header_json: Any) -> None:
        header = header_from_json(header_json)
        self.last_block_at = time.monotonic()
        self.best_number = header.number
        self.render_status()
        # Fill a gap (start-up, reconnect, missed notifications) from the canonical chain.
        shown = max(self.rows) if self.rows else -1
        start = max(shown + 1, header.number - BACKFILL + 1, 0)
        for n in range(start, header.number):
            if n not in self.rows:
                hj = await self.data.header_at(n)
                if hj is not None:
                    self._add_row(await self.data.summary(hj))
        self._add_row(await self.data.summary(header_json))
        if not self._refreshing and self.view != "blocks":
            self.refresh_view_bg()

    def _on_finalized(self, header_json: Any) -> None:
        header = header_from_json(header_json)
        self.finalized_number = header.number
        table = self.query_one(BlockTable)
        for n in self.rows:
            if n <= header.number:
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
            "✓" if s.number <= self.finalized_number else "",
        )
        key = str(s.number)
        if s.number in self.rows:
            if self.rows[s.number] != s.hash:  # a re-org replaced this height
                for col, value in zip(COLUMNS, cells, strict=True):
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

    # -- block list
    def on_block_table_user_scrolled(self, _: BlockTable.UserScrolled) -> None:
        self.follow = False
        self.render_status()

    def action_follow(self) -> None:
        self.follow = True
        self.action_view("blocks")
        table = self.query_one(BlockTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self.render_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        key = event.row_key.value
        if key is None:
            return
        if table.id == "blocks":
            h = self.rows.get(int(key))
            if h is not None:
                self.push_screen(BlockScreen(h))
        elif table.id == "twin-table":
            self.twin_id = int(key)
            self.refresh_view_bg()
        elif table.id == "facility-table":
            self.refresh_facility(int(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "twin-table" and self.twin_id != int(key):
            self.twin_id = int(key)
            self.chart = []
            self.refresh_view_bg()
        elif event.data_table.id == "facility-table":
            self.refresh_facility(int(key))

    # -- views
    def action_view(self, name: str) -> None:
        if name not in VIEWS:
            return
        if len(self.screen_stack) > 1:
            while len(self.screen_stack) > 1:
                self.pop_screen()
        self.view = name
        self.query_one(ContentSwitcher).current = name
        self.render_status()
        if name != "blocks":
            self.refresh_view_bg()
        self._focus_view()

    def _focus_view(self) -> None:
        widget = {
            "blocks": "#blocks",
            "node": "#peers",
            "facilities": "#facility-table",
            "twins": "#twin-table",
            "maintenance": "#maintenance",
        }[self.view]
        self.query_one(widget).focus()

    def action_refresh_view(self) -> None:
        self.refresh_view_bg()

    def action_next_metric(self) -> None:
        ids = sorted(self.metric_info) or [1]
        i = ids.index(self.twin_metric) if self.twin_metric in ids else -1
        self.twin_metric = ids[(i + 1) % len(ids)]
        self.chart = []
        self.refresh_view_bg()

    @work(exclusive=True, group="view", exit_on_error=False)
    async def refresh_view_bg(self) -> None:
        await self.refresh_view()

    async def refresh_view(self) -> None:
        if not self.connected or self._refreshing:
            return
        self._refreshing = True
        try:
            if self.view == "node":
                await self._refresh_node()
            elif self.view == "facilities":
                await self._refresh_facilities()
            elif self.view == "twins":
                await self._refresh_twins()
            elif self.view == "maintenance":
                await self._refresh_maintenance()
        except Exception as exc:  # a view that fails to load keeps its last content
            self.log.warning(f"explorer view {self.view}: {exc}")
        finally:
            self._refreshing = False

    async def _refresh_node(self) -> None:
        info = await self.data.node_info()
        rt = info.get("runtime") or {}
        health = info.get("health") or {}
        sync = info.get("sync") or {}
        grid = _grid()
        grid.add_row("node", f"{info.get('name')} {info.get('version')}  roles {info.get('roles')}")
        grid.add_row("chain", f"{info.get('chain')} ({info.get('chainType')})")
        grid.add_row("genesis", str(info.get("genesis")))
        grid.add_row(
            "runtime", f"{rt.get('specName')} v{rt.get('specVersion')} · slot {info['slotMs']} ms"
        )
        grid.add_row("peer id", str(info.get("peerId") or "(no p2p)"))
        grid.add_row("listen", ", ".join(info.get("listen") or []) or "-")
        grid.add_row(
            "sync",
            f"syncing {health.get('isSyncing')} · current {sync.get('currentBlock')} "
            f"· highest {sync.get('highestBlock')}",
        )
        self.node_text = f"{info.get('name')} {info.get('chain')} peer id {info.get('peerId')}"
        self.query_one("#node-info", Static).update(grid)
        table = self.query_one("#peers", DataTable)
        table.clear()
        try:
            peers = await self.data.peers()
        except NotAvailable as exc:
            table.add_row(str(exc), "", "", "", "")
            return
        for p in peers:
            table.add_row(
                _fmt(str(p.get("peerId")), 16),
                _fmt(str(p.get("address")), 30),
                str(p.get("bestNumber")),
                str(p.get("finalizedNumber")),
                str(p.get("score")),
            )
        if not peers:
            table.add_row("no peers connected", "", "", "", "")

    async def _refresh_facilities(self) -> None:
        facs = await self.data.facilities()
        table = self.query_one("#facility-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for f in facs:
            table.add_row(
                str(f["id"]),
                _fmt(str(f.get("name")), 22),
                str(f.get("status")),
                "✓" if f.get("verifiedNow") else "✗",
                str(f.get("reputation")),
                _fmt(str(f.get("location")), 14),
                key=str(f["id"]),
            )
        if facs:
            table.move_cursor(row=min(cursor, len(facs) - 1), animate=False)
            row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            if row_key.value is not None:
                await self._facility_detail(int(row_key.value))
        else:
            self.query_one("#facility-detail-text", Static).update("no facilities registered")

    @work(exclusive=True, group="facility", exit_on_error=False)
    async def refresh_facility(self, fid: int) -> None:
        try:
            await self._facility_detail(fid)
        except Exception as exc:  # as for the views
            self.log.warning(f"facility {fid}: {exc}")

    async def _facility_detail(self, fid: int) -> None:
        f = await self.data.facility(fid)
        out = self.query_one("#facility-detail-text", Static)
        if f is None:
            out.update(f"facility {fid} not found")
            return
        from rich.console import Group

        grid = _grid()
        grid.add_row("Facility", f"{f['id']} {f.get('name')} · {f.get('location')}")
        ver = f.get("verification") or {}
        grid.add_row(
            "verification",
            f"{f.get('status')} · verified now {'✓' if f.get('verifiedNow') else '✗'}"
            + (f" · until {_clock(ver.get('expires'), date=True)}" if ver else ""),
        )
        grid.add_row("reputation", str(f.get("reputation")))
        grid.add_row("operator", _account_label(self.data, f.get("operator")))
        grid.add_row("validator", _account_label(self.data, f.get("validator")))
        grid.add_row("capabilities", ", ".join(f.get("capabilities") or []) or "-")
        certs = _table("Certifications")
        for c in ("standard", "scope", "valid until", "counts"):
            certs.add_column(c, no_wrap=True, overflow="ellipsis")
        for c in f.get("certifications") or []:
            certs.add_row(
                str(c.get("standard")),
                str(c.get("scope")),
                _clock(c.get("validUntil"), date=True),
                "✓" if c.get("counts") else "✗",
            )
        log_lines = [
            f"{e.get('kind')} rep {e.get('reputation', '')}" for e in (f.get("auditLog") or [])[-4:]
        ]
        self.facility_text = f"{f.get('name')} {f.get('status')}"
        out.update(Group(grid, certs, Text("audit: " + " · ".join(log_lines))))

    async def _refresh_twins(self) -> None:
        twins = await self.data.twins()
        table = self.query_one("#twin-table", DataTable)
        table.clear()
        for t in twins:
            table.add_row(
                str(t["id"]),
                _fmt(str(t.get("equipmentClass")), 12),
                _fmt(str(t.get("model")), 12),
                _account_label(self.data, t.get("owner")),
                str(t.get("lifecycle")),
                str(t.get("facility")),
                key=str(t["id"]),
            )
        if not twins:
            self.query_one("#twin-detail-text", Static).update("no equipment twins")
            return
        ids = [t["id"] for t in twins]
        if self.twin_id not in ids:
            self.twin_id = ids[0]
        table.move_cursor(row=ids.index(self.twin_id), animate=False)
        await self._twin_detail(self.twin_id)

    async def _twin_detail(self, tid: int) -> None:
        from rich.console import Group

        t = await self.data.twin(tid)
        out = self.query_one("#twin-detail-text", Static)
        if t is None:
            out.update(f"twin {tid} not found")
            return
        aggs = await self.data.aggregates(tid)
        latest: dict[int, dict[str, Any]] = {}
        series: list[int] = []
        for a in aggs:
            latest[a["metric"]] = a  # sorted by (metric, window): the last one wins
            if a["metric"] == self.twin_metric and a["count"]:
                series.append(a["sum"] // a["count"])
        self.chart = series[-60:]
        chart = self.query_one("#twin-chart", Sparkline)
        chart.data = self.chart
        chart.display = len(self.chart) > 1  # one value or none is no chart
        grid = _grid()
        minfo = self.metric_info.get(self.twin_metric, {})
        grid.add_row(
            "Twin",
            f"{tid} {t.get('equipmentClass')} {t.get('model')} {t.get('serial')}"
            f" · chart: {minfo.get('name', self.twin_metric)} (c: next)",
        )
        grid.add_row(
            "owner",
            f"{_account_label(self.data, t.get('owner'))} · lifecycle {t.get('lifecycle')}"
            f" · operational {'✓' if t.get('operational') else '✗'}",
        )
        grid.add_row("health", await self._health_text(tid))
        grid.add_row("KPIs", await self._kpi_text(tid))
        prov = t.get("provenance") or []
        grid.add_row(
            "provenance",
            " → ".join(str(p.get("kind")) for p in prov[-5:]) + f"  ({len(prov)} entries)",
        )
        grid.add_row("devices", ", ".join(short_address(from_hex(d, "d")) for d in t["devices"]))
        aggt = _table("Latest aggregates (window start UTC)")
        for c in ("metric", "window", "n", "mean", "min", "max", "last"):
            aggt.add_column(c, no_wrap=True, overflow="ellipsis")
        for m, a in sorted(latest.items()):
            info = self.metric_info.get(m, {})
            scale = int(info.get("scale", 0))
            n = max(int(a["count"]), 1)
            aggt.add_row(
                f"{info.get('name', m)} {info.get('unit', '')}".strip(),
                _clock(int(a["windowStart"])),
                str(a["count"]),
                _scaled(a["sum"] // n, scale),
                _scaled(a["min"], scale),
                _scaled(a["max"], scale),
                _scaled(a["last"], scale),
            )
        if not latest:
            aggt.add_row("no telemetry yet", "", "", "", "", "", "")
        self.twin_text = f"twin {tid} {len(aggs)} aggregates"
        out.update(Group(grid, aggt))

    async def _health_text(self, tid: int) -> str:
        """Health and open alerts from the operations pallets' reads, where the node has them."""
        parts = []
        try:
            st = await self.data.optional("twin_state", tid)
            hb = st.get("healthBp") if isinstance(st, dict) else None
            parts.append("-" if hb is None else f"{_scaled(int(hb), 2)} % of new")
            if isinstance(st, dict) and st.get("lastAlert") is not None:
                parts.append(f"last alert {st['lastAlert']}")
        except NotAvailable as exc:
            parts.append(f"health: {exc}")
        try:
            alerts = await self.data.optional("twin_alerts", tid, True)
            parts.append(f"open alerts {len(alerts or [])}")
        except NotAvailable as exc:
            parts.append(f"alerts: {exc}")
        return " · ".join(parts)

    async def _kpi_text(self, tid: int) -> str:
        """The latest closed period's KPIs (Analytics), as the node reports them."""
        try:
            k = await self.data.optional("twin_kpis", tid)
        except NotAvailable as exc:
            return str(exc)
        latest = k.get("latest") if isinstance(k, dict) else None
        if not latest:
            return "no closed period yet"
        if isinstance(latest, dict):
            return " ".join(f"{key} {value}" for key, value in latest.items() if value is not None)
        return _fmt(latest, 70)

    async def _refresh_maintenance(self) -> None:
        from rich.console import Group

        parts: list[Any] = []
        summary: list[str] = []
        for title, method in self.MAINTENANCE_SOURCES:
            try:
                items = await self.data.optional(method, None, True)
            except NotAvailable as exc:
                parts.append(Text.from_markup(f"[bold]{title}[/]: {exc}"))
                summary.append(f"{title}: {exc}")
                continue
            except RpcError as exc:
                parts.append(Text(f"{title}: {exc.message}"))
                summary.append(f"{title}: {exc.message}")
                continue
            rows = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
            parts.append(_generic_table(f"{title} ({len(rows)})", rows))
            summary.append(f"{title}: {len(rows)}")
        self.maint_text = " · ".join(summary)
        self.query_one("#maint-text", Static).update(Group(*parts))

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
            res = await self.data.search(text, recent=list(self.rows.values())[-64:])
        except Exception as exc:  # reported to the user like a miss
            res = SearchResult("none", message=f"search failed: {exc}")
        self.last_search = res
        if res.kind in ("block", "extrinsic") and res.block is not None:
            self.push_screen(BlockScreen(res.block, res.extrinsic))
        elif res.kind == "account":
            self.push_screen(AccountScreen(res))
        elif res.kind == "twin" and res.twin is not None:
            self.twin_id = res.twin
            self.action_view("twins")
        else:
            self.notify(res.message or "nothing found", severity="warning")


__all__ = ["AccountScreen", "BlockScreen", "ExplorerApp"]
