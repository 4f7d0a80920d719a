"""The Twins tab: a twin's detail and its telemetry chart, and ``c`` for the next metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.tabs import TwinsTab

if TYPE_CHECKING:
    from conftest import Chain, Explorer


def test_twin_detail_and_chart(chain: Chain, explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        tab = app.tab_of(TwinsTab)
        await explorer.connected(app, pilot)
        # Search "twin 0" opens the twin view with its telemetry.
        await explorer.search(app, pilot, "twin 0")
        await explorer.until(pilot, lambda: app.view == "twins" and tab.text, 10, "twin view")
        assert tab.twin_id == 0
        # One mean per closed or open window of temperature, rising as the readings do.
        assert len(tab.chart) == chain.telemetry_windows >= 4
        assert tab.chart == sorted(tab.chart) and tab.chart[0] < tab.chart[-1]
        words = ("SN-EXPLORER-1", "temperature", "vibration_rms", "Active", "health")
        await explorer.shows(app, pilot, words)
        # "c" charts the next metric.
        before = tab.metric
        await pilot.press("c")
        await explorer.until(pilot, lambda: tab.metric != before and tab.chart, 10, "next metric")
        assert tab.metric == 2 and tab.chart == sorted(tab.chart)

    explorer.run(scenario)
