"""The Facilities tab: the genesis facility, verified, with its detail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.tabs import FacilitiesTab

if TYPE_CHECKING:
    from conftest import Chain, Explorer


def test_facility_list_and_detail(chain: Chain, explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        tab = await explorer.show(app, pilot, FacilitiesTab)
        assert tab.text == f"{chain.facility} Verified"
        await explorer.shows(app, pilot, (chain.facility, "Aachen", "stamping", "Certifications"))

    explorer.run(scenario)
