"""The Node tab: what the node says of itself, and its (here: no) peers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.tabs import NodeTab

if TYPE_CHECKING:
    from conftest import Chain, Explorer


def test_node_info_and_peers(chain: Chain, explorer: Explorer) -> None:
    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        tab = await explorer.show(app, pilot, NodeTab)
        assert chain.node_name in tab.text and chain.name in tab.text

        def says_no_peers() -> bool:
            text = explorer.screen_text(app)
            return "no peers connected" in text or "not available" in text

        await explorer.until(pilot, says_no_peers, 5, "the peer list to say there are none")

    explorer.run(scenario)
