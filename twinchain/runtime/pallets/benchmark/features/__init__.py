"""The Benchmark pallet's features, one concern a module (as pallet-nfts' ``features/``):
mixins of :class:`~twinchain.runtime.pallets.benchmark.pallet.Benchmark`, whose storage,
events and errors they use."""
