"""Facility validators and nodes: onboarding a facility onto the network and the authority set.

The model is Substrate's pallet-node-authorization, joined to the council:

1. a verified facility's operator proposes its validator key and the libp2p peer id of the
   node that runs it (``propose_validator``): the proposal is Pending;
2. the council approves it (``approve_validator``, Root: a council motion): the node's peer id
   joins the facility's authorized nodes at once, so the node can connect and sync; the
   proposal is Approved;
3. at the next session boundary the Authority pallet reads :meth:`validator_changes`, adds
   the key to the authority set and acknowledges with :meth:`validator_applied` (Active).

Offboarding runs the same way backwards: suspension, revocation, a failed audit, a lapsed
verification or a withdrawal make the key leave the set at the next boundary. The nodes of a
facility stay authorized while it is verified, or while its validator key is still in the
authority set (so a leaving validator keeps its connections until the boundary removes it).

Besides its validator's, a verified facility's operator authorizes its other nodes (archive
replicas, observers) with ``add_node``/``remove_node``, up to ``MaxNodes``; a peer id belongs to
one facility (node-authorization's owners). ``WellKnownNodes`` (Root) lists nodes of no
facility (bootnodes of the consortium). :meth:`authorized_nodes` is what the node software
admits: see ``twinchain.node.authorization``.
"""

from __future__ import annotations

from collections.abc import Collection

from twinchain.primitives.hashing import ZERO_HASH
from twinchain.runtime.framework import (
    ROOT,
    ROOT_OR_SIGNED,
    SIGNED,
    Origin,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.pallets.facility.types import (
    MAX_NODES,
    MAX_WELL_KNOWN_NODES,
    FacilityId,
    PeerId,
    ValidatorProposal,
    is_peer_id,
)
from twinchain.runtime.weights import facility as weights

# A proposal in these states still names a node the facility needs (Removed: on its way out).
_LIVE_PROPOSAL = ("Pending", "Approved", "Active")


class ValidatorsFeature:
    """Validator proposals and authorized nodes of the Facility pallet's sites."""

    # ------------------------------------------------------------------ helpers
    def _remove_proposal(self, fid: int) -> None:
        p: ValidatorProposal | None = self.ValidatorProposals.get(fid)
        if p is not None and p.status != "Removed":
            p.status = "Removed"
            self.ValidatorProposals.insert(fid, p)
            self.deposit(self.Event.ValidatorRemoved(fid, p.validator))

    def _check_peer_id(self, node: bytes, fid: int | None) -> None:
        """A well-formed peer id that no other facility (nor the well-known set) holds."""
        if not is_peer_id(node):
            raise self.Error.InvalidPeerId()
        owner = self.NodeOwner.get(node)
        if (owner is not None and owner != fid) or node in self.WellKnown.get():
            raise self.Error.NodeInUse()

    def _add_node(self, fid: int, node: bytes) -> bool:
        """Authorize ``node`` for the facility; False if it already was."""
        self._check_peer_id(node, fid)
        nodes: list[bytes] = self.Nodes.get(fid)
        if node in nodes:
            return False
        if len(nodes) >= MAX_NODES:
            raise self.Error.TooManyNodes()
        self.Nodes.insert(fid, [*nodes, node])
        self.NodeOwner.insert(node, fid)
        self.deposit(self.Event.NodeAdded(fid, node))
        return True

    # ------------------------------------------------------------------ calls
    @call(
        10,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("facility", FacilityId), ("node", PeerId)),
    )
    def propose_validator(self, origin: Origin, facility: int, node: bytes) -> None:
        """Propose the facility's validator key, run by the node with libp2p peer id ``node``
        (its operator; the facility must be verified). The council approves it with
        ``approve_validator``; it joins the authority set at the session boundary after."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        if not self.is_verified(facility):
            raise self.Error.NotVerified()
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is not None and p.status != "Removed":
            raise self.Error.AlreadyProposed()
        self._check_peer_id(node, facility)
        self.ValidatorProposals.insert(
            facility, ValidatorProposal(f.validator, self.runtime.block.number, "Pending", node)
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

    @call(16, weight=weights.W_SMALL, origin=ROOT, args=(("facility", FacilityId),))
    def approve_validator(self, origin: Origin, facility: int) -> None:
        """Approve the facility's pending validator proposal (Root: a council motion). Its
        node is authorized now; its key joins the authority set at the next session."""
        ensure_root(origin)
        f = self._live(facility)
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is None or p.status != "Pending":
            raise self.Error.NotPending()
        if not self.is_verified(facility):
            raise self.Error.NotVerified()
        self._add_node(facility, p.node)
        p.status = "Approved"
        self.ValidatorProposals.insert(facility, p)
        self._log(facility, "ValidatorApproved", None, ZERO_HASH, f.reputation)
        self.deposit(self.Event.ValidatorApproved(facility, p.validator, p.node))

    @call(
        17,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("facility", FacilityId), ("node", PeerId)),
    )
    def add_node(self, origin: Origin, facility: int, node: bytes) -> None:
        """Authorize another node of the facility on the network (its operator, while the
        facility is verified): a replica, an observer."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        if not self.is_verified(facility):
            raise self.Error.NotVerified()
        if not self._add_node(facility, node):
            raise self.Error.NodeInUse()
        self._log(facility, "NodeAdded", who, ZERO_HASH, f.reputation)

    @call(
        18,
        weight=weights.W_SMALL,
        origin=ROOT_OR_SIGNED,
        args=(("facility", FacilityId), ("node", PeerId)),
    )
    def remove_node(self, origin: Origin, facility: int, node: bytes) -> None:
        """Stop authorizing one of the facility's nodes (its operator, or Root: governance
        dropping a compromised node). Not the node of a live validator proposal: withdraw
        the validator first, so the authority set never keeps an unreachable key."""
        who = None if origin.kind == ROOT else ensure_signed(origin)
        f = self._get(facility) if who is None else self._ensure_operator_of(who, facility)
        nodes: list[bytes] = self.Nodes.get(facility)
        if node not in nodes:
            raise self.Error.UnknownNode()
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is not None and p.node == node and p.status in _LIVE_PROPOSAL:
            raise self.Error.NodeOfValidator()
        rest = [n for n in nodes if n != node]
        if rest:
            self.Nodes.insert(facility, rest)
        else:
            self.Nodes.remove(facility)
        self.NodeOwner.remove(node)
        self._log(facility, "NodeRemoved", who, ZERO_HASH, f.reputation)
        self.deposit(self.Event.NodeRemoved(facility, node))

    @call(19, weight=weights.W_SMALL, origin=ROOT, args=(("node", PeerId),))
    def add_well_known_node(self, origin: Origin, node: bytes) -> None:
        """Authorize a node of no facility (Root): a consortium bootnode."""
        ensure_root(origin)
        self._check_peer_id(node, None)
        known: list[bytes] = self.WellKnown.get()
        if len(known) >= MAX_WELL_KNOWN_NODES:
            raise self.Error.TooManyNodes()
        self.WellKnown.put(sorted([*known, node]))
        self.deposit(self.Event.WellKnownNodeAdded(node))

    @call(20, weight=weights.W_SMALL, origin=ROOT, args=(("node", PeerId),))
    def remove_well_known_node(self, origin: Origin, node: bytes) -> None:
        """Stop authorizing a well-known node (Root)."""
        ensure_root(origin)
        known: list[bytes] = self.WellKnown.get()
        if node not in known:
            raise self.Error.UnknownNode()
        self.WellKnown.put([n for n in known if n != node])
        self.deposit(self.Event.WellKnownNodeRemoved(node))

    # ------------------------------------------------------------------ API for other pallets
    def pending_validators(self) -> list[tuple[int, bytes]]:
        """Approved proposals waiting for a session boundary, whose facility is verified."""
        return [
            (fid, p.validator)
            for fid, p in self.ValidatorProposals.iter()
            if p.status == "Approved" and self.is_verified(fid)
        ]

    def validator_changes(
        self, current: Collection[bytes] = ()
    ) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        """(to add, to remove) at the next session boundary, as (facility, key) pairs:

        - add: approved proposals of verified facilities;
        - remove: removed proposals, active ones whose facility is no longer verified, and
          any key of ``current`` (the authority set) registered by a facility that is no
          longer verified (the genesis facilities' validators have no proposal)."""
        add: list[tuple[int, bytes]] = []
        remove: set[tuple[int, bytes]] = set()
        for fid, p in self.ValidatorProposals.iter():
            verified = self.is_verified(fid)
            if p.status == "Approved" and verified:
                add.append((fid, p.validator))
            elif p.status == "Removed" or (p.status == "Active" and not verified):
                remove.add((fid, p.validator))
        for key in current:
            fid = self.ValidatorOf.get(key)
            if fid is not None and not self.is_verified(fid):
                remove.add((fid, key))
        return sorted(add), sorted(remove)

    def validator_applied(self, fid: int) -> None:
        """The session code applied this facility's change: Approved becomes Active, a removed
        (or lapsed) proposal is dropped."""
        p: ValidatorProposal | None = self.ValidatorProposals.get(fid)
        if p is None:
            return
        if p.status == "Approved":
            p.status = "Active"
            self.ValidatorProposals.insert(fid, p)
            self.deposit(self.Event.ValidatorActivated(fid, p.validator))
        elif p.status != "Pending":
            self.ValidatorProposals.remove(fid)

    # ------------------------------------------------------------------ API for the node
    def nodes(self, fid: int) -> list[bytes]:
        """The facility's authorized node peer ids (stored; they count while it is verified)."""
        return self.Nodes.get(fid)  # type: ignore[no-any-return]

    def well_known_nodes(self) -> list[bytes]:
        return self.WellKnown.get()  # type: ignore[no-any-return]

    def authorized_nodes(self, authorities: Collection[bytes] = ()) -> list[bytes]:
        """Every peer id the network admits, sorted: the well-known nodes, and the nodes of
        each facility that is verified or whose validator key is still in ``authorities``
        (the current set: a leaving validator stays reachable until the boundary)."""
        keep = {self.ValidatorOf.get(k) for k in authorities} - {None}
        out = set(self.WellKnown.get())
        for fid, nodes in self.Nodes.iter():
            if fid in keep or self.is_verified(fid):
                out.update(nodes)
        return sorted(out)
