"""Spec 4's migration: ``System.ChainName`` (a bare string) becomes ``System.ChainInfo`` (the
name and the block that set it), so a reader can tell when governance last renamed the chain.

A translate in FRAME's sense: the old value is read in its old layout, written in the new one
under the new key, and the old key is removed in the same block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinchain.runtime.pallets.system import ChainInfoRecord

if TYPE_CHECKING:
    from twinchain.runtime.runtime import Runtime

# Hand-set like W_SET_CHAIN_NAME (one write ~20 us): one read, one write, one delete.
W_READ = 5_000
W_WRITE = 20_000


def migrate_chain_info(rt: Runtime) -> int:
    system = rt.system
    if not system.ChainName.exists():
        return W_READ
    # 0: set before spec 4, at genesis or by a call whose block the old layout did not keep.
    system.ChainInfo.put(ChainInfoRecord(system.ChainName.get(), 0))
    system.ChainName.kill()
    return W_READ + 2 * W_WRITE
