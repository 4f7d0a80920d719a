"""The runtime versions this software knows, and the storage migrations between them.

A Python node carries its runtime as code: an upgrade is new node software that knows spec
version N+1 (its behaviour, gated on ``Runtime.spec_version``, and its migrations here), and
the chain decides when N+1 takes effect (``System.schedule_upgrade``, a Root call: a council
motion). The first block at or after the scheduled height runs :func:`on_runtime_upgrade`
before any hook (FRAME's ``Executive::execute_on_runtime_upgrade``), then executes as N+1.

Each pallet has a storage version on chain (``System.StorageVersions``, FRAME's
``StorageVersion``). A migration runs only when its pallet is exactly one below the version
it produces, and bumps it in the same block: it runs once, whatever the number of upgrades,
restarts or re-imports of the block.

``TWINCHAIN_MAX_SPEC_VERSION`` (tests, rehearsals) limits the versions this software will
execute, so one install can play "a node with the old code": it stops at the upgrade block.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twinchain.runtime.migrations import v4, v5

if TYPE_CHECKING:
    from twinchain.runtime.runtime import Runtime

#: The version of chains whose state predates ``System.SpecVersion`` (the last one released
#: without runtime upgrades); also the oldest this software executes.
LEGACY_SPEC_VERSION = 3
MAX_SPEC_ENV = "TWINCHAIN_MAX_SPEC_VERSION"

# Hand-set from System.set_chain_name (one storage write, ~20 us with its state root share):
# what an upgrade costs outside its migrations (schedule read and cleared, version written,
# one storage version read per migration).
W_UPGRADE_BASE = 40_000
W_STORAGE_VERSION_READ = 5_000


@dataclass(frozen=True)
class Migration:
    """One pallet's storage migration: runs when the pallet's storage version on chain is
    ``to_storage_version - 1``; returns the weight it used."""

    pallet: str
    to_storage_version: int
    summary: str
    run: Callable[[Runtime], int]


@dataclass(frozen=True)
class SpecVersion:
    spec_version: int
    summary: str
    migrations: tuple[Migration, ...] = ()


# Oldest first, one entry per version; the last is the version new chains start at.
VERSIONS: tuple[SpecVersion, ...] = (
    SpecVersion(3, "telemetry summaries as varints"),
    SpecVersion(
        4,
        "System.ChainName becomes System.ChainInfo (the name and the block it was set at)",
        (Migration("System", 1, "ChainName -> ChainInfo", v4.migrate_chain_info),),
    ),
    SpecVersion(
        5,
        "equipment classes as data (Equipment.register_class, Telemetry.MetricIds), "
        "prognoses (Maintenance.submit_prognosis) and the alarm lifecycle",
        (
            Migration("Equipment", 1, "the built-in classes", v5.register_builtin_classes),
            Migration("Telemetry", 1, "MetricIds: metric ids by name", v5.index_metric_names),
        ),
    ),
)
_BY_VERSION: dict[int, SpecVersion] = {v.spec_version: v for v in VERSIONS}
OLDEST_SPEC_VERSION = VERSIONS[0].spec_version
NEWEST_SPEC_VERSION = VERSIONS[-1].spec_version


class SpecVersionKnobError(ValueError):
    """``TWINCHAIN_MAX_SPEC_VERSION`` is not a version this software has."""


def software_max_spec_version(env: Mapping[str, str] | None = None) -> int:
    """The newest version this process executes: the newest it has, or the test knob's."""
    raw = (os.environ if env is None else env).get(MAX_SPEC_ENV, "").strip()
    if not raw:
        return NEWEST_SPEC_VERSION
    try:
        limit = int(raw)
    except ValueError:
        raise SpecVersionKnobError(f"{MAX_SPEC_ENV}={raw!r} is not an integer") from None
    if not OLDEST_SPEC_VERSION <= limit <= NEWEST_SPEC_VERSION:
        raise SpecVersionKnobError(
            f"{MAX_SPEC_ENV}={limit}: this software has spec versions "
            f"{OLDEST_SPEC_VERSION}..{NEWEST_SPEC_VERSION}"
        )
    return limit


def knows(spec_version: int, max_spec_version: int = NEWEST_SPEC_VERSION) -> bool:
    return OLDEST_SPEC_VERSION <= spec_version <= max_spec_version


def genesis_storage_versions(spec_version: int) -> dict[str, int]:
    """Each pallet's storage version on a chain that starts at ``spec_version``: its layouts
    are that version's from block 0, so no migration up to it may ever run there."""
    out: dict[str, int] = {}
    for v in VERSIONS:
        if v.spec_version > spec_version:
            break
        for m in v.migrations:
            out[m.pallet] = m.to_storage_version
    return out


def on_runtime_upgrade(rt: Runtime, from_version: int, to_version: int) -> int:
    """Run every migration of the versions after ``from_version`` up to ``to_version``, in
    version order and, within one, in pallet order, each at most once (its pallet's storage
    version decides); record the new versions. Returns the weight, charged to the block.

    A migration that raises is a bug of the release: it fails the block (every node runs
    the same code), and the chain waits for a release that fixes it or a cancelled upgrade.
    """
    system = rt.system
    weight = W_UPGRADE_BASE
    order = {p.name: i for i, p in rt.pallets.items()}
    for v in range(from_version + 1, to_version + 1):
        for m in sorted(_BY_VERSION[v].migrations, key=lambda m: order[m.pallet]):
            weight += W_STORAGE_VERSION_READ
            if system.storage_version(m.pallet) != m.to_storage_version - 1:
                continue  # ran already (or the chain started with the new layout)
            used = m.run(rt)
            system.set_storage_version(m.pallet, m.to_storage_version)
            system.deposit(system.Event.MigrationApplied(m.pallet, m.to_storage_version, used))
            weight += used
    system.enact_upgrade(to_version)
    system.deposit(system.Event.RuntimeUpgraded(from_version, to_version, weight))
    rt.spec_version = to_version
    return weight
