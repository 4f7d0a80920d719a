"""The facility archive: the custodian of a facility's raw readings (off chain).

Gateways deliver device-signed batches to their own facility's node; the archive keeps
those whose readings match the finalized on-chain commitment (:mod:`.store`), as Parquet
partitioned by twin and day (:mod:`.parquet`), queried with DuckDB (:mod:`.query`) and
verifiable against the chain's roots at any time (:mod:`.verify`). The node hosts it as
:class:`~twinchain.archive.hosting.ArchiveService` (:mod:`.hosting`); ``twinchain archive``
queries, verifies and reports on it (:mod:`.cli`).

Layer: below ``rpc`` (which serves ``archive_deliver`` and ``twin_readings`` from the store)
and above ``node`` (whose finalized chain it reads through :mod:`.chain`).
"""
