"""The Maintenance tab: open alerts and open work orders across all twins. An alert shows
where it stands in the alarm lifecycle, and a prognosis its failure mode, the probability of
failing within its horizon and the remaining useful life (P50, with P10 to P90)."""

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
            if method == "twin_alerts":
                rows = [alert_row(a) for a in rows]
            parts.append(generic_table(f"{title} ({len(rows)})", rows))
            summary.append(f"{title}: {len(rows)}")
        self.text = " · ".join(summary)
        self.query_one("#maint-text", Static).update(Group(*parts))


HOUR_MS = 3_600_000
STATES = {"ActiveUnacknowledged": "active", "Acknowledged": "acked", "Cleared": "cleared"}


# A worker that cannot see a quantile within 20 horizons submits 20 horizons (the quantiles
# stay ordered): shown as "beyond".
BEYOND_HORIZONS = 20


def hours(ms: int) -> str:
    return f"{ms / HOUR_MS:.1f} h"


def rul_hours(ms: int, horizon_ms: int) -> str:
    """A remaining useful life in hours, ">N" where the worker saw none within 20 horizons."""
    if horizon_ms and ms >= BEYOND_HORIZONS * horizon_ms:
        return f">{BEYOND_HORIZONS * horizon_ms / HOUR_MS:.0f}"
    return f"{ms / HOUR_MS:.1f}"


def prognosis_text(a: dict[str, Any]) -> str:
    """``bearing_wear 92.0 % in 48.0 h, RUL 20.0 h (12.0-30.0 h)`` of an alert with a
    prognosis; its probability and horizon alone for a prediction; "" otherwise."""
    if a.get("kind") != "Predicted":
        return ""
    text = f"{a['probabilityBp'] / 100:.1f} % in {hours(a['horizonMs'])}"
    p = a.get("prognosis")
    if not isinstance(p, dict):
        return text
    hz = int(p["horizonMs"])
    band = f"{rul_hours(p['rulP10Ms'], hz)} to {rul_hours(p['rulP90Ms'], hz)} h"
    return f"{p['mode']} {text}, RUL {rul_hours(p['rulP50Ms'], hz)} h ({band})"


def alert_row(a: dict[str, Any]) -> dict[str, Any]:
    """An alert of ``twin_alerts`` as the tab's columns."""
    p = a.get("prognosis") if isinstance(a.get("prognosis"), dict) else None
    what = p["mode"] if p else (f"metric {a.get('metric')}" if a.get("metric") else a.get("kind"))
    rul = "-"
    if p:
        hz = int(p["horizonMs"])
        band = f"{rul_hours(p['rulP10Ms'], hz)} to {rul_hours(p['rulP90Ms'], hz)}"
        rul = f"{rul_hours(p['rulP50Ms'], hz)} h ({band})"
    risk = "-"
    if a.get("kind") == "Predicted":
        risk = f"{a['probabilityBp'] / 100:.1f} %/{hours(a['horizonMs'])}"
    elif a.get("deviationBp") is not None:
        risk = f"dev {a['deviationBp'] / 100:+.1f} %"
    return {
        "alert": a.get("id"),
        "twin": a.get("twin"),
        "state": STATES.get(a.get("state") or "", a.get("status")),
        "what": what,
        "P(fail)/dev": risk,
        "RUL P50 (P10 to P90)": rul,
    }


__all__ = ["MaintenanceTab", "alert_row", "prognosis_text", "rul_hours"]
