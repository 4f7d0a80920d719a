"""The Analytics pallet's features, one concern a module (as pallet-nfts' ``features/``):
mixins of :class:`~twinchain.runtime.pallets.analytics.pallet.Analytics`, whose storage,
events and errors they use."""
