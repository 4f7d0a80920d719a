/* The C side of twinchain.native: batch BIP-340 verification over a libsecp256k1 handed in by
 * address, BLAKE3 hashing, batch hashing and Merkle roots. Every entry point is reentrant: no
 * global mutable state, so Python threads may call them concurrently (cffi releases the GIL
 * for each call). nthreads and simd are chosen by the caller; results never depend on them.
 * Byte inputs are const char * so that Python bytes pass without a copy.
 * Return value: 0 on success, -1 when memory runs out, -2 for a malformed packed list. */
#ifndef TC_NATIVE_H
#define TC_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* The highest SIMD level usable here (0 portable, 1 SSE4.1, 2 AVX2, 3 AVX-512). */
int tc_simd_max(void);

/* Whether this build can run work on several threads (pthreads). */
int tc_threads_supported(void);

/* BLAKE3 of in[0..len): keyed when key32 is not NULL, plain otherwise. */
int tc_blake3(const char *key32, const char *in, size_t len, unsigned char *out32);

/* BLAKE3 derive_key(context, material). */
int tc_blake3_derive_key(const char *context, size_t context_len, const char *material,
                         size_t material_len, unsigned char *out32);

/* Lists of byte strings arrive as `packed`: a msgpack array of exactly n bin objects (as
 * msgpack's packer writes a list of bytes); anything else returns -2. */

/* out + 32*i = keyed BLAKE3(key32, item i). */
int tc_hash_many(const char *key32, const char *packed, size_t packed_len, size_t n,
                 unsigned char *out, int nthreads, int simd);

/* Binary Merkle root: leaves hashed with leaf_key32, pairs with node_key32, an odd last node
 * promoted unchanged; n == 0 gives 32 zero bytes. */
int tc_merkle_root(const char *leaf_key32, const char *node_key32, const char *packed,
                   size_t packed_len, size_t n, unsigned char *out32, int nthreads, int simd);

/* tc_merkle_root over n leaves of leaf_len bytes each, back to back in data. */
int tc_merkle_root_fixed(const char *leaf_key32, const char *node_key32, const char *data,
                         size_t leaf_len, size_t n, unsigned char *out32, int nthreads,
                         int simd);

/* BIP-340 verification of n (32-byte x-only pubkey, 32-byte message, 64-byte signature)
 * triples packed back to back; out[i] = 1 if valid else 0. ctx, parse_fn and verify_fn are
 * the addresses of a secp256k1_context, secp256k1_xonly_pubkey_parse and
 * secp256k1_schnorrsig_verify (the msglen variant, libsecp256k1 >= 0.2). */
int tc_verify_batch(uintptr_t ctx, uintptr_t parse_fn, uintptr_t verify_fn, const char *pubkeys,
                    const char *messages, const char *signatures, size_t n, unsigned char *out,
                    int nthreads);

/* Telemetry batches (see tc_telemetry.c). A reading is 18 packed bytes: big-endian u16
 * metric, u64 timestamp (ms), i64 value. Other integers are 8-byte words in native order. */
#define TC_READING_LEN 18
/* slot words: metric, has_env, min, max, max_step, min_interval, max_age, has_last,
 * last_ts, last_value */
#define TC_SLOT_LEN 80
/* aggregate words: start, metric, count, min, max, sum_hi, sum_lo, last, last_ts, flagged */
#define TC_AGG_LEN 80

/* The distinct metrics of len / 18 readings in order of first appearance (a word each, room
 * for len / 18), and the smallest and largest timestamps (two words, 0 0 for none). -2: len
 * not a multiple of 18. */
int tc_readings_survey(const char *raw, size_t len, unsigned char *metrics_out, size_t *k_out,
                       unsigned char *ts_out);

/* Check and fold one batch. slots: k records, one per metric of the batch (each one's last
 * reading is updated in place); clock: words now, limit, window, newest window start and
 * whether there is one (the last two updated in place). Out: flags[i] per reading (bit 0 out of range, 1 from the future,
 * 2 stale, 3 too fast, 4 implausible jump) and the partial aggregates per (window, metric)
 * in order of first appearance (room for len / 18 records). -2: len not a multiple of 18, a
 * zero window, or a metric without a slot. */
int tc_readings_scan(const char *raw, size_t len, unsigned char *slots, size_t k,
                     unsigned char *clock, unsigned char *flags, unsigned char *aggs,
                     size_t *n_aggs, size_t *n_flagged);

#endif
