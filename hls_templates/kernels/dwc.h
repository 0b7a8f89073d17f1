// The stream width converter (WidthConverter).
// A part of the kernels header (hls_templates/kernels.h.j2 includes it after common.h); static
// C++, no jinja2.

namespace codesign {

// ---------------------------------------------------------------- stream width conversion
// Repacks TOTAL elements of B bits from IN to OUT elements per word: the gearbox without a change
// of element format (FINN's StreamingDataWidthConverter); ITERS = hw_space.layers.gearbox_cycles.
template <int IN, int OUT, int B, int TOTAL, int ITERS>
void width_convert(hls::stream<ap_uint<IN * B> > &in, hls::stream<ap_uint<OUT * B> > &out) {
#pragma HLS INLINE
    gearbox<IN * B, IN, B, OUT * B, OUT, B, false, TOTAL, ITERS>(in, out);
}

}  // namespace codesign
