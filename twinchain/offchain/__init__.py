"""twinchain.offchain."""
