"""Chain specifications: the chain's name, properties, boot nodes and genesis configuration.

A spec is JSON (``twinchain build-spec`` prints one). The genesis block, and so the genesis
hash, follows from the spec alone: the runtime builds the genesis storage from the ``genesis``
section and the state trie commits to it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinchain.native.merkle import merkle_root
from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import DEV_NAMES, Keypair, parse_account
from twinchain.primitives.types import Block, Header
from twinchain.protocol.classdef import genesis_classes
from twinchain.runtime.pallets.balances import TOKEN_DECIMALS, TOKEN_SYMBOL
from twinchain.runtime.pallets.council import MIN_MOTION_DURATION
from twinchain.runtime.pallets.facility.types import parse_peer_id
from twinchain.runtime.pallets.roles import CERTIFIED_AUDITOR, FACILITY_OPERATOR
from twinchain.runtime.runtime import Runtime
from twinchain.storage.trie import build_from_scratch

DEV_ENDOWMENT = 10**24  # one trillion TWIN at 12 decimals
CONSORTIUM_ENDOWMENT = 10**18  # one million TWIN: fees of the founders' first years
# Founding facilities are verified until 2100-01-01 (ms); auditors re-verify them sooner.
FOUNDING_VERIFIED_UNTIL_MS = 4_102_444_800_000
CONSORTIUM_MOTION_DURATION = 7 * 24 * 3600  # a week of 1 s slots, in blocks
LOCAL_MOTION_DURATION = 600  # ten minutes of 1 s slots


class ChainSpecError(ValueError):
    """The spec file is missing, not JSON, or not a valid chain spec."""


@dataclass
class ChainSpec:
    name: str
    id: str
    chain_type: str
    genesis: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)
    boot_nodes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "chainType": self.chain_type,
            "bootNodes": self.boot_nodes,
            "properties": self.properties,
            "genesis": self.genesis,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChainSpec:
        try:
            spec = cls(
                name=str(data["name"]),
                id=str(data["id"]),
                chain_type=str(data.get("chainType", "Live")),
                genesis=dict(data["genesis"]),
                properties=dict(data.get("properties", {})),
                boot_nodes=list(data.get("bootNodes", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainSpecError(f"invalid chain spec: {exc}") from exc
        return spec

    @classmethod
    def load(cls, path: str | Path) -> ChainSpec:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ChainSpecError(f"cannot read chain spec {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ChainSpecError("a chain spec is a JSON object")
        return cls.from_json(data)

    def genesis_storage(self) -> dict[bytes, bytes]:
        cfg = dict(self.genesis)
        cfg.setdefault("system", {}).setdefault("name", self.name)
        try:
            changes = Runtime().build_genesis(cfg)
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainSpecError(f"invalid genesis configuration: {exc}") from exc
        return {k: v for k, v in changes.items() if v is not None}

    def genesis_block(self) -> Block:
        root, _ = build_from_scratch(self.genesis_storage())
        header = Header(
            parent_hash=ZERO_HASH,
            number=0,
            state_root=root,
            extrinsics_root=merkle_root([]),
            slot=0,
        )
        return Block(header, ())

    @property
    def slot_duration_ms(self) -> int:
        return int(self.genesis.get("authority", {}).get("slot_duration_ms", 1000))


def _properties() -> dict[str, Any]:
    return {"tokenSymbol": TOKEN_SYMBOL, "tokenDecimals": TOKEN_DECIMALS, "ss58Format": 42}


def dev_spec() -> ChainSpec:
    """Single validator (Alice) with sudo and endowed dev accounts; 1 s slots. The only
    spec with a sudo key: ``local`` and consortium specs are governed by their council."""
    return ChainSpec(
        name="Development",
        id="dev",
        chain_type="Development",
        properties=_properties(),
        genesis={
            "authority": {
                "authorities": ["//Alice"],
                "slot_duration_ms": 1000,
                "session_length": 60,
            },
            "balances": {"balances": [[f"//{n}", DEV_ENDOWMENT] for n in DEV_NAMES]},
            "sudo": {"key": "//Alice"},
            "timestamp": {},
            "equipment": {"classes": genesis_classes()},
        },
    )


def local_spec(authorities: list[str], slot_duration_ms: int = 1000) -> ChainSpec:
    """A local multi-validator testnet governed by its council, without sudo: each of
    ``authorities`` (addresses or dev names) operates one founding facility and validates for
    it; the dev accounts are endowed."""
    facilities = [FoundingFacility(f"{a.removeprefix('//')} Works", a, a) for a in authorities]
    spec = consortium_spec(
        "Local Testnet",
        "local_testnet",
        facilities,
        slot_duration_ms=slot_duration_ms,
        session_length=60,
        motion_duration=LOCAL_MOTION_DURATION,
        chain_type="Local",
    )
    spec.genesis["balances"] = {"balances": [[f"//{n}", DEV_ENDOWMENT] for n in DEV_NAMES]}
    return spec


# --------------------------------------------------------------------------- consortium


@dataclass(frozen=True)
class FoundingFacility:
    """A facility the network is founded with: verified at genesis, its operator a council
    member and its validator an authority."""

    name: str
    operator: str  # address (SS58 or 0x hex) or //Name
    validator: str | None = None  # its validator key; default: the operator's
    location: str = ""
    capabilities: tuple[str, ...] = ()
    node: str | None = None  # the libp2p peer id of its validator's node (base58)

    @property
    def validator_key(self) -> str:
        return self.validator or self.operator


def parse_founding(text: str) -> FoundingFacility:
    """``NAME,OPERATOR[,VALIDATOR[,NODE]]`` (the ``--facility`` flag of ``build-spec``; an
    empty VALIDATOR is the operator's key, NODE is its node's libp2p peer id)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3, 4) or not all(parts[:2]) or (len(parts) == 4 and not parts[3]):
        raise ChainSpecError(f"--facility takes NAME,OPERATOR[,VALIDATOR[,NODE]], not {text!r}")
    validator = parts[2] if len(parts) >= 3 and parts[2] else None
    node = parts[3] if len(parts) == 4 else None
    if node is not None:
        _peer_id(node, f"facility {parts[0]!r}'s node")
    return FoundingFacility(parts[0], parts[1], validator, node=node)


def _peer_id(text: str, what: str) -> str:
    try:
        parse_peer_id(text)
    except ValueError as exc:
        raise ChainSpecError(f"{what}: {exc}") from None
    return text


def _account(who: str, what: str) -> str:
    try:
        parse_account(who)
    except (ValueError, TypeError) as exc:
        raise ChainSpecError(f"{what} {who!r} is not an address or //Name: {exc}") from None
    return who


def consortium_spec(
    name: str,
    chain_id: str,
    facilities: list[FoundingFacility],
    *,
    auditors: tuple[str, ...] | list[str] = (),
    slot_duration_ms: int = 1000,
    session_length: int = 600,
    motion_duration: int = CONSORTIUM_MOTION_DURATION,
    endowment: int = CONSORTIUM_ENDOWMENT,
    chain_type: str = "Live",
    boot_nodes: list[str] | None = None,
) -> ChainSpec:
    """A consortium's chain, governed by its council and without sudo.

    Each founding facility is verified at genesis (until ``FOUNDING_VERIFIED_UNTIL_MS``),
    its operator holds FacilityOperator and so sits on the council, and its validator key is
    an authority. ``auditors`` hold CertifiedAuditor (to verify the facilities that join
    later; the council may grant more). Operators, validators and auditors are endowed with
    ``endowment`` to pay their fees.
    """
    if not facilities:
        raise ChainSpecError("a consortium needs at least one founding facility")
    validators = [_account(f.validator_key, "validator") for f in facilities]
    if len(set(validators)) != len(validators):
        raise ChainSpecError("two founding facilities name the same validator key")
    operators = list(dict.fromkeys(_account(f.operator, "operator") for f in facilities))
    auditors = [_account(a, "auditor") for a in auditors]
    if motion_duration < MIN_MOTION_DURATION:
        raise ChainSpecError(f"the motion duration is at least {MIN_MOTION_DURATION} blocks")
    funded = list(dict.fromkeys([*operators, *validators, *auditors]))
    return ChainSpec(
        name=name,
        id=chain_id,
        chain_type=chain_type,
        properties=_properties(),
        boot_nodes=list(boot_nodes or []),
        genesis={
            "authority": {
                "authorities": validators,
                "slot_duration_ms": slot_duration_ms,
                "session_length": session_length,
            },
            "balances": {"balances": [[who, endowment] for who in funded]},
            "roles": {
                "grants": [[op, FACILITY_OPERATOR] for op in operators]
                + [[a, CERTIFIED_AUDITOR] for a in auditors]
            },
            "facility": {
                "facilities": [
                    {
                        "name": f.name,
                        "operator": f.operator,
                        "validator": f.validator_key,
                        "location": f.location,
                        "capabilities": list(f.capabilities),
                        "verified_until": FOUNDING_VERIFIED_UNTIL_MS,
                        "nodes": [f.node] if f.node else [],
                    }
                    for f in facilities
                ],
                # Boot nodes that name their peer id are admitted as nodes of no facility.
                "well_known_nodes": [
                    _peer_id(b.rsplit("/p2p/", 1)[1], f"boot node {b!r}")
                    for b in boot_nodes or []
                    if "/p2p/" in b
                ],
            },
            "council": {"motion_duration": motion_duration},
            "timestamp": {},
            # The built-in equipment classes (their class files), registered by genesis.
            "equipment": {"classes": genesis_classes()},
        },
    )


def add_consortium_args(p: argparse.ArgumentParser) -> None:
    """``build-spec``'s flags for a consortium's spec (``--chain consortium``)."""
    g = p.add_argument_group("consortium (with --chain consortium)")
    g.add_argument(
        "--facility",
        action="append",
        default=[],
        metavar="NAME,OPERATOR[,VALIDATOR[,NODE]]",
        help="a founding facility: its operator sits on the council, its validator key "
        "(default: the operator's) is an authority, its validator's node (a libp2p peer id) "
        "is admitted to the network; repeat for each. With any node or --bootnode peer id "
        "in the spec the network is permissioned by the chain",
    )
    g.add_argument(
        "--auditor", action="append", default=[], help="an account granted CertifiedAuditor"
    )
    g.add_argument("--name", dest="spec_name", default="Consortium", help="the chain's name")
    g.add_argument("--id", dest="spec_id", default="consortium", help="the chain's id")
    g.add_argument(
        "--motion-duration",
        type=int,
        default=CONSORTIUM_MOTION_DURATION,
        help=f"blocks a council motion stays open (default {CONSORTIUM_MOTION_DURATION})",
    )
    g.add_argument("--slot-duration-ms", type=int, default=1000)
    g.add_argument("--session-length", type=int, default=600, help="blocks per session")
    g.add_argument(
        "--endowment",
        type=int,
        default=CONSORTIUM_ENDOWMENT,
        help="planck each operator, validator and auditor starts with (fees)",
    )
    g.add_argument("--bootnode", action="append", default=[], help="a boot node multiaddr")


def consortium_from_args(args: argparse.Namespace) -> ChainSpec | None:
    """The consortium spec ``--chain consortium`` and the flags above describe; None for
    any other ``--chain`` (resolve it as usual)."""
    if getattr(args, "chain", None) != "consortium":
        return None
    if getattr(args, "dev", False):
        raise ChainSpecError("--dev and --chain are exclusive")
    if not args.facility:
        raise ChainSpecError("--chain consortium needs at least one --facility")
    return consortium_spec(
        args.spec_name,
        args.spec_id,
        [parse_founding(f) for f in args.facility],
        auditors=args.auditor,
        slot_duration_ms=args.slot_duration_ms,
        session_length=args.session_length,
        motion_duration=args.motion_duration,
        endowment=args.endowment,
        boot_nodes=args.bootnode,
    )


def resolve(dev: bool, chain: str | None) -> ChainSpec:
    """``--dev`` or ``--chain dev|local|PATH`` as Substrate's CLI resolves them."""
    if dev or chain in (None, "dev"):
        if chain not in (None, "dev"):
            raise ChainSpecError("--dev and --chain are exclusive")
        return dev_spec()
    if chain == "local":
        return local_spec(["//Alice", "//Bob"])
    if chain == "consortium":
        raise ChainSpecError(
            "build a consortium's spec with build-spec --chain consortium --facility ..., "
            "then run its nodes with --chain SPEC.json"
        )
    return ChainSpec.load(chain)  # type: ignore[arg-type]


def dev_keypair(name: str) -> Keypair:
    return Keypair.from_dev_name(name)
