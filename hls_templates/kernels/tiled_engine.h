// The tiled engine (Zhang et al., FPGA'15; FNAS, DAC'19): one Tm x Tn MAC array that runs every
// layer in turn, walking a table of layers. A part of the kernels header (hls_templates/kernels.h.j2
// includes it after common.h); static C++, no jinja2.
//
// Memory: feature maps live in DRAM (the activation ports act_in / act_out, one memory) in groups
// of TN channels: word ((g * H + y) * W + x) * WG + w holds lanes w*EPW .. w*EPW + EPW - 1 of
// group g at pixel (y, x), EPW = port bits / element bits, WG = ceil(TN / EPW); lanes past the
// map's channels are 0. Weights (the weight port) are laid out per (output tile of TM channels,
// input group, kernel position): WPK = ceil(TM*TN / EPW) words of TM x TN weights, m-major.
// Thresholds are an on-chip table, one row per output channel of every layer.
//
// Schedule of a conv / dense layer (the cost model's hw_space.layers.tiled.TiledConv counts these
// iterations): for each output tile (rows, columns, then TM output channels), one pipelined loop of
// (steps + 1) * L1 iterations, phase p loading input group p into one half of the double-buffered
// input and weight tiles while the MAC array computes group p - 1 from the other half
// (L1 = max(load input, load weights, compute)); meanwhile the previous tile's outputs leave
// through the output port from the other half of the double-buffered output tile. A last loop
// drains the last tile. A max-pool layer is one pipelined loop reading each window word by word.

namespace codesign {

#if defined(CODESIGN_COUNT_ITERATIONS) && !defined(__SYNTHESIS__)
#define CODESIGN_LAYER_DONE(l) (::codesign::layer_iterations()[(l)] = ::codesign::iterations(), \
                                ::codesign::iterations() = 0)
#else
#define CODESIGN_LAYER_DONE(l)
#endif

// iterations of each layer's pipelined loops in test builds (-DCODESIGN_COUNT_ITERATIONS)
inline long *layer_iterations() {
    static long counts[256];
    return counts;
}

// One row of the layer table (the parameters header's layer_table).
struct TiledLayer {
    int pool;                 // 1: a max-pool pass; 0: a conv or dense layer on the MAC array
    int in_h, in_w;           // the input map in DRAM (a dense layer: 1 x 1)
    int out_h, out_w;         // the output map
    int k, s, pad;            // kernel, stride, zero padding
    int tr, tc;               // output tile, clipped to the map
    int in_rows, in_cols;     // input tile: (tr - 1) * s + k rows, (tc - 1) * s + k columns
    int steps;                // input channel groups per output tile
    int gpx, cv;              // lane j of input group g is a channel iff (g / gpx) * TN + j < cv
    int m;                    // output channels (a max-pool: its channels)
    int in_bits, in_signed, in_bipolar;  // the elements of the input map
    int w_bits, w_signed, w_bipolar;     // the weights (bipolar: code 1 is +1, 0 is -1)
    int xnor;                 // bipolar inputs and weights: XNOR-popcount
    int out_bits;             // bits of an output element
    int nt, offset, thr_row;  // thresholds per channel (0: the raw dot product), lowest level, first row
    int mw;                   // dot-product length (XNOR: the dot product is 2 * popcount - mw)
    int in_base, w_base, out_base;  // word offsets in the activation and weight memories
};

inline int tiled_cdiv(int a, int b) { return (a + b - 1) / b; }
inline int tiled_max(int a, int b) { return a > b ? a : b; }
// elements of `bits` bits per word of P bits (at least one)
template <int P> inline int tiled_epw(int bits) { return P / bits > 0 ? P / bits : 1; }

// Element codes (at most 64 bits) and their values: ap types for synthesis; native integers in
// C-simulation, which compute the same bits much faster (codesign::csim, common.h).
#ifdef CODESIGN_CSIM_FAST
typedef unsigned long long tiled_code_t;
typedef long long tiled_wide_t;
#else
typedef ap_uint<64> tiled_code_t;
typedef ap_int<64> tiled_wide_t;
#endif

inline tiled_code_t tiled_mask(int bits) {
#pragma HLS INLINE
    return bits >= 64 ? tiled_code_t(~0ULL) : tiled_code_t((tiled_code_t(1) << bits) - 1);
}

// the value of an element code of the given format
template <typename V>
inline V tiled_decode(tiled_code_t code, int bits, int is_signed, int bipolar) {
#pragma HLS INLINE
    if (bipolar) return (code & 1) ? V(1) : V(-1);
    if (is_signed && bits < 64 && ((code >> (bits - 1)) & 1)) return V(tiled_wide_t(code) - (tiled_wide_t(1) << bits));
    return V(tiled_wide_t(code));
}

// lane e of `bits` bits of a word
template <int P>
inline tiled_code_t tiled_lane(const ap_uint<P> &word, int e, int bits) {
#pragma HLS INLINE
#ifdef CODESIGN_CSIM_FAST
    if (P <= 64) return (word.to_uint64() >> (e * bits)) & tiled_mask(bits);
    return ap_uint<P>(word >> (e * bits)).to_uint64() & tiled_mask(bits);
#else
    const ap_uint<P> shifted = word >> (e * bits);
    return tiled_code_t(shifted) & tiled_mask(bits);
#endif
}

template <int P>
inline void tiled_put(ap_uint<P> &word, int e, int bits, tiled_wide_t value) {
#pragma HLS INLINE
    word |= ap_uint<P>(tiled_code_t(value) & tiled_mask(bits)) << (e * bits);
}

// One max-pool layer: per group of TN channels and output pixel, the K x K window word by word.
template <int TN, int IP, int OP>
void tiled_pool(const TiledLayer &L, const ap_uint<IP> *act_in, ap_uint<OP> *act_out) {
#pragma HLS INLINE
    const int epw = tiled_epw<IP>(L.in_bits), wg = tiled_cdiv(TN, epw), k2 = L.k * L.k;
    const int iters = tiled_cdiv(L.m, TN) * L.out_h * L.out_w * wg * k2;
    tiled_wide_t best[TN];
#pragma HLS ARRAY_PARTITION variable=best complete dim=1
    int pk = 0, pky = 0, pkx = 0, pw = 0, pox = 0, poy = 0, pg = 0;
    pool:
    for (int t = 0; t < iters; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const int y = poy * L.s + pky, x = pox * L.s + pkx;
        const ap_uint<IP> word = act_in[L.in_base + ((pg * L.in_h + y) * L.in_w + x) * wg + pw];
        ap_uint<OP> out = 0;
        for (int e = 0; e < TN; e++) {
#pragma HLS UNROLL
            if (e < epw && pw * epw + e < TN) {
                const tiled_wide_t v = tiled_decode<tiled_wide_t>(tiled_lane<IP>(word, e, L.in_bits), L.in_bits,
                                                                  L.in_signed, 0);
                if (pk == 0 || v > best[e]) best[e] = v;
                tiled_put<OP>(out, e, L.in_bits, best[e]);
            }
        }
        if (pk == k2 - 1) act_out[L.out_base + ((pg * L.out_h + poy) * L.out_w + pox) * wg + pw] = out;
        // next (group, output row, output column, word, kernel position), kernel position innermost
        if (++pkx == L.k) { pkx = 0; pky++; }
        if (++pk == k2) {
            pk = 0; pky = 0;
            if (++pw == wg) {
                pw = 0;
                if (++pox == L.out_w) { pox = 0; if (++poy == L.out_h) { poy = 0; pg++; } }
            }
        }
    }
}

// The output code of accumulator `acc` of output channel `m` (absolute) of layer L.
template <int NT_MAX, typename acc_t, typename thr_t>
inline tiled_wide_t tiled_activate(const TiledLayer &L, acc_t acc, int m, const thr_t thresholds[][NT_MAX]) {
#pragma HLS INLINE
    if (L.nt > 0) {
        int count = 0;
        for (int k = 0; k < NT_MAX; k++) {
#pragma HLS UNROLL
            if (k < L.nt && acc >= thresholds[L.thr_row + m][k]) count++;
        }
        return tiled_wide_t(L.offset + count);
    }
    return L.xnor ? tiled_wide_t(2 * tiled_wide_t(acc) - L.mw) : tiled_wide_t(acc);
}

// One conv or dense layer on the TM x TN MAC array.
template <int TM, int TN, int IN_PX, int OUT_PX, int K2, int IP, int WP, int OP, int NT_MAX,
          typename val_t, typename wval_t, typename acc_t, typename thr_t>
void tiled_conv(const TiledLayer &L, const ap_uint<IP> *act_in, const ap_uint<WP> *weights, ap_uint<OP> *act_out,
                const thr_t thresholds[][NT_MAX], val_t ibuf[2][TN][IN_PX], wval_t wbuf[2][TM][TN][K2],
                acc_t obuf[2][TM][OUT_PX]) {
#pragma HLS INLINE
    const int k2 = L.k * L.k, px = L.tr * L.tc;
    const int epw_i = tiled_epw<IP>(L.in_bits), wg_i = tiled_cdiv(TN, epw_i);
    const int epw_w = tiled_epw<WP>(L.w_bits), wpk = tiled_cdiv(TM * TN, epw_w);
    const int epw_o = tiled_epw<OP>(L.out_bits), wg_o = tiled_cdiv(TN, epw_o);
    const int out_groups = tiled_cdiv(L.m, TN);
    const int groups_m = TM / TN < out_groups ? TM / TN : out_groups;
    const int lat_i = L.in_rows * L.in_cols * wg_i, lat_w = k2 * wpk, lat_c = k2 * px;
    const int lat_o = px * groups_m * wg_o;
    const int l1 = tiled_max(tiled_max(lat_i, lat_w), lat_c);
    const int t1 = (L.steps + 1) * l1;
    const int r_tiles = tiled_cdiv(L.out_h, L.tr), c_tiles = tiled_cdiv(L.out_w, L.tc), m_tiles = tiled_cdiv(L.m, TM);
    const int tiles = r_tiles * c_tiles * m_tiles;
    int ri = 0, ci = 0, mi = 0;     // the tile computed now
    int sr = 0, sc = 0, sm = 0;     // the tile stored now (the previous one)
    tiles_loop:
    for (int tile = 0; tile <= tiles; tile++) {
        const bool computing = tile < tiles, storing = tile > 0;
        const int iters = computing ? (storing ? tiled_max(t1, lat_o) : t1) : lat_o;
        const int cb_out = tile & 1, sb_out = (tile + 1) & 1;
        const int iy0 = ri * L.tr * L.s - L.pad, ix0 = ci * L.tc * L.s - L.pad;
        int phase = 0, u = 0;
        int iw = 0, ity = 0, itx = 0, iq = 0;           // input load: word, tile row, column, pixel
        int ww = 0, wk = 0;                             // weight load: word, kernel position
        int ck = 0, cky = 0, ckx = 0, cp = 0, coy = 0, cox = 0;  // compute: kernel position, pixel
        int sw = 0, sg = 0, sp = 0, soy = 0, sox = 0;   // store: word, group, pixel
        tile_loop:
        for (int t = 0; t < iters; t++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=ibuf inter false
#pragma HLS DEPENDENCE variable=wbuf inter false
            CODESIGN_COUNT();
            const int lb = phase & 1, cb = (phase + 1) & 1;
            if (computing && phase < L.steps && u < lat_i) {  // input group `phase`, one word
                const int g = phase;
                const int y = iy0 + ity, x = ix0 + itx;
                const bool inside = y >= 0 && y < L.in_h && x >= 0 && x < L.in_w;
                ap_uint<IP> word = 0;
                if (inside) word = act_in[L.in_base + ((g * L.in_h + y) * L.in_w + x) * wg_i + iw];
                for (int e = 0; e < TN; e++) {
#pragma HLS UNROLL
                    const int j = iw * epw_i + e;
                    if (e < epw_i && j < TN) {
                        const bool channel = (g / L.gpx) * TN + j < L.cv;
                        const tiled_code_t code = tiled_lane<IP>(word, e, L.in_bits);
                        ibuf[lb][j][iq] = inside && channel ?
                            tiled_decode<val_t>(code, L.in_bits, L.in_signed, L.in_bipolar) : val_t(0);
                    }
                }
                if (++iw == wg_i) { iw = 0; iq++; if (++itx == L.in_cols) { itx = 0; ity++; } }
            }
            if (computing && phase < L.steps && u < lat_w) {  // weights of group `phase`, one word
                const ap_uint<WP> word = weights[L.w_base + ((mi * L.steps + phase) * k2 + wk) * wpk + ww];
                for (int e = 0; e < TM * TN; e++) {
#pragma HLS UNROLL
                    const int idx = ww * epw_w + e;
                    if (e < epw_w && idx < TM * TN) {
                        const tiled_code_t code = tiled_lane<WP>(word, e, L.w_bits);
                        wbuf[lb][idx / TN][idx % TN][wk] = tiled_decode<wval_t>(code, L.w_bits, L.w_signed,
                                                                                L.w_bipolar);
                    }
                }
                if (++ww == wpk) { ww = 0; wk++; }
            }
            if (computing && phase >= 1 && phase <= L.steps && u < lat_c) {  // group phase - 1, one MAC step
                const int q = (coy * L.s + cky) * L.in_cols + cox * L.s + ckx;
                const bool first = phase == 1 && ck == 0;
                for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
                    acc_t sum = first ? acc_t(0) : obuf[cb_out][m][cp];
                    for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
                        const val_t x = ibuf[cb][n][q];
                        const wval_t w = wbuf[cb][m][n][ck];
                        if (L.xnor) {
                            sum += (x != 0 && x == w) ? 1 : 0;  // XNOR-popcount of the channels
                        } else {
                            sum += x * w;
                        }
                    }
                    obuf[cb_out][m][cp] = sum;
                }
                cp++;
                if (++cox == L.tc) { cox = 0; coy++; }
                if (cp == px) {
                    cp = 0; cox = 0; coy = 0; ck++;
                    if (++ckx == L.k) { ckx = 0; cky++; }
                }
            }
            if (storing && t < lat_o) {  // the previous tile's outputs, one word
                const int oy = sr * L.tr + soy, ox = sc * L.tc + sox, g = sm * (TM / TN) + sg;
                if (oy < L.out_h && ox < L.out_w && g < out_groups) {
                    ap_uint<OP> word = 0;
                    for (int e = 0; e < TN; e++) {
#pragma HLS UNROLL
                        const int j = sw * epw_o + e;
                        const int ml = sg * TN + j;
                        if (e < epw_o && j < TN && sm * TM + ml < L.m) {
                            tiled_put<OP>(word, e, L.out_bits, tiled_activate<NT_MAX, acc_t, thr_t>(
                                L, obuf[sb_out][ml][sp], sm * TM + ml, thresholds));
                        }
                    }
                    act_out[L.out_base + ((g * L.out_h + oy) * L.out_w + ox) * wg_o + sw] = word;
                }
                if (++sw == wg_o) {
                    sw = 0;
                    if (++sg == groups_m) {
                        sg = 0; sp++;
                        if (++sox == L.tc) { sox = 0; soy++; }
                    }
                }
            }
            if (++u == l1) {
                u = 0; phase++;
                iw = 0; ity = 0; itx = 0; iq = 0; ww = 0; wk = 0;
                ck = 0; cky = 0; ckx = 0; cp = 0; coy = 0; cox = 0;
            }
        }
        sr = ri; sc = ci; sm = mi;  // next tile: output channels, then columns, then rows
        if (++mi == m_tiles) { mi = 0; if (++ci == c_tiles) { ci = 0; ri++; } }
    }
}

// The engine: every layer of the table in turn, one frame per call.
template <int TM, int TN, int IN_PX, int OUT_PX, int K2, int IP, int WP, int OP, int NT_MAX, int LAYERS,
          typename val_t, typename wval_t, typename acc_t, typename thr_t>
void tiled_engine(const ap_uint<IP> *act_in, const ap_uint<WP> *weights, ap_uint<OP> *act_out,
                  const TiledLayer table[LAYERS], const thr_t thresholds[][NT_MAX]) {
    static val_t ibuf[2][TN][IN_PX];
    static wval_t wbuf[2][TM][TN][K2];
    static acc_t obuf[2][TM][OUT_PX];
#pragma HLS ARRAY_PARTITION variable=ibuf complete dim=1
#pragma HLS ARRAY_PARTITION variable=ibuf complete dim=2
#pragma HLS ARRAY_PARTITION variable=wbuf complete dim=1
#pragma HLS ARRAY_PARTITION variable=wbuf complete dim=2
#pragma HLS ARRAY_PARTITION variable=wbuf complete dim=3
#pragma HLS ARRAY_PARTITION variable=obuf complete dim=1
#pragma HLS ARRAY_PARTITION variable=obuf complete dim=2
    layers:
    for (int l = 0; l < LAYERS; l++) {
        const TiledLayer L = table[l];
        if (L.pool) {
            tiled_pool<TN, IP, OP>(L, act_in, act_out);
        } else {
            tiled_conv<TM, TN, IN_PX, OUT_PX, K2, IP, WP, OP, NT_MAX, val_t, wval_t, acc_t, thr_t>(
                L, act_in, weights, act_out, thresholds, ibuf, wbuf, obuf);
        }
        CODESIGN_LAYER_DONE(l);
    }
}

}  // namespace codesign
