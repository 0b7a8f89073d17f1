// Shared by every kernel: the iteration counter of test builds, the C-simulation fast path's
// native helpers, the element formats, lanes and 64-bit chunk words, and the gearbox that repacks
// streams (the AXI adapters and the width converter). The first part of the kernels header
// (hls_templates/kernels.h.j2 defines AP_INT_MAX_W before it); static C++, no jinja2.
#include <ap_int.h>
#include <hls_stream.h>

// Test builds (-DCODESIGN_COUNT_ITERATIONS, C-simulation only) count the iterations of every
// pipelined kernel loop, to compare them with the cycle model; synthesis never sees the counter.
#if defined(CODESIGN_COUNT_ITERATIONS) && !defined(__SYNTHESIS__)
#define CODESIGN_COUNT() (++::codesign::iterations())
#else
#define CODESIGN_COUNT()
#endif

namespace codesign {

inline long &iterations() {
    static long count = 0;
    return count;
}

// ---------------------------------------------------------------- C-simulation fast paths
// Synthesis (__SYNTHESIS__) and C-simulation with -DCODESIGN_CSIM_PLAIN run the exact-width ap_int
// code of every kernel. Other C-simulation builds define CODESIGN_CSIM_FAST: the kernels keep their
// loops (same iterations, same stream reads and writes) but compute lanes, products and
// accumulators in native 64-bit integers (namespace csim) rather than ap_int's arbitrary-precision
// class, hundreds of times faster. Both compute the same bits: every native sum is taken modulo 2^64
// (unsigned arithmetic) and reduced to the ap type's width exactly where the ap code wraps.
#if !defined(__SYNTHESIS__) && !defined(CODESIGN_CSIM_PLAIN)
#define CODESIGN_CSIM_FAST 1
#endif

#ifdef CODESIGN_CSIM_FAST
namespace csim {

typedef unsigned long long u64;
typedef long long i64;

// the low b bits (b <= 64)
inline u64 mask(int b) { return b >= 64 ? ~0ULL : (1ULL << b) - 1; }
// the low b bits of v as a b-bit two's complement number
inline i64 sext(u64 v, int b) { return b >= 64 ? (i64)v : (i64)(v << (64 - b)) >> (64 - b); }

// set bits of v: the instruction where the target has one (g++ -mpopcnt on x86-64, aarch64), else
// a few shifts and adds rather than libgcc's out-of-line __popcountdi2
inline u64 popcount(u64 v) {
#if defined(__POPCNT__) || defined(__aarch64__)
    return (u64)__builtin_popcountll(v);
#else
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (v * 0x0101010101010101ULL) >> 56;
#endif
}

}  // namespace csim
#endif

// ---------------------------------------------------------------- element formats
// Each format decodes a B-bit code into a signed value and encodes a value back into a code.
// C-simulation fast paths use nvalue/ncode (the same in native integers; codes of at most 64 bits)
// and PLANE/OFFSET: value = sum over code bits i of PLANE(i) * bit i, plus OFFSET.

template <int B>
struct UintFmt {
    static const int BITS = B;
    typedef ap_int<B + 1> value_t;
    static value_t value(ap_uint<B> code) { return value_t(code); }
    template <typename T> static ap_uint<B> code(T v) { return ap_uint<B>(v); }
#ifdef CODESIGN_CSIM_FAST
    static const bool NATIVE = B <= 63;  // values in an i64
    static const int OFFSET = 0;
    static csim::i64 PLANE(int i) { return csim::i64(1) << i; }
    static csim::i64 nvalue(csim::u64 code) { return (csim::i64)code; }
    static csim::u64 ncode(csim::i64 v) { return (csim::u64)v & csim::mask(B); }
#endif
};

template <int B>
struct IntFmt {
    static const int BITS = B;
    typedef ap_int<B> value_t;
    static value_t value(ap_uint<B> code) { value_t v; v.range(B - 1, 0) = code; return v; }
    template <typename T> static ap_uint<B> code(T v) { ap_int<B> w = v; return ap_uint<B>(w.range(B - 1, 0)); }
#ifdef CODESIGN_CSIM_FAST
    static const bool NATIVE = B <= 64;
    static const int OFFSET = 0;
    static csim::i64 PLANE(int i) { return (csim::i64)(i == B - 1 ? 0 - (1ULL << i) : 1ULL << i); }
    static csim::i64 nvalue(csim::u64 code) { return csim::sext(code, B); }
    static csim::u64 ncode(csim::i64 v) { return (csim::u64)v & csim::mask(B); }
#endif
};

struct BipolarFmt {  // code 1 is +1, code 0 is -1
    static const int BITS = 1;
    typedef ap_int<2> value_t;
    static value_t value(ap_uint<1> code) { return code ? value_t(1) : value_t(-1); }
    template <typename T> static ap_uint<1> code(T v) { return v > 0 ? 1 : 0; }
#ifdef CODESIGN_CSIM_FAST
    static const bool NATIVE = true;
    static const int OFFSET = -1;
    static csim::i64 PLANE(int) { return 2; }
    static csim::i64 nvalue(csim::u64 code) { return code ? 1 : -1; }
    static csim::u64 ncode(csim::i64 v) { return v > 0 ? 1 : 0; }
#endif
};

template <int B, int N>
ap_uint<B> lane(const ap_uint<N * B> &word, int i) {
#pragma HLS INLINE
    return word.range(i * B + B - 1, i * B);
}

#ifdef CODESIGN_CSIM_FAST
namespace csim {

// Words as 64-bit chunks, chunk k holding bits [64k, 64k + 64) (the bits above N are 0).
template <int N>
struct Chunks {
    static const int K = (N + 63) / 64;
};

// (whole-word shifts: a few times faster than range() on words over 64 bits)
template <int N>
inline void load(const ap_uint<N> &word, u64 *c) {
    c[0] = word.to_uint64();
    if (N <= 64) return;
    ap_uint<N> rest = word;
    for (int k = 1; k < Chunks<N>::K; k++) {
        rest >>= 64;
        c[k] = rest.to_uint64();
    }
}

template <int N>
inline ap_uint<N> store(const u64 *c) {
    ap_uint<N> word = c[Chunks<N>::K - 1];
    for (int k = Chunks<N>::K - 2; k >= 0; k--) {
        word <<= 64;
        word |= ap_uint<N>(c[k]);
    }
    return word;
}

// lane s of B bits
template <int B>
inline u64 get(const u64 *c, int s) {
    const int pos = s * B, k = pos >> 6, off = pos & 63;
    u64 v = c[k] >> off;
    if (64 % B != 0 && off + B > 64) v |= c[k + 1] << (64 - off);
    return v & mask(B);
}

// sets lane s (still 0) to the B-bit code v
template <int B>
inline void put(u64 *c, int s, u64 v) {
    const int pos = s * B, k = pos >> 6, off = pos & 63;
    c[k] |= v << off;
    if (64 % B != 0 && off + B > 64) c[k + 1] |= v >> (64 - off);
}

// A weight memory word of C-simulation wider than 64 bits (the parameter headers' wmem_t): its
}  // namespace csim
#endif

// ---------------------------------------------------------------- AXI-Stream adapters
// Repacks the TOTAL elements of a frame from words of IN elements of IB bits to words of OUT
// elements of OB bits (element 0 in the low bits; IB -> OB by sign extension when SIGNED, else zero
// extension); the last word of a frame is zero-padded on both sides. Each iteration reads at most
// one word (while fewer than OUT elements wait) and writes at most one, so a frame takes about
// max(input words, output words) iterations; ITERS is the exact count (the writer computes it).
// axis_in unpacks AXI words of the input port, axis_out packs the logits into AXI words.
// The buffer is an array of IN + OUT element codes (not one wide word), so the widest type a
// gearbox instantiates is its input or output word (hw_space.widths: at most AP_INT_MAX_W bits).
// Elements at and above `have` are always 0, so the last word of a frame is zero-padded.
template <int IW, int IN, int IB, int OW, int OUT, int OB, bool SIGNED, int TOTAL, int ITERS>
void gearbox(hls::stream<ap_uint<IW> > &in, hls::stream<ap_uint<OW> > &out) {
#ifdef CODESIGN_CSIM_FAST
    // C-simulation: the same iterations, reads and writes, with the element codes in native
    // integers and the words as 64-bit chunks (range() on a wide ap_uint per element is slow)
    csim::u64 codes[IN + OUT];
    for (int i = 0; i < IN + OUT; i++) codes[i] = 0;
    int have_ = 0, left_ = TOTAL;
    for (int t = 0; t < ITERS; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        if (left_ > 0 && have_ < OUT) {
            csim::u64 c[csim::Chunks<IW>::K];
            csim::load<IW>(in.read(), c);
            const int n = left_ < IN ? left_ : IN;
            for (int i = 0; i < n; i++) {
                const csim::u64 code = csim::get<IB>(c, i);
                codes[have_ + i] = (SIGNED ? (csim::u64)csim::sext(code, IB) : code) & csim::mask(OB);
            }
            have_ += n;
            left_ -= n;
        }
        if (have_ >= OUT || (left_ == 0 && have_ > 0)) {
            csim::u64 c[csim::Chunks<OW>::K];
            for (int k = 0; k < csim::Chunks<OW>::K; k++) c[k] = 0;
            for (int i = 0; i < OUT; i++) csim::put<OB>(c, i, codes[i]);
            out.write(csim::store<OW>(c));
            for (int i = 0; i < IN + OUT; i++) codes[i] = i + OUT < IN + OUT ? codes[i + OUT] : 0;
            have_ = have_ > OUT ? have_ - OUT : 0;
        }
    }
    return;
#endif
    ap_uint<OB> buffer[IN + OUT];
#pragma HLS ARRAY_PARTITION variable=buffer complete dim=1
    for (int i = 0; i < IN + OUT; i++) {
#pragma HLS UNROLL
        buffer[i] = 0;
    }
    int have = 0;      // elements in the buffer
    int left = TOTAL;  // elements still to read
    repack:
    for (int t = 0; t < ITERS; t++) {
#pragma HLS PIPELINE II=1
        CODESIGN_COUNT();
        if (left > 0 && have < OUT) {
            const ap_uint<IW> word = in.read();
            const int n = left < IN ? left : IN;
            for (int i = 0; i < IN; i++) {
#pragma HLS UNROLL
                const ap_uint<IB> code = word.range(i * IB + IB - 1, i * IB);
                ap_uint<OB> e = code;
                if (SIGNED) {
                    ap_int<IB> s;
                    s.range(IB - 1, 0) = code;
                    const ap_int<OB> x = s;
                    e = x.range(OB - 1, 0);
                }
                if (i < n) buffer[have + i] = e;
            }
            have += n;
            left -= n;
        }
        if (have >= OUT || (left == 0 && have > 0)) {
            ap_uint<OW> y = 0;
            for (int i = 0; i < OUT; i++) {
#pragma HLS UNROLL
                y.range(i * OB + OB - 1, i * OB) = buffer[i];
            }
            out.write(y);
            for (int i = 0; i < IN + OUT; i++) {
#pragma HLS UNROLL
                buffer[i] = (i + OUT < IN + OUT) ? buffer[i + OUT] : ap_uint<OB>(0);
            }
            have = have > OUT ? have - OUT : 0;
        }
    }
}

// OFFSET + number of the NT thresholds (sorted) that acc reaches, as an OUT_BITS-bit code
template <int NT, int OFFSET, int OUT_BITS, typename acc_t, typename thr_t, typename tmem_t>
ap_uint<OUT_BITS> requantize(const acc_t &acc, const tmem_t thr[NT > 0 ? NT : 1]) {
#pragma HLS INLINE
    ap_int<16> count = 0;
    for (int k = 0; k < (NT > 0 ? NT : 1); k++) {
#pragma HLS UNROLL
        count += (NT > 0 && acc >= thr_t(thr[k])) ? 1 : 0;
    }
    ap_int<OUT_BITS + 1> level = count + OFFSET;
    return level.range(OUT_BITS - 1, 0);
}

}  // namespace codesign
