// The vector-vector-activation unit (VVAU) of a depthwise convolution, which also computes a
// windowed average pool (unit weights), and the global accumulating pool. A part of the kernels
// header (hls_templates/kernels.h.j2 includes it after common.h and mvau.h, whose dot products it
// uses); static C++, no jinja2.

namespace codesign {

// lanes s*PE + p (s < SIMD) of a word of PE*SIMD lanes: the SIMD kernel positions of channel lane p
template <int SIMD, int PE, int B>
ap_uint<SIMD * B> taps(const ap_uint<PE * SIMD * B> &x, int p) {
#pragma HLS INLINE
    ap_uint<SIMD * B> v = 0;
    for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
        v.range(s * B + B - 1, s * B) = x.range((s * PE + p) * B + B - 1, (s * PE + p) * B);
    }
    return v;
}

// acc[c] = W[c] . window of channel c (K2 = K*K taps) for REPS output pixels; C channels, PE per
// word, SIMD taps per cycle. The input word holds SIMD taps of PE channels (lane s*PE + p) from a
// depthwise-order window (and a width converter packing SIMD of its words); weights[p][t] holds
// the SIMD weights of channel nf*PE + p, tap fold kf, t = nf*KF + kf (the MVAU's packing with
// MH = C, MW = K2). One read per iteration: REPS * C/PE * K2/SIMD iterations (FINN's VVAU cycles).
// NT > 0: thresholds as the MVAU's; NT == 0: the dot product itself.
template <int K2, int C, int SIMD, int PE, int REPS, int NT, int OFFSET, int OUT_BITS,
          class InF, class WF, class Dot, typename acc_t, typename thr_t, typename wmem_t, typename tmem_t>
void vvau(hls::stream<ap_uint<PE * SIMD * InF::BITS> > &in, hls::stream<ap_uint<PE * OUT_BITS> > &out,
          const wmem_t weights[PE][(C / PE) * (K2 / SIMD)],
          const tmem_t thresholds[PE][C / PE][NT > 0 ? NT : 1]) {
    const int KF = K2 / SIMD;
    const int NF = C / PE;
    acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1
#pragma HLS ARRAY_PARTITION variable=weights complete dim=1
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=1
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=3
    int kf = 0, nf = 0;
    compute:
    for (int t = 0; t < REPS * NF * KF; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const ap_uint<PE * SIMD * InF::BITS> x = in.read();
        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
            const ap_uint<SIMD * WF::BITS> w = weights[p][nf * KF + kf];
            const acc_t partial = (kf == 0) ? acc_t(0) : acc[p];
            acc[p] = partial + Dot::dot(taps<SIMD, PE, InF::BITS>(x, p), w);
        }
        if (kf == KF - 1) {
            ap_uint<PE * OUT_BITS> y = 0;
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                ap_uint<OUT_BITS> o;
                if (NT > 0) {
                    o = requantize<NT, OFFSET, OUT_BITS, acc_t, thr_t, tmem_t>(acc[p], thresholds[p][nf]);
                } else {
                    ap_int<OUT_BITS> value = Dot::template result<K2>(acc[p]);
                    o = value.range(OUT_BITS - 1, 0);
                }
                y.range(p * OUT_BITS + OUT_BITS - 1, p * OUT_BITS) = o;
            }
            out.write(y);
        }
        if (++kf == KF) {
            kf = 0;
            if (++nf == NF) nf = 0;
        }
    }
}

// Global average pool: C running sums over the PIXELS pixels of a map arriving PE channels per word
// (pixels outer, channels inner), requantized by thresholds (the mean's scale folded in) and
// written during the last pixel: PIXELS * C/PE iterations, one read each.
template <int PIXELS, int C, int PE, int NT, int OFFSET, int OUT_BITS, class InF,
          typename acc_t, typename thr_t, typename tmem_t>
void global_pool(hls::stream<ap_uint<PE * InF::BITS> > &in, hls::stream<ap_uint<PE * OUT_BITS> > &out,
                 const tmem_t thresholds[PE][C / PE][NT > 0 ? NT : 1]) {
    const int NF = C / PE;
    acc_t sums[NF][PE];
#pragma HLS ARRAY_PARTITION variable=sums complete dim=2
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=1
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=3
    int nf = 0, pix = 0;
    accumulate:
    for (int t = 0; t < PIXELS * NF; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const ap_uint<PE * InF::BITS> x = in.read();
        ap_uint<PE * OUT_BITS> y = 0;
        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
            const acc_t s = ((pix == 0) ? acc_t(0) : sums[nf][p]) + InF::value(lane<InF::BITS, PE>(x, p));
            sums[nf][p] = s;
            y.range(p * OUT_BITS + OUT_BITS - 1, p * OUT_BITS) =
                requantize<NT, OFFSET, OUT_BITS, acc_t, thr_t, tmem_t>(s, thresholds[p][nf]);
        }
        if (pix == PIXELS - 1) out.write(y);
        if (++nf == NF) {
            nf = 0;
            pix++;
        }
    }
}

}  // namespace codesign
