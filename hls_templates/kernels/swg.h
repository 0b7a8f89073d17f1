// The sliding-window generator (SlidingWindow).
// A part of the kernels header (hls_templates/kernels.h.j2 includes it after common.h); static
// C++, no jinja2.

namespace codesign {

// ---------------------------------------------------------------- sliding-window generator
#ifdef CODESIGN_CSIM_FAST
namespace csim {

template <class A, class B> struct Same { static const bool value = false; };
template <class A> struct Same<A, A> { static const bool value = true; };

// The sliding window's output word: the SIMD lanes of x re-encoded from InF to OutF, or value 0
// in every lane (padding). Equal formats re-encode a code to itself and value 0 to code 0.
template <int SIMD, class InF, class OutF>
inline ap_uint<SIMD * OutF::BITS> recode(const ap_uint<SIMD * InF::BITS> &x, bool inside) {
    static_assert(InF::NATIVE && OutF::NATIVE, "codes of at most 64 bits; compile with -DCODESIGN_CSIM_PLAIN");
    if (Same<InF, OutF>::value) return inside ? ap_uint<SIMD * OutF::BITS>(x) : ap_uint<SIMD * OutF::BITS>(0);
    u64 in[Chunks<SIMD * InF::BITS>::K];
    u64 out[Chunks<SIMD * OutF::BITS>::K] = {0};
    load<SIMD * InF::BITS>(x, in);
    for (int s = 0; s < SIMD; s++) {
        put<OutF::BITS>(out, s, OutF::ncode(inside ? InF::nvalue(get<InF::BITS>(in, s)) : 0));
    }
    return store<SIMD * OutF::BITS>(out);
}

}  // namespace csim
#endif

// For every output pixel, emits the KH*KW*C window in (kh, kw, c) order, SIMD channels per word.
// Works on the padded map (HP x WP): padding reads nothing and emits value 0 (encoded in OutF);
// lanes are re-encoded from InF to OutF (e.g. bipolar to int2 so that padding can be 0).
// One pipelined loop: after a first phase that buffers KH padded rows, each of the OH phases emits
// the OW windows of one output row while reading the next SH input rows, so a frame takes
//   KH*WP*CF + OH * max(OW*KH*KW*CF, SH*WP*CF)   iterations (CF = C/SIMD)
// (finn-hlslib's ConvolutionInputGenerator schedule). The line buffer holds KH/SH+1 blocks of SH
// padded rows, circular over rows; a phase reads the window rows from some blocks while the next
// rows go into another one.
// DW (depthwise order, for a VVAU or an average pool): the same loop emits each window in
// (channel fold, kh, kw) order, SIMD channels per word, so that a word holds one kernel position of
// the channels a PE group computes.
template <int H, int W, int C, int KH, int KW, int SH, int SW, int PT, int PL, int PB, int PR, int SIMD,
          class InF, class OutF, bool DW = false>
void sliding_window(hls::stream<ap_uint<SIMD * InF::BITS> > &in, hls::stream<ap_uint<SIMD * OutF::BITS> > &out) {
    const int CF = C / SIMD;
    const int HP = H + PT + PB;
    const int WP = W + PL + PR;
    const int OH = (HP - KH) / SH + 1;
    const int OW = (WP - KW) / SW + 1;
    const int ROW = WP * CF;                  // words per padded row
    const int BLOCKS = (KH + SH - 1) / SH + 1;
    const int BLOCK = SH * ROW;               // words per block
    const int FILL = KH * ROW;
    const int EMIT = OW * KH * KW * CF;
    const int PHASE = EMIT > BLOCK ? EMIT : BLOCK;
    ap_uint<SIMD * InF::BITS> lines[BLOCKS][BLOCK];
#pragma HLS ARRAY_PARTITION variable=lines complete dim=1
    // rows written in a phase are read only in later phases: a word is read at least about a padded
    // row (WP*CF/SW iterations) after it was written, far beyond the pipeline depth
#pragma HLS DEPENDENCE variable=lines inter false
    // read cursor: padded row rr, column rc, channel fold rcf; block rb, address ra in the block
    int rr = 0, rc = 0, rcf = 0, rb = 0, ra = 0;
    int limit = KH;  // rows [0, limit) may be read in this phase
    // emit cursor: output row oh (phase), window ow, kh, kw, cf; block eb and row es in it of row oh*SH+kh
    int oh = 0, ow = 0, kh = 0, kw = 0, cf = 0, eb = 0, es = 0, top = 0;
    bool fill = true;
    int p = 0;  // iteration in the phase
    window:
    for (int t = 0; t < FILL + OH * PHASE; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        if (rr < limit) {
            if (rr >= PT && rr < PT + H && rc >= PL && rc < PL + W) lines[rb][ra] = in.read();
            if (++ra == BLOCK) {
                ra = 0;
                rb = (rb + 1 == BLOCKS) ? 0 : rb + 1;
            }
            if (++rcf == CF) {
                rcf = 0;
                if (++rc == WP) {
                    rc = 0;
                    rr++;
                }
            }
        }
        if (!fill && p < EMIT) {
            const int ih = oh * SH + kh;
            const int iw = ow * SW + kw;
            const bool inside = ih >= PT && ih < PT + H && iw >= PL && iw < PL + W;
            // row oh*SH + kh sits in block top + kh/SH at row kh%SH (eb, es track it in (kh, kw, c) order)
            const int db = top + kh / SH;
            const int xb = DW ? (db >= BLOCKS ? db - BLOCKS : db) : eb;
            const int xs = DW ? kh % SH : es;
            const ap_uint<SIMD * InF::BITS> x = lines[xb][xs * ROW + iw * CF + cf];
#ifdef CODESIGN_CSIM_FAST
            const ap_uint<SIMD * OutF::BITS> y = csim::recode<SIMD, InF, OutF>(x, inside);
#else
            ap_uint<SIMD * OutF::BITS> y = 0;
            for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
                typename InF::value_t v = inside ? InF::value(lane<InF::BITS, SIMD>(x, s)) : typename InF::value_t(0);
                y.range(s * OutF::BITS + OutF::BITS - 1, s * OutF::BITS) = OutF::code(v);
            }
#endif
            out.write(y);
            if (DW) {
                if (++kw == KW) {
                    kw = 0;
                    if (++kh == KH) {
                        kh = 0;
                        if (++cf == CF) {
                            cf = 0;
                            ow++;
                        }
                    }
                }
            } else if (++cf == CF) {
                cf = 0;
                if (++kw == KW) {
                    kw = 0;
                    if (++es == SH) {
                        es = 0;
                        eb = (eb + 1 == BLOCKS) ? 0 : eb + 1;
                    }
                    if (++kh == KH) {
                        kh = 0;
                        es = 0;
                        eb = top;
                        ow++;
                    }
                }
            }
        }
        if (++p == (fill ? FILL : PHASE)) {  // next phase: output row oh + 1 (rows from oh*SH on)
            p = 0;
            if (fill) {
                fill = false;
            } else {
                oh++;
                top = (top + 1 == BLOCKS) ? 0 : top + 1;
                eb = top;
                ow = 0;
            }
            limit = (limit + SH < HP) ? limit + SH : HP;
        }
    }
}

}  // namespace codesign
