/*
 * The geometric half of an EGNN/ESTAG layer on the CPU, forward and backward, for every edge e
 * (receiver i = dst[e], sender j = src[e]) and extra row t (ESTAG's frames; 1 for EGNN):
 *
 *     radial:  r(e, t)     = |x_i(t) - x_j(t)|^2
 *     shift:   s_i(t)      = sum over the edges into i of clamp(u(e, t) c(e, t), -100, 100)
 *              u = (x_i - x_j) / max(|x_i - x_j|, eps) when normalised, else x_i - x_j
 *
 * (dynforecast.models.layers.edge_geometry, safe_unit and coordinate_shift in torch ops; the
 * clamp is the reference codes' guard, and its gradient passes where the value is inside the
 * bounds, endpoints included, as torch.clamp's.) Layout: x [V, T, 3], dst, src [E] int64,
 * r and c [E, T], s [V, T, 3]. Parallel over edges; scattered gradients go to per-thread
 * buffers summed in a fixed order.
 */
#include "kernel_math.h"

#define CLAMP 100

/* r is written. */
int edge_radial_forward(int64_t V, int64_t E, int64_t T, const REAL *x, const int64_t *dst,
                        const int64_t *src, REAL *r, int threads) {
    (void)V;
    threads = thread_count(threads);
#pragma omp parallel num_threads(threads)
    {
        int64_t begin, end;
        thread_share(E, threads, thread_index(), &begin, &end);
        for (int64_t e = begin; e < end; ++e) {
            const REAL *xi = x + dst[e] * T * 3, *xj = x + src[e] * T * 3;
            for (int64_t t = 0; t < T; ++t) {
                REAL sum = 0;
                for (int d = 0; d < 3; ++d) {
                    const REAL diff = xi[t * 3 + d] - xj[t * 3 + d];
                    sum += diff * diff;
                }
                r[e * T + t] = sum;
            }
        }
    }
    return 0;
}

/* Sum the (threads - 1) private [V, T, 3] buffers in scratch into out. */
static void reduce_into(REAL *out, const REAL *scratch, int threads, int64_t size) {
    for (int k = 0; k < threads - 1; ++k)
        for (int64_t n = 0; n < size; ++n) out[n] += scratch[k * size + n];
}

/* g_x (zeroed by the caller) += the gradient of r; scratch: (threads - 1) zeroed [V, T, 3]. */
int edge_radial_backward(int64_t V, int64_t E, int64_t T, const REAL *x, const int64_t *dst,
                         const int64_t *src, const REAL *g_r, REAL *g_x, int threads,
                         REAL *scratch) {
    threads = thread_count(threads);
    const int64_t size = V * T * 3;
#pragma omp parallel num_threads(threads)
    {
        const int me = thread_index();
        REAL *mine = me == 0 ? g_x : scratch + (me - 1) * size;
        int64_t begin, end;
        thread_share(E, threads, me, &begin, &end);
        for (int64_t e = begin; e < end; ++e) {
            const int64_t i = dst[e], j = src[e];
            for (int64_t t = 0; t < T; ++t) {
                const REAL g = 2 * g_r[e * T + t];
                for (int d = 0; d < 3; ++d) {
                    const int64_t a = (i * T + t) * 3 + d, b = (j * T + t) * 3 + d;
                    const REAL diff = x[a] - x[b];
                    mine[a] += g * diff;
                    mine[b] -= g * diff;
                }
            }
        }
    }
    reduce_into(g_x, scratch, threads, size);
    return 0;
}

/* The direction u of one edge-row and its squared length. */
static inline void direction(const REAL *xi, const REAL *xj, int normalise, REAL eps,
                             REAL *diff, REAL *u, REAL *norm) {
    REAL sum = 0;
    for (int d = 0; d < 3; ++d) {
        diff[d] = xi[d] - xj[d];
        sum += diff[d] * diff[d];
    }
    *norm = sum > eps * eps ? sqrt(sum) : eps; /* sqrt(max(r, eps^2)) as safe_unit */
    for (int d = 0; d < 3; ++d) u[d] = normalise ? diff[d] / *norm : diff[d];
}

static inline REAL clamped(REAL value) {
    return value < -CLAMP ? -CLAMP : (value > CLAMP ? CLAMP : value);
}

/* s (zeroed by the caller) is written; scratch: (threads - 1) zeroed [V, T, 3]. */
int edge_shift_forward(int64_t V, int64_t E, int64_t T, const REAL *x, const int64_t *dst,
                       const int64_t *src, const REAL *c, int normalise, REAL eps, REAL *s,
                       int threads, REAL *scratch) {
    threads = thread_count(threads);
    const int64_t size = V * T * 3;
#pragma omp parallel num_threads(threads)
    {
        const int me = thread_index();
        REAL *mine = me == 0 ? s : scratch + (me - 1) * size;
        int64_t begin, end;
        thread_share(E, threads, me, &begin, &end);
        for (int64_t e = begin; e < end; ++e) {
            const int64_t i = dst[e], j = src[e];
            for (int64_t t = 0; t < T; ++t) {
                REAL diff[3], u[3], norm;
                direction(x + (i * T + t) * 3, x + (j * T + t) * 3, normalise, eps, diff, u,
                          &norm);
                const REAL weight = c[e * T + t];
                for (int d = 0; d < 3; ++d) mine[(i * T + t) * 3 + d] += clamped(u[d] * weight);
            }
        }
    }
    reduce_into(s, scratch, threads, size);
    return 0;
}

/* g_x (zeroed) += and g_c is written; scratch: (threads - 1) zeroed [V, T, 3]. */
int edge_shift_backward(int64_t V, int64_t E, int64_t T, const REAL *x, const int64_t *dst,
                        const int64_t *src, const REAL *c, int normalise, REAL eps,
                        const REAL *g_s, REAL *g_x, REAL *g_c, int threads, REAL *scratch) {
    threads = thread_count(threads);
    const int64_t size = V * T * 3;
#pragma omp parallel num_threads(threads)
    {
        const int me = thread_index();
        REAL *mine = me == 0 ? g_x : scratch + (me - 1) * size;
        int64_t begin, end;
        thread_share(E, threads, me, &begin, &end);
        for (int64_t e = begin; e < end; ++e) {
            const int64_t i = dst[e], j = src[e];
            for (int64_t t = 0; t < T; ++t) {
                REAL diff[3], u[3], norm, g_u[3];
                direction(x + (i * T + t) * 3, x + (j * T + t) * 3, normalise, eps, diff, u,
                          &norm);
                const REAL weight = c[e * T + t];
                const REAL *gs = g_s + (i * T + t) * 3;
                REAL gc = 0;
                for (int d = 0; d < 3; ++d) {
                    const REAL value = u[d] * weight;
                    const REAL g = (value >= -CLAMP && value <= CLAMP) ? gs[d] : 0;
                    gc += g * u[d];
                    g_u[d] = g * weight;
                }
                g_c[e * T + t] = gc;
                REAL g_diff[3];
                if (!normalise) {
                    for (int d = 0; d < 3; ++d) g_diff[d] = g_u[d];
                } else if (norm > eps) {
                    /* u = diff / |diff|: du/ddiff = (I - u u^T) / |diff| */
                    REAL along = 0;
                    for (int d = 0; d < 3; ++d) along += u[d] * g_u[d];
                    for (int d = 0; d < 3; ++d) g_diff[d] = (g_u[d] - u[d] * along) / norm;
                } else {
                    for (int d = 0; d < 3; ++d) g_diff[d] = g_u[d] / eps; /* clamped length */
                }
                for (int d = 0; d < 3; ++d) {
                    mine[(i * T + t) * 3 + d] += g_diff[d];
                    mine[(j * T + t) * 3 + d] -= g_diff[d];
                }
            }
        }
    }
    reduce_into(g_x, scratch, threads, size);
    return 0;
}
