"""Maintenance: deviation and predictive alerts, work orders, escrowed payment.

``types`` holds the records and bounds, ``features/`` the alerts and the work orders, and
``pallet`` the pallet itself (storage, events, errors, hooks, genesis); see its docstring.
"""

from twinchain.runtime.pallets.maintenance.pallet import Maintenance

__all__ = ["Maintenance"]
