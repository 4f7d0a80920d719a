"""What the C extension is built from, shared by the build script and the run-time check.

Kept free of imports from the package (and of anything outside the standard library) because
``build.py`` loads it by path inside setuptools' isolated build environment.

The digest of the C sources and of the declarations below is compiled into the extension; at
import, the facade recomputes it from the files next to it. A mismatch means the ``.so`` in the
tree is stale (an editable install whose sources changed since the last build), and a stale
build is not used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parent / "src"
SOURCES = ("tc_blake3.c", "tc_native.c", "tc_telemetry.c")
HEADERS = ("tc_blake3.h", "tc_b3_lanes.h", "tc_native.h")

# Mirrors src/tc_native.h, plus the digest getter that build.py writes into the module.
CDEF = """
int tc_simd_max(void);
int tc_threads_supported(void);
int tc_blake3(const char *key32, const char *in, size_t len, unsigned char *out32);
int tc_blake3_derive_key(const char *context, size_t context_len, const char *material,
                         size_t material_len, unsigned char *out32);
int tc_hash_many(const char *key32, const char *packed, size_t packed_len, size_t n,
                 unsigned char *out, int nthreads, int simd);
int tc_merkle_root(const char *leaf_key32, const char *node_key32, const char *packed,
                   size_t packed_len, size_t n, unsigned char *out32, int nthreads, int simd);
int tc_merkle_root_fixed(const char *leaf_key32, const char *node_key32, const char *data,
                         size_t leaf_len, size_t n, unsigned char *out32, int nthreads,
                         int simd);
int tc_verify_batch(uintptr_t ctx, uintptr_t parse_fn, uintptr_t verify_fn, const char *pubkeys,
                    const char *messages, const char *signatures, size_t n, unsigned char *out,
                    int nthreads);
int tc_readings_survey(const char *raw, size_t len, unsigned char *metrics_out, size_t *k_out,
                       unsigned char *ts_out);
int tc_readings_scan(const char *raw, size_t len, unsigned char *slots, size_t k,
                     unsigned char *clock, unsigned char *flags, unsigned char *aggs,
                     size_t *n_aggs, size_t *n_flagged);
const char *tc_source_digest(void);
"""


def source_digest(src_dir: Path = SRC_DIR) -> str | None:
    """SHA-256 over the declarations and every C file; None if a file is missing."""
    h = hashlib.sha256(CDEF.encode())
    for name in (*SOURCES, *HEADERS):
        try:
            data = (src_dir / name).read_bytes()
        except OSError:
            return None
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()
