"""The runtime: the list of pallets by fixed index, call dispatch, genesis and metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.types import Call
from twinchain.runtime import migrations
from twinchain.runtime.framework import (
    CallDef,
    DispatchError,
    Origin,
    Pallet,
    bad_origin,
    transactional,
)
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets.analytics import Analytics
from twinchain.runtime.pallets.analytics.config import Config as AnalyticsConfig
from twinchain.runtime.pallets.authority import Authority
from twinchain.runtime.pallets.authority import Config as AuthorityConfig
from twinchain.runtime.pallets.balances import Balances
from twinchain.runtime.pallets.balances import Config as BalancesConfig
from twinchain.runtime.pallets.benchmark import Benchmark
from twinchain.runtime.pallets.benchmark.config import Config as BenchmarkConfig
from twinchain.runtime.pallets.council import Config as CouncilConfig
from twinchain.runtime.pallets.council import Council
from twinchain.runtime.pallets.equipment import Equipment
from twinchain.runtime.pallets.equipment.config import Config as EquipmentConfig
from twinchain.runtime.pallets.facility import Facility
from twinchain.runtime.pallets.facility.config import Config as FacilityConfig
from twinchain.runtime.pallets.maintenance import Maintenance
from twinchain.runtime.pallets.maintenance.config import Config as MaintenanceConfig
from twinchain.runtime.pallets.multisig import Config as MultisigConfig
from twinchain.runtime.pallets.multisig import Multisig
from twinchain.runtime.pallets.roles import Roles
from twinchain.runtime.pallets.session import Session
from twinchain.runtime.pallets.simulation import Config as SimulationConfig
from twinchain.runtime.pallets.simulation import Simulation
from twinchain.runtime.pallets.sudo import Sudo
from twinchain.runtime.pallets.system import System
from twinchain.runtime.pallets.telemetry import Telemetry
from twinchain.runtime.pallets.telemetry.config import Config as TelemetryConfig
from twinchain.runtime.pallets.timestamp import Config as TimestampConfig
from twinchain.runtime.pallets.timestamp import Timestamp
from twinchain.storage.abc import StateReader

SPEC_NAME = "twinchain"
IMPL_NAME = "twinchain-node"
# 2: Telemetry takes commitments, disclosure policy; 3: summaries as varints; 4: System.ChainInfo;
# 5: equipment classes as data, prognoses and the alarm lifecycle.
# A new version is an entry in runtime/migrations (VERSIONS), with its migrations, and its
# behaviour gated on ``Runtime.spec_version``: chains switch to it at a scheduled block.
SPEC_VERSION = 5
IMPL_VERSION = 1
TRANSACTION_VERSION = 1

# Like Substrate's #[runtime]: fixed indices; adding a pallet is one line. Never reuse an index.
PALLETS: list[tuple[int, type[Pallet]]] = [
    (0, System),
    (1, Timestamp),
    (2, Authority),
    (3, Balances),
    (4, Multisig),
    (5, Sudo),
    (10, Roles),
    (11, Facility),
    (12, Equipment),
    (13, Telemetry),
    (14, Benchmark),
    (15, Maintenance),
    (16, Analytics),
    (17, Simulation),
    # After Roles and Facility: its genesis reads their founding facilities and operators.
    (18, Council),
    (19, Session),
]

MAX_NESTED_DISPATCH = 4


@dataclass
class BlockContext:
    """What the runtime knows about the block being executed, outside of state."""

    number: int = 0
    parent_hash: bytes = ZERO_HASH
    slot: int = 0
    author: bytes | None = None
    extrinsic_index: int = 0
    nesting: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


class _EmptyState(StateReader):
    def get(self, key: bytes) -> bytes | None:
        return None

    def iter_prefix(self, prefix: bytes, start_after: bytes | None = None):  # type: ignore[override]
        return iter(())


class Runtime:
    """One instance per node; ``state``, ``block`` and ``spec_version`` are set by the
    executive per block (the version the block runs with, from state: see
    ``twinchain.runtime.migrations``).

    ``max_spec_version``: the newest version this process executes (default: this
    software's, or ``TWINCHAIN_MAX_SPEC_VERSION``'s); ``spec_version``: the version to start
    at (default: that one; a client sets the node's)."""

    spec_name = SPEC_NAME

    def __init__(
        self,
        genesis_hash: bytes = ZERO_HASH,
        *,
        spec_version: int | None = None,
        max_spec_version: int | None = None,
    ) -> None:
        self.genesis_hash = genesis_hash
        self.max_spec_version = (
            migrations.software_max_spec_version() if max_spec_version is None else max_spec_version
        )
        self.spec_version = self.max_spec_version if spec_version is None else spec_version
        self.state: Overlay = Overlay(_EmptyState())
        self.block = BlockContext()
        self.pallets: dict[int, Pallet] = {}
        self.by_name: dict[str, Pallet] = {}
        for index, cls in PALLETS:
            p = cls(self, index)
            self.pallets[index] = p
            self.by_name[cls.name] = p
        self.system: System = self.by_name["System"]  # type: ignore[assignment]
        self.timestamp: Timestamp = self.by_name["Timestamp"]  # type: ignore[assignment]
        self.authority: Authority = self.by_name["Authority"]  # type: ignore[assignment]
        self.balances: Balances = self.by_name["Balances"]  # type: ignore[assignment]
        self.multisig: Multisig = self.by_name["Multisig"]  # type: ignore[assignment]
        self.sudo: Sudo = self.by_name["Sudo"]  # type: ignore[assignment]
        self.roles: Roles = self.by_name["Roles"]  # type: ignore[assignment]
        self.facility: Facility = self.by_name["Facility"]  # type: ignore[assignment]
        self.equipment: Equipment = self.by_name["Equipment"]  # type: ignore[assignment]
        self.telemetry: Telemetry = self.by_name["Telemetry"]  # type: ignore[assignment]
        self.benchmark: Benchmark = self.by_name["Benchmark"]  # type: ignore[assignment]
        self.maintenance: Maintenance = self.by_name["Maintenance"]  # type: ignore[assignment]
        self.analytics: Analytics = self.by_name["Analytics"]  # type: ignore[assignment]
        self.simulation: Simulation = self.by_name["Simulation"]  # type: ignore[assignment]
        self.council: Council = self.by_name["Council"]  # type: ignore[assignment]
        self.session: Session = self.by_name["Session"]  # type: ignore[assignment]
        self._wire()

    def _wire(self) -> None:
        """Each pallet's ``Config`` (``Pallet.configure``): which sibling serves each API it
        declares it uses (``runtime/traits.py``), as FRAME's ``construct_runtime`` binds the
        ``Config`` types."""
        self.balances.configure(BalancesConfig(providers=self.system))
        self.timestamp.configure(TimestampConfig(slots=self.authority))
        self.multisig.configure(MultisigConfig(currency=self.balances))
        self.facility.configure(FacilityConfig(roles=self.roles))
        self.authority.configure(
            AuthorityConfig(validators=self.facility, account_of=self.session.account_of)
        )
        self.equipment.configure(
            EquipmentConfig(roles=self.roles, facilities=self.facility, metrics=self.telemetry)
        )
        self.telemetry.configure(
            TelemetryConfig(
                twins=self.equipment,
                roles=self.roles,
                facilities=self.facility,
                # Told of each closed window in this order, all in the close's one layer.
                window_listeners=(
                    self.benchmark,
                    self.maintenance,
                    self.analytics,
                    self.simulation,
                ),
            )
        )
        self.benchmark.configure(
            BenchmarkConfig(twins=self.equipment, roles=self.roles, telemetry=self.telemetry)
        )
        self.maintenance.configure(
            MaintenanceConfig(
                twins=self.equipment,
                twin_service=self.equipment,
                roles=self.roles,
                facilities=self.facility,
                verified_maintenance=self.facility,
                currency=self.balances,
                telemetry=self.telemetry,
                deviations=self.benchmark,
                failures=self.analytics,
                models=self.simulation,
            )
        )
        self.analytics.configure(
            AnalyticsConfig(
                twins=self.equipment,
                facilities=self.facility,
                roles=self.roles,
                currency=self.balances,
                telemetry=self.telemetry,
            )
        )
        self.council.configure(
            CouncilConfig(
                roles=self.roles,
                facilities=self.facility,
                facility_ids=lambda: range(self.facility.NextFacilityId.get()),
            )
        )
        self.simulation.configure(
            SimulationConfig(
                twins=self.equipment,
                facilities=self.facility,
                roles=self.roles,
                currency=self.balances,
                health=self.benchmark,
                alerts=self.maintenance,
            )
        )

    def now(self) -> int:
        """The block's timestamp in ms (``Timestamp.Now``, set by the block's inherent)."""
        return int(self.timestamp.Now.get())

    # -- calls
    def resolve_call(self, call: Call) -> tuple[Pallet, CallDef, list[Any]]:
        """Find and decode a call; CodecError if the pallet, call or arguments are unknown."""
        pallet = self.pallets.get(call.pallet)
        if pallet is None:
            raise CodecError(f"no pallet with index {call.pallet}")
        cd = pallet.calls.get(call.index)
        if cd is None or not self.has_call(cd):
            raise CodecError(f"{pallet.name} has no call with index {call.index}")
        return pallet, cd, cd.decode_args(call.args)

    def has_call(self, cd: CallDef) -> bool:
        """Whether the version in effect has the call (one that a later version introduced
        does not decode before it, as on a node of the release before it)."""
        return cd.since <= self.spec_version

    def dispatch(self, origin: Origin, pallet: Pallet, cd: CallDef, args: list[Any]) -> None:
        """Check the declared origin kind, then run the call (it re-checks roles itself)."""
        if cd.origin != origin.kind and origin.kind not in cd.origin.split("|"):
            raise bad_origin(cd.origin)
        cd.fn(pallet, origin, *args)

    def dispatch_wire(self, origin: Origin, call_wire: Any) -> int:
        """Decode and dispatch a nested call (sudo, multisig); returns its declared weight."""
        if self.block.nesting >= MAX_NESTED_DISPATCH:
            raise DispatchError("System", "CallFiltered", "calls nested too deeply")
        try:
            pallet, cd, args = self.resolve_call(Call.from_wire(call_wire))
        except CodecError as exc:
            raise DispatchError("System", "InvalidCall", str(exc)) from None
        if cd.inherent:
            raise DispatchError("System", "CallFiltered", "inherents cannot be nested")
        self.block.nesting += 1
        try:
            self.dispatch(origin, pallet, cd, args)
        finally:
            self.block.nesting -= 1
        return cd.weigh(self, args)

    def dispatch_in_layer(self, origin: Origin, call_wire: Any) -> DispatchError | None:
        """Dispatch a nested call in its own transactional layer; its failure (a pallet bug
        included) reverts only its own writes and is returned, never raised."""
        return transactional(self.state, lambda: self.dispatch_wire(origin, call_wire))

    def weigh_wire(self, call_wire: Any) -> int:
        """Declared weight of a nested call, 0 if it does not decode (it will then fail)."""
        try:
            _, cd, args = self.resolve_call(Call.from_wire(call_wire))
        except CodecError:
            return 0
        return cd.weigh(self, args)

    def call_by_name(self, pallet: str, name: str, *args: Any) -> Call:
        """Build a Call from Python values (wallets, tests, tools)."""
        p = self.by_name[pallet]
        cd = p.calls_by_name[name]
        if len(args) != len(cd.args):
            raise TypeError(f"{pallet}.{name} takes {len(cd.args)} arguments")
        wire = tuple(t.to_wire(a) for (_, t), a in zip(cd.args, args, strict=True))
        return Call(p.index, cd.index, wire)

    def event_index(self, module: str, name: str) -> tuple[int, int]:
        p = self.by_name[module]
        for v in p.Event.variants:
            if v.name == name:
                return p.index, v.index
        raise KeyError(f"{module}.{name}")

    # -- genesis and metadata
    def build_genesis(self, config: dict[str, Any]) -> dict[bytes, bytes | None]:
        """Storage of the genesis state from the chain spec's ``genesis`` section."""
        self.state = Overlay(_EmptyState())
        self.block = BlockContext()
        for _, p in sorted(self.pallets.items()):
            p.genesis(config.get(p.name.lower(), {}))
        for _, p in sorted(self.pallets.items()):
            p.post_genesis(config.get(p.name.lower(), {}))
        return self.state.changes()

    def metadata(self) -> dict[str, Any]:
        return {
            "version": 1,
            "spec_name": SPEC_NAME,
            "spec_version": self.spec_version,
            "pallets": [p.metadata() for _, p in sorted(self.pallets.items())],
            "extrinsic": {
                "version": 1,
                "format": "[version, [signer, signature, nonce, tip(u128), era] | nil, "
                "[pallet, call, [args]]]",
                "signing": "BIP-340 over blake3-keyed('extrinsic signing payload', "
                "[call, nonce, tip, era, genesis_hash, spec_version, birth_hash])",
            },
        }

    def knows(self, spec_version: int) -> bool:
        """Whether this process executes ``spec_version``."""
        return migrations.knows(spec_version, self.max_spec_version)

    def version(self, spec_version: int | None = None) -> dict[str, Any]:
        """Substrate's RuntimeVersion, of ``spec_version`` (default: the current one)."""
        return {
            "specName": SPEC_NAME,
            "implName": IMPL_NAME,
            "specVersion": self.spec_version if spec_version is None else spec_version,
            "implVersion": IMPL_VERSION,
            "transactionVersion": TRANSACTION_VERSION,
        }
