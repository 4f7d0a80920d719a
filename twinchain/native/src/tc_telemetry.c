/* The per-reading loop of the Telemetry pallet's block import: one batch of packed readings
 * checked against its twin's envelopes and capture settings, and folded into per-window,
 * per-metric partial aggregates. The rules are the pallet's (twinchain/runtime/pallets/
 * telemetry.py); the pure-Python scan_readings in twinchain/native/fallback.py is the
 * reference and gives the same bytes for the same input.
 *
 * Every integer crosses the boundary as 8 bytes in native byte order and is loaded with
 * memcpy, so no alignment or signed/unsigned conversion is left to the compiler. */
#include <string.h>

#include "tc_native.h"

#define TC_FLAG_OUT_OF_RANGE 1u
#define TC_FLAG_FROM_FUTURE 2u
#define TC_FLAG_STALE 4u
#define TC_FLAG_TOO_FAST 8u
#define TC_FLAG_JUMP 16u

static uint64_t ld_u(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int64_t ld_i(const unsigned char *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void st_u(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static void st_i(unsigned char *p, int64_t v) { memcpy(p, &v, 8); }

/* A packed reading: big-endian u16 metric, u64 timestamp, i64 value (the Merkle leaf). */
static void reading_at(const unsigned char *r, unsigned *metric, uint64_t *ts, int64_t *value) {
    uint64_t t = 0, v = 0;
    int i;
    *metric = ((unsigned)r[0] << 8) | r[1];
    for (i = 0; i < 8; i++) t = (t << 8) | r[2 + i];
    for (i = 0; i < 8; i++) v = (v << 8) | r[10 + i];
    *ts = t;
    /* Two's complement without an implementation-defined conversion. */
    *value = v <= (uint64_t)INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

int tc_readings_survey(const char *raw, size_t len, unsigned char *metrics_out, size_t *k_out,
                       unsigned char *ts_out) {
    const unsigned char *p = (const unsigned char *)raw;
    size_t n, i, j, k = 0;
    uint64_t min_ts = UINT64_MAX, max_ts = 0;
    if (len % TC_READING_LEN) return -2;
    n = len / TC_READING_LEN;
    for (i = 0; i < n; i++) {
        unsigned m;
        uint64_t ts;
        int64_t v;
        reading_at(p + i * TC_READING_LEN, &m, &ts, &v);
        if (ts < min_ts) min_ts = ts;
        if (ts > max_ts) max_ts = ts;
        for (j = 0; j < k; j++)
            if (ld_u(metrics_out + 8 * j) == m) break;
        if (j == k) st_u(metrics_out + 8 * k++, m);
    }
    *k_out = k;
    st_u(ts_out, n ? min_ts : 0);
    st_u(ts_out + 8, max_ts);
    return 0;
}

int tc_readings_scan(const char *raw, size_t len, unsigned char *slots, size_t k,
                     unsigned char *clock, unsigned char *flags, unsigned char *aggs,
                     size_t *n_aggs, size_t *n_flagged) {
    const unsigned char *p = (const unsigned char *)raw;
    uint64_t now = ld_u(clock), limit = ld_u(clock + 8), window = ld_u(clock + 16);
    uint64_t newest = ld_u(clock + 24), has_newest = ld_u(clock + 32);
    size_t n, i, a = 0, flagged = 0, last_slot = 0, last_agg = 0;
    if (len % TC_READING_LEN || window == 0) return -2;
    n = len / TC_READING_LEN;
    for (i = 0; i < n; i++) {
        unsigned m, fl = 0;
        uint64_t ts, start;
        int64_t v;
        unsigned char *s, *g;
        size_t j;
        int newer, has_last;
        reading_at(p + i * TC_READING_LEN, &m, &ts, &v);
        if (last_slot >= k || ld_u(slots + TC_SLOT_LEN * last_slot) != m) {
            for (j = 0; j < k; j++)
                if (ld_u(slots + TC_SLOT_LEN * j) == m) break;
            if (j == k) return -2; /* a metric the caller gave no slot */
            last_slot = j;
        }
        s = slots + TC_SLOT_LEN * last_slot;
        /* slot words: metric, has_env, min, max, max_step, min_interval, max_age,
         * has_last, last_ts, last_value */
        if (ld_u(s + 8) && !(ld_i(s + 16) <= v && v <= ld_i(s + 24))) fl |= TC_FLAG_OUT_OF_RANGE;
        has_last = ld_u(s + 56) != 0;
        newer = !has_last || ts >= ld_u(s + 64);
        if (ts > limit)
            fl |= TC_FLAG_FROM_FUTURE;
        else if (!newer || (now > ts && now - ts > ld_u(s + 48)))
            fl |= TC_FLAG_STALE;
        if (has_last && newer) {
            uint64_t step = ld_u(s + 32);
            int64_t lv = ld_i(s + 72);
            uint64_t diff;
            if (ts - ld_u(s + 64) < ld_u(s + 40)) fl |= TC_FLAG_TOO_FAST;
            /* |v - lv| as an unsigned 64-bit number: exact, it never exceeds 2^64 - 1. */
            diff = v >= lv ? (uint64_t)v - (uint64_t)lv : (uint64_t)lv - (uint64_t)v;
            if (step && diff > step) fl |= TC_FLAG_JUMP;
        }
        if (newer) {
            st_u(s + 56, 1);
            st_u(s + 64, ts);
            st_i(s + 72, v);
        }
        flags[i] = (unsigned char)fl;
        if (fl) flagged++;
        start = ts - ts % window;
        if (ts <= limit && (!has_newest || start > newest)) {
            newest = start;
            has_newest = 1;
        }
        /* agg words: start, metric, count, min, max, sum_hi, sum_lo, last, last_ts, flagged */
        if (last_agg >= a || ld_u(aggs + TC_AGG_LEN * last_agg) != start ||
            ld_u(aggs + TC_AGG_LEN * last_agg + 8) != m) {
            for (j = 0; j < a; j++) {
                g = aggs + TC_AGG_LEN * j;
                if (ld_u(g) == start && ld_u(g + 8) == m) break;
            }
            last_agg = j;
        }
        {
            /* v = hi * 2^32 + lo, lo in [0, 2^32): a batch's sum of either part fits 64 bits
             * (for fewer than 2^32 readings), and Python adds them back exactly. */
            uint64_t u = (uint64_t)v, lo = u & 0xffffffffu;
            int64_t hi = (int64_t)(u >> 32);
            if (hi >= (int64_t)0x80000000) hi -= (int64_t)0x100000000;
            g = aggs + TC_AGG_LEN * last_agg;
            if (last_agg == a) {
                a++;
                st_u(g, start);
                st_u(g + 8, m);
                st_u(g + 16, 1);
                st_i(g + 24, v);
                st_i(g + 32, v);
                st_i(g + 40, hi);
                st_u(g + 48, lo);
                st_i(g + 56, v);
                st_u(g + 64, ts);
                st_u(g + 72, fl ? 1 : 0);
            } else {
                if (v < ld_i(g + 24)) st_i(g + 24, v);
                if (v > ld_i(g + 32)) st_i(g + 32, v);
                if (ts >= ld_u(g + 64)) {
                    st_i(g + 56, v);
                    st_u(g + 64, ts);
                }
                st_u(g + 16, ld_u(g + 16) + 1);
                st_i(g + 40, ld_i(g + 40) + hi);
                st_u(g + 48, ld_u(g + 48) + lo);
                if (fl) st_u(g + 72, ld_u(g + 72) + 1);
            }
        }
    }
    st_u(clock + 24, newest);
    st_u(clock + 32, has_newest);
    *n_aggs = a;
    *n_flagged = flagged;
    return 0;
}
