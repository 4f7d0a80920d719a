"""The Facilities tab: the registered facilities, and the one under the cursor in full."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from twinchain.explorer.widgets import (
    RecordTable,
    Tab,
    account_label,
    check,
    clock,
    fmt,
    grid,
    titled_table,
)

COLUMNS = ("id", "name", "status", "verified", "rep", "location")


class FacilitiesTab(Tab):
    """One row a facility; below, the highlighted one's verification, reputation, accounts,
    capabilities, certifications and latest audit entries."""

    NAME, KEY, LABEL, FOCUS = "facilities", "f", "Facil.", "#facility-table"
    DEFAULT_CSS = """
    #facility-table { height: 7; }
    #facility-detail { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield RecordTable(COLUMNS, id="facility-table")
        yield VerticalScroll(Static("", id="facility-detail-text"), id="facility-detail")

    async def reload(self) -> None:
        facs = await self.data.facilities()
        table = self.query_one("#facility-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for f in facs:
            table.add_row(
                str(f["id"]),
                fmt(str(f.get("name")), 22),
                str(f.get("status")),
                check(f.get("verifiedNow")),
                str(f.get("reputation")),
                fmt(str(f.get("location")), 14),
                key=str(f["id"]),
            )
        if facs:
            table.move_cursor(row=min(cursor, len(facs) - 1), animate=False)
            row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            if row_key.value is not None:
                await self._detail(int(row_key.value))
        else:
            self.query_one("#facility-detail-text", Static).update("no facilities registered")

    @work(exclusive=True, group="facility", exit_on_error=False)
    async def show_facility(self, fid: int) -> None:
        try:
            await self._detail(fid)
        except Exception as exc:  # as for a tab's reload: the last content stays
            self.log.warning(f"facility {fid}: {exc}")

    @on(DataTable.RowSelected)
    @on(DataTable.RowHighlighted)
    def _row_chosen(self, event: DataTable.RowSelected | DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_facility(int(event.row_key.value))

    async def _detail(self, fid: int) -> None:
        f = await self.data.facility(fid)
        out = self.query_one("#facility-detail-text", Static)
        if f is None:
            out.update(f"facility {fid} not found")
            return
        rows = grid()
        rows.add_row("Facility", f"{f['id']} {f.get('name')} · {f.get('location')}")
        ver = f.get("verification") or {}
        rows.add_row(
            "verification",
            f"{f.get('status')} · verified now {check(f.get('verifiedNow'))}"
            + (f" · until {clock(ver.get('expires'), date=True)}" if ver else ""),
        )
        rows.add_row("reputation", str(f.get("reputation")))
        rows.add_row("operator", account_label(self.data, f.get("operator")))
        rows.add_row("validator", account_label(self.data, f.get("validator")))
        on = await self.data.onboarding(fid)
        rows.add_row("onboarding", _onboarding_text(on))
        rows.add_row("nodes", "\n".join(on["nodes"]) or "- (not on the network)")
        rows.add_row("capabilities", ", ".join(f.get("capabilities") or []) or "-")
        certs = titled_table("Certifications", "standard", "scope", "valid until", "counts")
        for c in f.get("certifications") or []:
            certs.add_row(
                str(c.get("standard")),
                str(c.get("scope")),
                clock(c.get("validUntil"), date=True),
                check(c.get("counts")),
            )
        log_lines = [
            f"{e.get('kind')} rep {e.get('reputation', '')}" for e in (f.get("auditLog") or [])[-4:]
        ]
        motions = titled_table("Council motions", "#", "call", "ayes", "nays", "open until")
        for m in await self.data.motions():
            call = m.get("call")
            name = call.get("call") if isinstance(call, dict) else str(call)
            motions.add_row(
                str(m["index"]),
                f"{name} {_args_text(call)}",
                f"{len(m.get('ayes') or [])}/{m['need']} ({m.get('threshold')})",
                str(len(m.get("nays") or [])),
                f"#{m.get('end')}",
            )
        self.text = f"{f.get('name')} {f.get('status')}"
        out.update(Group(rows, certs, motions, Text("audit: " + " · ".join(log_lines))))


def _onboarding_text(on: dict[str, Any]) -> str:
    """Where the facility's validator stands, in words."""
    p = on.get("proposal")
    status = None if p is None else p.get("status")
    where = {
        "Pending": "proposed · waits for the council's approval",
        "Approved": "approved · joins the authority set at the next session",
        "Active": "active validator",
        "Removed": "removed · leaves the authority set at the next session",
    }.get(str(status), "no validator proposal")
    return f"{where} · in the authority set {check(on.get('authority'))}"


def _args_text(call: Any) -> str:
    args = call.get("args") if isinstance(call, dict) else None
    return ", ".join(f"{k}={v}" for k, v in (args or {}).items())[:60]


__all__ = ["FacilitiesTab"]
