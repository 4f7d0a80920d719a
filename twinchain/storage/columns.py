"""One-byte column prefixes of the node's single key/value store.

Every record lives under exactly one prefix, so a prefix scan never crosses columns and one
:class:`~twinchain.storage.abc.WriteBatch` can touch several columns atomically.

Layout (``H`` = 32-byte hash, ``N`` = u64 big-endian block number):

* ``BLOCK + H``          block body by block hash
* ``HEADER + H``         header by block hash
* ``CANON + N``          hash of the canonical block at height N (big-endian: scans in order)
* ``JUSTIFICATION + H``  finality justification by block hash
* ``STATE_NODE + H``     trie node by node hash: u32 big-endian reference count + the node's
                         canonical msgpack encoding (see :mod:`twinchain.storage.statedb`)
* ``STATE_JOURNAL + H``  per-block state journal: what the block inserted and replaced
* ``STATE_PRUNE + N + H`` finalized canonical blocks waiting for the pruning window
* ``BY_NUMBER + N + H``  every known block at height N, forks included (value empty)
* ``TX_INDEX + H``       extrinsic hash -> block hash + u32 index in the block
* ``META + name``        small named values (head pointers, schema version...)
* ``VOTER + ...``        the finality voter's own votes and round (restart safety; see
                         :mod:`twinchain.consensus.voter_store`)
"""

from __future__ import annotations

BLOCK = b"b"
HEADER = b"h"
CANON = b"n"
JUSTIFICATION = b"j"
STATE_NODE = b"s"
STATE_JOURNAL = b"J"
STATE_PRUNE = b"P"
BY_NUMBER = b"N"
TX_INDEX = b"x"
META = b"m"
VOTER = b"g"

ALL = (
    BLOCK,
    HEADER,
    CANON,
    JUSTIFICATION,
    STATE_NODE,
    STATE_JOURNAL,
    STATE_PRUNE,
    BY_NUMBER,
    TX_INDEX,
    META,
    VOTER,
)
# Two columns sharing a byte would silently mix their records.
assert len(set(ALL)) == len(ALL) and all(len(c) == 1 for c in ALL)


def col(prefix: bytes, key: bytes) -> bytes:
    """The store key of ``key`` in column ``prefix``."""
    return prefix + key


def number_key(number: int) -> bytes:
    """A block number as 8 big-endian bytes, so that byte order is numeric order."""
    return number.to_bytes(8, "big")
