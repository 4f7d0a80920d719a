"""Simulated equipment: the equipment classes (:mod:`.classes`) and a seeded factory
simulator of machines of those classes (:mod:`.simulator`), the source of readings for the
gateway, the off-chain worker's training and the devnet. Above the client and the protocol,
below the programs that use it."""
