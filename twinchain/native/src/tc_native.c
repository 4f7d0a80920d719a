/* Batch entry points of twinchain.native: a small fork-join pool per call (no pool, queue or
 * counter outlives a call, so concurrent callers share nothing) over the BLAKE3 core and over
 * libsecp256k1's BIP-340 verifier. */
#include "tc_native.h"

#include <stdlib.h>
#include <string.h>

#include "tc_blake3.h"

#if defined(_WIN32) || defined(TC_NO_THREADS)
#define TC_THREADS 0
#else
#define TC_THREADS 1
#include <pthread.h>
#endif

#define TC_MAX_THREADS 256
/* Worker stacks hold the Merkle scratch (about 50 KB): ask for more than musl's default. */
#define TC_THREAD_STACK (1u << 20)
/* Below these amounts per thread (about a millisecond of work), starting a thread costs more
 * than it saves: creation is tens of microseconds, and on a loaded machine the join can wait
 * a scheduler time slice for a thread that has not run yet. */
#define TC_MIN_SIGS_PER_THREAD 16
#define TC_MIN_HASHES_PER_THREAD 32768
#define TC_HASH_GRAIN 1024 /* a multiple of every SIMD width */

typedef void (*range_fn)(void *arg, size_t begin, size_t end);

/* Shared by the threads of one call only: they claim chunks of grain items until none are
 * left, which balances the load when cores are busy with other work. */
typedef struct {
    range_fn fn;
    void *arg;
    size_t n, grain, next;
#if TC_THREADS
    pthread_mutex_t lock;
#endif
} job;

#if TC_THREADS
static void *job_worker(void *p) {
    job *j = (job *)p;
    for (;;) {
        size_t b, e;
        pthread_mutex_lock(&j->lock);
        b = j->next;
        e = b + j->grain < j->n ? b + j->grain : j->n;
        j->next = e;
        pthread_mutex_unlock(&j->lock);
        if (b >= e) return NULL;
        j->fn(j->arg, b, e);
    }
}
#endif

/* Run fn over [0, n) on up to nthreads threads (the caller's thread is one of them). If a
 * thread cannot be started the others simply do its share. */
static void parallel_for(size_t n, size_t grain, size_t min_per_thread, int nthreads,
                         range_fn fn, void *arg) {
    size_t want = nthreads < 1 ? 1 : (size_t)nthreads;
    if (want > TC_MAX_THREADS) want = TC_MAX_THREADS;
    if (want > n / min_per_thread) want = n / min_per_thread;
#if TC_THREADS
    if (want > 1) {
        pthread_t tids[TC_MAX_THREADS];
        pthread_attr_t attr;
        size_t started = 0, t;
        job j;
        j.fn = fn;
        j.arg = arg;
        j.n = n;
        j.grain = grain;
        j.next = 0;
        if (pthread_mutex_init(&j.lock, NULL) == 0) {
            int have_attr = pthread_attr_init(&attr) == 0;
            if (have_attr) pthread_attr_setstacksize(&attr, TC_THREAD_STACK);
            for (t = 1; t < want; t++) {
                if (pthread_create(&tids[started], have_attr ? &attr : NULL, job_worker, &j))
                    break;
                started++;
            }
            job_worker(&j);
            for (t = 0; t < started; t++) pthread_join(tids[t], NULL);
            if (have_attr) pthread_attr_destroy(&attr);
            pthread_mutex_destroy(&j.lock);
            return;
        }
    }
#else
    (void)grain;
#endif
    if (n) fn(arg, 0, n);
}

int tc_simd_max(void) { return tc_b3_simd_max(); }

int tc_threads_supported(void) { return TC_THREADS; }

/* ---------------------------------------------------------------- BLAKE3 */

int tc_blake3(const char *key32, const char *in, size_t len, unsigned char *out32) {
    uint32_t key[8];
    if (key32) {
        tc_b3_key_words((const uint8_t *)key32, key);
        tc_b3_hash(key, TC_B3_KEYED_HASH, (const uint8_t *)in, len, out32);
    } else {
        tc_b3_hash(tc_b3_iv, 0, (const uint8_t *)in, len, out32);
    }
    return 0;
}

int tc_blake3_derive_key(const char *context, size_t context_len, const char *material,
                         size_t material_len, unsigned char *out32) {
    uint8_t ctx_key[TC_B3_OUT_LEN];
    uint32_t key[8];
    tc_b3_hash(tc_b3_iv, TC_B3_DERIVE_KEY_CONTEXT, (const uint8_t *)context, context_len,
               ctx_key);
    tc_b3_key_words(ctx_key, key);
    tc_b3_hash(key, TC_B3_DERIVE_KEY_MATERIAL, (const uint8_t *)material, material_len, out32);
    return 0;
}

/* The items of a list of bytes arrive as one msgpack array of bin objects: msgpack's packer
 * gathers them in a single C pass, where b"".join plus a list of lengths would walk the
 * Python objects twice (for a million Merkle leaves that walk costs more than the hashing). */
static size_t be_load(const uint8_t *p, size_t bytes) {
    size_t v = 0, i;
    for (i = 0; i < bytes; i++) v = v << 8 | p[i];
    return v;
}

/* Width of the length field of a bin header, 0 if the byte starts no bin. */
static size_t bin_width(uint8_t type) {
    switch (type) {
    case 0xc4: return 1;
    case 0xc5: return 2;
    case 0xc6: return 4;
    default: return 0;
    }
}

/* Parse exactly n bins into a batch. Items all of one length (Merkle leaves, trie levels)
 * need no per-item tables: they sit at a fixed step. Otherwise *mem receives the starts and
 * lengths (to free). Returns 0, -1 (no memory) or -2 (not a msgpack array of n bins). */
static int packed_batch(const char *packed, size_t len, size_t n, tc_b3_batch *bt,
                        size_t **mem) {
    const uint8_t *buf = (const uint8_t *)packed;
    size_t pos, count, i, w;
    *mem = NULL;
    if (len < 1) return -2;
    if ((buf[0] & 0xf0) == 0x90) {
        count = buf[0] & 0x0f;
        pos = 1;
    } else if ((buf[0] == 0xdc && len >= 3) || (buf[0] == 0xdd && len >= 5)) {
        w = buf[0] == 0xdc ? 2 : 4;
        count = be_load(buf + 1, w);
        pos = 1 + w;
    } else {
        return -2;
    }
    if (count != n || n == 0) return -2;
    bt->base = buf;
    bt->starts = bt->lens = NULL;
    /* Uniform case: every header equal to the first and the sizes add up. Parsing item by
     * item would then land on exactly these positions, so this check is a full parse. */
    w = pos < len ? bin_width(buf[pos]) : 0;
    if (w && len - pos > w) {
        size_t item = be_load(buf + pos + 1, w), step = 1 + w + item;
        if (item <= len && (len - pos) % step == 0 && (len - pos) / step == n) {
            for (i = 1; i < n; i++)
                if (memcmp(buf + pos + i * step, buf + pos, 1 + w) != 0) break;
            if (i == n) {
                bt->base = buf + pos + 1 + w;
                bt->step = step;
                bt->len = item;
                return 0;
            }
        }
    }
    *mem = (size_t *)malloc(2 * n * sizeof(size_t));
    if (!*mem) return -1;
    for (i = 0; i < n; i++) {
        size_t item;
        if (pos >= len || !(w = bin_width(buf[pos])) || len - pos - 1 < w) break;
        item = be_load(buf + pos + 1, w);
        pos += 1 + w;
        if (item > len - pos) break;
        (*mem)[i] = pos;
        (*mem)[n + i] = item;
        pos += item;
    }
    if (i < n || pos != len) {
        free(*mem);
        *mem = NULL;
        return -2;
    }
    bt->starts = *mem;
    bt->lens = *mem + n;
    return 0;
}

typedef struct {
    tc_b3_batch bt;
    uint8_t *out;
} hash_job;

static void hash_range(void *arg, size_t begin, size_t end) {
    const hash_job *j = (const hash_job *)arg;
    tc_b3_hash_range(&j->bt, begin, end, j->out + (size_t)TC_B3_OUT_LEN * begin);
}

int tc_hash_many(const char *key32, const char *packed, size_t packed_len, size_t n,
                 unsigned char *out, int nthreads, int simd) {
    uint32_t key[8];
    hash_job j;
    size_t *mem;
    int rc;
    if (n == 0) return 0;
    rc = packed_batch(packed, packed_len, n, &j.bt, &mem);
    if (rc) return rc;
    tc_b3_key_words((const uint8_t *)key32, key);
    j.bt.key = key;
    j.bt.mode = TC_B3_KEYED_HASH;
    j.bt.simd = simd;
    j.out = out;
    parallel_for(n, TC_HASH_GRAIN, TC_MIN_HASHES_PER_THREAD, nthreads, hash_range, &j);
    free(mem);
    return 0;
}

/* Merkle roots go block by block: an aligned block of TC_MERKLE_BLOCK leaves (a power of two)
 * is a subtree of the level-by-level tree, the last, partial block included (its last node
 * is the one promoted at each level, and a lone node is promoted up to the block's level).
 * So each block reduces to its root in a small, cache-resident scratch, in parallel, and the
 * roots of the blocks then reduce the same way. */
#define TC_MERKLE_BLOCK 1024

/* Reduce w > 0 nodes in cur level by level to one, with the odd last node promoted; other
 * has room for w/2 + 1 nodes. Returns the buffer that holds the root. */
static uint8_t *reduce_levels(uint8_t *cur, uint8_t *other, size_t w, const uint32_t key[8],
                              int simd) {
    tc_b3_batch nodes;
    nodes.starts = nodes.lens = NULL;
    nodes.step = nodes.len = 2 * TC_B3_OUT_LEN; /* node i hashes nodes 2i and 2i+1 */
    nodes.key = key;
    nodes.mode = TC_B3_KEYED_HASH;
    nodes.simd = simd;
    while (w > 1) {
        uint8_t *tmp;
        size_t pairs = w / 2;
        nodes.base = cur;
        tc_b3_hash_range(&nodes, 0, pairs, other);
        if (w % 2)
            memcpy(other + pairs * TC_B3_OUT_LEN, cur + (w - 1) * TC_B3_OUT_LEN, TC_B3_OUT_LEN);
        tmp = cur;
        cur = other;
        other = tmp;
        w = (w + 1) / 2;
    }
    return cur;
}

typedef struct {
    tc_b3_batch leaves;
    const uint32_t *node_key;
    size_t n;
    uint8_t *roots;
} merkle_job;

static void merkle_blocks(void *arg, size_t begin, size_t end) {
    const merkle_job *j = (const merkle_job *)arg;
    uint8_t a[TC_MERKLE_BLOCK * TC_B3_OUT_LEN], b[(TC_MERKLE_BLOCK / 2 + 1) * TC_B3_OUT_LEN];
    size_t blk;
    for (blk = begin; blk < end; blk++) {
        size_t first = blk * TC_MERKLE_BLOCK;
        size_t count = j->n - first < TC_MERKLE_BLOCK ? j->n - first : TC_MERKLE_BLOCK;
        tc_b3_hash_range(&j->leaves, first, first + count, a);
        memcpy(j->roots + blk * TC_B3_OUT_LEN,
               reduce_levels(a, b, count, j->node_key, j->leaves.simd), TC_B3_OUT_LEN);
    }
}

/* The root over the n leaves of j->leaves (n > 0); frees *mem (the batch's tables) in all
 * cases. */
static int merkle_of(merkle_job *j, size_t n, size_t *mem, const char *leaf_key32,
                     const char *node_key32, unsigned char *out32, int nthreads, int simd) {
    uint32_t leaf_key[8], node_key[8];
    size_t blocks = (n + TC_MERKLE_BLOCK - 1) / TC_MERKLE_BLOCK;
    uint8_t *other;
    j->roots = (uint8_t *)malloc(blocks * TC_B3_OUT_LEN);
    other = (uint8_t *)malloc((blocks / 2 + 1) * TC_B3_OUT_LEN);
    if (!j->roots || !other) {
        free(mem);
        free(j->roots);
        free(other);
        return -1;
    }
    tc_b3_key_words((const uint8_t *)leaf_key32, leaf_key);
    tc_b3_key_words((const uint8_t *)node_key32, node_key);
    j->leaves.key = leaf_key;
    j->leaves.mode = TC_B3_KEYED_HASH;
    j->leaves.simd = simd;
    j->node_key = node_key;
    j->n = n;
    parallel_for(blocks, 4, TC_MIN_HASHES_PER_THREAD / TC_MERKLE_BLOCK, nthreads, merkle_blocks,
                 j);
    memcpy(out32, reduce_levels(j->roots, other, blocks, node_key, simd), TC_B3_OUT_LEN);
    free(mem);
    free(j->roots);
    free(other);
    return 0;
}

int tc_merkle_root(const char *leaf_key32, const char *node_key32, const char *packed,
                   size_t packed_len, size_t n, unsigned char *out32, int nthreads, int simd) {
    merkle_job j;
    size_t *mem;
    int rc;
    if (n == 0) {
        memset(out32, 0, TC_B3_OUT_LEN);
        return 0;
    }
    rc = packed_batch(packed, packed_len, n, &j.leaves, &mem);
    if (rc) return rc;
    return merkle_of(&j, n, mem, leaf_key32, node_key32, out32, nthreads, simd);
}

int tc_merkle_root_fixed(const char *leaf_key32, const char *node_key32, const char *data,
                         size_t leaf_len, size_t n, unsigned char *out32, int nthreads,
                         int simd) {
    merkle_job j;
    if (n == 0) {
        memset(out32, 0, TC_B3_OUT_LEN);
        return 0;
    }
    j.leaves.base = (const uint8_t *)data;
    j.leaves.starts = j.leaves.lens = NULL;
    j.leaves.step = j.leaves.len = leaf_len;
    return merkle_of(&j, n, NULL, leaf_key32, node_key32, out32, nthreads, simd);
}

/* ---------------------------------------------------------------- BIP-340 batches */

/* libsecp256k1's types are opaque here: the context is only passed through, and an x-only
 * public key is 64 bytes of internal representation. */
typedef struct tc_secp256k1_context tc_secp256k1_context;
typedef struct {
    unsigned char data[64];
} tc_xonly_pubkey;
typedef int (*xonly_parse_fn)(const tc_secp256k1_context *ctx, tc_xonly_pubkey *pubkey,
                              const unsigned char *input32);
typedef int (*schnorr_verify_fn)(const tc_secp256k1_context *ctx, const unsigned char *sig64,
                                 const unsigned char *msg, size_t msglen,
                                 const tc_xonly_pubkey *pubkey);

typedef struct {
    const tc_secp256k1_context *ctx;
    xonly_parse_fn parse;
    schnorr_verify_fn verify;
    const unsigned char *pubkeys, *messages, *signatures;
    unsigned char *out;
} verify_job;

static void verify_range(void *arg, size_t begin, size_t end) {
    const verify_job *v = (const verify_job *)arg;
    size_t i;
    for (i = begin; i < end; i++) {
        tc_xonly_pubkey pk;
        int ok = 0;
        /* A key that does not parse (x >= p, or no curve point) is never handed to verify:
         * libsecp256k1 treats an unparsed key as an API misuse and aborts. s >= n and r >= p
         * make verify return 0. */
        if (v->parse(v->ctx, &pk, v->pubkeys + 32 * i))
            ok = v->verify(v->ctx, v->signatures + 64 * i, v->messages + 32 * i, 32, &pk) == 1;
        v->out[i] = (unsigned char)ok;
    }
}

int tc_verify_batch(uintptr_t ctx, uintptr_t parse_fn, uintptr_t verify_fn, const char *pubkeys,
                    const char *messages, const char *signatures, size_t n, unsigned char *out,
                    int nthreads) {
    verify_job v;
    size_t grain;
    v.ctx = (const tc_secp256k1_context *)ctx;
    v.parse = (xonly_parse_fn)parse_fn;
    v.verify = (schnorr_verify_fn)verify_fn;
    v.pubkeys = (const unsigned char *)pubkeys;
    v.messages = (const unsigned char *)messages;
    v.signatures = (const unsigned char *)signatures;
    v.out = out;
    /* Small claims (at most 32 verifies, ~2 ms) so busy cores do not leave stragglers. */
    grain = nthreads > 1 ? n / ((size_t)nthreads * 16) : n;
    if (grain > 32) grain = 32;
    if (grain < 1) grain = 1;
    parallel_for(n, grain, TC_MIN_SIGS_PER_THREAD, nthreads, verify_range, &v);
    return 0;
}
