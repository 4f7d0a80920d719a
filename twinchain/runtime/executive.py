"""The executive: applies blocks and extrinsics, validates transactions for the pool.

Per signed extrinsic, in order (Substrate's signed extensions): decode and size, call lookup,
mortality (birth block hash), signature, nonce, weight, fee. A check that fails makes the
extrinsic *invalid*: it changes nothing and cannot be in a block. Once the fee is paid and the
nonce bumped the call runs in its own transactional layer: if it fails, only its own writes
and events are reverted and an ``ExtrinsicFailed`` event records why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twinchain import native
from twinchain.native.merkle import merkle_root
from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.types import (
    MAX_EXTRINSIC_SIZE,
    Block,
    Extrinsic,
    extrinsic_hash,
    signing_payload,
)
from twinchain.runtime import migrations
from twinchain.runtime.framework import (
    BlockRejected,
    CallDef,
    DecodedCall,
    DispatchError,
    EventRecord,
    Origin,
    Pallet,
    SignatureCheck,
    transactional,
)
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets.system import (
    MAX_BLOCK_WEIGHT,
    PHASE_APPLY,
    PHASE_FINAL,
    PHASE_INIT,
)
from twinchain.runtime.runtime import BlockContext, Runtime
from twinchain.runtime.weights.system import EXTRINSIC_BASE_WEIGHT
from twinchain.storage.abc import StateReader
from twinchain.storage.trie import StateError

MAX_BLOCK_LENGTH = 4 * 1024 * 1024
# Pool validation caches (decodings, signing messages, verified signatures), by count and, for
# decodings (in Python objects ~15x their bytes), by extrinsic bytes: many seconds of gateway
# traffic.
DECODE_CACHE_SIZE = 10_000
DECODE_CACHE_BYTES = 8 * 1024 * 1024
TX_LONGEVITY_IMMORTAL = 2**64 - 1


class InvalidTransaction(Exception):
    """The extrinsic cannot be included: ``code`` says why (Substrate's names)."""

    CODES = (
        "Decode",
        "Call",
        "Unsigned",
        "BadProof",
        "AncientBirthBlock",
        "Stale",
        "Future",
        "Payment",
        "ExhaustsResources",
        "TooLarge",
        "BadInherent",
        "UpgradeRequired",
    )

    def __init__(self, code: str, detail: str = "") -> None:
        assert code in self.CODES
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class InvalidBlock(Exception):
    """The block breaks a rule and must not be imported."""


class UnsupportedRuntime(InvalidBlock):
    """The block must run a spec version this software does not execute (a scheduled upgrade
    it lacks, or a chain that switched before it was installed). Not the block's fault: the
    node must stop there, neither importing nor authoring, until the operator installs a
    release with that version (``twinchain.runtime.migrations``)."""

    def __init__(
        self, spec_version: int, at_block: int, max_spec_version: int, *, in_effect: bool = False
    ) -> None:
        # ``in_effect``: the chain switched before this software ran it (the exact block is
        # not known then, only that this node cannot run ``at_block``).
        where = "in effect before block" if in_effect else "scheduled at block"
        super().__init__(
            f"runtime spec version {spec_version} {where} {at_block}: install "
            f"twinchain with spec {spec_version} (this node runs spec versions up to "
            f"{max_spec_version})"
        )
        self.spec_version = spec_version
        self.at_block = at_block
        self.max_spec_version = max_spec_version


@dataclass
class ValidTransaction:
    """Pool view of a valid transaction (Substrate's ValidTransaction)."""

    hash: bytes
    signer: bytes
    nonce: int
    tip: int
    fee: int
    weight: int
    length: int
    priority: int
    requires: list[bytes]
    provides: list[bytes]
    longevity: int


@dataclass
class ApplyOutcome:
    hash: bytes
    success: bool
    weight: int
    fee: int
    error: DispatchError | None = None


@dataclass
class _Checked:
    xt: Extrinsic
    raw: bytes
    hash: bytes
    pallet: Any
    call: Any
    args: list[Any]
    weight: int
    fee: int = 0
    message: bytes = b""


def _tag(signer: bytes, nonce: int) -> bytes:
    return signer + nonce.to_bytes(8, "big")


@dataclass
class BlockResult:
    changes: dict[bytes, bytes | None]
    outcomes: list[ApplyOutcome] = field(default_factory=list)


class Executive:
    """Runs blocks against a state. Not thread-safe: one block at a time per instance."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.block_weight = 0
        self.block_length = 0
        self.signed_seen = False
        self.outcomes: list[ApplyOutcome] = []
        # Pool validation only (see ``_check`` and ``validate_transaction``): decodings, and
        # the signing message each good signature was verified against, by extrinsic hash.
        self._decoded: dict[bytes, tuple[Extrinsic, Any, Any, list[Any], int]] = {}
        self._decoded_bytes = 0
        self._signature_ok: dict[bytes, bytes] = {}
        # Signing messages by (extrinsic hash, birth hash, spec version, genesis hash): the
        # bytes fix call, nonce, tip and era, so the message is a pure function of the key.
        # Re-encoding a telemetry call of thousands of readings after every block is not.
        self._messages: dict[tuple[bytes, bytes, int, bytes], bytes] = {}
        # (best hash, the spec version of the block after it) for pool validation.
        self._pool_version: tuple[bytes, int] | None = None

    # ------------------------------------------------------------------ block lifecycle
    def initialize_block(
        self, base: StateReader, number: int, parent_hash: bytes, slot: int
    ) -> None:
        rt = self.rt
        rt.state = Overlay(base)
        rt.block = BlockContext(number=number, parent_hash=parent_hash, slot=slot)
        self.block_weight = 0
        self.block_length = 0
        self.signed_seen = False
        self.outcomes = []
        rt.state.phase = (PHASE_INIT, 0)
        upgrade = self._enter_version(number)
        # The author comes from the parent's authority set, before any session change.
        rt.block.author = rt.authority.author_for_slot(slot)
        rt.system.initialize(number, parent_hash)
        if upgrade is not None:
            # Before every hook, as FRAME's executive: the block's hooks and extrinsics see
            # the new layouts only. Mandatory weight, charged to this block.
            self.block_weight += migrations.on_runtime_upgrade(rt, rt.spec_version, upgrade)
        try:
            for _, p in sorted(rt.pallets.items()):
                self.block_weight += p.on_initialize(number)
        except BlockRejected as exc:
            raise InvalidBlock(str(exc)) from exc

    def _enter_version(self, number: int) -> int | None:
        """Set the runtime to the version in effect before block ``number``; return the
        version the block upgrades to, if it is the scheduled block. UnsupportedRuntime if
        this software cannot run the block."""
        rt = self.rt
        active = rt.system.spec_version()
        due = rt.system.upgrade_due(number)
        if due is not None and not rt.knows(due.spec_version):
            raise UnsupportedRuntime(due.spec_version, due.at_block, rt.max_spec_version)
        if not rt.knows(active):
            raise UnsupportedRuntime(active, number, rt.max_spec_version, in_effect=True)
        rt.spec_version = active
        return None if due is None else int(due.spec_version)

    def _pool_spec_version(self, best_hash: bytes, number: int) -> None:
        """Pool validation: the version the block after ``best_hash`` (``number``) runs
        with, which the signing payload names; cached per best block (two reads, for every
        transaction after every block otherwise)."""
        rt = self.rt
        cached = self._pool_version
        if cached is None or cached[0] != best_hash:
            due = rt.system.upgrade_due(number)
            version = rt.system.spec_version() if due is None else int(due.spec_version)
            cached = self._pool_version = (best_hash, version)
        if not rt.knows(cached[1]):
            raise InvalidTransaction(
                "UpgradeRequired",
                str(UnsupportedRuntime(cached[1], number, rt.max_spec_version)),
            )
        rt.spec_version = cached[1]

    def finalize_block(self) -> dict[bytes, bytes | None]:
        rt = self.rt
        rt.state.phase = (PHASE_FINAL, 0)
        try:
            for _, p in sorted(rt.pallets.items()):
                p.on_finalize(rt.block.number)
        except BlockRejected as exc:
            raise InvalidBlock(str(exc)) from exc
        events = []
        for (kind, idx), ev in rt.state.events:
            assert isinstance(ev, EventRecord)
            pi, ei = rt.event_index(ev.module, ev.name)
            events.append([kind, idx, pi, ei, list(ev.args)])
        rt.system.Events.put(codec.encode(events) if events else b"")
        rt.system.EventCount.put(len(events))
        rt.system.BlockWeight.put(self.block_weight)
        rt.system.ExtrinsicCount.put(len(self.outcomes))
        return rt.state.changes()

    # ------------------------------------------------------------------ checks
    def _check(
        self,
        raw: bytes,
        *,
        cached: bool = False,
        weigh: bool = True,
        tx_hash: bytes | None = None,
    ) -> _Checked:
        """Decode and look up the call; no state access except the weight's.

        ``cached``: reuse (and remember) the decoding of an earlier call with the same bytes.
        Only pool validation uses it: it never dispatches, so nothing can alter the decoded
        arguments, and a pool entry is validated again after every block (decoding a
        telemetry extrinsic of a few thousand readings costs milliseconds).
        ``tx_hash``: ``extrinsic_hash(raw)`` when the caller knows it (the caches trust it).
        """
        if len(raw) > MAX_EXTRINSIC_SIZE:
            raise InvalidTransaction("TooLarge", f"{len(raw)} bytes")
        h = extrinsic_hash(raw) if tx_hash is None else tx_hash
        hit = self._decoded.get(h) if cached else None
        if hit is not None:
            xt, pallet, cd, args, _ = hit
        else:
            try:
                xt = Extrinsic.decode(raw)
                pallet, cd, args = self.rt.resolve_call(xt.call)
            except CodecError as exc:
                raise InvalidTransaction("Decode", str(exc)) from None
            if cached:
                while self._decoded and (
                    len(self._decoded) >= DECODE_CACHE_SIZE
                    or self._decoded_bytes + len(raw) > DECODE_CACHE_BYTES
                ):
                    old = self._decoded.pop(next(iter(self._decoded)))  # the oldest
                    self._decoded_bytes -= old[4]
                self._decoded[h] = (xt, pallet, cd, args, len(raw))
                self._decoded_bytes += len(raw)
        if not self.rt.has_call(cd):  # cached when decoded under a later version
            raise InvalidTransaction("Decode", f"{pallet.name} has no call {cd.name} yet")
        if xt.signed is None and not cd.inherent:
            raise InvalidTransaction("Unsigned", "only inherents may be unsigned")
        if xt.signed is not None and cd.inherent:
            raise InvalidTransaction("Call", "an inherent cannot be signed")
        # ``weigh=False``: the caller weighs just before applying, on the state it runs on.
        weight = EXTRINSIC_BASE_WEIGHT + cd.weigh(self.rt, args) if weigh else 0
        return _Checked(xt, raw, h, pallet, cd, args, weight)

    def _signing_message(self, c: _Checked, parent_number: int, *, memo: bool = False) -> bytes:
        """The message ``c``'s signature must verify against; also the era check, which
        always runs (against ``parent_number`` and the state's block hashes).

        ``memo``: reuse (and remember) the message of an earlier call for the same extrinsic
        and birth hash (pool validation: a pool entry is validated after every block)."""
        s = c.xt.signed
        assert s is not None
        if s.era.is_immortal:
            birth_hash = self.rt.genesis_hash
        else:
            birth = s.era.birth(parent_number)
            if birth > parent_number:
                raise InvalidTransaction("AncientBirthBlock", "era born in the future")
            # The parent's hash is only in System.BlockHash once the next block starts.
            bh = (
                self.rt.block.parent_hash
                if birth == parent_number
                else self.rt.system.BlockHash.get(birth)
            )
            if bh is None:
                raise InvalidTransaction("AncientBirthBlock", f"no hash for block {birth}")
            birth_hash = bh
        rt = self.rt
        if not memo:
            return signing_payload(
                c.xt.call, s.nonce, s.tip, s.era, rt.genesis_hash, rt.spec_version, birth_hash
            )
        key = (c.hash, birth_hash, rt.spec_version, rt.genesis_hash)
        msg = self._messages.get(key)
        if msg is None:
            msg = signing_payload(
                c.xt.call, s.nonce, s.tip, s.era, rt.genesis_hash, rt.spec_version, birth_hash
            )
            if len(self._messages) >= DECODE_CACHE_SIZE:
                del self._messages[next(iter(self._messages))]  # the oldest
            self._messages[key] = msg
        return msg

    def _check_state(self, c: _Checked, allow_future: bool) -> int:
        """Nonce, weight and fee against the current overlay (no writes); returns the
        signer's current (expected) nonce."""
        s = c.xt.signed
        assert s is not None
        expected = self.rt.system.nonce(s.signer)
        if s.nonce < expected:
            raise InvalidTransaction("Stale", f"nonce {s.nonce} < {expected}")
        if s.nonce > expected and not allow_future:
            raise InvalidTransaction("Future", f"nonce {s.nonce} > {expected}")
        if c.weight > MAX_BLOCK_WEIGHT:
            raise InvalidTransaction("ExhaustsResources", "heavier than a whole block")
        c.fee = self.rt.balances.compute_fee(len(c.raw), c.weight, s.tip)
        if not self.rt.balances.can_pay(s.signer, c.fee):
            raise InvalidTransaction("Payment", f"cannot pay fee {c.fee}")
        return expected

    # ------------------------------------------------------------------ apply
    def apply_extrinsic(self, raw: bytes, *, verified: bool = False) -> ApplyOutcome:
        """Apply one extrinsic to the current block.

        Raises InvalidTransaction (and changes nothing) if it cannot be included. ``verified``
        skips the signature check when the caller has already verified it (batch import,
        the pool's cache).
        """
        c = self._check(raw)
        return self._apply_checked(c, verified)

    def _apply_checked(self, c: _Checked, verified: bool) -> ApplyOutcome:
        rt = self.rt
        # Inherents are mandatory (FRAME's DispatchClass::Mandatory): an upgrade's migrations
        # may fill the block, and the block still needs its timestamp.
        if self.block_weight + c.weight > MAX_BLOCK_WEIGHT and c.xt.signed is not None:
            raise InvalidTransaction("ExhaustsResources", "block weight limit reached")
        if self.block_length + len(c.raw) > MAX_BLOCK_LENGTH:
            raise InvalidTransaction("ExhaustsResources", "block length limit reached")
        index = len(self.outcomes)
        rt.block.extrinsic_index = index
        rt.state.phase = (PHASE_APPLY, index)
        s = c.xt.signed
        if s is None:
            if self.signed_seen:
                raise InvalidTransaction("BadInherent", "inherents must come first")
            return self._apply_inherent(c)
        self.signed_seen = True
        if not (verified and c.message):
            # Also the era check; execute_block did it already when it built c.message.
            msg = self._signing_message(c, rt.block.number - 1)
            if not verified and not native.verify_batch([s.signer], [msg], [s.signature])[0]:
                raise InvalidTransaction("BadProof", "bad signature")
        self._check_state(c, allow_future=False)
        # Point of no return: the fee is paid and the nonce bumped whatever the call does.
        if not rt.balances.withdraw_fee(s.signer, c.fee):
            raise InvalidTransaction("Payment", "cannot pay fee")
        rt.system.inc_nonce(s.signer)
        error = self.dispatch(Origin.signed(s.signer), c.pallet, c.call, c.args)
        # The author's share goes to the validator's account, not the session key sealing.
        author = rt.block.author
        rt.balances.distribute_fee(c.fee, None if author is None else rt.session.account_of(author))
        rt.balances.deposit(rt.balances.Event.FeePaid(s.signer, c.fee, s.tip))
        return self._record(c, error)

    def _apply_inherent(self, c: _Checked) -> ApplyOutcome:
        error = self.dispatch(Origin.none(), c.pallet, c.call, c.args)
        if error is not None:
            raise InvalidTransaction("BadInherent", str(error))
        return self._record(c, None)

    def dispatch(
        self, origin: Origin, pallet: Pallet, call: CallDef, args: list[Any]
    ) -> DispatchError | None:
        """Run one decoded call in its own transactional layer of the current block, as every
        extrinsic runs: its failure (a pallet bug included) reverts only its own writes and
        events, and is returned, never raised."""
        rt = self.rt
        return transactional(rt.state, lambda: rt.dispatch(origin, pallet, call, args))

    def _record(self, c: _Checked, error: DispatchError | None) -> ApplyOutcome:
        sysp = self.rt.system
        if error is None:
            self.rt.state.deposit_event(sysp.Event.ExtrinsicSuccess(c.weight, c.fee))
        else:
            self.rt.state.deposit_event(
                sysp.Event.ExtrinsicFailed(error.module, error.error, c.weight, c.fee)
            )
        self.block_weight += c.weight
        self.block_length += len(c.raw)
        out = ApplyOutcome(c.hash, error is None, c.weight, c.fee, error)
        self.outcomes.append(out)
        return out

    # ------------------------------------------------------------------ whole blocks
    def inherents(self, now_ms: int) -> list[bytes]:
        """The inherent extrinsics an author puts first in its block."""
        call = self.rt.call_by_name("Timestamp", "set", now_ms)
        return [Extrinsic(call).encode()]

    def execute_block(
        self,
        base: StateReader,
        block: Block,
        verified: Iterable[bytes] = (),
    ) -> BlockResult:
        """Re-execute ``block`` on its parent state; raise InvalidBlock on any mismatch.

        Signatures are checked in one ``native.verify_batch`` call, except for extrinsics
        whose hash is in ``verified`` (already checked by this node's pool).
        """
        h = block.header
        if merkle_root(block.extrinsics) != h.extrinsics_root:
            raise InvalidBlock("extrinsics root mismatch")
        if sum(len(x) for x in block.extrinsics) > MAX_BLOCK_LENGTH:
            raise InvalidBlock("block too long")
        self.initialize_block(base, h.number, h.parent_hash, h.slot)
        try:
            checked = [self._check(raw, weigh=False) for raw in block.extrinsics]
        except InvalidTransaction as exc:
            raise InvalidBlock(f"undecodable extrinsic: {exc}") from exc
        done = set(verified)
        todo: list[_Checked] = []
        try:
            for c in checked:
                if c.xt.signed is not None and c.hash not in done:
                    c.message = self._signing_message(c, h.number - 1)
                    todo.append(c)
        except InvalidTransaction as exc:
            raise InvalidBlock(f"extrinsic {exc}") from exc
        # Every signature of the block in ONE batch: the extrinsics' and those their calls
        # carry for a pallet to check (telemetry devices').
        extra = self._extra_signatures(
            [(c.pallet, c.call, c.args) for c in checked if c.xt.signed is not None]
        )
        flat = [t for _, checks in extra for t in checks]
        if todo or flat:
            oks = native.verify_batch(
                [c.xt.signed.signer for c in todo] + [t[0] for t in flat],  # type: ignore[union-attr]
                [c.message for c in todo] + [t[1] for t in flat],
                [c.xt.signed.signature for c in todo] + [t[2] for t in flat],  # type: ignore[union-attr]
            )
            if not all(oks[: len(todo)]):
                raise InvalidBlock("bad extrinsic signature")
            # A bad extra signature only fails its own extrinsic, inside its pallet's call.
            self._note_verified(extra, oks[len(todo) :])
        for i, c in enumerate(checked):
            # Weigh on the state this extrinsic really runs on, as the author did: a weight
            # may read state (Telemetry.submit pays for the windows it closes, which depends
            # on the timestamp inherent and on earlier extrinsics of this block). A different
            # weight is a different fee, and a different state root.
            c.weight = EXTRINSIC_BASE_WEIGHT + c.call.weigh(self.rt, c.args)
            try:
                self._apply_checked(c, verified=True)
            except InvalidTransaction as exc:
                raise InvalidBlock(f"extrinsic {i} invalid: {exc}") from exc
        changes = self.finalize_block()
        return BlockResult(changes, list(self.outcomes))

    # ------------------------------------------------------------------ pool validation
    def signature_batch(
        self, base: StateReader, raws: Sequence[bytes], best_number: int, best_hash: bytes
    ) -> list[bool | None]:
        """Verify the signatures of many transactions in ONE ``native.verify_batch`` call (a
        gossiped batch). False: undecodable, unsigned or a bad signature; None: well formed
        but invalid before the signature (e.g. an expired era) — not the sender's fault.

        The signatures the transactions' calls carry for a pallet to check (telemetry
        devices') are verified in the same call and handed back to their pallets
        (``Pallet.note_verified``): checked on arrival, spread over the slot, instead of on
        the critical path of authoring and import. A bad one is not the sender's verdict
        here: its extrinsic fails on chain, as before."""
        self.rt.state = Overlay(base)
        self.rt.block = BlockContext(number=best_number + 1, parent_hash=best_hash)
        oks: list[bool | None] = [False] * len(raws)
        try:
            self._pool_spec_version(best_hash, best_number + 1)
        except InvalidTransaction:
            return [None] * len(raws)  # this node stops at the upgrade: nobody's fault
        triples: list[tuple[bytes, bytes, bytes]] = []
        index: list[int] = []
        hashes: list[bytes] = []
        calls: list[DecodedCall] = []
        for i, raw in enumerate(raws):
            try:
                c = self._check(raw, cached=True)
                s = c.xt.signed
                if s is None:
                    continue
                calls.append((c.pallet, c.call, c.args))
                msg = self._signing_message(c, best_number, memo=True)
                if self._signature_ok.get(c.hash) == msg:
                    oks[i] = True
                    continue
                triples.append((s.signer, msg, s.signature))
                index.append(i)
                hashes.append(c.hash)
            except InvalidTransaction as exc:
                if exc.code not in ("Decode", "TooLarge", "Unsigned", "Call"):
                    oks[i] = None
        # Only ever saves work: a pallet verifies, while its call runs, what is not known good.
        extra = self._extra_signatures(calls, tolerant=True)
        flat = [t for _, checks in extra for t in checks]
        if triples or flat:
            verdicts = native.verify_batch(*zip(*(triples + flat), strict=True))
            for i, h, t, ok in zip(index, hashes, triples, verdicts[: len(triples)], strict=True):
                oks[i] = ok
                if ok:
                    self._remember_signature(h, t[1])
            self._note_verified(extra, verdicts[len(triples) :])
        return oks

    def _extra_signatures(
        self, calls: Sequence[DecodedCall], *, tolerant: bool = False
    ) -> list[tuple[Pallet, list[SignatureCheck]]]:
        """Every pallet's :meth:`Pallet.extra_signatures` of ``calls``, in pallet order.
        ``tolerant``: a pallet that cannot read them (pool validation on a state that lacks
        what it needs) contributes none."""
        out: list[tuple[Pallet, list[SignatureCheck]]] = []
        for _, p in sorted(self.rt.pallets.items()):
            try:
                checks = p.extra_signatures(calls)
            except (DispatchError, CodecError, StateError):
                if not tolerant:
                    raise
                checks = []
            if checks:
                out.append((p, checks))
        return out

    @staticmethod
    def _note_verified(
        extra: Sequence[tuple[Pallet, list[SignatureCheck]]], oks: Sequence[bool]
    ) -> None:
        """Hand each pallet the verdicts of its checks (``oks``: theirs, in ``extra``'s order)."""
        at = 0
        for p, checks in extra:
            p.note_verified(checks, oks[at : at + len(checks)])
            at += len(checks)

    def _remember_signature(self, h: bytes, msg: bytes) -> None:
        # Same bytes, same signing message: the same verdict, so a pool entry's signature is
        # verified once, not again at every revalidation after a block.
        if len(self._signature_ok) >= DECODE_CACHE_SIZE:
            del self._signature_ok[next(iter(self._signature_ok))]
        self._signature_ok[h] = msg

    def validate_transaction(
        self,
        base: StateReader,
        raw: bytes,
        best_number: int,
        best_hash: bytes,
        *,
        signature_checked: bool = False,
        tx_hash: bytes | None = None,
    ) -> ValidTransaction:
        """Check ``raw`` against the best block's state as if it went into the next block.

        Future nonces are valid (they wait in the pool for their ``requires`` tag).
        ``signature_checked``: the caller verified it already (in a :meth:`signature_batch`).
        ``tx_hash``: ``extrinsic_hash(raw)`` if the caller has it (the pool does), which spares
        hashing the bytes again; it keys the caches, so it must be right.

        Only what cannot change for the same bytes is remembered between calls (decoding,
        signing message per birth hash, signature verdict); the era, nonce, weight and fee
        are checked against ``base`` on every call.
        """
        rt = self.rt
        rt.state = Overlay(base)
        rt.block = BlockContext(number=best_number + 1, parent_hash=best_hash)
        self._pool_spec_version(best_hash, best_number + 1)
        c = self._check(raw, cached=True, tx_hash=tx_hash)
        s = c.xt.signed
        if s is None:
            raise InvalidTransaction("Unsigned", "inherents are not gossiped")
        msg = self._signing_message(c, best_number, memo=True)  # also the era check
        if not signature_checked and self._signature_ok.get(c.hash) != msg:
            if not native.verify_batch([s.signer], [msg], [s.signature])[0]:
                raise InvalidTransaction("BadProof", "bad signature")
            self._remember_signature(c.hash, msg)
        expected = self._check_state(c, allow_future=True)
        requires = [] if s.nonce == expected else [_tag(s.signer, s.nonce - 1)]
        longevity = (
            TX_LONGEVITY_IMMORTAL
            if s.era.is_immortal
            else max(0, s.era.death(best_number) - best_number - 1)
        )
        return ValidTransaction(
            hash=c.hash,
            signer=s.signer,
            nonce=s.nonce,
            tip=s.tip,
            fee=c.fee,
            weight=c.weight,
            length=len(raw),
            priority=s.tip,
            requires=requires,
            provides=[_tag(s.signer, s.nonce)],
            longevity=longevity,
        )


def decode_events(rt: Runtime, raw: bytes) -> list[dict[str, Any]]:
    """The raw System.Events storage value to readable dicts, decoded from the metadata."""
    inner = rt.system.Events.value_type.decode(raw) if raw else b""
    if not inner:
        return []
    out = []
    for kind, idx, pi, ei, args in codec.decode(inner):
        p = rt.pallets[pi]
        v = p.Event.variants[ei]
        out.append(
            {
                "phase": ["initialization", "apply", "finalization"][kind],
                "extrinsic": idx,
                "pallet": p.name,
                "event": v.name,
                "args": v.decode_args(args),
            }
        )
    return out


def extrinsic_hashes(raws: Sequence[bytes]) -> list[bytes]:
    return [extrinsic_hash(r) for r in raws]
