"""The Twins tab: the equipment twins, and the one under the cursor with a live metric chart."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Sparkline, Static

from twinchain.client import ClientError
from twinchain.explorer.data import NotAvailable, short_address
from twinchain.explorer.tabs.maintenance import prognosis_text
from twinchain.explorer.widgets import (
    RecordTable,
    Tab,
    account_label,
    check,
    clock,
    fmt,
    grid,
    scaled,
    titled_table,
)
from twinchain.protocol.jsonrpc import RpcError, from_hex

COLUMNS = ("id", "class", "model", "owner", "lifecycle", "fac")
AGGREGATE_COLUMNS = ("metric", "window", "n", "mean", "min", "max", "last")
CHART_POINTS = 60


class TwinsTab(Tab):
    """One row a twin; below, a sparkline of one metric's window means (``c`` charts the next)
    and the highlighted twin's owner, health, KPIs, provenance, devices and latest aggregates.
    ``twin_id`` is the twin shown, ``metric`` the metric charted and ``chart`` its points."""

    NAME, KEY, LABEL, FOCUS = "twins", "t", "Twins", "#twin-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "next_metric", "Metric", show=False),
    ]
    DEFAULT_CSS = """
    #twin-table { height: 5; }
    #twin-chart { height: 3; margin: 0 1; }
    #twin-detail { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.twin_id: int | None = None
        self.metric = 1
        self.metric_info: dict[int, dict[str, Any]] = {}
        self.chart: list[int] = []

    def compose(self) -> ComposeResult:
        yield RecordTable(COLUMNS, id="twin-table")
        yield Sparkline([], id="twin-chart")
        yield VerticalScroll(Static("", id="twin-detail-text"), id="twin-detail")

    async def after_connect(self, chain_changed: bool) -> None:
        try:
            self.metric_info = await self.data.metrics()
        except RpcError:
            self.metric_info = {}

    def action_next_metric(self) -> None:
        ids = sorted(self.metric_info) or [1]
        i = ids.index(self.metric) if self.metric in ids else -1
        self.metric = ids[(i + 1) % len(ids)]
        self.chart = []
        self.host.refresh_view_bg()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.twin_id = int(event.row_key.value)
            self.host.refresh_view_bg()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and self.twin_id != int(key):
            self.twin_id = int(key)
            self.chart = []
            self.host.refresh_view_bg()

    async def reload(self) -> None:
        twins = await self.data.twins()
        table = self.query_one("#twin-table", DataTable)
        table.clear()
        for t in twins:
            table.add_row(
                str(t["id"]),
                fmt(str(t.get("equipmentClass")), 12),
                fmt(str(t.get("model")), 12),
                account_label(self.data, t.get("owner")),
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
        await self._detail(self.twin_id)

    async def _detail(self, tid: int) -> None:
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
            if a["metric"] == self.metric and a["count"]:
                series.append(a["sum"] // a["count"])
        public = await self.data.public_metrics(tid)
        private_note = ""
        if self.metric not in public:
            series, private_note = await self._private_series(tid, aggs)
        self.chart = series[-CHART_POINTS:]
        chart = self.query_one("#twin-chart", Sparkline)
        chart.data = self.chart
        chart.display = len(self.chart) > 1  # one value or none is no chart
        rows = grid()
        minfo = self.metric_info.get(self.metric, {})
        rows.add_row(
            "Twin",
            f"{tid} {t.get('equipmentClass')} {t.get('model')} {t.get('serial')}"
            f" · chart: {minfo.get('name', self.metric)} (c: next)",
        )
        names = [str(self.metric_info.get(m, {}).get("name", m)) for m in sorted(public)]
        rows.add_row("public", ", ".join(names) or "nothing")
        if private_note:
            rows.add_row(str(minfo.get("name", self.metric)), private_note)
        rows.add_row(
            "owner",
            f"{account_label(self.data, t.get('owner'))} · lifecycle {t.get('lifecycle')}"
            f" · operational {check(t.get('operational'))}",
        )
        rows.add_row("health", await self._health_text(tid))
        rows.add_row("KPIs", await self._kpi_text(tid))
        prov = t.get("provenance") or []
        rows.add_row(
            "provenance",
            " → ".join(str(p.get("kind")) for p in prov[-5:]) + f"  ({len(prov)} entries)",
        )
        rows.add_row("devices", ", ".join(short_address(from_hex(d, "d")) for d in t["devices"]))
        aggt = titled_table("Latest aggregates (window start UTC)", *AGGREGATE_COLUMNS)
        for m, a in sorted(latest.items()):
            info = self.metric_info.get(m, {})
            scale = int(info.get("scale", 0))
            n = max(int(a["count"]), 1)
            aggt.add_row(
                f"{info.get('name', m)} {info.get('unit', '')}".strip(),
                clock(int(a["windowStart"])),
                str(a["count"]),
                scaled(a["sum"] // n, scale),
                scaled(a["min"], scale),
                scaled(a["max"], scale),
                scaled(a["last"], scale),
            )
        if not latest:
            aggt.add_row("no telemetry yet", "", "", "", "", "", "")
        self.text = f"twin {tid} {len(aggs)} aggregates"
        out.update(Group(rows, aggt))

    async def _private_series(self, tid: int, aggs: list[dict[str, Any]]) -> tuple[list[int], str]:
        """The charted metric is private: its window means from the raw readings the node's
        archive serves to the explorer's identity, and a note on what it may see."""
        who = self.data.identity
        if who is None:
            return [], "private: run with --key as an account the chain lets read it"
        windows = [int(a["windowStart"]) for a in aggs]
        if not windows:
            return [], "private; no windows yet"
        window_ms = int(aggs[-1]["windowMs"])
        since = max(windows) - (CHART_POINTS - 1) * window_ms
        try:
            series = await self.data.private_means(
                tid, self.metric, window_ms, since, max(windows) + window_ms - 1
            )
        except RpcError as exc:  # AccessDenied among them: the chain says no
            return [], f"private: {who} may not read it ({exc.message})"
        except ClientError as exc:  # a proof that failed, or the node went away
            return [], f"private: its readings could not be verified ({exc})"
        return series, f"private: read as {who}, every reading verified"

    async def _health_text(self, tid: int) -> str:
        """Health and open alerts from the operations pallets' reads, where the node has them."""
        parts = []
        try:
            st = await self.data.optional("twin_state", tid)
            hb = st.get("healthBp") if isinstance(st, dict) else None
            parts.append("-" if hb is None else f"{scaled(int(hb), 2)} % of new")
            if isinstance(st, dict) and st.get("lastAlert") is not None:
                parts.append(f"last alert {st['lastAlert']}")
        except NotAvailable as exc:
            parts.append(f"health: {exc}")
        try:
            alerts = await self.data.optional("twin_alerts", tid, True)
            parts.append(f"open alerts {len(alerts or [])}")
            # The riskiest open prediction: probability within its horizon, RUL band.
            predicted = [a for a in alerts or [] if isinstance(a, dict) and prognosis_text(a)]
            if predicted:
                top = max(predicted, key=lambda a: int(a["probabilityBp"]))
                parts.append(prognosis_text(top))
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
        return fmt(latest, 70)


__all__ = ["TwinsTab"]
