"""twinchain.twinsim."""
