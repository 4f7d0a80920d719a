/* BLAKE3 from the specification: compression function, chunk chaining, the binary tree of
 * chunks, and a multi-lane kernel for batches of small independent inputs. See tc_blake3.h. */
#include "tc_blake3.h"

#include <string.h>

/* The multi-lane kernels need GCC/clang vector extensions and target attributes; define
 * TC_NO_SIMD to build the portable code alone. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(TC_NO_SIMD)
#define TC_X86_SIMD 1
#else
#define TC_X86_SIMD 0
#endif

/* The initialisation vector (the same eight words as SHA-256's). */
const uint32_t tc_b3_iv[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                              0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

/* Message word order of each of the 7 rounds: round r uses the permutation applied r times,
 * which spares permuting the message between rounds. */
static const uint8_t SCHED[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

/* Written as macros so that the scalar code and every SIMD width share them: v and m are
 * arrays of uint32_t or of GCC vectors of uint32_t. */
#define TC_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define TC_G(v, a, b, c, d, x, y)                                                                \
    do {                                                                                         \
        v[a] = v[a] + v[b] + (x);                                                                \
        v[d] = TC_ROTR(v[d] ^ v[a], 16);                                                         \
        v[c] = v[c] + v[d];                                                                      \
        v[b] = TC_ROTR(v[b] ^ v[c], 12);                                                         \
        v[a] = v[a] + v[b] + (y);                                                                \
        v[d] = TC_ROTR(v[d] ^ v[a], 8);                                                          \
        v[c] = v[c] + v[d];                                                                      \
        v[b] = TC_ROTR(v[b] ^ v[c], 7);                                                          \
    } while (0)
#define TC_ROUND(v, m, r)                                                                        \
    do {                                                                                         \
        TC_G(v, 0, 4, 8, 12, m[SCHED[r][0]], m[SCHED[r][1]]);                                    \
        TC_G(v, 1, 5, 9, 13, m[SCHED[r][2]], m[SCHED[r][3]]);                                    \
        TC_G(v, 2, 6, 10, 14, m[SCHED[r][4]], m[SCHED[r][5]]);                                   \
        TC_G(v, 3, 7, 11, 15, m[SCHED[r][6]], m[SCHED[r][7]]);                                   \
        TC_G(v, 0, 5, 10, 15, m[SCHED[r][8]], m[SCHED[r][9]]);                                   \
        TC_G(v, 1, 6, 11, 12, m[SCHED[r][10]], m[SCHED[r][11]]);                                 \
        TC_G(v, 2, 7, 8, 13, m[SCHED[r][12]], m[SCHED[r][13]]);                                  \
        TC_G(v, 3, 4, 9, 14, m[SCHED[r][14]], m[SCHED[r][15]]);                                  \
    } while (0)
#define TC_ROUNDS(v, m)                                                                          \
    do {                                                                                         \
        TC_ROUND(v, m, 0);                                                                       \
        TC_ROUND(v, m, 1);                                                                       \
        TC_ROUND(v, m, 2);                                                                       \
        TC_ROUND(v, m, 3);                                                                       \
        TC_ROUND(v, m, 4);                                                                       \
        TC_ROUND(v, m, 5);                                                                       \
        TC_ROUND(v, m, 6);                                                                       \
    } while (0)

static uint32_t load32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store32le(uint8_t *p, uint32_t w) {
    p[0] = (uint8_t)w;
    p[1] = (uint8_t)(w >> 8);
    p[2] = (uint8_t)(w >> 16);
    p[3] = (uint8_t)(w >> 24);
}

void tc_b3_key_words(const uint8_t key[TC_B3_KEY_LEN], uint32_t words[8]) {
    int i;
    for (i = 0; i < 8; i++) words[i] = load32le(key + 4 * i);
}

/* The compression function, truncated to the 8 words that chaining values and 32-byte
 * root outputs use. out may alias cv. */
static void compress(const uint32_t cv[8], const uint32_t m[16], uint64_t counter,
                     uint32_t block_len, uint32_t flags, uint32_t out[8]) {
    uint32_t v[16];
    int i;
    for (i = 0; i < 8; i++) v[i] = cv[i];
    for (i = 0; i < 4; i++) v[8 + i] = tc_b3_iv[i];
    v[12] = (uint32_t)counter;
    v[13] = (uint32_t)(counter >> 32);
    v[14] = block_len;
    v[15] = flags;
    TC_ROUNDS(v, m);
    for (i = 0; i < 8; i++) out[i] = v[i] ^ v[i + 8];
}

/* Chaining value of one chunk (len <= 1024; an empty input is one empty block). With root
 * set, its last block carries ROOT and the result is the 32-byte digest in words. */
static void chunk_cv(const uint32_t key[8], uint32_t mode, const uint8_t *in, size_t len,
                     uint64_t counter, int root, uint32_t out[8]) {
    size_t nblocks = len ? (len + TC_B3_BLOCK_LEN - 1) / TC_B3_BLOCK_LEN : 1;
    size_t b;
    uint32_t cv[8], m[16];
    int i;
    memcpy(cv, key, sizeof cv);
    for (b = 0; b < nblocks; b++) {
        size_t take = len - b * TC_B3_BLOCK_LEN;
        uint32_t flags = mode;
        if (take >= TC_B3_BLOCK_LEN) {
            take = TC_B3_BLOCK_LEN;
            for (i = 0; i < 16; i++) m[i] = load32le(in + b * TC_B3_BLOCK_LEN + 4 * i);
        } else {
            uint8_t pad[TC_B3_BLOCK_LEN] = {0}; /* a short last block is zero-padded */
            if (take) memcpy(pad, in + b * TC_B3_BLOCK_LEN, take);
            for (i = 0; i < 16; i++) m[i] = load32le(pad + 4 * i);
        }
        if (b == 0) flags |= TC_B3_CHUNK_START;
        if (b + 1 == nblocks) flags |= TC_B3_CHUNK_END | (root ? TC_B3_ROOT : 0);
        compress(cv, m, counter, (uint32_t)take, flags, cv);
    }
    memcpy(out, cv, sizeof cv);
}

/* Chunks in the left subtree of a tree of n > 1 chunks: the largest power of two < n. */
static size_t left_chunks(size_t n) {
    size_t p = 1;
    while (p * 2 < n) p *= 2;
    return p;
}

static void parent_cv(const uint32_t key[8], uint32_t mode, const uint32_t left[8],
                      const uint32_t right[8], int root, uint32_t out[8]) {
    uint32_t m[16];
    memcpy(m, left, 8 * sizeof(uint32_t));
    memcpy(m + 8, right, 8 * sizeof(uint32_t));
    compress(key, m, 0, TC_B3_BLOCK_LEN, mode | TC_B3_PARENT | (root ? TC_B3_ROOT : 0), out);
}

/* Chaining value of the subtree over in[0..len), whose first chunk has index counter. */
static void subtree_cv(const uint32_t key[8], uint32_t mode, const uint8_t *in, size_t len,
                       uint64_t counter, int root, uint32_t out[8]) {
    size_t nchunks, left_len;
    uint32_t l[8], r[8];
    if (len <= TC_B3_CHUNK_LEN) {
        chunk_cv(key, mode, in, len, counter, root, out);
        return;
    }
    nchunks = (len + TC_B3_CHUNK_LEN - 1) / TC_B3_CHUNK_LEN;
    left_len = left_chunks(nchunks) * TC_B3_CHUNK_LEN;
    subtree_cv(key, mode, in, left_len, counter, 0, l);
    subtree_cv(key, mode, in + left_len, len - left_len, counter + left_len / TC_B3_CHUNK_LEN, 0,
               r);
    parent_cv(key, mode, l, r, root, out);
}

void tc_b3_hash(const uint32_t key[8], uint32_t mode, const uint8_t *in, size_t len,
                uint8_t out[TC_B3_OUT_LEN]) {
    uint32_t w[8];
    int i;
    subtree_cv(key, mode, in, len, 0, 1, w);
    for (i = 0; i < 8; i++) store32le(out + 4 * i, w[i]);
}

/* ---------------------------------------------------------------- multi-lane kernels */

typedef void (*lanes_fn)(const uint8_t *const *in, const size_t *len, size_t count,
                         const uint32_t key[8], uint32_t mode, uint8_t *const *out);

#if TC_X86_SIMD
#define TC_LANES 4
#define TC_LANES_FN hash_lanes_sse41
#define TC_LANES_TARGET __attribute__((target("sse4.1")))
#include "tc_b3_lanes.h"
#define TC_LANES 8
#define TC_LANES_FN hash_lanes_avx2
#define TC_LANES_TARGET __attribute__((target("avx2")))
#include "tc_b3_lanes.h"
#define TC_LANES 16
#define TC_LANES_FN hash_lanes_avx512
#define TC_LANES_TARGET __attribute__((target("avx512f")))
#include "tc_b3_lanes.h"
#endif

int tc_b3_simd_max(void) {
#if TC_X86_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return TC_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2")) return TC_SIMD_AVX2;
    if (__builtin_cpu_supports("sse4.1")) return TC_SIMD_SSE41;
#endif
    return TC_SIMD_PORTABLE;
}

static size_t pick_lanes(int simd, lanes_fn *fn) {
    int level = simd < tc_b3_simd_max() ? simd : tc_b3_simd_max();
    *fn = NULL;
#if TC_X86_SIMD
    switch (level) {
    case TC_SIMD_AVX512:
        *fn = hash_lanes_avx512;
        return 16;
    case TC_SIMD_AVX2:
        *fn = hash_lanes_avx2;
        return 8;
    case TC_SIMD_SSE41:
        *fn = hash_lanes_sse41;
        return 4;
    default:
        break;
    }
#else
    (void)level;
#endif
    return 1;
}

void tc_b3_hash_range(const tc_b3_batch *bt, size_t begin, size_t end, uint8_t *out) {
    const uint8_t *gin[16];
    size_t glen[16];
    uint8_t *gout[16];
    size_t g = 0, i;
    lanes_fn fn;
    size_t lanes = pick_lanes(bt->simd, &fn);
    for (i = begin; i < end; i++) {
        const uint8_t *p;
        size_t n;
        uint8_t *o = out + (size_t)TC_B3_OUT_LEN * (i - begin);
        if (bt->starts) {
            p = bt->base + bt->starts[i];
            n = bt->lens[i];
        } else {
            p = bt->base + bt->step * i;
            n = bt->len;
        }
        /* Multi-chunk inputs are rare here (trie values, big extrinsics): scalar tree. */
        if (lanes == 1 || n > TC_B3_CHUNK_LEN) {
            tc_b3_hash(bt->key, bt->mode, p, n, o);
            continue;
        }
        gin[g] = p;
        glen[g] = n;
        gout[g] = o;
        if (++g == lanes) {
            fn(gin, glen, g, bt->key, bt->mode, gout);
            g = 0;
        }
    }
    if (g == 1)
        tc_b3_hash(bt->key, bt->mode, gin[0], glen[0], gout[0]);
    else if (g)
        fn(gin, glen, g, bt->key, bt->mode, gout);
}
