"""The Maintenance tab: open alerts and open work orders across all twins."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from twinchain.explorer.data import NotAvailable
from twinchain.explorer.widgets import Tab, generic_table
from twinchain.protocol.jsonrpc import RpcError


class MaintenanceTab(Tab):
    """A table for each of ``SOURCES``, or the reason it cannot be shown (a node may not serve
    the method)."""

    NAME, KEY, LABEL, FOCUS = "maintenance", "m", "Maint.", "#maint-scroll"
    DEFAULT_CSS = "#maint-scroll { height: 1fr; }"

    # (title, method called as method(twin=None, openOnly=True)).
    SOURCES: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Open alerts", "twin_alerts"),
        ("Open work orders", "twin_workOrders"),
    )

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static("", id="maint-text"), id="maint-scroll")

    async def reload(self) -> None:
        parts: list[Any] = []
        summary: list[str] = []
        for title, method in self.SOURCES:
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
            parts.append(generic_table(f"{title} ({len(rows)})", rows))
            summary.append(f"{title}: {len(rows)}")
        self.text = " · ".join(summary)
        self.query_one("#maint-text", Static).update(Group(*parts))


__all__ = ["MaintenanceTab"]
