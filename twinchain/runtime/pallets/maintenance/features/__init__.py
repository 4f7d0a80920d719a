"""The Maintenance pallet's features, one concern a module (as pallet-nfts' ``features/``):
mixins of :class:`~twinchain.runtime.pallets.maintenance.pallet.Maintenance`, whose storage,
events and errors they use."""
