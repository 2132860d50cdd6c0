/*
 * Shared by the C kernels of dynforecast/ops: the REAL type (float or double, set by the build),
 * OpenMP helpers, and a vectorisable exp/sigmoid for float (GCC/Clang vector extensions).
 */
#ifndef DYNFORECAST_KERNEL_MATH_H
#define DYNFORECAST_KERNEL_MATH_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef REAL
#define REAL float
#endif

#ifdef REAL_IS_DOUBLE
static inline REAL exp_real(REAL x) { return exp(x); }
#else
/* exp for float, vectorisable: 2^k * exp(r), |r| <= ln2 / 2, with Cephes expf's polynomial
 * (relative error about 1e-7 on that interval); the input is clamped to expf's finite range. */
static inline float exp_real(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float k = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } scale;
    scale.i = ((int32_t)k + 127) << 23;
    return p * scale.f;
}
#endif

static inline REAL sigmoid_real(REAL z) { return (REAL)1 / ((REAL)1 + exp_real(-z)); }

#if !defined(REAL_IS_DOUBLE) && defined(__GNUC__)
/* Eight sigmoids at once with GCC/Clang vector extensions (compiled to AVX, SSE or scalar code,
 * whatever the target has): the same arithmetic as exp_real, written so that the bit
 * reinterpretation of 2^k does not stop vectorisation. */
typedef float float8 __attribute__((vector_size(32)));
typedef int32_t int8x __attribute__((vector_size(32)));

static inline float8 select8(int8x mask, float8 yes, float8 no) {
    return (float8)(((int8x)yes & mask) | ((int8x)no & ~mask));
}

static inline float8 exp8(float8 x) {
    const float8 low = {-87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f, -87.3f};
    const float8 high = {88.3f, 88.3f, 88.3f, 88.3f, 88.3f, 88.3f, 88.3f, 88.3f};
    x = select8(x < low, low, x);
    x = select8(x > high, high, x);
    /* floor(x log2 e + 1/2): the argument is above -127, so truncating (t + 128) floors it. */
    int8x k = __builtin_convertvector(x * 1.44269504088896341f + 128.5f, int8x) - 128;
    float8 kf = __builtin_convertvector(k, float8);
    float8 r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float8 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (float8)((k + 127) << 23);
}

/* s[i] = sigmoid(z[i]) for i < n. */
static inline void sigmoid_array(const float *restrict z, float *restrict s, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float8 v;
        memcpy(&v, z + i, sizeof v);
        v = 1.0f / (1.0f + exp8(-v));
        memcpy(s + i, &v, sizeof v);
    }
    for (; i < n; ++i) s[i] = sigmoid_real(z[i]);
}
#else
static inline void sigmoid_array(const REAL *restrict z, REAL *restrict s, int n) {
    for (int i = 0; i < n; ++i) s[i] = sigmoid_real(z[i]);
}
#endif

/* s[i] = sigmoid(z[i]) and out[i] = z[i] s[i] (SiLU) for i < n, in one pass. */
#if !defined(REAL_IS_DOUBLE) && defined(__GNUC__)
static inline void silu_array(const float *restrict z, float *restrict s, float *restrict out,
                              int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float8 v, sig;
        memcpy(&v, z + i, sizeof v);
        sig = 1.0f / (1.0f + exp8(-v));
        memcpy(s + i, &sig, sizeof sig);
        v = v * sig;
        memcpy(out + i, &v, sizeof v);
    }
    for (; i < n; ++i) {
        s[i] = sigmoid_real(z[i]);
        out[i] = z[i] * s[i];
    }
}
#else
static inline void silu_array(const REAL *restrict z, REAL *restrict s, REAL *restrict out,
                              int n) {
    for (int i = 0; i < n; ++i) {
        s[i] = sigmoid_real(z[i]);
        out[i] = z[i] * s[i];
    }
}
#endif

/* out[i] = exp(in[i]) for i < n. */
#if !defined(REAL_IS_DOUBLE) && defined(__GNUC__)
static inline void exp_array(const float *restrict in, float *restrict out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float8 v;
        memcpy(&v, in + i, sizeof v);
        v = exp8(v);
        memcpy(out + i, &v, sizeof v);
    }
    for (; i < n; ++i) out[i] = exp_real(in[i]);
}
#else
static inline void exp_array(const REAL *restrict in, REAL *restrict out, int n) {
    for (int i = 0; i < n; ++i) out[i] = exp_real(in[i]);
}
#endif

/* silu'(z) = s (1 + z (1 - s)) with s = sigmoid(z). */
#define SILU_GRAD(z, s) ((s) * ((REAL)1 + (z) * ((REAL)1 - (s))))

static inline int thread_count(int requested) {
#ifdef _OPENMP
    return requested > 0 ? requested : 1;
#else
    (void)requested;
    return 1;
#endif
}

static inline int thread_index(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Thread `me`'s contiguous share [*begin, *end) of `count` items. */
static inline void thread_share(int64_t count, int threads, int me, int64_t *begin, int64_t *end) {
    *begin = count * me / threads;
    *end = count * (me + 1) / threads;
}

/* Bounds of the small products below: group <= SMALL_GROUP_MAX, widths <= SMALL_WIDTH_MAX. */
#define SMALL_GROUP_MAX 8
#define SMALL_WIDTH_MAX 256

#if defined(__GNUC__)
/* The small products work on tiles of TILE = 16 columns, held as TILE_VECS vectors of the
 * target's register width (one 512-bit register per float tile with AVX-512, two 256-bit ones
 * with AVX, four 128-bit ones otherwise), so that `group` accumulator tiles plus their operands
 * fit the registers (16 with AVX2, 32 with AVX-512). Accumulators indexed by runtime widths (the
 * scalar loops below), or vectors wider than the target's registers, are kept in memory by GCC
 * instead: on an AVX2 EPYC the tiles made the ESTAG training step 1.45x faster, and on an
 * AVX-512 EPYC (Zen 4) 512-bit tiles took it from 48-49 to 43-44 ms against 256-bit ones (one
 * thread, 100 aspirin windows). Widths that are not a multiple of TILE take the scalar loops. */
#if defined(__AVX512F__)
#define VEC_BYTES 64
#elif defined(__AVX__)
#define VEC_BYTES 32
#else
#define VEC_BYTES 16
#endif
#define TILE 16
#define VEC_WIDTH ((int)(VEC_BYTES / sizeof(REAL)))
#define TILE_VECS (TILE / VEC_WIDTH)
#define HAVE_TILES 1
typedef REAL vec_t __attribute__((vector_size(VEC_BYTES)));

static inline vec_t vec_load(const REAL *p) {
    vec_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vec_store(REAL *p, vec_t v) { memcpy(p, &v, sizeof v); }
#endif

/* out[r, :] (+)= bias + in[r, :] @ B for r < rows (overwritten unless `accumulate`; bias
 * [n_out] or NULL): the one product all the kernels' matrix arithmetic goes through. in is
 * [rows, n_in] with element (r, i) at in[r * ld_in + i * in_step] (in_step > 1 reads a transposed
 * operand), B [n_in, n_out] and out [rows, n_out] have row strides ld_b and ld_out. `group` rows
 * at a time: the group's accumulators stay in registers and `group` independent FMA chains
 * overlap; `group` is a compile-time constant at every call, n_out <= SMALL_WIDTH_MAX. */
static inline __attribute__((always_inline)) void small_matmul(
    const int group, int n_in, int n_out, int rows, const REAL *restrict in, int ld_in,
    int in_step, const REAL *restrict B, int ld_b, const REAL *restrict bias, REAL *restrict out,
    int ld_out, int accumulate) {
#define IN(r, i) in[(r) * ld_in + (i) * in_step]
#ifdef HAVE_TILES
    if (n_out % TILE == 0) {
        for (int c0 = 0; c0 < n_out; c0 += TILE) {
            int r = 0;
            for (; r + group <= rows; r += group) {
                vec_t acc[SMALL_GROUP_MAX][TILE_VECS];
                for (int j = 0; j < group; ++j)
                    for (int v = 0; v < TILE_VECS; ++v)
                        acc[j][v] = accumulate
                                        ? vec_load(out + (r + j) * ld_out + c0 + v * VEC_WIDTH)
                                        : (vec_t){0};
                if (bias)
                    for (int j = 0; j < group; ++j)
                        for (int v = 0; v < TILE_VECS; ++v)
                            acc[j][v] += vec_load(bias + c0 + v * VEC_WIDTH);
                for (int i = 0; i < n_in; ++i) {
                    vec_t column[TILE_VECS];
                    for (int v = 0; v < TILE_VECS; ++v)
                        column[v] = vec_load(B + (int64_t)i * ld_b + c0 + v * VEC_WIDTH);
                    for (int j = 0; j < group; ++j) {
                        const REAL a = IN(r + j, i);
                        for (int v = 0; v < TILE_VECS; ++v) acc[j][v] += a * column[v];
                    }
                }
                for (int j = 0; j < group; ++j)
                    for (int v = 0; v < TILE_VECS; ++v)
                        vec_store(out + (r + j) * ld_out + c0 + v * VEC_WIDTH, acc[j][v]);
            }
            for (; r < rows; ++r) {
                for (int v = 0; v < TILE_VECS; ++v) {
                    REAL *target = out + r * ld_out + c0 + v * VEC_WIDTH;
                    vec_t acc = accumulate ? vec_load(target) : (vec_t){0};
                    if (bias) acc += vec_load(bias + c0 + v * VEC_WIDTH);
                    for (int i = 0; i < n_in; ++i)
                        acc += IN(r, i) * vec_load(B + (int64_t)i * ld_b + c0 + v * VEC_WIDTH);
                    vec_store(target, acc);
                }
            }
        }
        return;
    }
#endif
    int r = 0;
    for (; r + group <= rows; r += group) {
        /* fixed size: a VLA here measured 1.6x slower */
        REAL acc[SMALL_GROUP_MAX][SMALL_WIDTH_MAX];
        for (int j = 0; j < group; ++j)
            for (int o = 0; o < n_out; ++o)
                acc[j][o] = (accumulate ? out[(r + j) * ld_out + o] : 0) + (bias ? bias[o] : 0);
        for (int i = 0; i < n_in; ++i) {
            const REAL *restrict column = B + (int64_t)i * ld_b;
            for (int j = 0; j < group; ++j) {
                const REAL a = IN(r + j, i);
                for (int o = 0; o < n_out; ++o) acc[j][o] += a * column[o];
            }
        }
        for (int j = 0; j < group; ++j)
            for (int o = 0; o < n_out; ++o) out[(r + j) * ld_out + o] = acc[j][o];
    }
    for (; r < rows; ++r) {
        REAL *restrict row = out + r * ld_out;
        for (int o = 0; o < n_out; ++o) row[o] = (accumulate ? row[o] : 0) + (bias ? bias[o] : 0);
        for (int i = 0; i < n_in; ++i) {
            const REAL a = IN(r, i);
            const REAL *restrict column = B + (int64_t)i * ld_b;
            for (int o = 0; o < n_out; ++o) row[o] += a * column[o];
        }
    }
#undef IN
}

/* out[r, :] = b + in[r, :] @ Wt for r < rows (in: row stride ld_in; Wt: [n_in, n_out], the
 * transposed Linear weight; out: row stride n_out). */
static inline __attribute__((always_inline)) void small_linear(
    const int group, int n_in, int n_out, int rows, const REAL *restrict in, int ld_in,
    const REAL *restrict Wt, const REAL *restrict b, REAL *restrict out) {
    small_matmul(group, n_in, n_out, rows, in, ld_in, 1, Wt, n_out, b, out, n_out, 0);
}

/* The backward of `small_linear`: g_in[r, :] (+)= g_out[r, :] @ W (W: [n_out, n_in], torch's
 * Linear.weight; g_in overwritten unless `accumulate`), g_W += g_out^T in, and g_b += sum_r
 * g_out when g_b is not NULL. */
static inline __attribute__((always_inline)) void small_linear_backward(
    const int group, int n_in, int n_out, int rows, const REAL *restrict g_out,
    const REAL *restrict in, int ld_in, const REAL *restrict W, REAL *restrict g_W,
    REAL *restrict g_b, REAL *restrict g_in, int ld_g, int accumulate) {
    if (g_b)
        for (int q = 0; q < rows; ++q)
            for (int k = 0; k < n_out; ++k) g_b[k] += g_out[q * n_out + k];
    small_matmul(group, n_out, n_in, rows, g_out, n_out, 1, W, n_in, NULL, g_in, ld_g, accumulate);
    /* g_W [n_out, n_in] += g_out^T [n_out, rows] @ in [rows, n_in] */
    small_matmul(group, rows, n_in, n_out, g_out, 1, n_out, in, ld_in, NULL, g_W, n_in, 1);
}

/* out[c, r] = in[r, c] for r < rows, c < cols, with row strides ld_in and ld_out; the columns
 * rows .. ld_out - 1 of out are zeroed (padding to a whole tile). */
static inline void small_transpose(int rows, int cols, const REAL *restrict in, int ld_in,
                                   REAL *restrict out, int ld_out) {
    for (int c = 0; c < cols; ++c) {
        for (int r = 0; r < rows; ++r) out[c * ld_out + r] = in[r * ld_in + c];
        for (int r = rows; r < ld_out; ++r) out[c * ld_out + r] = 0;
    }
}

#endif
