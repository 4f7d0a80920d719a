"""twinchain.explorer."""
