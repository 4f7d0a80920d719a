"""twinchain.gateway: the edge gateway (``twinchain gateway --config gateway.toml``).

Readings come from the built-in factory simulator (:mod:`.simulator`), MQTT or OPC-UA
(:mod:`.sources`); each is checked (:mod:`.payloads`), made durable in a SQLite spool before
its source is acknowledged (:mod:`.spool`), cut into per-device batches signed by the device
key with per-device sequence numbers, packed into ``Telemetry.submit`` extrinsics signed by
the gateway key, and removed from the spool only once a finalized block holds them
(:mod:`.core`). JSON-RPC to the node over one WebSocket (:mod:`.noderpc`); status file, rich
table and Prometheus metrics (:mod:`.status`); keys, config and genesis entries for a new
gateway (:mod:`.provision`, ``twinchain gateway init``).
"""
