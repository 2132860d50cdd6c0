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

/* out[r, :] = b + in[r, :] @ Wt for r < rows (in: row stride ld_in; Wt: [n_in, n_out], the
 * transposed Linear weight), `group` rows at a time: the group's accumulators stay in registers
 * and `group` independent FMA chains overlap. `group` is a compile-time constant at every call. */
static inline __attribute__((always_inline)) void small_linear(
    const int group, int n_in, int n_out, int rows, const REAL *restrict in, int ld_in,
    const REAL *restrict Wt, const REAL *restrict b, REAL *restrict out) {
    int r = 0;
    for (; r + group <= rows; r += group) {
        REAL acc[SMALL_GROUP_MAX][SMALL_WIDTH_MAX]; /* fixed size: a VLA here measured 1.6x slower */
        for (int j = 0; j < group; ++j)
            for (int o = 0; o < n_out; ++o) acc[j][o] = b[o];
        for (int i = 0; i < n_in; ++i) {
            const REAL *restrict column = Wt + (int64_t)i * n_out;
            for (int j = 0; j < group; ++j) {
                const REAL a = in[(r + j) * ld_in + i];
                for (int o = 0; o < n_out; ++o) acc[j][o] += a * column[o];
            }
        }
        for (int j = 0; j < group; ++j)
            for (int o = 0; o < n_out; ++o) out[(r + j) * n_out + o] = acc[j][o];
    }
    for (; r < rows; ++r) {
        REAL *restrict row = out + r * n_out;
        for (int o = 0; o < n_out; ++o) row[o] = b[o];
        for (int i = 0; i < n_in; ++i) {
            const REAL a = in[r * ld_in + i];
            const REAL *restrict column = Wt + (int64_t)i * n_out;
            for (int o = 0; o < n_out; ++o) row[o] += a * column[o];
        }
    }
}

/* The backward of `small_linear`: g_in[r, :] (+)= g_out[r, :] @ W (W: [n_out, n_in], torch's
 * Linear.weight; g_in overwritten unless `accumulate`), g_W += g_out^T in, and g_b += sum_r
 * g_out when g_b is not NULL; both products `group` rows (or outputs) at a time. */
static inline __attribute__((always_inline)) void small_linear_backward(
    const int group, int n_in, int n_out, int rows, const REAL *restrict g_out,
    const REAL *restrict in, int ld_in, const REAL *restrict W, REAL *restrict g_W,
    REAL *restrict g_b, REAL *restrict g_in, int ld_g, int accumulate) {
    int r = 0;
    for (; r + group <= rows; r += group) {
        REAL acc[SMALL_GROUP_MAX][SMALL_WIDTH_MAX];
        for (int j = 0; j < group; ++j)
            for (int i = 0; i < n_in; ++i) acc[j][i] = accumulate ? g_in[(r + j) * ld_g + i] : 0;
        for (int o = 0; o < n_out; ++o) {
            const REAL *restrict row_w = W + (int64_t)o * n_in;
            for (int j = 0; j < group; ++j) {
                const REAL g = g_out[(r + j) * n_out + o];
                for (int i = 0; i < n_in; ++i) acc[j][i] += g * row_w[i];
            }
        }
        for (int j = 0; j < group; ++j)
            for (int i = 0; i < n_in; ++i) g_in[(r + j) * ld_g + i] = acc[j][i];
    }
    for (; r < rows; ++r) {
        REAL *restrict target = g_in + r * ld_g;
        if (!accumulate)
            for (int i = 0; i < n_in; ++i) target[i] = 0;
        for (int o = 0; o < n_out; ++o) {
            const REAL g = g_out[r * n_out + o];
            const REAL *restrict row_w = W + (int64_t)o * n_in;
            for (int i = 0; i < n_in; ++i) target[i] += g * row_w[i];
        }
    }
    int o = 0;
    for (; o + group <= n_out; o += group) {
        REAL acc[SMALL_GROUP_MAX][SMALL_WIDTH_MAX];
        for (int j = 0; j < group; ++j)
            for (int i = 0; i < n_in; ++i) acc[j][i] = g_W[(int64_t)(o + j) * n_in + i];
        for (int q = 0; q < rows; ++q) {
            const REAL *restrict a = in + q * ld_in;
            for (int j = 0; j < group; ++j) {
                const REAL g = g_out[q * n_out + o + j];
                for (int i = 0; i < n_in; ++i) acc[j][i] += g * a[i];
            }
        }
        for (int j = 0; j < group; ++j)
            for (int i = 0; i < n_in; ++i) g_W[(int64_t)(o + j) * n_in + i] = acc[j][i];
    }
    for (; o < n_out; ++o) {
        REAL *restrict row_g = g_W + (int64_t)o * n_in;
        for (int q = 0; q < rows; ++q) {
            const REAL g = g_out[q * n_out + o];
            for (int i = 0; i < n_in; ++i) row_g[i] += g * in[q * ld_in + i];
        }
    }
    if (g_b)
        for (int q = 0; q < rows; ++q)
            for (int k = 0; k < n_out; ++k) g_b[k] += g_out[q * n_out + k];
}

#endif
