"""The Maintenance tab: open alerts and work orders, and a source the node does not serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.data import NotAvailable
from twinchain.explorer.tabs import MaintenanceTab

if TYPE_CHECKING:
    from conftest import Explorer


def test_maintenance_tables_and_a_missing_source(
    explorer: Explorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One more source, one no node serves: the tab must say so instead of failing (the real
    # methods are served or not, depending on the node).
    sources = (*MaintenanceTab.SOURCES, ("Missing", "twin_noSuchMethod"))
    monkeypatch.setattr(MaintenanceTab, "SOURCES", sources)

    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        tab = await explorer.show(app, pilot, MaintenanceTab)
        assert "Open alerts: " in tab.text and "Open work orders: " in tab.text, tab.text
        words = ("Open alerts", "Open work orders", "Missing", "not available on this node")
        await explorer.shows(app, pilot, words)
        with pytest.raises(NotAvailable):
            await app.data.optional("twin_noSuchMethod")

    explorer.run(scenario)
