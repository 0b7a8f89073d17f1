// The AXI-Stream adapters of the top's ports (InputStage, OutputStage): gearboxes.
// A part of the kernels header (hls_templates/kernels.h.j2 includes it after common.h); static
// C++, no jinja2.

namespace codesign {

template <int W, int P, int E, int B, int TOTAL, int ITERS>
void axis_in(hls::stream<ap_uint<W> > &in, hls::stream<ap_uint<E * B> > &out) {
#pragma HLS INLINE
    gearbox<W, P, B, E * B, E, B, false, TOTAL, ITERS>(in, out);
}

template <int E, int B, int W, int Q, int OB, bool SIGNED, int TOTAL, int ITERS>
void axis_out(hls::stream<ap_uint<E * B> > &in, hls::stream<ap_uint<W> > &out) {
#pragma HLS INLINE
    gearbox<E * B, E, B, W, Q, OB, SIGNED, TOTAL, ITERS>(in, out);
}

}  // namespace codesign
