// One axis of a max-pool (PoolWindow: the row pass; MaxReduce: the column pass).
// A part of the kernels header (hls_templates/kernels.h.j2 includes it after common.h); static
// C++, no jinja2.

namespace codesign {

// ---------------------------------------------------------------- max-pool
#ifdef CODESIGN_CSIM_FAST
namespace csim {

// lane-wise maximum (by value) of two words of PE codes
template <int PE, class F>
inline ap_uint<PE * F::BITS> lane_max(const ap_uint<PE * F::BITS> &a, const ap_uint<PE * F::BITS> &b) {
    static_assert(F::NATIVE, "codes of at most 64 bits; compile with -DCODESIGN_CSIM_PLAIN");
    u64 ca[Chunks<PE * F::BITS>::K], cb[Chunks<PE * F::BITS>::K];
    u64 m[Chunks<PE * F::BITS>::K] = {0};
    load<PE * F::BITS>(a, ca);
    load<PE * F::BITS>(b, cb);
    for (int p = 0; p < PE; p++) {
        const u64 x = get<F::BITS>(ca, p), y = get<F::BITS>(cb, p);
        put<F::BITS>(m, p, F::nvalue(x) > F::nvalue(y) ? x : y);
    }
    return store<PE * F::BITS>(m);
}

}  // namespace csim
#endif

// One axis of a max-pool: the stream is OUTER groups of N positions of INNER words (PE lanes per
// word); the kernel takes the lane-wise maximum over windows of K positions with stride S and
// writes OUTER groups of (N - K) / S + 1 positions of INNER words. Every input word is read once,
// one per iteration; the open windows (at most ceil(K/S)) keep running maxima. Max-pooling a map
// is two passes: along the row (OUTER = H, N = W, INNER = C/PE: IFMh*IFMw*C/PE iterations) and
// down the columns (OUTER = 1, N = H, INNER = OW*C/PE: one row of running maxima).
template <int OUTER, int N, int INNER, int K, int S, int PE, class F>
void max_pool_axis(hls::stream<ap_uint<PE * F::BITS> > &in, hls::stream<ap_uint<PE * F::BITS> > &out) {
    const int ON = (N - K) / S + 1;
    const int OPEN = (K + S - 1) / S;  // windows a position can belong to
    ap_uint<PE * F::BITS> best[OPEN][INNER];
#pragma HLS ARRAY_PARTITION variable=best complete dim=1
    int n = 0, i = 0;
    int first = 0;  // slot of window n / S (the newest window that position n can open)
    int phase = 0;  // n % S
    pool:
    for (int t = 0; t < OUTER * N * INNER; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        const ap_uint<PE * F::BITS> x = in.read();
        ap_uint<PE * F::BITS> y = 0;
        bool done = false;  // position n closes a window (at most one does)
        for (int j = 0; j < OPEN; j++) {
#pragma HLS UNROLL
            // slot first - j holds window n / S - j, which covers positions [(n/S - j)*S, +K)
            const int slot = (first - j + OPEN) % OPEN;
            const int start = n - phase - j * S;  // first position of that window
            if (start >= 0 && n < start + K && start / S < ON) {
                ap_uint<PE * F::BITS> m = x;
                if (n != start) {
#ifdef CODESIGN_CSIM_FAST
                    m = csim::lane_max<PE, F>(best[slot][i], x);
#else
                    for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                        const ap_uint<F::BITS> a = lane<F::BITS, PE>(best[slot][i], p);
                        const ap_uint<F::BITS> b = lane<F::BITS, PE>(x, p);
                        m.range(p * F::BITS + F::BITS - 1, p * F::BITS) = (F::value(a) > F::value(b)) ? a : b;
                    }
#endif
                }
                best[slot][i] = m;
                if (n == start + K - 1) {
                    y = m;
                    done = true;
                }
            }
        }
        if (done) out.write(y);
        if (++i == INNER) {
            i = 0;
            if (++phase == S) {
                phase = 0;
                first = (first + 1 == OPEN) ? 0 : first + 1;
            }
            if (++n == N) {
                n = 0;
                phase = 0;
                first = 0;
            }
        }
    }
}

}  // namespace codesign
