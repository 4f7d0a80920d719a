"""Facility validators: a verified facility proposes its validator key for the authority set;
the authority pallet's session code reads the changes and acknowledges them."""

from __future__ import annotations

from twinchain.primitives.hashing import ZERO_HASH
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.facility.types import FacilityId, ValidatorProposal
from twinchain.runtime.weights import facility as weights


class ValidatorsFeature:
    """Validator proposals of the Facility pallet's sites."""

    # ------------------------------------------------------------------ helpers
    def _remove_proposal(self, fid: int) -> None:
        p: ValidatorProposal | None = self.ValidatorProposals.get(fid)
        if p is not None and p.status != "Removed":
            p.status = "Removed"
            self.ValidatorProposals.insert(fid, p)
            self.deposit(self.Event.ValidatorRemoved(fid, p.validator))

    # ------------------------------------------------------------------ calls
    @call(10, weight=weights.W_SMALL, origin=SIGNED, args=(("facility", FacilityId),))
    def propose_validator(self, origin: Origin, facility: int) -> None:
        """Propose the facility's validator key for the authority set (its operator; the
        facility must be verified). It joins at a session boundary."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        if not self.is_verified(facility):
            raise self.Error.NotVerified()
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is not None and p.status != "Removed":
            raise self.Error.AlreadyProposed()
        self.ValidatorProposals.insert(
            facility, ValidatorProposal(f.validator, self.runtime.block.number, "Pending")
        )
        self._log(facility, "ValidatorProposed", who, ZERO_HASH, f.reputation)
        self.deposit(self.Event.ValidatorProposed(facility, f.validator))

    @call(11, weight=weights.W_SMALL, origin=SIGNED, args=(("facility", FacilityId),))
    def withdraw_validator(self, origin: Origin, facility: int) -> None:
        """Withdraw the facility's validator (its operator): removed at the next session."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is None or p.status == "Removed":
            raise self.Error.NoProposal()
        self._remove_proposal(facility)
        self._log(facility, "ValidatorWithdrawn", who, ZERO_HASH, f.reputation)

    # ------------------------------------------------------------------ API for other pallets
    def pending_validators(self) -> list[tuple[int, bytes]]:
        """Proposals waiting for a session boundary, whose facility is still verified."""
        return [
            (fid, p.validator)
            for fid, p in self.ValidatorProposals.iter()
            if p.status == "Pending" and self.is_verified(fid)
        ]

    def validator_changes(self) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        """(to add, to remove) for the next session: pending proposals of verified facilities;
        removed proposals and active ones whose facility's verification lapsed."""
        add: list[tuple[int, bytes]] = []
        remove: list[tuple[int, bytes]] = []
        for fid, p in self.ValidatorProposals.iter():
            verified = self.is_verified(fid)
            if p.status == "Pending" and verified:
                add.append((fid, p.validator))
            elif p.status == "Removed" or (p.status == "Active" and not verified):
                remove.append((fid, p.validator))
        return sorted(add), sorted(remove)

    def validator_applied(self, fid: int) -> None:
        """The session code applied this facility's change: Pending becomes Active, a removed
        (or lapsed) proposal is dropped."""
        p: ValidatorProposal | None = self.ValidatorProposals.get(fid)
        if p is None:
            return
        if p.status == "Pending":
            p.status = "Active"
            self.ValidatorProposals.insert(fid, p)
        else:
            self.ValidatorProposals.remove(fid)
