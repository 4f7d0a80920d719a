"""Telemetry's device signatures on chain: checked once per block where possible, and once
per process for a batch seen before.

Every commitment carries its device's signature (:func:`~twinchain.protocol.telemetry.sign_batch`,
over :meth:`~twinchain.protocol.telemetry.Commitment.message`). ``submit`` must know each one
good before it applies the commitment, but verifying them one
extrinsic at a time is the slowest way: the executive asks every pallet for the signatures
its block's calls carry (:meth:`Telemetry.extra_signatures`, which is
:func:`collect_device_signatures` less those known good) and verifies them with the
extrinsics' own in ONE ``native.verify_batch`` call; the verdicts come back through
:func:`note_verified`. ``submit`` then checks only what no one vouched for
(:func:`check_submitted`).

A verdict depends on the three byte strings alone (the message binds chain, device, twin,
sequence, count, span, root and public summaries), so good ones are also remembered
process-wide: pool admission verifies a
batch when its extrinsic arrives, and authoring and import, which are on every reading's path
to finality, do not again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from twinchain.protocol.telemetry import Commitment, Triple, verify_device_signatures

if TYPE_CHECKING:
    from twinchain.runtime.framework import CallDef, Pallet
    from twinchain.runtime.pallets.telemetry.pallet import Telemetry

# Device signatures known good, process-wide (see the module docstring).
_GOOD_SIGNATURES: dict[Triple, None] = {}
_GOOD_SIGNATURES_MAX = 1 << 16

VERIFIED = "telemetry.verified"  # BlockContext.notes: device signatures checked this block


def remember_good_signatures(triples: Iterable[Triple]) -> None:
    """Record (device, message, signature) triples as verified: only after verifying them."""
    memo = _GOOD_SIGNATURES
    for t in triples:
        if len(memo) >= _GOOD_SIGNATURES_MAX:
            del memo[next(iter(memo))]  # oldest first: extrinsics are included in order
        memo[t] = None


def forget_good_signatures() -> None:
    """Drop the memo of good device signatures (a fresh process; tests and benchmarks)."""
    _GOOD_SIGNATURES.clear()


def check_submitted(tel: Telemetry, triples: Sequence[Triple]) -> bool:
    """Whether every signature of one ``submit`` is good: one batch verification for those
    the block did not pre-verify and no earlier verification vouched for."""
    verified: set[Triple] = tel.runtime.block.notes.get(VERIFIED, set())
    good = _GOOD_SIGNATURES
    todo = [t for t in triples if t not in verified and t not in good]
    if todo:
        if not all(verify_device_signatures(todo)):
            return False
        remember_good_signatures(todo)
    return True


def _submits(
    tel: Telemetry, calls: Iterable[tuple[Pallet, CallDef, list[Any]]]
) -> Iterator[list[Commitment]]:
    submit = tel.calls_by_name["submit"]
    for pallet, cd, args in calls:
        if pallet is tel and cd is submit:
            yield args[0]


def collect_device_signatures(
    tel: Telemetry, calls: Iterable[tuple[Pallet, CallDef, list[Any]]]
) -> list[Triple]:
    """(device, message, signature) of every commitment in the block's decoded ``calls``,
    against the state at the start of the block.

    Commitments of unknown devices are skipped (their extrinsic fails on its own), and so are
    submits nested in other calls (sudo, multisig): ``submit`` verifies those itself.
    """
    genesis = tel.runtime.genesis_hash
    out: list[Triple] = []
    twins: dict[bytes, int | None] = {}
    for batches in _submits(tel, calls):
        for b in batches:
            if b.device not in twins:
                d = tel.Devices.get_shared(b.device)
                twins[b.device] = None if d is None else d.twin
            twin = twins[b.device]
            if twin is None or not b.count:
                continue
            out.append((b.device, b.message(genesis, twin), b.signature))
    return out


def note_verified(tel: Telemetry, triples: Sequence[Triple], oks: Sequence[bool]) -> None:
    """Remember which device signatures verified, so ``submit`` skips them (this block,
    and any later one that carries the same batch)."""
    good = [t for t, ok in zip(triples, oks, strict=True) if ok]
    tel.runtime.block.notes.setdefault(VERIFIED, set()).update(good)
    remember_good_signatures(good)


def unverified(tel: Telemetry, triples: Sequence[Triple]) -> list[Triple]:
    """``triples`` less those already known good (noted as verified for this block)."""
    good = _GOOD_SIGNATURES
    known = [t for t in triples if t in good]
    if not known:
        return list(triples)
    tel.runtime.block.notes.setdefault(VERIFIED, set()).update(known)
    return [t for t in triples if t not in good]
