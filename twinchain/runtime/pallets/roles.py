"""Roles: on-chain grants of the parties of the twin registry, never assumed.

Seven roles: facility operator, certified auditor, equipment manufacturer, equipment owner,
service provider, gateway and device. Root (sudo on dev chains, a council motion elsewhere)
may grant or revoke any role. Some roles may also be granted by the role that owns them:
a facility operator onboards the equipment owners, service providers and gateways of its
site; an equipment owner binds device keys (the telemetry pallet grants ``Device`` through
:meth:`Roles.grant_internal` when it binds one). Whoever granted a role may revoke it; anyone
may renounce a role of its own.

Each domain pallet checks the role a call needs with :meth:`Roles.has` and raises its own
typed error, so that a client learns from the error which role was missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.primitives.codec import U64, AccountId, Enum, Option, Record
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.weights import roles as weights

FACILITY_OPERATOR = "FacilityOperator"
CERTIFIED_AUDITOR = "CertifiedAuditor"
EQUIPMENT_MANUFACTURER = "EquipmentManufacturer"
EQUIPMENT_OWNER = "EquipmentOwner"
SERVICE_PROVIDER = "ServiceProvider"
GATEWAY = "Gateway"
DEVICE = "Device"
PREDICTIVE_WORKER = "PredictiveWorker"  # off-chain model runners that may raise alerts

ROLE_NAMES = (
    FACILITY_OPERATOR,
    CERTIFIED_AUDITOR,
    EQUIPMENT_MANUFACTURER,
    EQUIPMENT_OWNER,
    SERVICE_PROVIDER,
    GATEWAY,
    DEVICE,
    PREDICTIVE_WORKER,  # appended: enum indices of the others never change
)
Role = Enum("Role", ROLE_NAMES)

# Which roles (besides root) may grant each role. Trust anchors (operators, auditors,
# manufacturers) come from governance only.
GRANTORS: dict[str, tuple[str, ...]] = {
    FACILITY_OPERATOR: (),
    CERTIFIED_AUDITOR: (),
    EQUIPMENT_MANUFACTURER: (),
    EQUIPMENT_OWNER: (FACILITY_OPERATOR,),
    SERVICE_PROVIDER: (FACILITY_OPERATOR,),
    GATEWAY: (FACILITY_OPERATOR,),
    DEVICE: (EQUIPMENT_OWNER,),
    PREDICTIVE_WORKER: (FACILITY_OPERATOR,),
}


@dataclass
class Grant(Record):
    """Who granted a role (None: root or genesis) and in which block."""

    granted_by: bytes | None
    since: int
    FIELDS: ClassVar = {"granted_by": Option(AccountId), "since": U64}


class Roles(Pallet):
    name = "Roles"

    Grants = StorageDoubleMap(
        AccountId, Role, Grant.wire_type(), doc="Roles held, by account and role."
    )

    class Event(PalletEvents):
        RoleGranted = (("who", AccountId), ("role", Role), ("by", Option(AccountId)))
        RoleRevoked = (("who", AccountId), ("role", Role), ("by", Option(AccountId)))

    class Error(PalletErrors):
        AlreadyGranted = "the account already holds this role"
        NotGranted = "the account does not hold this role"
        NotGrantor = "the sender holds no role that may grant this role"
        NotGranter = "only the account that granted a role (or root) may revoke it"

    # -- calls
    @call(0, weight=weights.W_GRANT, origin=ROOT, args=(("who", AccountId), ("role", Role)))
    def force_grant(self, origin: Origin, who: bytes, role: str) -> None:
        """Grant any role (root: governance)."""
        ensure_root(origin)
        if self.has(who, role):
            raise self.Error.AlreadyGranted()
        self.grant_internal(who, role, None)

    @call(1, weight=weights.W_GRANT, origin=ROOT, args=(("who", AccountId), ("role", Role)))
    def force_revoke(self, origin: Origin, who: bytes, role: str) -> None:
        """Revoke any role (root: governance)."""
        ensure_root(origin)
        if not self.has(who, role):
            raise self.Error.NotGranted()
        self.revoke_internal(who, role, None)

    @call(2, weight=weights.W_GRANT, origin=SIGNED, args=(("who", AccountId), ("role", Role)))
    def grant(self, origin: Origin, who: bytes, role: str) -> None:
        """Grant ``role`` as a holder of one of the roles that own it (see GRANTORS)."""
        sender = ensure_signed(origin)
        if not any(self.has(sender, r) for r in GRANTORS[role]):
            raise self.Error.NotGrantor()
        if self.has(who, role):
            raise self.Error.AlreadyGranted()
        self.grant_internal(who, role, sender)

    @call(3, weight=weights.W_GRANT, origin=SIGNED, args=(("who", AccountId), ("role", Role)))
    def revoke(self, origin: Origin, who: bytes, role: str) -> None:
        """Revoke a role this sender granted."""
        sender = ensure_signed(origin)
        g: Grant | None = self.Grants.get(who, role)
        if g is None:
            raise self.Error.NotGranted()
        if g.granted_by != sender:
            raise self.Error.NotGranter()
        self.revoke_internal(who, role, sender)

    @call(4, weight=weights.W_GRANT, origin=SIGNED, args=(("role", Role),))
    def renounce(self, origin: Origin, role: str) -> None:
        """Give up a role of one's own."""
        who = ensure_signed(origin)
        if not self.has(who, role):
            raise self.Error.NotGranted()
        self.revoke_internal(who, role, who)

    # -- genesis
    def genesis(self, config: dict[str, Any]) -> None:
        for who_s, role in config.get("grants", []):
            if role not in ROLE_NAMES:
                raise ValueError(f"unknown role {role!r} in genesis")
            self.Grants.insert(parse_account(who_s), role, Grant(None, 0))

    # -- API for the other pallets
    def has(self, who: bytes, role: str) -> bool:
        return self.Grants.contains(who, role)

    def grant_of(self, who: bytes, role: str) -> Grant | None:
        """Who granted ``who`` its ``role`` and when; None if not held."""
        return self.Grants.get(who, role)  # type: ignore[no-any-return]

    def roles_of(self, who: bytes) -> list[tuple[str, Grant]]:
        return list(self.Grants.iter_prefix(who))

    def grant_internal(self, who: bytes, role: str, by: bytes | None) -> None:
        """Record a grant (overwrites an earlier one, so the newest granter may revoke)."""
        self.Grants.insert(who, role, Grant(by, self.runtime.block.number))
        self.deposit(self.Event.RoleGranted(who, role, by))

    def revoke_internal(self, who: bytes, role: str, by: bytes | None) -> None:
        if self.Grants.contains(who, role):
            self.Grants.remove(who, role)
            self.deposit(self.Event.RoleRevoked(who, role, by))

    def constants(self) -> dict[str, Any]:
        return {"Roles": list(ROLE_NAMES), "Grantors": {k: list(v) for k, v in GRANTORS.items()}}
