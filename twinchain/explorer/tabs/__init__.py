"""The explorer's tabs, one module each, in the order of their keys in the footer."""

from __future__ import annotations

from twinchain.explorer.tabs.blocks import BlocksTab
from twinchain.explorer.tabs.facilities import FacilitiesTab
from twinchain.explorer.tabs.maintenance import MaintenanceTab
from twinchain.explorer.tabs.node import NodeTab
from twinchain.explorer.tabs.twins import TwinsTab
from twinchain.explorer.widgets import Tab

TABS: tuple[type[Tab], ...] = (BlocksTab, NodeTab, FacilitiesTab, TwinsTab, MaintenanceTab)

__all__ = ["TABS", "BlocksTab", "FacilitiesTab", "MaintenanceTab", "NodeTab", "TwinsTab"]
