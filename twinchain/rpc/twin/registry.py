"""``twin_*`` reads of the registry pallets: facilities, equipment twins and roles.

twin_facilities([at])                      every facility, summarised
twin_facility(id, [at])                    one facility in full (audit log included)
twin_equipment(id, [at])                   an equipment twin: owner, lifecycle, spec,
                                           provenance, rights, calibrations, service...
twin_equipmentOf(account, [at])            ids of the twins an account owns
twin_roles(account, [at])                  the roles an account holds
twin_classes([at])                         the registered equipment classes, summarised
twin_class(name, [at])                     one registered class: its version, registrant,
                                           hash, its record (fixed-point, chain metric ids)
                                           and the same as a class file (engineering units)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.protocol.classdef import class_from_record, dump_class
from twinchain.protocol.jsonrpc import to_hex
from twinchain.rpc.errors import invalid_params
from twinchain.rpc.twin.common import (
    Params,
    TwinMethod,
    account_param,
    bind_params,
    int_param,
    read_at,
    to_json,
)

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain
    from twinchain.runtime.runtime import Runtime


def _facility_summary(rt: Runtime, fid: int, f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": fid, **to_json(f)}
    out["verifiedNow"] = rt.facility.is_verified(fid)
    return out


def facilities(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    (at,) = bind_params(params, ("at",), 0)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [_facility_summary(rt, fid, f) for fid, f in sorted(rt.facility.Facilities.iter())]

    return read_at(client, at, read)  # type: ignore[no-any-return]


def facility(client: Blockchain, params: Params) -> dict[str, Any] | None:
    fid_v, at = bind_params(params, ("id", "at"), 1)
    fid = int_param(fid_v, "facility id", 2**32 - 1)

    def read(rt: Runtime) -> dict[str, Any] | None:
        fac = rt.facility
        f = fac.facility(fid)
        if f is None:
            return None
        now = rt.timestamp.Now.get()
        out = _facility_summary(rt, fid, f)
        out["now"] = now
        out["assessments"] = [
            {"capability": cap, **to_json(a)} for cap, a in sorted(fac.Assessments.iter_prefix(fid))
        ]
        out["certifications"] = [
            {"id": i, **to_json(c), "counts": c.counts_at(now)}
            for i, c in enumerate(fac.certifications(fid))
        ]
        out["compliance"] = [
            {"ruleSet": rid, **to_json(r)} for rid, r in sorted(fac.Compliance.iter_prefix(fid))
        ]
        out["auditLog"] = to_json(fac.audit_log(fid))
        out["auditHead"] = to_hex(fac.AuditHead.get(fid))
        p = fac.ValidatorProposals.get(fid)
        out["validatorProposal"] = None if p is None else to_json(p)
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


def equipment(client: Blockchain, params: Params) -> dict[str, Any] | None:
    tid_v, at = bind_params(params, ("id", "at"), 1)
    tid = int_param(tid_v, "twin id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        eq = rt.equipment
        t = eq.twin(tid)
        if t is None:
            return None
        now = rt.timestamp.Now.get()
        out: dict[str, Any] = {"id": tid, **to_json(t)}
        out["operational"] = eq.is_operational(tid)
        out["spec"] = to_json(eq.spec(tid))
        out["documents"] = [{"kind": k, "hash": to_hex(h)} for k, h in eq.Documents.get(tid) or []]
        w = eq.Warranties.get(tid)
        out["warranty"] = None if w is None else {**to_json(w), "active": w.starts <= now < w.ends}
        loc = eq.Locations.get(tid)
        out["location"] = None if loc is None else to_json(loc)
        out["access"] = [
            {"account": to_hex(who), **to_json(g), "expired": g.expires <= now}
            for who, g in sorted(eq.Access.iter_prefix(tid))
        ]
        out["calibrations"] = [
            {"index": i, **to_json(c), "valid": c.passed and c.valid_until > now}
            for i, c in sorted(eq.Calibrations.iter_prefix(tid))
        ]
        out["serviceHistory"] = to_json(eq.service_history(tid))
        out["provenance"] = to_json(eq.provenance(tid))
        out["provenanceHead"] = to_hex(eq.ProvenanceHead.get(tid))
        out["devices"] = [to_hex(d) for d, _ in sorted(rt.telemetry.TwinDevices.iter_prefix(tid))]
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


def equipment_of(client: Blockchain, params: Params) -> list[int]:
    who_v, at = bind_params(params, ("account", "at"), 1)
    who = account_param(who_v)

    def read(rt: Runtime) -> list[int]:
        return sorted(t for t, _ in rt.equipment.OwnedBy.iter_prefix(who))

    return read_at(client, at, read)  # type: ignore[no-any-return]


def roles(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    who_v, at = bind_params(params, ("account", "at"), 1)
    who = account_param(who_v)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [{"role": r, **to_json(g)} for r, g in sorted(rt.roles.roles_of(who))]

    return read_at(client, at, read)  # type: ignore[no-any-return]


def _class_summary(name: str, rec: Any) -> dict[str, Any]:
    d = rec.definition
    return {
        "name": name,
        "description": d.description,
        "version": rec.version,
        "registrant": None if rec.registrant is None else to_hex(rec.registrant),
        "hash": to_hex(rec.hash),
        "registeredAt": rec.registered_at,
        "updatedAt": rec.updated_at,
        "metrics": [m.name for m in d.metrics],
        "failureModes": [f.name for f in d.failure_modes],
    }


def classes(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    (at,) = bind_params(params, ("at",), 0)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [_class_summary(n, r) for n, r in sorted(rt.equipment.Classes.iter())]

    return read_at(client, at, read)  # type: ignore[no-any-return]


def equipment_class(client: Blockchain, params: Params) -> dict[str, Any] | None:
    """One registered class, null if none has that name: ``record`` as the chain keeps it,
    ``toml`` the class file it stands for (``classdef.load_class`` reads it back)."""
    name, at = bind_params(params, ("name", "at"), 1)
    if not isinstance(name, str) or not name:
        raise invalid_params("name must be a class name")

    def read(rt: Runtime) -> dict[str, Any] | None:
        rec = rt.equipment.equipment_class(name)
        if rec is None:
            return None
        out = _class_summary(name, rec)
        out["record"] = to_json(rec.definition)
        out["toml"] = dump_class(class_from_record(rec.definition))
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


METHODS: dict[str, TwinMethod] = {
    "twin_facilities": facilities,
    "twin_facility": facility,
    "twin_equipment": equipment,
    "twin_equipmentOf": equipment_of,
    "twin_roles": roles,
    "twin_classes": classes,
    "twin_class": equipment_class,
}
