// The fork of a stream (FINN's DuplicateStreams_Batch): every word of the input goes to each
// output in the same iteration. A part of the kernels header; static C++, no jinja2.

namespace codesign {

// WORDS words of B bits per frame, one read and one write to each of the two outputs per iteration.
template <int B, int WORDS>
void dup_streams2(hls::stream<ap_uint<B> > &in, hls::stream<ap_uint<B> > &out0, hls::stream<ap_uint<B> > &out1) {
    copy:
    for (int t = 0; t < WORDS; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const ap_uint<B> x = in.read();
        out0.write(x);
        out1.write(x);
    }
}

// The same to three outputs (a tensor read by three layers).
template <int B, int WORDS>
void dup_streams3(hls::stream<ap_uint<B> > &in, hls::stream<ap_uint<B> > &out0, hls::stream<ap_uint<B> > &out1,
                  hls::stream<ap_uint<B> > &out2) {
    copy:
    for (int t = 0; t < WORDS; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const ap_uint<B> x = in.read();
        out0.write(x);
        out1.write(x);
        out2.write(x);
    }
}

}  // namespace codesign
