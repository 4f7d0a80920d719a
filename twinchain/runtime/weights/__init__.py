"""Weights of the runtime's pallets, one module per pallet (FRAME's ``weights.rs``).

A weight is the nanoseconds a call (or hook) costs to import on one core, state root and
database write included; it bounds a block's work and is the fee's weight part. Each module
is written by ``python -m bench.weights`` (``make weights``), which measures every weight on
a real runtime (blocks authored and imported by fresh clients, as ``make bench`` does) and
records the machine and the date in the module's header. Pallets read their weights from
here; nothing else defines one.

Regenerating the modules changes fees, and so every state root: it is a runtime change that
needs a ``SPEC_VERSION`` bump and re-recorded golden chains (see each module's header).
"""
