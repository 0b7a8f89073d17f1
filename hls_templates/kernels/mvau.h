// The matrix-vector-activation unit (MVAU): dot products of one SIMD word, multiplier styles, mvau.
// A part of the kernels header (hls_templates/kernels.h.j2 includes it after common.h); static
// C++, no jinja2.

namespace codesign {

#ifdef CODESIGN_CSIM_FAST
namespace csim {

// A weight memory word of C-simulation wider than 64 bits (the parameter headers' wmem_t): its
// chunks, so that the tables are plain constants; converts to the ap_uint of the word.
template <int N>
struct Word {
    u64 c[Chunks<N>::K];
    operator ap_uint<N>() const { return store<N>(c); }
};

// the chunks of a weight memory word (tmp: room for them when they must be extracted)
inline const u64 *chunks(const unsigned long long &w, u64 *) { return &w; }
template <int N> inline const u64 *chunks(const Word<N> &w, u64 *) { return w.c; }
template <int N> inline const u64 *chunks(const ap_uint<N> &w, u64 *tmp) { load<N>(w, tmp); return tmp; }

// Sum over SIMD lanes of InF value * WF value, modulo 2^64. Equal lane widths of 1 or 2 bits go by
// bit planes: with value = sum_i PLANE(i) * bit_i + OFFSET, the dot product is a weighted sum of
// popcounts of plane ANDs (32 or 64 lanes per instruction); other widths lane by lane.
template <int SIMD, class InF, class WF>
inline u64 mul_dot(const u64 *x, const u64 *w) {
    const int BX = InF::BITS, BW = WF::BITS;
    u64 sum = 0;
    if (BX == BW && BX <= 2) {
        const u64 lanes = BX == 1 ? ~0ULL : 0x5555555555555555ULL;  // bit 0 of every lane
        for (int k = 0; k < Chunks<SIMD * BX>::K; k++) {
            for (int j = 0; j < BW; j++) {
                const u64 wj = (w[k] >> j) & lanes;
                for (int i = 0; i < BX; i++) {
                    sum += (u64)(InF::PLANE(i) * WF::PLANE(j)) * popcount((x[k] >> i) & lanes & wj);
                }
                if (InF::OFFSET != 0) sum += (u64)(InF::OFFSET * WF::PLANE(j)) * popcount(wj);
            }
            if (WF::OFFSET != 0) {
                for (int i = 0; i < BX; i++) {
                    sum += (u64)(WF::OFFSET * InF::PLANE(i)) * popcount((x[k] >> i) & lanes);
                }
            }
        }
        return sum + (u64)((i64)SIMD * InF::OFFSET * WF::OFFSET);
    }
    for (int s = 0; s < SIMD; s++) {
        sum += (u64)InF::nvalue(get<BX>(x, s)) * (u64)WF::nvalue(get<BW>(w, s));
    }
    return sum;
}

// Number of equal bits of two SIMD-bit words.
template <int SIMD>
inline u64 xnor_popcount(const u64 *x, const u64 *w) {
    u64 count = 0;
    for (int k = 0; k < Chunks<SIMD>::K; k++) {
        const int bits = SIMD - 64 * k < 64 ? SIMD - 64 * k : 64;
        count += popcount(~(x[k] ^ w[k]) & mask(bits));
    }
    return count;
}

}  // namespace csim
#endif

// ---------------------------------------------------------------- dot products of one SIMD word

// Multiplier styles of MulDot (the Design's `mac`): each style's Product has its own BIND_OP pragma
// on the product variable (pragmas cannot take template parameters).
struct MacAuto {};  // the tool chooses LUTs or DSPs
struct MacLut {};   // LUT (fabric) multipliers
struct MacDsp {};   // DSP multipliers

template <class MAC> struct Product;

template <> struct Product<MacAuto> {
    template <typename P, typename A, typename B> static P mul(const A &a, const B &b) {
#pragma HLS INLINE
        P product = a * b;
        return product;
    }
};

template <> struct Product<MacLut> {
    template <typename P, typename A, typename B> static P mul(const A &a, const B &b) {
#pragma HLS INLINE
        P product = a * b;
#pragma HLS BIND_OP variable=product op=mul impl=fabric
        return product;
    }
};

template <> struct Product<MacDsp> {
    template <typename P, typename A, typename B> static P mul(const A &a, const B &b) {
#pragma HLS INLINE
        P product = a * b;
#pragma HLS BIND_OP variable=product op=mul impl=dsp
        return product;
    }
};

// Multiplying path: sum over lanes of value(x) * value(w), multipliers of style MAC.
template <int SIMD, class InF, class WF, typename acc_t, class MAC = MacAuto>
struct MulDot {
    typedef ap_int<InF::value_t::width + WF::value_t::width> product_t;
    static acc_t dot(const ap_uint<SIMD * InF::BITS> &x, const ap_uint<SIMD * WF::BITS> &w) {
#pragma HLS INLINE
        acc_t sum = 0;
        for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            sum += Product<MAC>::template mul<product_t>(InF::value(lane<InF::BITS, SIMD>(x, s)),
                                                         WF::value(lane<WF::BITS, SIMD>(w, s)));
        }
        return sum;
    }
    template <int MW> static acc_t result(const acc_t &acc) { return acc; }
#ifdef CODESIGN_CSIM_FAST
    static const bool NATIVE = InF::NATIVE && WF::NATIVE;
    static csim::u64 native_dot(const csim::u64 *x, const csim::u64 *w) { return csim::mul_dot<SIMD, InF, WF>(x, w); }
    template <int MW> static csim::i64 native_result(csim::i64 acc) { return acc; }
#endif
};

// Bipolar inputs and weights: XNOR-popcount. The accumulator counts agreeing lanes (pc);
// the signed dot product is 2*pc - MW. Thresholds are given in the pc domain. No multipliers.
template <int SIMD, class InF, class WF, typename acc_t>
struct XnorDot {
    static acc_t dot(const ap_uint<SIMD> &x, const ap_uint<SIMD> &w) {
#pragma HLS INLINE
        ap_uint<SIMD> agree = ~(x ^ w);
        acc_t count = 0;
        for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            count += agree[s];
        }
        return count;
    }
    template <int MW> static acc_t result(const acc_t &acc) { return 2 * acc - MW; }
#ifdef CODESIGN_CSIM_FAST
    static const bool NATIVE = true;
    static csim::u64 native_dot(const csim::u64 *x, const csim::u64 *w) { return csim::xnor_popcount<SIMD>(x, w); }
    template <int MW> static csim::i64 native_result(csim::i64 acc) { return 2 * acc - MW; }
#endif
};

// ---------------------------------------------------------------- matrix-vector-activation unit
#ifdef CODESIGN_CSIM_FAST
namespace csim {

// C-simulation twin of mvau (below) in native integers: the same loop, reads and writes; the input
// vector is kept as 64-bit chunks, accumulators are sums modulo 2^64 taken as acc_t::width-bit and
// thresholds as thr_t::width-bit two's complement numbers, as the ap code wraps them.
template <int MW, int MH, int SIMD, int PE, int REPS, int NT, int OFFSET, int OUT_BITS,
          class InF, class WF, class Dot, typename acc_t, typename thr_t, typename wmem_t, typename tmem_t>
void mvau(hls::stream<ap_uint<SIMD * InF::BITS> > &in, hls::stream<ap_uint<PE * OUT_BITS> > &out,
          const wmem_t weights[PE][(MH / PE) * (MW / SIMD)],
          const tmem_t thresholds[PE][MH / PE][NT > 0 ? NT : 1]) {
    static_assert(Dot::NATIVE && acc_t::width <= 64 && thr_t::width <= 64 && OUT_BITS <= 64,
                  "the C-simulation fast path takes lanes, accumulators and outputs of at most 64 bits; "
                  "compile with -DCODESIGN_CSIM_PLAIN");
    const int SF = MW / SIMD;
    const int NF = MH / PE;
    const int KX = Chunks<SIMD * InF::BITS>::K, KW = Chunks<SIMD * WF::BITS>::K, KY = Chunks<PE * OUT_BITS>::K;
    const int ACC = acc_t::width, THR = thr_t::width;
    u64 vec[SF][KX];
    u64 acc[PE];
    u64 wtmp[KW];
    int sf = 0, nf = 0;
    compute:  // (synthesis never sees this twin; its pragma marks the loop as mvau's)
    for (int t = 0; t < REPS * NF * SF; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        if (nf == 0) load<SIMD * InF::BITS>(in.read(), vec[sf]);
        const u64 *x = vec[sf];
        for (int p = 0; p < PE; p++) {
            const u64 partial = (sf == 0) ? 0 : acc[p];
            acc[p] = partial + Dot::native_dot(x, chunks(weights[p][nf * SF + sf], wtmp));
        }
        if (sf == SF - 1) {
            u64 y[KY] = {0};
            for (int p = 0; p < PE; p++) {
                const i64 a = sext(acc[p], ACC);
                i64 level;
                if (NT > 0) {
                    u64 count = 0;
                    for (int k = 0; k < (NT > 0 ? NT : 1); k++) {
                        count += a >= sext((u64)(i64)thresholds[p][nf][k], THR);
                    }
                    level = sext(count, 16) + OFFSET;
                } else {
                    level = sext((u64)Dot::template native_result<MW>(a), ACC);  // result() returns an acc_t
                }
                put<OUT_BITS>(y, p, (u64)level & mask(OUT_BITS));
            }
            out.write(store<PE * OUT_BITS>(y));
        }
        if (++sf == SF) {
            sf = 0;
            if (++nf == NF) nf = 0;
        }
    }
}

}  // namespace csim
#endif

// acc = W (MH x MW) . x for REPS input vectors. PE output lanes, SIMD input lanes: weights[p][t]
// holds SIMD weights of output channel nf*PE + p for the input slice sf, with t = nf*SF + sf.
// NT > 0: output = OFFSET + number of thresholds[p][nf][k] that acc reaches (per channel,
// sorted); NT == 0: the accumulator itself (OUT_BITS wide, two's complement). wmem_t / tmem_t
// are the memory word types of weights and thresholds (see the parameter headers).
template <int MW, int MH, int SIMD, int PE, int REPS, int NT, int OFFSET, int OUT_BITS,
          class InF, class WF, class Dot, typename acc_t, typename thr_t, typename wmem_t, typename tmem_t>
void mvau(hls::stream<ap_uint<SIMD * InF::BITS> > &in, hls::stream<ap_uint<PE * OUT_BITS> > &out,
          const wmem_t weights[PE][(MH / PE) * (MW / SIMD)],
          const tmem_t thresholds[PE][MH / PE][NT > 0 ? NT : 1]) {
#ifdef CODESIGN_CSIM_FAST
    csim::mvau<MW, MH, SIMD, PE, REPS, NT, OFFSET, OUT_BITS, InF, WF, Dot, acc_t, thr_t, wmem_t, tmem_t>(
        in, out, weights, thresholds);
#else
    const int SF = MW / SIMD;
    const int NF = MH / PE;
    ap_uint<SIMD * InF::BITS> vec[SF];
    acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1
    // weights: the layout pragma is the call site's (stages/mvau.pragmas.cpp.j2, the Design's
    // weight_layout): ARRAY_PARTITION dim=1 (one memory per PE) or ARRAY_RESHAPE dim=1 (one word of
    // all PEs per address); either way the loop below reads all PE words of one address per cycle
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=1
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=3
    int sf = 0, nf = 0;
    compute:
    for (int t = 0; t < REPS * NF * SF; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        ap_uint<SIMD * InF::BITS> x;
        if (nf == 0) {
            x = in.read();
            vec[sf] = x;
        } else {
            x = vec[sf];
        }
        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
            const ap_uint<SIMD * WF::BITS> w = weights[p][nf * SF + sf];
            const acc_t partial = (sf == 0) ? acc_t(0) : acc[p];
            acc[p] = partial + Dot::dot(x, w);
        }
        if (sf == SF - 1) {
            ap_uint<PE * OUT_BITS> y = 0;
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                ap_uint<OUT_BITS> o;
                if (NT > 0) {
                    ap_int<16> count = 0;
                    for (int k = 0; k < (NT > 0 ? NT : 1); k++) {
#pragma HLS UNROLL
                        count += (acc[p] >= thr_t(thresholds[p][nf][k])) ? 1 : 0;
                    }
                    ap_int<OUT_BITS + 1> level = count + OFFSET;
                    o = level.range(OUT_BITS - 1, 0);
                } else {
                    ap_int<OUT_BITS> value = Dot::template result<MW>(acc[p]);
                    o = value.range(OUT_BITS - 1, 0);
                }
                y.range(p * OUT_BITS + OUT_BITS - 1, p * OUT_BITS) = o;
            }
            out.write(y);
        }
        if (++sf == SF) {
            sf = 0;
            if (++nf == NF) nf = 0;
        }
    }
#endif
}

}  // namespace codesign
