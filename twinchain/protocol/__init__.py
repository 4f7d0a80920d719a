"""Protocols shared by the chain and the programs around it (gateways, workers, tools): the
telemetry wire format, device batch signing and verification, reading proofs and the metric
registry. Below the runtime, so that the edge never imports on-chain code."""
