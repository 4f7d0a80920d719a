"""The screens pushed over the tabs: one block in full, and one account."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from twinchain.explorer.data import BlockDetail, ChainData, SearchResult, short_hash
from twinchain.explorer.widgets import ExplorerHost, StatusBar, fmt, grid, titled_table
from twinchain.protocol.jsonrpc import to_hex


class DetailScreen(Screen[None]):
    """A screen over the tabs, with the status bar on top; escape or q goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "app.pop_screen", "Back")]

    @property
    def host(self) -> ExplorerHost:
        return cast("ExplorerHost", self.app)

    def on_mount(self) -> None:
        self.host.render_status(self.query_one(StatusBar))


class BlockScreen(DetailScreen):
    """One block: header fields, decoded extrinsics and events, the justification."""

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
        super().on_mount()
        self.load()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def load(self) -> None:
        data = self.host.data
        try:
            self.detail = await data.detail(self.block_hash)
        except Exception as exc:  # shown, not raised: the explorer keeps running
            self.error = str(exc)
            msg = Text.assemble(("cannot load the block: ", "red"), str(exc))
            self.query_one("#detail", Static).update(msg)
            return
        if self.detail is None:
            self.error = "unknown block"
            self.query_one("#detail", Static).update("[red]unknown block[/]")
            return
        self.query_one("#detail", Static).update(self._build(self.detail, data))

    def _build(self, d: BlockDetail, data: ChainData) -> Any:
        """Compact enough that a small block's header, calls and events fit 80x24."""
        h = d.header
        head = grid(6)
        fin = "[green]finalized ✓[/]" if d.finalized else "[yellow]not finalized[/]"
        head.add_row(f"#{h['number']}", f"{fin} · slot {h['slot']} · author {h['author']}")
        head.add_row("hash", h["hash"])
        head.add_row("parent", h["parentHash"])
        head.add_row(
            "roots",
            f"state {fmt(h['stateRoot'], 18)} xts {fmt(h['extrinsicsRoot'], 18)} "
            f"seal {fmt(h['seal'], 12)}",
        )
        xts = titled_table(f"Extrinsics ({len(d.extrinsics)})")
        xts.add_column("#", no_wrap=True, width=3)
        xts.add_column("call · args", no_wrap=True, overflow="ellipsis", ratio=1)
        for col in ("signer", "ok", "fee"):
            xts.add_column(col, no_wrap=True, overflow="ellipsis")
        for x in d.extrinsics:
            ok = {True: "[green]ok[/]", False: f"[red]FAIL {x.error}[/]", None: "?"}[x.success]
            mark = "▶" if self.highlight == x.index else ""
            xts.add_row(
                f"{mark}{x.index}",
                f"{x.call.name} {fmt(x.call.args, 200)}",
                "inherent" if x.signer is None else data.label(x.signer),
                ok,
                "-" if x.fee is None else str(x.fee),
            )
            if self.highlight == x.index:
                xts.add_row("", f"hash {to_hex(x.hash)}", "", "", "")
        evs = titled_table(f"Events ({len(d.events)})")
        evs.add_column("xt", no_wrap=True, width=4)
        evs.add_column("event", no_wrap=True)
        evs.add_column("args", no_wrap=True, overflow="ellipsis", ratio=1)
        for e in d.events:
            where = str(e.extrinsic) if e.phase == "apply" else e.phase[:4]
            evs.add_row(where, e.full_name, fmt(e.args, 200))
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


class AccountScreen(DetailScreen):
    """An account found by search: nonce, balance, roles and twins."""

    def __init__(self, result: SearchResult) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        d = self.result.data
        rows = grid(8, fold=True)
        rows.add_row("Account", f"{d.get('label', '')}")
        rows.add_row("address", str(d.get("address")))
        rows.add_row("hex", to_hex(self.result.account or b""))
        rows.add_row("nonce", str(d.get("nonce")))
        bal = d.get("balance") or {}
        rows.add_row("balance", f"free {bal.get('free', 0)}  reserved {bal.get('reserved', 0)}")
        rows.add_row("roles", ", ".join(map(str, d.get("roles") or [])) or "none")
        rows.add_row("twins", ", ".join(map(str, d.get("twins") or [])) or "none")
        with VerticalScroll():
            yield Static(rows, id="account")
        yield Footer(compact=True)


__all__ = ["AccountScreen", "BlockScreen"]
