"""A LevelDB store on a full disk: a typed error, nothing half-written, and the node's CLI
stops with one clear line and a non-zero status."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinchain import cli
from twinchain.node import cli as node_cli
from twinchain.storage.abc import WriteBatch
from twinchain.storage.kv import DiskFull, LevelDBStore, StorageError


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (64 << 10))
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_write_on_a_full_disk_raises_disk_full_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        store = LevelDBStore(fs / "db")
        b = WriteBatch()
        b.put(b"kept", b"1")
        store.write(b, sync=True)
        fill(fs / "filler")
        big = WriteBatch()
        for i in range(64):
            big.put(b"k%d" % i, os.urandom(4096))
        with pytest.raises(DiskFull, match="disk full"):
            store.write(big, sync=True)
        store.close()
        (fs / "filler").unlink()
        again = LevelDBStore(fs / "db")
        try:
            assert again.get(b"kept") == b"1"
            assert again.get(b"k0") is None  # the failed batch left nothing behind
            again.write(big, sync=True)  # and space back means writes work again
            assert again.get(b"k63") is not None
        finally:
            again.close()


def test_storage_error_is_not_an_exception() -> None:
    # The node's catch-alls (``except Exception``) in sync and RPC must let it through.
    assert not issubclass(StorageError, Exception)


@pytest.mark.parametrize("wrap", [False, True])
def test_cli_stops_with_one_line_and_status_74(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, wrap: bool
) -> None:
    err = DiskFull("disk full: /x/db: IO error: /x/db/000003.log: No space left on device")

    def boom(args: object) -> int:
        if wrap:  # as trio raises it out of the node's nursery
            raise BaseExceptionGroup("node", [BaseExceptionGroup("inner", [err])])
        raise err

    monkeypatch.setattr(node_cli, "cmd_node", boom)
    with caplog.at_level(logging.CRITICAL):
        assert cli.main(["node", "--dev"]) == 74
    assert "disk full: /x/db" in caplog.text
