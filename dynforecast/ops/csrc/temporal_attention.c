/*
 * Fused ESTAG temporal layer (ETM; Wu et al., NeurIPS 2023, Sec. 3.3) on the CPU, forward and
 * backward, one node's T frames at a time (nodes never interact in this layer):
 *
 *     u     = SiLU(W1 h + b1)                        [T, 3H], split into u_q, u_k, u_v
 *     q, k, v = SiLU(Wq u_q + bq), SiLU(Wk u_k + bk), SiLU(Wv u_v + bv)     [T, H] each
 *     alpha = softmax_s(q(t) . k(s)), s <= t under the forward mask         [T, T]
 *     c(s)  = wc . SiLU(Wc v(s) + bc)                                       [T]
 *     h'(t) = h(t) + sum_s alpha(t, s) v(s)
 *     x'(t) = x(t) + sum_s alpha(t, s) c(s) (x(s) - x(t))
 *
 * (dynforecast.models.estag.TemporalLayer is the same function in torch ops.) Everything of a
 * node fits in L1, so one pass over h and x replaces about 40 torch ops each way; the backward
 * recomputes the node's forward instead of reading saved activations.
 *
 * Layout: h [V, T, H], x [V, T, 3], contiguous. Forward parameters, one buffer:
 * W1t [H, 3H], Wqt, Wkt, Wvt, Wct [H, H] (transposed Linear weights), b1 [3H], bq, bk, bv, bc,
 * wc [H]. Backward parameters: W1 [3H, H], Wq, Wk, Wv, Wc [H, H] (torch's Linear.weight).
 * Gradients of the parameters, in torch's order: W1 [3H, H], b1 [3H], Wq, bq, Wk, bk, Wv, bv,
 * Wc, bc, wc.
 */
#include "kernel_math.h"

#define MAX_H 64
#define MAX_T 64
/* Rows (frames) per register-blocked group in the small matrix products: 5 divides ESTAG's
 * T = 10, so no frame falls into the slower remainder loop. */
#define ROWS 5
/* Frame counts are padded to a multiple of this in the transposed [H, T] copies of k and v, so
 * that the T x T products (scores and their gradients) run on whole vector tiles. */
#define FRAME_PAD 16

static inline int padded_frames(int T) { return (T + FRAME_PAD - 1) / FRAME_PAD * FRAME_PAD; }

typedef struct {
    REAL z1[MAX_T * 3 * MAX_H], s1[MAX_T * 3 * MAX_H], u[MAX_T * 3 * MAX_H];
    REAL zq[MAX_T * MAX_H], sq[MAX_T * MAX_H], q[MAX_T * MAX_H];
    REAL zk[MAX_T * MAX_H], sk[MAX_T * MAX_H], k[MAX_T * MAX_H];
    REAL zv[MAX_T * MAX_H], sv[MAX_T * MAX_H], v[MAX_T * MAX_H];
    REAL zc[MAX_T * MAX_H], sc[MAX_T * MAX_H];
    REAL alpha[MAX_T * MAX_T], scratch[MAX_T * MAX_T], c[MAX_T], wsum[MAX_T];
    REAL scores[MAX_T * MAX_T];    /* [T, padded T] */
    REAL transposed[MAX_H * MAX_T]; /* k, then v, as [H, padded T] */
    /* backward */
    REAL g_u[MAX_T * 3 * MAX_H], g_q[MAX_T * MAX_H], g_k[MAX_T * MAX_H], g_v[MAX_T * MAX_H];
    REAL g_z[MAX_T * MAX_H], g_alpha[MAX_T * MAX_T], g_c[MAX_T];
} Workspace;

typedef struct {
    const REAL *W1t, *Wqt, *Wkt, *Wvt, *Wct, *b1, *bq, *bk, *bv, *bc, *wc;
} Forward;

typedef struct {
    const REAL *W1, *Wq, *Wk, *Wv, *Wc;
} Backward;

typedef struct {
    REAL *W1, *b1, *Wq, *bq, *Wk, *bk, *Wv, *bv, *Wc, *bc, *wc;
} Gradients;

static Forward forward_params(const REAL *p, int H) {
    Forward f;
    f.W1t = p;
    f.Wqt = f.W1t + 3 * H * H;
    f.Wkt = f.Wqt + H * H;
    f.Wvt = f.Wkt + H * H;
    f.Wct = f.Wvt + H * H;
    f.b1 = f.Wct + H * H;
    f.bq = f.b1 + 3 * H;
    f.bk = f.bq + H;
    f.bv = f.bk + H;
    f.bc = f.bv + H;
    f.wc = f.bc + H;
    return f;
}

static Backward backward_params(const REAL *p, int H) {
    Backward b;
    b.W1 = p;
    b.Wq = b.W1 + 3 * H * H;
    b.Wk = b.Wq + H * H;
    b.Wv = b.Wk + H * H;
    b.Wc = b.Wv + H * H;
    return b;
}

static Gradients gradient_params(REAL *p, int H) {
    Gradients g;
    g.W1 = p;
    g.b1 = g.W1 + 3 * H * H;
    g.Wq = g.b1 + 3 * H;
    g.bq = g.Wq + H * H;
    g.Wk = g.bq + H;
    g.bk = g.Wk + H * H;
    g.Wv = g.bk + H;
    g.bv = g.Wv + H * H;
    g.Wc = g.bv + H;
    g.bc = g.Wc + H * H;
    g.wc = g.bc + H;
    return g;
}

/* Number of parameters (and of their gradients). */
static inline int64_t parameter_count(int64_t H) { return 3 * H * H + 3 * H + 4 * (H * H + H) + H; }

/* out[t, :] = b + in[t, :] @ Wt for t < T (in: row stride ld_in; Wt [n_in, n_out]). */
static inline __attribute__((always_inline)) void linear(
    int n_in, int n_out, int T, const REAL *restrict in, int ld_in, const REAL *restrict Wt,
    const REAL *restrict b, REAL *restrict out) {
    small_linear(ROWS, n_in, n_out, T, in, ld_in, Wt, b, out);
}

/* Its backward: g_in[t, :] += g_out[t, :] @ W, g_W += g_out^T in, g_b += sum_t g_out (W is
 * torch's [n_out, n_in]; in and g_in have row strides ld_in and ld_g). */
static inline __attribute__((always_inline)) void linear_backward(
    int n_in, int n_out, int T, const REAL *restrict g_out, const REAL *restrict in, int ld_in,
    const REAL *restrict W, REAL *restrict g_W, REAL *restrict g_b, REAL *restrict g_in,
    int ld_g) {
    small_linear_backward(ROWS, n_in, n_out, T, g_out, in, ld_in, W, g_W, g_b, g_in, ld_g, 1);
}


/* The node's forward into the workspace; writes h' and x' where given. */
static inline __attribute__((always_inline)) void node_forward(
    const int H, int T, int masked, const REAL *restrict h, const REAL *restrict x,
    const Forward *f, Workspace *restrict w, REAL *restrict h_out, REAL *restrict x_out) {
    const int H3 = 3 * H;
    linear(H, H3, T, h, H, f->W1t, f->b1, w->z1);
    silu_array(w->z1, w->s1, w->u, T * H3);
    linear(H, H, T, w->u, H3, f->Wqt, f->bq, w->zq);
    silu_array(w->zq, w->sq, w->q, T * H);
    linear(H, H, T, w->u + H, H3, f->Wkt, f->bk, w->zk);
    silu_array(w->zk, w->sk, w->k, T * H);
    linear(H, H, T, w->u + 2 * H, H3, f->Wvt, f->bv, w->zv);
    silu_array(w->zv, w->sv, w->v, T * H);
    /* alpha(t, s) over the allowed s (s <= t when masked), exactly 0 elsewhere; the scores
     * q k^T come from one small product with k transposed */
    const int padded = padded_frames(T);
    small_transpose(T, H, w->k, H, w->transposed, padded);
    small_matmul(ROWS, H, padded, T, w->q, H, 1, w->transposed, padded, NULL, w->scores, padded,
                 0);
    for (int t = 0; t < T; ++t) {
        const int last = masked ? t : T - 1;
        REAL *restrict scores = w->scores + t * padded;
        REAL top = scores[0];
        for (int s = 1; s <= last; ++s) top = scores[s] > top ? scores[s] : top;
        for (int s = 0; s <= last; ++s) scores[s] -= top;
        exp_array(scores, w->alpha + t * T, last + 1);
        REAL total = 0;
        for (int s = 0; s <= last; ++s) total += w->alpha[t * T + s];
        const REAL inverse = (REAL)1 / total;
        for (int s = 0; s <= last; ++s) w->alpha[t * T + s] *= inverse;
        for (int s = last + 1; s < T; ++s) w->alpha[t * T + s] = 0;
    }
    linear(H, H, T, w->v, H, f->Wct, f->bc, w->zc);
    sigmoid_array(w->zc, w->sc, T * H);
    for (int s = 0; s < T; ++s) {
        REAL sum = 0;
        for (int o = 0; o < H; ++o) sum += f->wc[o] * w->zc[s * H + o] * w->sc[s * H + o];
        w->c[s] = sum;
    }
    for (int t = 0; t < T; ++t) {
        REAL total = 0;
        for (int s = 0; s < T; ++s) total += w->alpha[t * T + s] * w->c[s];
        w->wsum[t] = total;
    }
    if (h_out) {
        memcpy(h_out, h, sizeof(REAL) * T * H);
        small_matmul(ROWS, T, H, T, w->alpha, T, 1, w->v, H, NULL, h_out, H, 1);
    }
    if (x_out) {
        /* as sum_s w (x(s) - x(t)): the s = t term is exactly 0, so a frame that attends only
         * to itself (frame 0 under the forward mask) does not move at all */
        for (int t = 0; t < T; ++t) {
            REAL shift[3] = {0, 0, 0};
            for (int s = 0; s < T; ++s) {
                const REAL weight = w->alpha[t * T + s] * w->c[s];
                for (int d = 0; d < 3; ++d) shift[d] += weight * (x[s * 3 + d] - x[t * 3 + d]);
            }
            for (int d = 0; d < 3; ++d) x_out[t * 3 + d] = x[t * 3 + d] + shift[d];
        }
    }
}

static inline __attribute__((always_inline)) void node_backward(
    const int H, int T, int masked, const REAL *restrict h, const REAL *restrict x,
    const Forward *f, const Backward *b, const REAL *restrict g_hout,
    const REAL *restrict g_xout, REAL *restrict g_h, REAL *restrict g_x, const Gradients *g,
    Workspace *restrict w) {
    const int H3 = 3 * H;
    node_forward(H, T, masked, h, x, f, w, NULL, NULL);
    /* residuals */
    for (int i = 0; i < T * H; ++i) g_h[i] = g_hout[i];
    for (int i = 0; i < T * 3; ++i) g_x[i] = g_xout[i];
    /* x'(t) = x(t) + sum_s alpha(t,s) c(s) x(s) - wsum(t) x(t) */
    for (int t = 0; t < T; ++t) {
        const REAL *restrict gx = g_xout + t * 3;
        for (int s = 0; s < T; ++s) {
            REAL dot = 0;
            for (int d = 0; d < 3; ++d) dot += gx[d] * (x[s * 3 + d] - x[t * 3 + d]);
            const REAL weight = w->alpha[t * T + s] * w->c[s];
            for (int d = 0; d < 3; ++d) g_x[s * 3 + d] += weight * gx[d];
            w->g_alpha[t * T + s] = dot * w->c[s];
            w->scratch[t * T + s] = dot * w->alpha[t * T + s]; /* d/dc(s), summed below */
        }
        for (int d = 0; d < 3; ++d) g_x[t * 3 + d] -= w->wsum[t] * gx[d];
    }
    for (int s = 0; s < T; ++s) {
        REAL total = 0;
        for (int t = 0; t < T; ++t) total += w->scratch[t * T + s];
        w->g_c[s] = total;
    }
    /* h'(t) = h(t) + sum_s alpha(t,s) v(s) */
    const int padded = padded_frames(T);
    small_matmul(ROWS, T, H, T, w->alpha, 1, T, g_hout, H, NULL, w->g_v, H, 0); /* alpha^T g_h' */
    small_transpose(T, H, w->v, H, w->transposed, padded);
    small_matmul(ROWS, H, padded, T, g_hout, H, 1, w->transposed, padded, NULL, w->scores,
                 padded, 0); /* g_h' v^T */
    for (int t = 0; t < T; ++t)
        for (int s = 0; s < T; ++s) w->g_alpha[t * T + s] += w->scores[t * padded + s];
    /* c(s) = wc . SiLU(zc(s)), zc = Wc v + bc */
    for (int s = 0; s < T; ++s) {
        for (int o = 0; o < H; ++o) {
            const int i = s * H + o;
            g->wc[o] += w->g_c[s] * w->zc[i] * w->sc[i];
            w->g_z[i] = w->g_c[s] * f->wc[o] * SILU_GRAD(w->zc[i], w->sc[i]);
        }
    }
    linear_backward(H, H, T, w->g_z, w->v, H, b->Wc, g->Wc, g->bc, w->g_v, H);
    /* softmax: g_score = alpha (g_alpha - sum_s alpha g_alpha); masked entries have alpha 0 */
    for (int t = 0; t < T; ++t) {
        REAL dot = 0;
        for (int s = 0; s < T; ++s) dot += w->alpha[t * T + s] * w->g_alpha[t * T + s];
        for (int s = 0; s < T; ++s)
            w->scratch[t * T + s] = w->alpha[t * T + s] * (w->g_alpha[t * T + s] - dot);
    }
    /* score(t, s) = q(t) . k(s) */
    small_matmul(ROWS, T, H, T, w->scratch, T, 1, w->k, H, NULL, w->g_q, H, 0);
    small_matmul(ROWS, T, H, T, w->scratch, 1, T, w->q, H, NULL, w->g_k, H, 0); /* (dscores)^T q */
    /* q, k, v = SiLU(W u_. + b) */
    for (int i = 0; i < T * H3; ++i) w->g_u[i] = 0;
    for (int i = 0; i < T * H; ++i) w->g_z[i] = w->g_q[i] * SILU_GRAD(w->zq[i], w->sq[i]);
    linear_backward(H, H, T, w->g_z, w->u, H3, b->Wq, g->Wq, g->bq, w->g_u, H3);
    for (int i = 0; i < T * H; ++i) w->g_z[i] = w->g_k[i] * SILU_GRAD(w->zk[i], w->sk[i]);
    linear_backward(H, H, T, w->g_z, w->u + H, H3, b->Wk, g->Wk, g->bk, w->g_u + H, H3);
    for (int i = 0; i < T * H; ++i) w->g_z[i] = w->g_v[i] * SILU_GRAD(w->zv[i], w->sv[i]);
    linear_backward(H, H, T, w->g_z, w->u + 2 * H, H3, b->Wv, g->Wv, g->bv, w->g_u + 2 * H, H3);
    /* u = SiLU(W1 h + b1); g_u becomes the gradient of z1 in place */
    for (int i = 0; i < T * H3; ++i) w->g_u[i] *= SILU_GRAD(w->z1[i], w->s1[i]);
    linear_backward(H, H3, T, w->g_u, h, H, b->W1, g->W1, g->b1, g_h, H);
}

static inline __attribute__((always_inline)) void forward_thread(
    const int H, int me, int threads, int64_t V, int T, int masked, const REAL *h,
    const REAL *x, const REAL *params, REAL *h_out, REAL *x_out, int *failed) {
    Workspace *w = malloc(sizeof(Workspace));
    if (!w) {
        *failed = 1;
        return;
    }
    const Forward f = forward_params(params, H);
    int64_t begin, end;
    thread_share(V, threads, me, &begin, &end);
    for (int64_t node = begin; node < end; ++node) {
        const int64_t at = node * T;
        node_forward(H, T, masked, h + at * H, x + at * 3, &f, w, h_out + at * H,
                     x_out + at * 3);
    }
    free(w);
}

/* h' and x' are written. Returns 0, or -1 when a thread could not allocate its workspace. */
int temporal_forward(int64_t H, int64_t V, int64_t T, int masked, const REAL *h, const REAL *x,
                     const REAL *params, REAL *h_out, REAL *x_out, int threads) {
    threads = thread_count(threads);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        int my_failure = 0;
        if (H == 16)
            forward_thread(16, thread_index(), threads, V, (int)T, masked, h, x, params, h_out,
                           x_out, &my_failure);
        else
            forward_thread((int)H, thread_index(), threads, V, (int)T, masked, h, x, params,
                           h_out, x_out, &my_failure);
        if (my_failure) {
#pragma omp atomic write
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

static inline __attribute__((always_inline)) void backward_thread(
    const int H, int me, int threads, int64_t V, int T, int masked, const REAL *h,
    const REAL *x, const REAL *params, const REAL *weights, const REAL *g_hout,
    const REAL *g_xout, REAL *g_h, REAL *g_x, REAL *my_gradients, int *failed) {
    Workspace *w = malloc(sizeof(Workspace));
    if (!w) {
        *failed = 1;
        return;
    }
    const Forward f = forward_params(params, H);
    const Backward b = backward_params(weights, H);
    const Gradients g = gradient_params(my_gradients, H);
    int64_t begin, end;
    thread_share(V, threads, me, &begin, &end);
    for (int64_t node = begin; node < end; ++node) {
        const int64_t at = node * T;
        node_backward(H, T, masked, h + at * H, x + at * 3, &f, &b, g_hout + at * H,
                      g_xout + at * 3, g_h + at * H, g_x + at * 3, &g, w);
    }
    free(w);
}

/* g_h, g_x and the parameter gradients are written; `scratch` holds threads zeroed parameter
 * gradient buffers. Returns 0, or -1 when a thread could not allocate its workspace. */
int temporal_backward(int64_t H, int64_t V, int64_t T, int masked, const REAL *h, const REAL *x,
                      const REAL *params, const REAL *weights, const REAL *g_hout,
                      const REAL *g_xout, REAL *g_h, REAL *g_x, REAL *g_params, int threads,
                      REAL *scratch) {
    threads = thread_count(threads);
    const int64_t size = parameter_count(H);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const int me = thread_index();
        int my_failure = 0;
        if (H == 16)
            backward_thread(16, me, threads, V, (int)T, masked, h, x, params, weights, g_hout,
                            g_xout, g_h, g_x, scratch + me * size, &my_failure);
        else
            backward_thread((int)H, me, threads, V, (int)T, masked, h, x, params, weights,
                            g_hout, g_xout, g_h, g_x, scratch + me * size, &my_failure);
        if (my_failure) {
#pragma omp atomic write
            failed = 1;
        }
    }
    for (int k = 1; k < threads; ++k)
        for (int64_t j = 0; j < size; ++j) scratch[j] += scratch[k * size + j];
    memcpy(g_params, scratch, sizeof(REAL) * size);
    return failed ? -1 : 0;
}
