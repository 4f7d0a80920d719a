"""twinchain.twinsim: the deterministic, seeded, integer-only twin simulation engine
(:mod:`twinchain.twinsim.engine`), re-run by the Simulation pallet on a challenge. The
``twinchain simulate`` commands that drive it against a node are in
:mod:`twinchain.offchain.simulate`."""
