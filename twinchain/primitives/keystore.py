"""The keystore: validator, gateway and device keys as files (0600) in a 0700 folder.

A key file is named ``<key type>-<hex public key>`` and holds JSON with the hex seed, as
Substrate's keystore names its files by key type and public key.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from twinchain.primitives.keys import InvalidKey, Keypair

log = logging.getLogger("twinchain.keystore")

KEY_TYPES = ("aura", "gran", "gate", "devc", "acct", "work")


class KeystoreError(Exception):
    """Unknown key type, unreadable file or bad seed."""


class Keystore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)

    def insert(self, key_type: str, keypair: Keypair) -> Path:
        if key_type not in KEY_TYPES:
            raise KeystoreError(f"unknown key type {key_type!r}; one of {', '.join(KEY_TYPES)}")
        self._ensure_dir()
        f = self.path / f"{key_type}-{keypair.public.hex()}"
        # Created 0600 from the start: the secret is never readable by others, not even briefly.
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {"type": key_type, "public": keypair.public.hex(), "seed": keypair.secret.hex()}, fh
            )
        os.chmod(f, 0o600)
        return f

    def generate(self, key_type: str) -> Keypair:
        kp = Keypair.generate()
        self.insert(key_type, kp)
        return kp

    def keys(self, key_type: str) -> list[Keypair]:
        if not self.path.is_dir():
            return []
        out = []
        for f in sorted(self.path.glob(f"{key_type}-*")):
            try:
                data = json.loads(f.read_text())
                kp = Keypair.from_seed(bytes.fromhex(data["seed"]))
            except (OSError, ValueError, KeyError, InvalidKey) as exc:
                raise KeystoreError(f"bad key file {f}: {exc}") from exc
            if kp.public.hex() != f.name.split("-", 1)[1]:
                raise KeystoreError(f"key file {f} does not match its name")
            out.append(kp)
        return out

    def has(self, key_type: str, public: bytes) -> bool:
        return (self.path / f"{key_type}-{public.hex()}").exists()

    def get(self, key_type: str, public: bytes) -> Keypair | None:
        for kp in self.keys(key_type):
            if kp.public == public:
                return kp
        return None


def load_keypair(spec: str) -> Keypair:
    """A key as a command line names it: ``//Name`` (a dev key), a 32-byte hex seed, a key
    file (JSON with ``seed``, as :class:`Keystore` writes them) or a keystore folder holding
    exactly one key (KeystoreError otherwise)."""
    if spec.startswith("//"):
        return Keypair.from_dev_name(spec)
    path = Path(spec)
    if path.is_dir():
        files = [f for f in sorted(path.iterdir()) if f.is_file()]
        if len(files) != 1:
            raise KeystoreError(f"keystore {path} must hold exactly one key, has {len(files)}")
        path = files[0]
    if path.is_file():
        try:
            return Keypair.from_seed(bytes.fromhex(json.loads(path.read_text())["seed"]))
        except (OSError, ValueError, KeyError, TypeError, InvalidKey) as exc:
            raise KeystoreError(f"bad key file {path}: {exc}") from exc
    try:
        return Keypair.from_seed(bytes.fromhex(spec.removeprefix("0x")))
    except (ValueError, InvalidKey) as exc:
        raise KeystoreError(
            f"a key must be //Name, a hex seed, a key file or a keystore: {exc}"
        ) from None


class SigningKeys:
    """The keys a validator signs blocks and finality votes with, looked up by the public key
    the active authority set names: its configured key and every ``aura`` key of its
    keystore, read from disk the first time the set names it. A key author_rotateKeys adds
    while the node runs is found this way, so when the set switches to it at a session
    boundary the node signs with it at once, and with the old key until then."""

    KEY_TYPE = "aura"

    def __init__(self, keystore: Keystore | None, *keys: Keypair) -> None:
        self.keystore = keystore
        self._known = {kp.public: kp for kp in keys}

    def get(self, public: bytes) -> Keypair | None:
        kp = self._known.get(public)
        ks = self.keystore
        if kp is None and ks is not None and ks.has(self.KEY_TYPE, public):
            f = ks.path / f"{self.KEY_TYPE}-{public.hex()}"
            try:
                kp = Keypair.from_seed(bytes.fromhex(json.loads(f.read_text())["seed"]))
            except (OSError, ValueError, KeyError, TypeError, InvalidKey) as exc:
                # Logged, not raised: the slot worker and the voter go on (without this key).
                log.error("session key file %s unusable: %s", f, exc)
                return None
            if kp.public != public:
                log.error("session key file %s holds another key", f)
                return None
            self._known[public] = kp
        return kp

    def first_of(self, publics: list[bytes]) -> Keypair | None:
        """Our key among ``publics`` (an authority set), if any."""
        for p in publics:
            kp = self.get(p)
            if kp is not None:
                return kp
        return None
