"""Equipment: every physical asset as a non-fungible twin token.

``types`` holds the records, rights and lifecycle, ``features/`` the lifecycle, the delegated
access and critical multisig, and the twin's records, and ``pallet`` the pallet itself
(storage, events, errors, minting and transfer, genesis); see its docstring.
"""

from twinchain.runtime.pallets.equipment.pallet import Equipment

__all__ = ["Equipment"]
