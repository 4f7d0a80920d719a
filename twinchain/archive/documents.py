"""Documents in the facility archive: manuals, calibration certificates, PdM evidence and
reports, kept by content hash (BLAKE3, the hash ``Equipment.add_document`` puts on chain).

Files live at ``documents/twin=<id>/<hex hash>``, written to a temporary name, fsynced and
renamed, so a crash leaves a whole document or none; a read re-hashes the content, so a file
changed on disk is reported, never served.
"""

from __future__ import annotations

import os
from pathlib import Path

from twinchain.primitives.hashing import blake3_hash

# A document travels in one JSON-RPC request as hex: twice its size, under the 10 MiB limit.
MAX_DOCUMENT = 4 * 1024 * 1024


class DocumentError(ValueError):
    """A document too large, or a stored one whose content no longer has its hash."""


class DocumentStore:
    """Content-addressed documents of a facility's twins (thread-safe: files only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _file(self, twin: int, digest: bytes) -> Path:
        return self.path / f"twin={twin}" / digest.hex()

    def put(self, twin: int, content: bytes) -> bytes:
        """Keep ``content`` for ``twin``; its hash (a repeated put changes nothing)."""
        if len(content) > MAX_DOCUMENT:
            raise DocumentError(f"a document is at most {MAX_DOCUMENT} bytes")
        digest = blake3_hash(content)
        final = self._file(twin, digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut
        finally:
            os.close(fd)
        return digest

    def get(self, twin: int, digest: bytes) -> bytes | None:
        """The document of ``twin`` with hash ``digest``; None if not kept here
        (DocumentError: the stored file no longer has that hash)."""
        try:
            content = self._file(twin, digest).read_bytes()
        except FileNotFoundError:
            return None
        if blake3_hash(content) != digest:
            raise DocumentError(f"document {digest.hex()} of twin {twin} is damaged on disk")
        return content
