/* One multi-lane BLAKE3 kernel: up to TC_LANES independent single-chunk inputs (<= 1024 bytes)
 * hashed at once, lane l of every vector holding input l's state. Included by tc_blake3.c once
 * per width with TC_LANES, TC_LANES_FN and TC_LANES_TARGET defined; GCC/clang vector
 * extensions let the compiler emit SSE4.1, AVX2 or AVX-512 code for the same source. */

#define TC_VEC_NAME_(n) tc_vec##n
#define TC_VEC_NAME(n) TC_VEC_NAME_(n)
#define TC_VEC TC_VEC_NAME(TC_LANES)

typedef uint32_t TC_VEC __attribute__((vector_size(TC_LANES * 4)));

TC_LANES_TARGET
static void TC_LANES_FN(const uint8_t *const *in, const size_t *len, size_t count,
                        const uint32_t key[8], uint32_t mode, uint8_t *const *out) {
    static const uint8_t zero_block[TC_B3_BLOCK_LEN];
    /* Transposition scratch: words[w][l] is word w of lane l's current block. */
    uint32_t words[16][TC_LANES];
    uint32_t blen[TC_LANES], flags[TC_LANES];
    size_t nblocks[TC_LANES];
    size_t maxb = 0, b, l;
    TC_VEC cv[8], v[16], m[16];
    const TC_VEC zero = {0};
    int i, w;

    for (l = 0; l < TC_LANES; l++) {
        nblocks[l] = 0;
        if (l < count) nblocks[l] = len[l] ? (len[l] + TC_B3_BLOCK_LEN - 1) / TC_B3_BLOCK_LEN : 1;
        if (nblocks[l] > maxb) maxb = nblocks[l];
    }
    for (i = 0; i < 8; i++) cv[i] = zero + key[i];

    for (b = 0; b < maxb; b++) {
        int finishing = 0;
        for (l = 0; l < TC_LANES; l++) {
            uint8_t pad[TC_B3_BLOCK_LEN];
            const uint8_t *p = zero_block;
            size_t take = 0;
            uint32_t f = mode;
            if (b < nblocks[l]) {
                take = len[l] - b * TC_B3_BLOCK_LEN;
                if (take >= TC_B3_BLOCK_LEN) {
                    take = TC_B3_BLOCK_LEN;
                    p = in[l] + b * TC_B3_BLOCK_LEN;
                } else {
                    memset(pad, 0, sizeof pad);
                    if (take) memcpy(pad, in[l] + b * TC_B3_BLOCK_LEN, take);
                    p = pad;
                }
                if (b == 0) f |= TC_B3_CHUNK_START;
                if (b + 1 == nblocks[l]) {
                    f |= TC_B3_CHUNK_END | TC_B3_ROOT;
                    finishing = 1;
                }
            }
            blen[l] = (uint32_t)take;
            flags[l] = f;
            for (w = 0; w < 16; w++) words[w][l] = load32le(p + 4 * w);
        }
        for (w = 0; w < 16; w++) memcpy(&m[w], words[w], sizeof(TC_VEC));
        for (i = 0; i < 8; i++) v[i] = cv[i];
        for (i = 0; i < 4; i++) v[8 + i] = zero + tc_b3_iv[i];
        v[12] = zero; /* chunk counter 0: every input is a single chunk */
        v[13] = zero;
        memcpy(&v[14], blen, sizeof(TC_VEC));
        memcpy(&v[15], flags, sizeof(TC_VEC));
        TC_ROUNDS(v, m);
        for (i = 0; i < 8; i++) cv[i] = v[i] ^ v[i + 8];
        if (!finishing) continue;
        /* Lanes whose input ends here carry their root output: write those digests. */
        for (i = 0; i < 8; i++) memcpy(words[i], &cv[i], sizeof(TC_VEC));
        for (l = 0; l < count; l++)
            if (b + 1 == nblocks[l])
                for (i = 0; i < 8; i++) store32le(out[l] + 4 * i, words[i][l]);
    }
}

#undef TC_VEC
#undef TC_LANES
#undef TC_LANES_FN
#undef TC_LANES_TARGET
