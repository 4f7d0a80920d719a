"""Facility: verification of the production sites of the network.

``types`` holds the records and bounds, ``features/`` the audits, the compliance rule sets and
the validator proposals, and ``pallet`` the pallet itself (storage, events, errors,
registration, governance, genesis); see its docstring.
"""

from twinchain.runtime.pallets.facility.pallet import Facility

__all__ = ["Facility"]
