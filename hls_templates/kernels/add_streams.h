// The element-wise add of two streams (a residual join, FINN's AddStreams_Batch) with the
// requantization of the sum. A part of the kernels header (kernels.h.j2 includes it after
// common.h, whose `requantize` it uses); static C++, no jinja2.

namespace codesign {

// out = requantize(a + b) per element: two streams of C channels x REPS pixels of InF codes at one
// scale, PE channels per word; the thresholds fold the requantizer's scale in (as the pools').
// One word from EACH input and one output word per iteration: REPS * C/PE iterations.
template <int REPS, int C, int PE, int NT, int OFFSET, int OUT_BITS, class InF,
          typename acc_t, typename thr_t, typename tmem_t>
void add_streams(hls::stream<ap_uint<PE * InF::BITS> > &a, hls::stream<ap_uint<PE * InF::BITS> > &b,
                 hls::stream<ap_uint<PE * OUT_BITS> > &out, const tmem_t thresholds[PE][C / PE][NT > 0 ? NT : 1]) {
    const int NF = C / PE;
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=1
#pragma HLS ARRAY_PARTITION variable=thresholds complete dim=3
    int nf = 0;
    add:
    for (int t = 0; t < REPS * NF; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const ap_uint<PE * InF::BITS> x = a.read();
        const ap_uint<PE * InF::BITS> y = b.read();
        ap_uint<PE * OUT_BITS> z = 0;
        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
            const acc_t s = acc_t(InF::value(lane<InF::BITS, PE>(x, p))) + acc_t(InF::value(lane<InF::BITS, PE>(y, p)));
            z.range(p * OUT_BITS + OUT_BITS - 1, p * OUT_BITS) =
                requantize<NT, OFFSET, OUT_BITS, acc_t, thr_t, tmem_t>(s, thresholds[p][nf]);
        }
        out.write(z);
        if (++nf == NF) nf = 0;
    }
}

}  // namespace codesign
