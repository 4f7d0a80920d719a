"""Chain specifications: the chain's name, properties, boot nodes and genesis configuration.

A spec is JSON (``twinchain build-spec`` prints one). The genesis block, and so the genesis
hash, follows from the spec alone: the runtime builds the genesis storage from the ``genesis``
section and the state trie commits to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinchain.native.merkle import merkle_root
from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import DEV_NAMES, Keypair
from twinchain.primitives.types import Block, Header
from twinchain.runtime.pallets.balances import TOKEN_DECIMALS, TOKEN_SYMBOL
from twinchain.runtime.runtime import Runtime
from twinchain.storage.trie import build_from_scratch

DEV_ENDOWMENT = 10**24  # one trillion TWIN at 12 decimals


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
    """Single validator (Alice) with sudo and endowed dev accounts; 1 s slots."""
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
        },
    )


def local_spec(authorities: list[str], slot_duration_ms: int = 1000) -> ChainSpec:
    """A local multi-validator testnet: ``authorities`` are addresses or dev names."""
    return ChainSpec(
        name="Local Testnet",
        id="local_testnet",
        chain_type="Local",
        properties=_properties(),
        genesis={
            "authority": {
                "authorities": authorities,
                "slot_duration_ms": slot_duration_ms,
                "session_length": 60,
            },
            "balances": {"balances": [[f"//{n}", DEV_ENDOWMENT] for n in DEV_NAMES]},
            "sudo": {"key": "//Alice"},
            "timestamp": {},
        },
    )


def resolve(dev: bool, chain: str | None) -> ChainSpec:
    """``--dev`` or ``--chain dev|local|PATH`` as Substrate's CLI resolves them."""
    if dev or chain in (None, "dev"):
        if chain not in (None, "dev"):
            raise ChainSpecError("--dev and --chain are exclusive")
        return dev_spec()
    if chain == "local":
        return local_spec(["//Alice", "//Bob"])
    return ChainSpec.load(chain)  # type: ignore[arg-type]


def dev_keypair(name: str) -> Keypair:
    return Keypair.from_dev_name(name)
