"""The Node tab: what the node says of itself, and its peers."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from twinchain.explorer.data import NotAvailable
from twinchain.explorer.widgets import RecordTable, Tab, fmt, grid

PEER_COLUMNS = ("peer id", "address", "best", "final", "score")


class NodeTab(Tab):
    """Name, chain, genesis, runtime, peer id, listen addresses and sync; the peer table."""

    NAME, KEY, LABEL, FOCUS = "node", "n", "Node", "#peers"
    DEFAULT_CSS = """
    #node-info { height: auto; max-height: 10; }
    #peers { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("node info", id="node-info")
        yield RecordTable(PEER_COLUMNS, id="peers")

    async def reload(self) -> None:
        info = await self.data.node_info()
        rt = info.get("runtime") or {}
        health = info.get("health") or {}
        sync = info.get("sync") or {}
        rows = grid()
        rows.add_row("node", f"{info.get('name')} {info.get('version')}  roles {info.get('roles')}")
        rows.add_row("chain", f"{info.get('chain')} ({info.get('chainType')})")
        rows.add_row("genesis", str(info.get("genesis")))
        rows.add_row(
            "runtime", f"{rt.get('specName')} v{rt.get('specVersion')} · slot {info['slotMs']} ms"
        )
        rows.add_row("peer id", str(info.get("peerId") or "(no p2p)"))
        rows.add_row("listen", ", ".join(info.get("listen") or []) or "-")
        rows.add_row(
            "sync",
            f"syncing {health.get('isSyncing')} · current {sync.get('currentBlock')} "
            f"· highest {sync.get('highestBlock')}",
        )
        self.text = f"{info.get('name')} {info.get('chain')} peer id {info.get('peerId')}"
        self.query_one("#node-info", Static).update(rows)
        table = self.query_one("#peers", DataTable)
        table.clear()
        try:
            peers = await self.data.peers()
        except NotAvailable as exc:
            table.add_row(str(exc), "", "", "", "")
            return
        for p in peers:
            table.add_row(
                fmt(str(p.get("peerId")), 16),
                fmt(str(p.get("address")), 30),
                str(p.get("bestNumber")),
                str(p.get("finalizedNumber")),
                str(p.get("score")),
            )
        if not peers:
            table.add_row("no peers connected", "", "", "", "")


__all__ = ["NodeTab"]
