/*
 * Fused EGNN-style edge MLP on the CPU: the forward and backward passes of
 *
 *     pre   = R[dst] + S[src] + r * w_r + C[e]        (receiver/sender projections, radial term,
 *                                                     edge-feature term; C optional)
 *     m     = silu(W2 silu(pre) + b2)                 (the message)
 *     agg   = sum over the edges into each node of m  (scatter onto edge_dst; optional)
 *     c     = w4 . silu(W3 m + b3)                    (the coordinate head's invariant weight)
 *
 * for every edge e and every extra row t (ESTAG's frames; 1 for EGNN). Torch runs this as about
 * 30 passes over [E, T, H] tensors each way; here every row stays in registers and cache, and the
 * backward recomputes the forward of its row instead of reading saved activations (nothing of
 * size [E, T, H] is kept between the passes).
 *
 * Layout (all contiguous, row-major): R, S [V, T, H]; dst, src [E] int64; r [E, T]; C [E, H];
 * W2, W3 [H, H] as torch's Linear.weight (out, in); W2t, W3t their transposes; b2, b3, w4, w_r
 * [H]; agg [V, T, H]; c [E, T]. Compiled twice, with REAL = float and REAL = double
 * (dynforecast/ops/c_kernels.py builds them, fused_edge.py calls them). Parallel over edges with OpenMP where the
 * compiler has it; every thread accumulates node and weight gradients privately, then the private
 * copies are summed in a fixed order, so results do not depend on scheduling.
 */
#include "kernel_math.h"

#define MAX_H 256

/* Rows are processed in blocks of BLOCK (edge, frame) rows: the matrix-vector products of a
 * block interleave BLOCK independent accumulations, so they run at FMA throughput instead of
 * waiting on one dependency chain per row. */
#define BLOCK 16

/* Per-block activations, each [BLOCK, H] with row stride H. */
typedef struct {
    REAL pre[BLOCK * MAX_H], s1[BLOCK * MAX_H], a1[BLOCK * MAX_H];
    REAL z2[BLOCK * MAX_H], s2[BLOCK * MAX_H], m[BLOCK * MAX_H];
    REAL z3[BLOCK * MAX_H], s3[BLOCK * MAX_H];
    int64_t dst[BLOCK], src[BLOCK], edge[BLOCK], frame[BLOCK];
} Block;

/* Rows and outputs are taken GROUP at a time in the small matrix products below, so that the
 * accumulators of a group stay in registers and GROUP independent FMA chains overlap. */
#define GROUP 4

/* out[r, :] = bias + in[r, :] @ Wt (Wt [H, H], the transposed Linear weight) for r < n. */
static inline __attribute__((always_inline)) void block_linear(
    const int H, int n, const REAL *restrict in, const REAL *restrict Wt,
    const REAL *restrict bias, REAL *restrict out) {
    small_linear(GROUP, H, H, n, in, H, Wt, bias, out);
}

/* The forward of rows first .. first + n - 1 (flat index edge * T + frame); fills the block and
 * writes each row's coordinate weight to c (may be NULL). */
static inline __attribute__((always_inline)) void block_forward(
    const int H, int64_t first, int n, int64_t T, const REAL *R, const REAL *S,
    const int64_t *dst, const int64_t *src, const REAL *radial, const REAL *restrict w_r,
    const REAL *C, const REAL *W2t, const REAL *b2, const REAL *W3t, const REAL *b3,
    const REAL *restrict w4, Block *restrict b, REAL *c) {
    for (int r = 0; r < n; ++r) {
        const int64_t row = first + r, e = row / T, t = row - e * T;
        b->edge[r] = e;
        b->frame[r] = t;
        b->dst[r] = dst[e];
        b->src[r] = src[e];
        const REAL *restrict receiver = R + (b->dst[r] * T + t) * H;
        const REAL *restrict sender = S + (b->src[r] * T + t) * H;
        const REAL rad = radial[row];
        REAL *restrict p = b->pre + r * H;
        for (int k = 0; k < H; ++k) p[k] = receiver[k] + sender[k] + rad * w_r[k];
        if (C) {
            const REAL *restrict edge_term = C + e * H;
            for (int k = 0; k < H; ++k) p[k] += edge_term[k];
        }
    }
    const int size = n * H;
    silu_array(b->pre, b->s1, b->a1, size);
    block_linear(H, n, b->a1, W2t, b2, b->z2);
    silu_array(b->z2, b->s2, b->m, size);
    block_linear(H, n, b->m, W3t, b3, b->z3);
    sigmoid_array(b->z3, b->s3, size);
    if (c) {
        for (int r = 0; r < n; ++r) {
            REAL sum = 0;
            for (int o = 0; o < H; ++o) sum += w4[o] * b->z3[r * H + o] * b->s3[r * H + o];
            c[first + r] = sum;
        }
    }
}




/* One thread's share of the forward; `mine` is its aggregation buffer (NULL: no aggregation). */
static inline __attribute__((always_inline)) void forward_thread(
    const int H, int me, int threads, int64_t E, int64_t T, const REAL *R, const REAL *S,
    const int64_t *dst, const int64_t *src, const REAL *radial, const REAL *w_r, const REAL *C,
    const REAL *W2t, const REAL *b2, const REAL *W3t, const REAL *b3, const REAL *w4,
    REAL *mine, REAL *c, int *failed) {
    Block *b = malloc(sizeof(Block));
    if (!b) {
        *failed = 1;
        return;
    }
    int64_t begin, end;
    thread_share(E, threads, me, &begin, &end); /* edges never shared */
    for (int64_t first = begin * T; first < end * T; first += BLOCK) {
        const int n = (int)(end * T - first < BLOCK ? end * T - first : BLOCK);
        if (n == BLOCK)
            block_forward(H, first, BLOCK, T, R, S, dst, src, radial, w_r, C, W2t, b2, W3t, b3,
                          w4, b, c);
        else
            block_forward(H, first, n, T, R, S, dst, src, radial, w_r, C, W2t, b2, W3t, b3, w4,
                          b, c);
        if (!mine) continue;
        for (int r = 0; r < n; ++r) {
            REAL *restrict out = mine + (b->dst[r] * T + b->frame[r]) * H;
            const REAL *restrict message = b->m + r * H;
            for (int o = 0; o < H; ++o) out[o] += message[o];
        }
    }
    free(b);
}

/* agg (zeroed by the caller, or NULL to skip the aggregation) and c are written. `scratch` holds
 * (threads - 1) zeroed [V, T, H] buffers when agg is given and threads > 1. Returns 0, or -1 when
 * a thread could not allocate its block buffers. The hidden size 16 (ESTAG's default) gets code
 * specialised for it (the OpenMP region dispatches inside, so each thread runs the
 * specialised loop). */
int edge_mlp_forward(int64_t H, int64_t V, int64_t E, int64_t T, const REAL *R, const REAL *S,
                     const int64_t *dst, const int64_t *src, const REAL *radial, const REAL *w_r,
                     const REAL *C, const REAL *W2t, const REAL *b2, const REAL *W3t,
                     const REAL *b3, const REAL *w4, REAL *agg, REAL *c, int threads,
                     REAL *scratch) {
    threads = thread_count(threads);
    const int64_t node_size = V * T * H;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const int me = thread_index();
        REAL *mine = agg ? (me == 0 ? agg : scratch + (int64_t)(me - 1) * node_size) : NULL;
        int my_failure = 0;
        if (H == 16)
            forward_thread(16, me, threads, E, T, R, S, dst, src, radial, w_r, C, W2t, b2, W3t,
                           b3, w4, mine, c, &my_failure);
        else
            forward_thread((int)H, me, threads, E, T, R, S, dst, src, radial, w_r, C, W2t, b2,
                           W3t, b3, w4, mine, c, &my_failure);
        if (my_failure) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (agg && threads > 1) {
        for (int k = 0; k < threads - 1; ++k) {
            const REAL *restrict other = scratch + (int64_t)k * node_size;
            for (int64_t j = 0; j < node_size; ++j) agg[j] += other[j];
        }
    }
    return failed ? -1 : 0;
}

/* Weight gradients, per thread: W2, W3 [H, H]; b2, b3, w4, w_r [H]. */
#define WEIGHT_GRAD_SIZE(H) (2 * (H) * (H) + 4 * (H))


typedef struct {
    REAL g_z3[BLOCK * MAX_H], g_m[BLOCK * MAX_H], g_z2[BLOCK * MAX_H], g_pre[BLOCK * MAX_H];
} BlockGrad;

/* g_in[r, :] (+)= g_out[r, :] @ W (W [H, H], torch's Linear.weight) and g_W += g_out^T in,
 * for r < n; g_in is overwritten unless `accumulate`. */
static inline __attribute__((always_inline)) void block_linear_backward(
    const int H, int n, const REAL *restrict g_out, const REAL *restrict in,
    const REAL *restrict W, REAL *restrict g_W, REAL *restrict g_in, int accumulate) {
    small_linear_backward(GROUP, H, H, n, g_out, in, H, W, g_W, NULL, g_in, H, accumulate);
}

/* The backward of rows first .. first + n - 1 into this thread's gradient buffers. */
static inline __attribute__((always_inline)) void block_backward(
    const int H, int64_t first, int n, int64_t T, const REAL *R, const REAL *S,
    const int64_t *dst, const int64_t *src, const REAL *radial, const REAL *restrict w_r,
    const REAL *C, const REAL *W2, const REAL *W2t, const REAL *b2, const REAL *W3,
    const REAL *W3t, const REAL *b3, const REAL *restrict w4, const REAL *grad_agg,
    const REAL *grad_c, REAL *my_R, REAL *my_S, REAL *grad_radial, REAL *grad_C,
    REAL *restrict my_w, Block *restrict b, BlockGrad *restrict g) {
    REAL *g_W2 = my_w, *g_W3 = my_w + H * H, *g_b2 = my_w + 2 * H * H;
    REAL *g_b3 = g_b2 + H, *g_w4 = g_b3 + H, *g_wr = g_w4 + H;
    block_forward(H, first, n, T, R, S, dst, src, radial, w_r, C, W2t, b2, W3t, b3, w4, b, NULL);
    /* c = w4 . silu(z3) */
    for (int r = 0; r < n; ++r) {
        const REAL gc = grad_c[first + r];
        for (int o = 0; o < H; ++o) {
            const int k = r * H + o;
            g_w4[o] += gc * b->z3[k] * b->s3[k];
            g->g_z3[k] = gc * w4[o] * SILU_GRAD(b->z3[k], b->s3[k]);
            g_b3[o] += g->g_z3[k];
        }
    }
    /* m feeds z3 = W3 m + b3 and the aggregation onto dst. */
    for (int r = 0; r < n; ++r) {
        REAL *restrict target = g->g_m + r * H;
        if (grad_agg) {
            const REAL *restrict source = grad_agg + (b->dst[r] * T + b->frame[r]) * H;
            for (int k = 0; k < H; ++k) target[k] = source[k];
        } else {
            for (int k = 0; k < H; ++k) target[k] = 0;
        }
    }
    block_linear_backward(H, n, g->g_z3, b->m, W3, g_W3, g->g_m, 1);
    for (int k = 0; k < n * H; ++k) g->g_z2[k] = g->g_m[k] * SILU_GRAD(b->z2[k], b->s2[k]);
    for (int r = 0; r < n; ++r)
        for (int o = 0; o < H; ++o) g_b2[o] += g->g_z2[r * H + o];
    /* g_pre first holds the gradient of a1 = silu(pre). */
    block_linear_backward(H, n, g->g_z2, b->a1, W2, g_W2, g->g_pre, 0);
    for (int k = 0; k < n * H; ++k) g->g_pre[k] *= SILU_GRAD(b->pre[k], b->s1[k]);
    for (int r = 0; r < n; ++r) {
        const int64_t row = first + r;
        const REAL *restrict gp = g->g_pre + r * H;
        REAL g_r = 0;
        for (int k = 0; k < H; ++k) {
            g_r += gp[k] * w_r[k];
            g_wr[k] += gp[k] * radial[row];
        }
        grad_radial[row] = g_r;
        REAL *restrict out_R = my_R + (b->dst[r] * T + b->frame[r]) * H;
        REAL *restrict out_S = my_S + (b->src[r] * T + b->frame[r]) * H;
        for (int k = 0; k < H; ++k) {
            out_R[k] += gp[k];
            out_S[k] += gp[k];
        }
        if (grad_C) {
            REAL *restrict out_C = grad_C + b->edge[r] * H; /* edges are per thread */
            for (int k = 0; k < H; ++k) out_C[k] += gp[k];
        }
    }
}

/* One thread's share of the backward into its own node and weight gradient buffers. */
static inline __attribute__((always_inline)) void backward_thread(
    const int H, int me, int threads, int64_t E, int64_t T, const REAL *R, const REAL *S,
    const int64_t *dst, const int64_t *src, const REAL *radial, const REAL *w_r, const REAL *C,
    const REAL *W2, const REAL *W2t, const REAL *b2, const REAL *W3, const REAL *W3t,
    const REAL *b3, const REAL *w4, const REAL *grad_agg, const REAL *grad_c, REAL *my_R,
    REAL *my_S, REAL *grad_radial, REAL *grad_C, REAL *my_w, int *failed) {
    Block *b = malloc(sizeof(Block));
    BlockGrad *g = malloc(sizeof(BlockGrad));
    if (!b || !g) {
        free(b);
        free(g);
        *failed = 1;
        return;
    }
    int64_t begin, end;
    thread_share(E, threads, me, &begin, &end); /* edges never shared */
    for (int64_t first = begin * T; first < end * T; first += BLOCK) {
        const int n = (int)(end * T - first < BLOCK ? end * T - first : BLOCK);
        if (n == BLOCK)
            block_backward(H, first, BLOCK, T, R, S, dst, src, radial, w_r, C, W2, W2t, b2, W3,
                           W3t, b3, w4, grad_agg, grad_c, my_R, my_S, grad_radial, grad_C, my_w,
                           b, g);
        else
            block_backward(H, first, n, T, R, S, dst, src, radial, w_r, C, W2, W2t, b2, W3, W3t,
                           b3, w4, grad_agg, grad_c, my_R, my_S, grad_radial, grad_C, my_w, b,
                           g);
    }
    free(b);
    free(g);
}

/* grad_agg may be NULL (aggregation unused); grad_R, grad_S, grad_C (NULL without C) must be
 * zeroed by the caller; grad_radial and the weight gradients [W2 | W3 | b2 | b3 | w4 | w_r] are
 * written. `scratch` holds 2 (threads - 1) [V, T, H] node buffers and threads weight buffers,
 * all zeroed. Returns 0, or -1 when a thread could not allocate its block buffers. */
int edge_mlp_backward(int64_t H, int64_t V, int64_t E, int64_t T, const REAL *R, const REAL *S,
                      const int64_t *dst, const int64_t *src, const REAL *radial, const REAL *w_r,
                      const REAL *C, const REAL *W2, const REAL *W2t, const REAL *b2,
                      const REAL *W3, const REAL *W3t, const REAL *b3, const REAL *w4,
                      const REAL *grad_agg, const REAL *grad_c, REAL *grad_R, REAL *grad_S,
                      REAL *grad_radial, REAL *grad_C, REAL *grad_weights, int threads,
                      REAL *scratch) {
    threads = thread_count(threads);
    const int64_t node_size = V * T * H;
    const int64_t weight_size = WEIGHT_GRAD_SIZE(H);
    /* scratch: (threads - 1) x (grad_R, grad_S) node buffers, then threads x weight buffers. */
    REAL *weight_scratch = scratch + (int64_t)(threads - 1) * 2 * node_size;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const int me = thread_index();
        REAL *my_R = me == 0 ? grad_R : scratch + (int64_t)(me - 1) * 2 * node_size;
        REAL *my_S = me == 0 ? grad_S : my_R + node_size;
        REAL *my_w = weight_scratch + (int64_t)me * weight_size;
        int my_failure = 0;
        if (H == 16)
            backward_thread(16, me, threads, E, T, R, S, dst, src, radial, w_r, C, W2, W2t, b2,
                            W3, W3t, b3, w4, grad_agg, grad_c, my_R, my_S, grad_radial, grad_C,
                            my_w, &my_failure);
        else
            backward_thread((int)H, me, threads, E, T, R, S, dst, src, radial, w_r, C, W2, W2t,
                            b2, W3, W3t, b3, w4, grad_agg, grad_c, my_R, my_S, grad_radial,
                            grad_C, my_w, &my_failure);
        if (my_failure) {
#pragma omp atomic write
            failed = 1;
        }
    }
    for (int k = 0; k < threads - 1; ++k) {
        const REAL *restrict other_R = scratch + (int64_t)k * 2 * node_size;
        const REAL *restrict other_S = other_R + node_size;
        for (int64_t n = 0; n < node_size; ++n) {
            grad_R[n] += other_R[n];
            grad_S[n] += other_S[n];
        }
    }
    for (int k = 1; k < threads; ++k) {
        const REAL *restrict other = weight_scratch + (int64_t)k * weight_size;
        for (int64_t j = 0; j < weight_size; ++j) weight_scratch[j] += other[j];
    }
    memcpy(grad_weights, weight_scratch, sizeof(REAL) * weight_size);
    return failed ? -1 : 0;
}
