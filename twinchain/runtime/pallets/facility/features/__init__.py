"""The Facility pallet's features, one concern a module (as pallet-nfts' ``features/``):
mixins of :class:`~twinchain.runtime.pallets.facility.pallet.Facility`, whose storage, events
and errors they use."""
