"""twinchain.gateway: the edge gateway (``twinchain gateway --config gateway.toml``).

Readings come from the factory simulator of :mod:`twinchain.machines`, MQTT or OPC-UA
(:mod:`.sources`); each is checked (:mod:`.payloads`) and made durable in a SQLite spool
(:mod:`.spool`) before its source is acknowledged (:mod:`.intake`), cut into per-device
batches signed by the device key with per-device sequence numbers (:mod:`.cutting`), packed
into ``Telemetry.submit`` extrinsics signed by the gateway key and sent until they settle
(:mod:`.submission`), and removed from the spool only once a finalized block holds them
(:mod:`.settlement`; the finality lag is watched in :mod:`.finality`). :mod:`.core` runs the
stages over their shared state (:mod:`.state`) and the connection to the node (the asyncio
client, :mod:`twinchain.client.aio`); status file, rich table and Prometheus metrics
(:mod:`.status`); keys, config and genesis entries for a new gateway (:mod:`.provision`,
``twinchain gateway init``).
"""
