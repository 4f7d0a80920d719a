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
        # Onboarding: the genesis validator has no proposal and is an authority; no node of
        # it is on chain (the test chain is open); the council has no open motion.
        await explorer.shows(
            app, pilot, ("no validator proposal · in the authority set ✓", "Council motions")
        )

    explorer.run(scenario)
