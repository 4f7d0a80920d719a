"""Analytics: efficiency KPIs (OEE, MTBF, MTTR, energy per unit), reports, rewards.

``types`` holds the records, the KPI formulas and the treasury account, ``features/`` the KPI
periods, the anchored reports and the treasury rewards, and ``pallet`` the pallet itself
(storage, events, errors, genesis); see its docstring.
"""

from twinchain.runtime.pallets.analytics.pallet import Analytics

__all__ = ["Analytics"]
