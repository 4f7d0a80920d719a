"""twinchain.gateway."""
