/* BLAKE3 (hash, keyed_hash, derive_key; 32-byte output), written from the BLAKE3 specification.
 *
 * The one-shot hasher handles every input length (multi-chunk trees). The batch entry point
 * hashes many independent inputs; single-chunk inputs (<= 1024 bytes: Merkle leaves and nodes,
 * trie nodes) go through a multi-lane kernel that runs several inputs per SIMD register when
 * the processor offers SSE4.1, AVX2 or AVX-512 (picked at run time by the caller), and through
 * the portable scalar code otherwise.
 */
#ifndef TC_BLAKE3_H
#define TC_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#define TC_B3_OUT_LEN 32
#define TC_B3_KEY_LEN 32
#define TC_B3_BLOCK_LEN 64
#define TC_B3_CHUNK_LEN 1024

/* Domain flags of the compression function (specification, table 3). */
enum {
    TC_B3_CHUNK_START = 1u << 0,
    TC_B3_CHUNK_END = 1u << 1,
    TC_B3_PARENT = 1u << 2,
    TC_B3_ROOT = 1u << 3,
    TC_B3_KEYED_HASH = 1u << 4,
    TC_B3_DERIVE_KEY_CONTEXT = 1u << 5,
    TC_B3_DERIVE_KEY_MATERIAL = 1u << 6
};

/* SIMD levels; a caller may always ask for a lower one than tc_b3_simd_max(). */
enum { TC_SIMD_PORTABLE = 0, TC_SIMD_SSE41 = 1, TC_SIMD_AVX2 = 2, TC_SIMD_AVX512 = 3 };

extern const uint32_t tc_b3_iv[8];

/* The highest SIMD level this build and this processor support. */
int tc_b3_simd_max(void);

/* 32 little-endian key bytes to the eight key words. */
void tc_b3_key_words(const uint8_t key[TC_B3_KEY_LEN], uint32_t words[8]);

/* One-shot hash of in[0..len) with the given key words (the IV for plain hashing) and mode
 * flags (0, TC_B3_KEYED_HASH, TC_B3_DERIVE_KEY_CONTEXT or TC_B3_DERIVE_KEY_MATERIAL). */
void tc_b3_hash(const uint32_t key[8], uint32_t mode, const uint8_t *in, size_t len,
                uint8_t out[TC_B3_OUT_LEN]);

/* A batch of independent inputs, all hashed with the same key and mode. Item i is
 * base[starts[i] .. starts[i] + lens[i]) when starts is set, else base[i*step .. i*step + len).
 * Read-only during hashing, so threads may share one. */
typedef struct {
    const uint8_t *base;
    const size_t *starts, *lens;
    size_t step, len;
    const uint32_t *key;
    uint32_t mode;
    int simd;
} tc_b3_batch;

/* Hash items [begin, end) of the batch; the digest of item i goes to out + 32*(i - begin). */
void tc_b3_hash_range(const tc_b3_batch *batch, size_t begin, size_t end, uint8_t *out);

#endif
