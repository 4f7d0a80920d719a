"""The Twins tab: a twin's detail and its telemetry chart, ``c`` for the next metric, and a
private metric charted only for an identity the chain lets read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.tabs import TwinsTab
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import POWER

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


def _private_power(explorer: Explorer, key: Keypair | None, words: tuple[str, ...]) -> list[int]:
    """Chart twin 0's power (private by default) as ``key``; the chart, once the screen
    shows ``words``."""
    seen: list[int] = []

    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        tab = app.tab_of(TwinsTab)
        await explorer.connected(app, pilot)
        await explorer.search(app, pilot, "twin 0")
        await explorer.until(pilot, lambda: app.view == "twins" and tab.text, 10, "twin view")
        while tab.metric != POWER:
            await pilot.press("c")
        await explorer.shows(app, pilot, words, timeout=10)
        seen.extend(tab.chart)

    explorer.run(scenario, key=key)
    return seen


def test_a_private_metric_is_charted_for_its_owner_only(chain: Chain, explorer: Explorer) -> None:
    owner = Keypair.from_dev_name("Alice")
    chart = _private_power(explorer, owner, ("private: read as", "verified"))
    # One mean per window, from the raw readings the archive served and the client verified.
    assert len(chart) == chain.telemetry_windows and chart == sorted(chart)
    assert chart[0] >= 5_000
    # Without an identity, and as an account without the right: no data, and why.
    assert _private_power(explorer, None, ("private: run with --key",)) == []
    dave = _private_power(explorer, chain.dave, ("may not read it",))
    assert dave == []
