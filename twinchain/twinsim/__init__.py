"""twinchain.twinsim: the deterministic, seeded, integer-only twin simulation engine
(:mod:`twinchain.twinsim.engine`, re-run by the Simulation pallet on a challenge) and the
``twinchain simulate`` commands (:mod:`twinchain.twinsim.cli`)."""
