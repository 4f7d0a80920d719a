"""Key/value stores: LevelDB and the in-memory store must behave the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from twinchain.storage.abc import KeyValueStore, WriteBatch
from twinchain.storage.kv import LevelDBStore, MemoryStore, open_store, prefix_end


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    s: KeyValueStore = MemoryStore() if request.param == "memory" else LevelDBStore(tmp_path)
    yield s
    s.close()


def _write(store: KeyValueStore, **ops: bytes | None) -> None:
    b = WriteBatch()
    for k, v in ops.items():
        if v is None:
            b.delete(k.encode())
        else:
            b.put(k.encode(), v)
    store.write(b)


def test_put_get_delete(store: KeyValueStore) -> None:
    assert store.get(b"a") is None
    _write(store, a=b"1", b=b"2")
    assert store.get(b"a") == b"1" and store.get(b"b") == b"2"
    _write(store, a=None, b=b"3")
    assert store.get(b"a") is None and store.get(b"b") == b"3"
    _write(store, zz=None)  # deleting an absent key is fine
    assert store.get(b"zz") is None


def test_batch_is_atomic_and_last_op_wins(store: KeyValueStore) -> None:
    b = WriteBatch()
    for i in range(500):
        b.put(b"k%03d" % i, b"v%d" % i)
    b.delete(b"k007")
    b.put(b"k008", b"again")
    b.delete(b"k009")
    b.put(b"k009", b"back")
    assert b.pending(b"k007") == (True, None)
    assert b.pending(b"k008") == (True, b"again")
    assert b.pending(b"nope") == (False, None)
    assert store.get(b"k000") is None  # nothing visible before write()
    store.write(b, sync=True)
    got = dict(store.iterate(b"k"))
    assert len(got) == 499
    assert got[b"k008"] == b"again" and got[b"k009"] == b"back" and b"k007" not in got
    assert all(got[b"k%03d" % i] == b"v%d" % i for i in range(500) if i not in (7, 8, 9))


def test_prefix_iteration_order(store: KeyValueStore) -> None:
    keys = [b"a", b"b\x00", b"b\x01", b"b\xff", b"b\xff\xff", b"ba", b"c", b"\xff\xff", b"\xff"]
    b = WriteBatch()
    for k in keys:
        b.put(k, k + b"!")
    store.write(b)
    assert [k for k, _ in store.iterate(b"")] == sorted(keys)
    b_keys = [b"b\x00", b"b\x01", b"ba", b"b\xff", b"b\xff\xff"]  # byte order
    assert [k for k, _ in store.iterate(b"b")] == b_keys
    assert [k for k, _ in store.iterate(b"b\xff")] == [b"b\xff", b"b\xff\xff"]
    assert [k for k, _ in store.iterate(b"\xff")] == [b"\xff", b"\xff\xff"]
    assert list(store.iterate(b"d")) == []
    # start is inclusive, and clamped to the prefix
    assert [k for k, _ in store.iterate(b"b", start=b"b\x01")] == b_keys[1:]
    assert [k for k, _ in store.iterate(b"b", start=b"b\x02")] == b_keys[2:]
    assert [k for k, _ in store.iterate(b"b", start=b"a")] == b_keys
    assert list(store.iterate(b"b", start=b"c")) == []
    # reverse: descending, from start (inclusive) down
    assert [k for k, _ in store.iterate(b"b", reverse=True)] == b_keys[::-1]
    assert [k for k, _ in store.iterate(b"b", start=b"ba", reverse=True)] == b_keys[2::-1]
    assert [k for k, _ in store.iterate(b"b", start=b"b\x02", reverse=True)] == b_keys[1::-1]
    assert list(store.iterate(b"b", start=b"a", reverse=True)) == []
    assert [k for k, _ in store.iterate(b"b", start=b"zz", reverse=True)] == b_keys[::-1]
    assert [k for k, _ in store.iterate(b"", start=b"b\xff", reverse=True)][:2] == [
        b"b\xff",
        b"ba",
    ]
    assert dict(store.iterate(b"a")) == {b"a": b"a!"}


def test_iteration_after_deletes(store: KeyValueStore) -> None:
    _write(store, x1=b"1", x2=b"2", x3=b"3")
    assert [k for k, _ in store.iterate(b"x")] == [b"x1", b"x2", b"x3"]
    _write(store, x2=None, x4=b"4")
    assert [k for k, _ in store.iterate(b"x")] == [b"x1", b"x3", b"x4"]
    _write(store, x1=b"one")  # value-only change
    assert list(store.iterate(b"x1")) == [(b"x1", b"one")]


def test_prefix_end() -> None:
    assert prefix_end(b"") is None
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"


def test_leveldb_reopen_keeps_data(tmp_path: Path) -> None:
    s = LevelDBStore(tmp_path / "db")
    b = WriteBatch()
    b.put(b"h\x01", b"header")
    b.put(b"m-best", b"\x01" * 32)
    s.write(b, sync=True)
    s.close()
    s2 = LevelDBStore(tmp_path / "db", create=False)
    try:
        assert s2.get(b"h\x01") == b"header"
        assert list(s2.iterate(b"m")) == [(b"m-best", b"\x01" * 32)]
    finally:
        s2.close()


def test_leveldb_without_create_needs_existing(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - plyvel raises its own error type
        LevelDBStore(tmp_path / "absent", create=False)


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store(None), MemoryStore)
    s = open_store(tmp_path / "a" / "b")
    assert isinstance(s, LevelDBStore)
    s.close()
