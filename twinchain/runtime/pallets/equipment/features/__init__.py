"""The Equipment pallet's features, one concern a module (as pallet-nfts' ``features/``):
mixins of :class:`~twinchain.runtime.pallets.equipment.pallet.Equipment`, whose storage,
events and errors they use."""
