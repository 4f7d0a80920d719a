"""Analytics: efficiency KPIs (OEE, MTBF, MTTR, energy per unit), reports, rewards.

Skeleton: filled in by the issue-7 work.
"""

from __future__ import annotations

from twinchain.runtime.framework import Pallet


class Analytics(Pallet):
    name = "Analytics"
