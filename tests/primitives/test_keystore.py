from __future__ import annotations

import stat
from pathlib import Path

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore, KeystoreError


def test_insert_list_and_permissions(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "ks")
    a = ks.generate("aura")
    g = ks.insert("gate", Keypair.from_dev_name("Dave"))
    assert stat.S_IMODE(g.stat().st_mode) == 0o600
    assert [k.public for k in ks.keys("aura")] == [a.public]
    assert ks.has("gate", Keypair.from_dev_name("Dave").public)
    assert ks.get("aura", a.public) == a
    assert ks.keys("devc") == []


def test_unknown_type_and_tampered_file(tmp_path: Path) -> None:
    ks = Keystore(tmp_path)
    with pytest.raises(KeystoreError):
        ks.insert("nope", Keypair.generate())
    f = ks.insert("aura", Keypair.generate())
    f.write_text('{"seed": "zz"}')
    with pytest.raises(KeystoreError):
        ks.keys("aura")
