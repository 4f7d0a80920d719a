"""A small mock chain for runtime tests: in-memory state, a dev genesis, block building.

``Chain`` plays the part of the node around the executive: it keeps the committed state of
the head, starts blocks (initialize + timestamp inherent), signs and applies extrinsics,
finalizes into a real ``Block`` and commits the changes. Pallet tests that do not need fees or
nonces call ``Chain.dispatch`` inside an open block instead.

Test modules get all of this through the fixtures rather than by importing this module
(a conftest is not reliably importable once other test directories have their own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from twinchain.native.merkle import merkle_root
from twinchain.primitives import codec
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Call, Era, Extrinsic, Header
from twinchain.protocol.telemetry import Commitment, sign_batch
from twinchain.runtime.executive import ApplyOutcome, Executive, decode_events
from twinchain.runtime.framework import EventRecord, Origin
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets import telemetry
from twinchain.runtime.runtime import Runtime
from twinchain.storage.abc import StateReader

UNIT = 10**12
ENDOWMENT = 1_000 * UNIT
SLOT_MS = 1000


class MemoryState(StateReader):
    """A committed state held in a dict (the LevelDB state DB's role in these tests)."""

    def __init__(self, data: Mapping[bytes, bytes | None] | None = None) -> None:
        self.data: dict[bytes, bytes] = {k: v for k, v in (data or {}).items() if v is not None}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iter_prefix(
        self, prefix: bytes, start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        for k in sorted(self.data):
            if k.startswith(prefix) and (start_after is None or k > start_after):
                yield k, self.data[k]

    def apply(self, changes: Mapping[bytes, bytes | None]) -> MemoryState:
        """A new state: this one with ``changes`` written (None deletes)."""
        out = MemoryState(self.data)
        for k, v in changes.items():
            if v is None:
                out.data.pop(k, None)
            else:
                out.data[k] = v
        return out


def genesis_config(
    *, sudo: bool = True, session_length: int = 600, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Alice is the only authority and (optionally) the sudo key; Alice/Bob/Charlie are funded."""
    cfg: dict[str, Any] = {
        "system": {"name": "test"},
        "authority": {
            "authorities": ["//Alice"],
            "slot_duration_ms": SLOT_MS,
            "session_length": session_length,
        },
        "balances": {
            "balances": [["//Alice", ENDOWMENT], ["//Bob", ENDOWMENT], ["//Charlie", ENDOWMENT]]
        },
        "sudo": {"key": "//Alice"} if sudo else {},
    }
    cfg.update(extra or {})
    return cfg


def state_root_of(state: MemoryState) -> bytes:
    """A stand-in state commitment (the real trie lives in twinchain.storage)."""
    return hash_for(Domain.TRIE_BRANCH, codec.encode(sorted(state.data.items())))


@dataclass
class Chain:
    """A one-node chain around a runtime and its executive."""

    rt: Runtime
    ex: Executive
    state: MemoryState
    head_number: int = 0
    head_hash: bytes = b""
    slot: int = 0
    hashes: dict[int, bytes] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    pre_states: list[MemoryState] = field(default_factory=list)
    # Per open block.
    pending: list[bytes] = field(default_factory=list)
    pending_slot: int = 0
    last_changes: dict[bytes, bytes | None] = field(default_factory=dict)

    @classmethod
    def create(cls, config: dict[str, Any] | None = None) -> Chain:
        cfg = config if config is not None else genesis_config()
        builder = Runtime()
        state = MemoryState(builder.build_genesis(cfg))
        genesis = Header(b"\x00" * 32, 0, state_root_of(state), merkle_root([]), 0)
        rt = Runtime(genesis_hash=genesis.hash)
        chain = cls(rt, Executive(rt), state, 0, genesis.hash)
        chain.hashes[0] = genesis.hash
        chain.view()
        return chain

    # -- reading committed state
    def view(self) -> Runtime:
        """Point the runtime at the head's committed state (between blocks)."""
        self.rt.state = Overlay(self.state)
        return self.rt

    def free(self, who: bytes) -> int:
        return self.rt.balances.data(who).free

    def reserved(self, who: bytes) -> int:
        return self.rt.balances.data(who).reserved

    def nonce(self, who: bytes) -> int:
        return self.rt.system.nonce(who)

    # -- blocks
    def start_block(self, slot: int | None = None, *, inherent: bool = True) -> None:
        """initialize_block on the head, then the timestamp inherent at the slot's start."""
        self.pending_slot = self.slot + 1 if slot is None else slot
        self.pending = []
        self.ex.initialize_block(
            self.state, self.head_number + 1, self.head_hash, self.pending_slot
        )
        if inherent:
            for raw in self.ex.inherents(self.pending_slot * SLOT_MS):
                self.apply(raw)

    def apply(self, raw: bytes) -> ApplyOutcome:
        """Apply to the open block; raises InvalidTransaction (and includes nothing) if invalid."""
        out = self.ex.apply_extrinsic(raw)
        self.pending.append(raw)
        return out

    def finish_block(self) -> Block:
        """Finalize, build the block and make it the new head."""
        changes = self.ex.finalize_block()
        new_state = self.state.apply(changes)
        header = Header(
            parent_hash=self.head_hash,
            number=self.head_number + 1,
            state_root=state_root_of(new_state),
            extrinsics_root=merkle_root(self.pending),
            slot=self.pending_slot,
        )
        block = Block(header, tuple(self.pending))
        self.pre_states.append(self.state)
        self.blocks.append(block)
        self.last_changes = changes
        self.state = new_state
        self.head_number, self.head_hash, self.slot = header.number, header.hash, header.slot
        self.hashes[header.number] = header.hash
        self.pending = []
        self.view()
        return block

    def produce(self, *raws: bytes) -> list[ApplyOutcome]:
        """A whole block with ``raws`` after the inherent; returns their outcomes."""
        self.start_block()
        outs = [self.apply(r) for r in raws]
        self.finish_block()
        return outs

    def events(self) -> list[dict[str, Any]]:
        """Decoded events of the last finished block."""
        return decode_events(self.rt, self.last_changes.get(self.rt.system.Events.key()) or b"")

    # -- transactions
    def sign(
        self,
        who: Keypair,
        call: Call,
        nonce: int | None = None,
        *,
        tip: int = 0,
        era: Era | None = None,
        birth_hash: bytes | None = None,
        genesis_hash: bytes | None = None,
        spec_version: int | None = None,
    ) -> bytes:
        """Sign ``call`` by ``who``; the nonce defaults to the account's next one in the head."""
        if nonce is None:
            nonce = self._nonce_at_head(who.public)
        xt = Extrinsic.sign(
            call,
            who,
            nonce,
            self.rt.genesis_hash if genesis_hash is None else genesis_hash,
            self.rt.spec_version if spec_version is None else spec_version,
            tip=tip,
            era=era,
            birth_hash=birth_hash,
        )
        return xt.encode()

    def _nonce_at_head(self, who: bytes) -> int:
        saved = self.rt.state
        self.rt.state = Overlay(self.state)
        try:
            return self.rt.system.nonce(who)
        finally:
            self.rt.state = saved

    def call(self, pallet: str, name: str, *args: Any) -> Call:
        return self.rt.call_by_name(pallet, name, *args)

    # -- direct dispatch (pallet unit tests)
    def dispatch(self, origin: Origin, pallet: str, name: str, *args: Any) -> list[EventRecord]:
        """Run one call in its own layer of the open block, with the executive's own layering
        (``Executive.dispatch``, as an extrinsic's call runs).

        Returns the events it deposited; raises its DispatchError after reverting its writes.
        """
        p, cd, decoded = self.rt.resolve_call(self.call(pallet, name, *args))
        mark = len(self.rt.state.events)
        error = self.ex.dispatch(origin, p, cd, decoded)
        if error is not None:
            raise error
        return [ev for _, ev in self.rt.state.events[mark:]]

    # -- telemetry
    def commitment(
        self,
        device: Keypair,
        twin: int,
        seq: int,
        readings: list[tuple[int, int, int]],
        public: Any = None,
    ) -> Commitment:
        """What a gateway submits of a batch ``device`` signed: its commitment, summarizing
        the metrics the twin makes public in the current state (or ``public``)."""
        pub = self.rt.telemetry.public_metrics(twin) if public is None else public
        return sign_batch(device, self.rt.genesis_hash, twin, seq, readings, pub).commitment()

    def make_public(self, twin: int, *metrics: int) -> None:
        """The twin's owner makes ``metrics`` public (``Telemetry.set_disclosure``) in the
        open block: a private metric (production, energy...) has no on-chain aggregates."""
        owner = self.rt.equipment.twin(twin).owner
        for m in metrics:
            self.dispatch(Origin.signed(owner), "Telemetry", "set_disclosure", twin, m, True)

    def close_windows(self) -> list[EventRecord]:
        """Run the window closes queued so far in the open block (Telemetry's on_initialize,
        which runs them at the next block's start); returns the events they deposited."""
        st = self.rt.state
        mark = len(st.events)
        self.rt.telemetry.on_initialize(self.head_number + 1)
        return [ev for _, ev in st.events[mark:]]

    # -- checks shared by the tests
    def total_balance(self) -> int:
        """Sum of free + reserved over every account (what TotalIssuance must equal)."""
        return sum(d.free + d.reserved for _, d in self.rt.balances.Account.iter())

    def issuance(self) -> int:
        return self.rt.balances.TotalIssuance.get()

    def args(self, ev: EventRecord) -> dict[str, Any]:
        """An event's arguments decoded with its variant's field types."""
        variant = next(v for v in self.rt.by_name[ev.module].Event.variants if v.name == ev.name)
        return variant.decode_args(ev.args)

    @staticmethod
    def names(events: list[EventRecord]) -> list[str]:
        return [f"{e.module}.{e.name}" for e in events]


@pytest.fixture(autouse=True)
def fresh_signature_memo() -> None:
    """Device signatures known good are remembered process-wide (a node's pool, author and
    importer share them); each test starts without any, whatever ran before it."""
    telemetry.forget_good_signatures()


@pytest.fixture
def make_chain() -> Callable[..., Chain]:
    """Build a chain from ``genesis_config(**kw)`` (sudo, session_length, extra)."""

    def make(**kw: Any) -> Chain:
        return Chain.create(genesis_config(**kw))

    return make


@pytest.fixture
def chain() -> Chain:
    return Chain.create()


@pytest.fixture
def block(chain: Chain) -> Chain:
    """A chain with block 1 open (timestamp inherent applied), for direct dispatch."""
    chain.start_block()
    return chain
