// Matrix products for the wasm backend that read their operands where they lie in TensorFlow.js's
// heap. XNNPACK, behind tfjs's BatchMatMul, packs its second operand before every product; for a
// weight gradient X^T dY that operand is a fresh [rows, out] activation gradient, and packing it
// costs more than the product. Here each output tile is accumulated in registers from contiguous
// rows of both operands, so nothing is packed or transposed.
//
// Built by di/wasm/build.sh (clang --target=wasm32 -msimd128); the module imports tfjs's shared
// memory, has no data, no stack and no globals of its own, and writes only the output it is given.
// Every function takes a range of output rows, so two threads can split one product.

#include <wasm_simd128.h>

// Rows of the reduction per pass: a pass's slices of both operands stay in the L2 cache.
#define CHUNK 256

// C[i][j] = sum_t X[t][i] * D[t][j] for i in [i0, i1): X is [T, I], D is [T, J], C is [I, J].
void vp_matmul_tn(const float *X, const float *D, float *C, int T, int I, int J, int i0, int i1) {
  for (int t0 = 0; t0 < T; t0 += CHUNK) {
    const int t1 = t0 + CHUNK < T ? t0 + CHUNK : T;
    const int first = t0 == 0;
    int i = i0;
    for (; i + 4 <= i1; i += 4) {
      int j = 0;
      for (; j + 8 <= J; j += 8) {
        float *c = C + i * J + j;
        v128_t c00, c01, c10, c11, c20, c21, c30, c31;
        if (first) {
          c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = wasm_f32x4_splat(0.f);
        } else {
          c00 = wasm_v128_load(c), c01 = wasm_v128_load(c + 4);
          c10 = wasm_v128_load(c + J), c11 = wasm_v128_load(c + J + 4);
          c20 = wasm_v128_load(c + 2 * J), c21 = wasm_v128_load(c + 2 * J + 4);
          c30 = wasm_v128_load(c + 3 * J), c31 = wasm_v128_load(c + 3 * J + 4);
        }
        const float *x = X + t0 * I + i;
        const float *d = D + t0 * J + j;
        for (int t = t0; t < t1; t++, x += I, d += J) {
          const v128_t d0 = wasm_v128_load(d), d1 = wasm_v128_load(d + 4);
          const v128_t x0 = wasm_f32x4_splat(x[0]), x1 = wasm_f32x4_splat(x[1]);
          const v128_t x2 = wasm_f32x4_splat(x[2]), x3 = wasm_f32x4_splat(x[3]);
          c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(x0, d0)), c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(x0, d1));
          c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(x1, d0)), c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(x1, d1));
          c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(x2, d0)), c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(x2, d1));
          c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(x3, d0)), c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(x3, d1));
        }
        wasm_v128_store(c, c00), wasm_v128_store(c + 4, c01);
        wasm_v128_store(c + J, c10), wasm_v128_store(c + J + 4, c11);
        wasm_v128_store(c + 2 * J, c20), wasm_v128_store(c + 2 * J + 4, c21);
        wasm_v128_store(c + 3 * J, c30), wasm_v128_store(c + 3 * J + 4, c31);
      }
      for (; j < J; j++) {
        for (int r = i; r < i + 4; r++) {
          float s = first ? 0.f : C[r * J + j];
          for (int t = t0; t < t1; t++) s += X[t * I + r] * D[t * J + j];
          C[r * J + j] = s;
        }
      }
    }
    for (; i < i1; i++) {
      for (int j = 0; j < J; j++) {
        float s = first ? 0.f : C[i * J + j];
        for (int t = t0; t < t1; t++) s += X[t * I + i] * D[t * J + j];
        C[i * J + j] = s;
      }
    }
  }
}

// out[j] = sum_t D[t][j] for j in [j0, j1): the column sums of D [T, J] (a bias's gradient).
void vp_column_sums(const float *D, float *out, int T, int J, int j0, int j1) {
  int j = j0;
  for (; j + 4 <= j1; j += 4) {
    v128_t s = wasm_f32x4_splat(0.f);
    const float *d = D + j;
    for (int t = 0; t < T; t++, d += J) s = wasm_f32x4_add(s, wasm_v128_load(d));
    wasm_v128_store(out + j, s);
  }
  for (; j < j1; j++) {
    float s = 0.f;
    for (int t = 0; t < T; t++) s += D[t * J + j];
    out[j] = s;
  }
}

// ---- GELU, exact form: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) ----
// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, float32's resolution near 1),
// exp by range reduction to r in [-ln2/2, ln2/2] and its Taylor polynomial to r^7 (relative
// error below 1e-8 before rounding), then 2^n assembled in the exponent bits.

static inline v128_t splat(float x) { return wasm_f32x4_splat(x); }

// e^v for v <= 0, and 0 below -87 (where e^v leaves float32's normal range).
static inline v128_t exp_nonpositive(v128_t input) {
  const v128_t v = wasm_f32x4_max(input, splat(-87.f));
  const v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(v, splat(1.44269504088896341f)));
  // r = v - n ln2, with ln2 split in two so that n ln2 is exact to float32.
  v128_t r = wasm_f32x4_sub(v, wasm_f32x4_mul(n, splat(0.693359375f)));
  r = wasm_f32x4_add(r, wasm_f32x4_mul(n, splat(2.12194440e-4f)));
  v128_t p = splat(1.f / 5040.f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.f / 720.f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.f / 120.f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.f / 24.f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.f / 6.f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(0.5f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.f));
  const v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_v128_andnot(wasm_f32x4_mul(p, scale), wasm_f32x4_lt(input, splat(-87.f)));
}

// 1 + erf(x / sqrt 2), given x and g = e^(-x^2 / 2).
static inline v128_t one_plus_erf(v128_t x, v128_t g) {
  const v128_t z = wasm_f32x4_mul(wasm_f32x4_abs(x), splat(0.70710678118654752f));
  const v128_t t = wasm_f32x4_div(splat(1.f), wasm_f32x4_add(splat(1.f), wasm_f32x4_mul(z, splat(0.3275911f))));
  v128_t p = splat(1.061405429f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(-1.453152027f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(1.421413741f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(-0.284496736f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(0.254829592f));
  const v128_t tail = wasm_f32x4_mul(wasm_f32x4_mul(p, t), g); // 1 - erf(|x| / sqrt 2)
  // x >= 0: 2 - tail; x < 0: tail.
  return wasm_v128_bitselect(tail, wasm_f32x4_sub(splat(2.f), tail), wasm_f32x4_lt(x, splat(0.f)));
}

static inline v128_t half_square_neg(v128_t x) { return wasm_f32x4_mul(wasm_f32x4_mul(x, x), splat(-0.5f)); }

static float gelu1(float x) {
  const v128_t v = wasm_f32x4_splat(x);
  const v128_t y = wasm_f32x4_mul(wasm_f32x4_mul(v, splat(0.5f)), one_plus_erf(v, exp_nonpositive(half_square_neg(v))));
  return wasm_f32x4_extract_lane(y, 0);
}

// Y[k] = GELU(X[k]) for k in [k0, k1).
void vp_gelu(const float *X, float *Y, int k0, int k1) {
  int k = k0;
  for (; k + 4 <= k1; k += 4) {
    const v128_t x = wasm_v128_load(X + k);
    wasm_v128_store(Y + k, wasm_f32x4_mul(wasm_f32x4_mul(x, splat(0.5f)), one_plus_erf(x, exp_nonpositive(half_square_neg(x)))));
  }
  for (; k < k1; k++) Y[k] = gelu1(X[k]);
}

static inline v128_t gelu_slope(v128_t x) {
  const v128_t g = exp_nonpositive(half_square_neg(x));
  // Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x e^(-x^2 / 2) / sqrt(2 pi)
  return wasm_f32x4_add(wasm_f32x4_mul(one_plus_erf(x, g), splat(0.5f)), wasm_f32x4_mul(x, wasm_f32x4_mul(g, splat(0.39894228040143268f))));
}

// DX[k] = DY[k] GELU'(X[k]) for k in [k0, k1).
void vp_gelu_grad(const float *X, const float *DY, float *DX, int k0, int k1) {
  int k = k0;
  for (; k + 4 <= k1; k += 4) wasm_v128_store(DX + k, wasm_f32x4_mul(wasm_v128_load(DY + k), gelu_slope(wasm_v128_load(X + k))));
  for (; k < k1; k++) DX[k] = DY[k] * wasm_f32x4_extract_lane(gelu_slope(wasm_f32x4_splat(X[k])), 0);
}

// ---- Multi-head self-attention on timm's fused qkv rows ----
// QKV is [B * T, 3W] (each row q, k, v, each H heads of D). The first Q tokens of each sequence
// are the queries (Q = T, or 1 for the class token alone): O is [B * Q, W], P is [B, H, Q, T]
// (the softmax weights, kept for the backward pass). Work is split by sequence b. Nothing here
// uses a stack: every intermediate row lives in P or in the output.

static inline float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

static inline float dot(const float *a, const float *b, int n) {
  v128_t acc = splat(0.f);
  int d = 0;
  for (; d + 4 <= n; d += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(a + d), wasm_v128_load(b + d)));
  float s = hsum(acc);
  for (; d < n; d++) s += a[d] * b[d];
  return s;
}

// y[d] += a x[d] for d < n.
static inline void axpy(float a, const float *x, float *y, int n) {
  const v128_t va = splat(a);
  int d = 0;
  for (; d + 4 <= n; d += 4) wasm_v128_store(y + d, wasm_f32x4_add(wasm_v128_load(y + d), wasm_f32x4_mul(va, wasm_v128_load(x + d))));
  for (; d < n; d++) y[d] += a * x[d];
}

static inline float exp1(float v) { return wasm_f32x4_extract_lane(exp_nonpositive(wasm_f32x4_splat(v)), 0); }

static inline float fmaxf_(float a, float b) { return b > a ? b : a; }

// The four dot products q . k0, q . k1, q . k2, q . k3 over n, as one vector (lane c: q . kc):
// four accumulators, then a transposing pairwise reduction (no lane extraction per product).
static inline v128_t dot4(const float *q, const float *k0, const float *k1, const float *k2, const float *k3, int n) {
  v128_t a0 = splat(0.f), a1 = splat(0.f), a2 = splat(0.f), a3 = splat(0.f);
  int d = 0;
  for (; d + 4 <= n; d += 4) {
    const v128_t x = wasm_v128_load(q + d);
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(x, wasm_v128_load(k0 + d)));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(x, wasm_v128_load(k1 + d)));
    a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(x, wasm_v128_load(k2 + d)));
    a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(x, wasm_v128_load(k3 + d)));
  }
  const v128_t s01 = wasm_f32x4_add(wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7));
  const v128_t s23 = wasm_f32x4_add(wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7));
  v128_t r = wasm_f32x4_add(wasm_i32x4_shuffle(s01, s23, 0, 1, 4, 5), wasm_i32x4_shuffle(s01, s23, 2, 3, 6, 7));
  if (d < n) {
    float t0 = 0.f, t1 = 0.f, t2 = 0.f, t3 = 0.f;
    for (; d < n; d++) t0 += q[d] * k0[d], t1 += q[d] * k1[d], t2 += q[d] * k2[d], t3 += q[d] * k3[d];
    r = wasm_f32x4_add(r, wasm_f32x4_make(t0, t1, t2, t3));
  }
  return r;
}

// S[j] = scale q . (row j's part at offset) for j < T, rows W3 apart: four keys at a time.
static inline void scores(const float *q, const float *rows, int W3, int T, int D, float scale, float *S) {
  const v128_t s = splat(scale);
  int j = 0;
  for (; j + 4 <= T; j += 4) {
    const float *k = rows + j * W3;
    wasm_v128_store(S + j, wasm_f32x4_mul(dot4(q, k, k + W3, k + 2 * W3, k + 3 * W3, D), s));
  }
  for (; j < T; j++) S[j] = dot(q, rows + j * W3, D) * scale;
}

// o[d] = sum_j p[j] v_j[d] for d < D (v_j rows W3 apart), sixteen columns at a time in registers.
static inline void weighted_rows(const float *p, const float *v, int W3, int T, int D, float *o) {
  int d = 0;
  for (; d + 16 <= D; d += 16) {
    v128_t o0 = splat(0.f), o1 = splat(0.f), o2 = splat(0.f), o3 = splat(0.f);
    const float *row = v + d;
    for (int j = 0; j < T; j++, row += W3) {
      const v128_t w = splat(p[j]);
      o0 = wasm_f32x4_add(o0, wasm_f32x4_mul(w, wasm_v128_load(row)));
      o1 = wasm_f32x4_add(o1, wasm_f32x4_mul(w, wasm_v128_load(row + 4)));
      o2 = wasm_f32x4_add(o2, wasm_f32x4_mul(w, wasm_v128_load(row + 8)));
      o3 = wasm_f32x4_add(o3, wasm_f32x4_mul(w, wasm_v128_load(row + 12)));
    }
    wasm_v128_store(o + d, o0), wasm_v128_store(o + d + 4, o1), wasm_v128_store(o + d + 8, o2), wasm_v128_store(o + d + 12, o3);
  }
  for (; d + 4 <= D; d += 4) {
    v128_t acc = splat(0.f);
    for (int j = 0; j < T; j++) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(splat(p[j]), wasm_v128_load(v + j * W3 + d)));
    wasm_v128_store(o + d, acc);
  }
  for (; d < D; d++) {
    float acc = 0.f;
    for (int j = 0; j < T; j++) acc += p[j] * v[j * W3 + d];
    o[d] = acc;
  }
}

void vp_attention(const float *QKV, float *O, float *P, int T, int H, int D, int Q, int b0, int b1) {
  const int W = H * D, W3 = 3 * W;
  const float scale = 1.f / __builtin_sqrtf((float)D);
  for (int b = b0; b < b1; b++) {
    for (int h = 0; h < H; h++) {
      const float *base = QKV + b * T * W3 + h * D;
      for (int i = 0; i < Q; i++) {
        float *p = P + ((b * H + h) * Q + i) * T;
        scores(base + i * W3, base + W, W3, T, D, scale, p);
        v128_t top4 = splat(-__builtin_inff());
        int j = 0;
        for (; j + 4 <= T; j += 4) top4 = wasm_f32x4_pmax(top4, wasm_v128_load(p + j));
        const float top01 = fmaxf_(wasm_f32x4_extract_lane(top4, 0), wasm_f32x4_extract_lane(top4, 1));
        const float top23 = fmaxf_(wasm_f32x4_extract_lane(top4, 2), wasm_f32x4_extract_lane(top4, 3));
        float top = fmaxf_(top01, top23);
        for (; j < T; j++) top = fmaxf_(top, p[j]);
        const v128_t m = splat(top);
        v128_t sum4 = splat(0.f);
        for (j = 0; j + 4 <= T; j += 4) {
          const v128_t e = exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(p + j), m));
          wasm_v128_store(p + j, e);
          sum4 = wasm_f32x4_add(sum4, e);
        }
        float sum = hsum(sum4);
        for (; j < T; j++) {
          const float e = exp1(p[j] - top);
          p[j] = e;
          sum += e;
        }
        const v128_t inverse = splat(1.f / sum);
        for (j = 0; j + 4 <= T; j += 4) wasm_v128_store(p + j, wasm_f32x4_mul(wasm_v128_load(p + j), inverse));
        for (; j < T; j++) p[j] *= wasm_f32x4_extract_lane(inverse, 0);
        weighted_rows(p, base + 2 * W, W3, T, D, O + (b * Q + i) * W + h * D);
      }
    }
  }
}

// DQKV = the gradient of vp_attention's O for DY [B * Q, W], given its QKV and P; S is scratch of
// P's size (written, never read by the caller).
// dP_ij = dO_i . v_j; dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij'); dq_i = scale sum_j dS_ij k_j;
// dk_j = scale sum_i dS_ij q_i; dv_j = sum_i P_ij dO_i.
void vp_attention_grad(const float *QKV, const float *P, const float *DY, float *DQKV, float *S, int T, int H, int D, int Q, int b0, int b1) {
  const int W = H * D, W3 = 3 * W;
  const float scale = 1.f / __builtin_sqrtf((float)D);
  for (int b = b0; b < b1; b++) {
    for (int h = 0; h < H; h++) {
      const float *base = QKV + b * T * W3 + h * D;
      float *dbase = DQKV + b * T * W3 + h * D;
      for (int j = 0; j < T; j++) {
        for (int d = 0; d < D; d++) dbase[j * W3 + W + d] = dbase[j * W3 + 2 * W + d] = 0.f;
        if (j >= Q) for (int d = 0; d < D; d++) dbase[j * W3 + d] = 0.f;
      }
      for (int i = 0; i < Q; i++) {
        const float *dO = DY + (b * Q + i) * W + h * D;
        const float *p = P + ((b * H + h) * Q + i) * T;
        float *dS = S + ((b * H + h) * Q + i) * T;
        scores(dO, base + 2 * W, W3, T, D, 1.f, dS); // dP_i
        v128_t r4 = splat(0.f);
        int j = 0;
        for (; j + 4 <= T; j += 4) r4 = wasm_f32x4_add(r4, wasm_f32x4_mul(wasm_v128_load(p + j), wasm_v128_load(dS + j)));
        float r = hsum(r4);
        for (; j < T; j++) r += p[j] * dS[j];
        const v128_t rv = splat(r), sv = splat(scale);
        for (j = 0; j + 4 <= T; j += 4) wasm_v128_store(dS + j, wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(p + j), wasm_f32x4_sub(wasm_v128_load(dS + j), rv)), sv));
        for (; j < T; j++) dS[j] = p[j] * (dS[j] - r) * scale;
        weighted_rows(dS, base + W, W3, T, D, dbase + i * W3); // dq_i
        for (j = 0; j < T; j++) {
          axpy(dS[j], base + i * W3, dbase + j * W3 + W, D); // dk_j
          axpy(p[j], dO, dbase + j * W3 + 2 * W, D);         // dv_j
        }
      }
    }
  }
}

// ---- LayerNorm's parameter-free half over the last axis: xhat = (x - mean) rstd ----
// X, XHAT are [rows, C]; RSTD is [rows] = 1 / sqrt(variance + eps), kept for the backward pass.
// eps comes as its float32 bits (every argument crosses to the helper thread as an int32).

static inline float row_sum(const float *x, int n) {
  v128_t acc = splat(0.f);
  int c = 0;
  for (; c + 4 <= n; c += 4) acc = wasm_f32x4_add(acc, wasm_v128_load(x + c));
  float s = hsum(acc);
  for (; c < n; c++) s += x[c];
  return s;
}

// 1 / sqrt(variance + eps) of a row whose mean is given.
static inline float row_rstd(const float *x, int C, float mean, float eps) {
  const v128_t m = splat(mean);
  v128_t acc = splat(0.f);
  int c = 0;
  for (; c + 4 <= C; c += 4) {
    const v128_t d = wasm_f32x4_sub(wasm_v128_load(x + c), m);
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(d, d));
  }
  float sq = hsum(acc);
  for (; c < C; c++) sq += (x[c] - mean) * (x[c] - mean);
  return 1.f / __builtin_sqrtf(sq / (float)C + eps);
}

void vp_normalize(const float *X, float *XHAT, float *RSTD, int C, int eps_bits, int r0, int r1) {
  const float eps = __builtin_bit_cast(float, eps_bits);
  for (int r = r0; r < r1; r++) {
    const float *x = X + r * C;
    float *y = XHAT + r * C;
    const float mean = row_sum(x, C) / (float)C;
    const float rstd = row_rstd(x, C, mean, eps);
    RSTD[r] = rstd;
    const v128_t m = splat(mean), s = splat(rstd);
    int c = 0;
    for (; c + 4 <= C; c += 4) wasm_v128_store(y + c, wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + c), m), s));
    for (; c < C; c++) y[c] = (x[c] - mean) * rstd;
  }
}

// DX = rstd (dy - mean(dy) - xhat mean(dy xhat)) per row.
void vp_normalize_grad(const float *XHAT, const float *RSTD, const float *DY, float *DX, int C, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const float *xh = XHAT + r * C;
    const float *dy = DY + r * C;
    float *dx = DX + r * C;
    const float meanGradient = row_sum(dy, C) / (float)C;
    const float meanProjection = dot(dy, xh, C) / (float)C;
    const v128_t mg = splat(meanGradient), mp = splat(meanProjection), s = splat(RSTD[r]);
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t g = wasm_f32x4_sub(wasm_f32x4_sub(wasm_v128_load(dy + c), mg), wasm_f32x4_mul(wasm_v128_load(xh + c), mp));
      wasm_v128_store(dx + c, wasm_f32x4_mul(g, s));
    }
    for (; c < C; c++) dx[c] = (dy[c] - meanGradient - xh[c] * meanProjection) * RSTD[r];
  }
}

// ---- LayerNorm with its scale and shift: y = xhat w + b ----
// The same row statistics as vp_normalize, the same element-wise operations as the composition
// (xhat, then times w, then plus b, each rounded to float32), so y has the composition's bits. The
// backward pass reads x and recomputes a row's statistics rather than keeping xhat.

void vp_layer_norm(const float *X, const float *W, const float *B, float *Y, int C, int eps_bits, int r0, int r1) {
  const float eps = __builtin_bit_cast(float, eps_bits);
  for (int r = r0; r < r1; r++) {
    const float *x = X + r * C;
    float *y = Y + r * C;
    const float mean = row_sum(x, C) / (float)C;
    const float rstd = row_rstd(x, C, mean, eps);
    const v128_t m = splat(mean), s = splat(rstd);
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t xhat = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + c), m), s);
      wasm_v128_store(y + c, wasm_f32x4_add(wasm_f32x4_mul(xhat, wasm_v128_load(W + c)), wasm_v128_load(B + c)));
    }
    for (; c < C; c++) {
      const float xhat = (x[c] - mean) * rstd;
      const float scaled = xhat * W[c];
      y[c] = scaled + B[c];
    }
  }
}

// DX for y = xhat w + b: with g = dy w, rstd (g - mean(g) - xhat mean(g xhat)) per row.
void vp_layer_norm_grad(const float *X, const float *W, const float *DY, float *DX, int C, int eps_bits, int r0, int r1) {
  const float eps = __builtin_bit_cast(float, eps_bits);
  for (int r = r0; r < r1; r++) {
    const float *x = X + r * C;
    const float *dy = DY + r * C;
    float *dx = DX + r * C;
    const float mean = row_sum(x, C) / (float)C;
    const float rstd = row_rstd(x, C, mean, eps);
    const v128_t m = splat(mean), s = splat(rstd);
    v128_t sumG = splat(0.f), sumGX = splat(0.f);
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t g = wasm_f32x4_mul(wasm_v128_load(dy + c), wasm_v128_load(W + c));
      const v128_t xhat = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + c), m), s);
      sumG = wasm_f32x4_add(sumG, g);
      sumGX = wasm_f32x4_add(sumGX, wasm_f32x4_mul(g, xhat));
    }
    float totalG = hsum(sumG), totalGX = hsum(sumGX);
    for (; c < C; c++) {
      const float g = dy[c] * W[c], xhat = (x[c] - mean) * rstd;
      totalG += g;
      totalGX += g * xhat;
    }
    const float meanGradient = totalG / (float)C, meanProjection = totalGX / (float)C;
    const v128_t mg = splat(meanGradient), mp = splat(meanProjection);
    for (c = 0; c + 4 <= C; c += 4) {
      const v128_t g = wasm_f32x4_mul(wasm_v128_load(dy + c), wasm_v128_load(W + c));
      const v128_t xhat = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + c), m), s);
      wasm_v128_store(dx + c, wasm_f32x4_mul(wasm_f32x4_sub(wasm_f32x4_sub(g, mg), wasm_f32x4_mul(xhat, mp)), s));
    }
    for (; c < C; c++) {
      const float g = dy[c] * W[c], xhat = (x[c] - mean) * rstd;
      dx[c] = (g - meanGradient - xhat * meanProjection) * rstd;
    }
  }
}

// DW[c] = sum over the T rows of dy xhat, for c in [c0, c1) (the scale's gradient; rows in order).
// Every row's statistics are recomputed whole, so this runs on one thread, over all columns.
void vp_layer_norm_weight_grad(const float *X, const float *DY, float *DW, int T, int C, int eps_bits, int c0, int c1) {
  const float eps = __builtin_bit_cast(float, eps_bits);
  for (int c = c0; c < c1; c++) DW[c] = 0.f;
  for (int r = 0; r < T; r++) {
    const float *x = X + r * C;
    const float *dy = DY + r * C;
    const float mean = row_sum(x, C) / (float)C;
    const float rstd = row_rstd(x, C, mean, eps);
    const v128_t m = splat(mean), s = splat(rstd);
    int c = c0;
    for (; c + 4 <= c1; c += 4) {
      const v128_t xhat = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + c), m), s);
      wasm_v128_store(DW + c, wasm_f32x4_add(wasm_v128_load(DW + c), wasm_f32x4_mul(wasm_v128_load(dy + c), xhat)));
    }
    for (; c < c1; c++) DW[c] += dy[c] * ((x[c] - mean) * rstd);
  }
}

// ---- Optimizer updates, one pass per variable ----
// Each runs exactly the float32 operations, in the order, of stages/trainer/optimizer.ts's
// composition of tfjs ops (every product and sum rounded to float32 on its own: wasm has no
// fused multiply-add), so the results are the same bits. Scalars come as float32 bits.

static inline float from_bits(int bits) { return __builtin_bit_cast(float, bits); }

// torch.optim.SGD: g = grad (+ wd p); buf = momentum buf + g (when momentum > 0); p = p - lr g.
void vp_sgd(const float *P, const float *G, const float *B, float *PO, float *BO, int lr_bits, int momentum_bits, int decay_bits, int k0, int k1) {
  const float lr = from_bits(lr_bits), momentum = from_bits(momentum_bits), decay = from_bits(decay_bits);
  for (int k = k0; k < k1; k++) {
    float g = G[k];
    if (decay != 0.f) g = g + P[k] * decay;
    if (momentum > 0.f) {
      const float b = B[k] * momentum + g;
      BO[k] = b;
      g = b;
    }
    PO[k] = P[k] - g * lr;
  }
}

// torch.optim.AdamW: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p = p keep - (m / (sqrt(v) / sqrt(c2) + eps)) (lr / c1), with keep = 1 - lr wd (1: no decay).
void vp_adamw(const float *P, const float *G, const float *M, const float *V, float *PO, float *MO, float *VO, int b1_bits, int one_minus_b1_bits, int b2_bits, int one_minus_b2_bits,
              int keep_bits, int sqrt_c2_bits, int eps_bits, int step_bits, int k0, int k1) {
  const float b1 = from_bits(b1_bits), c1 = from_bits(one_minus_b1_bits), b2 = from_bits(b2_bits), c2 = from_bits(one_minus_b2_bits);
  const float keep = from_bits(keep_bits), sqrt_c2 = from_bits(sqrt_c2_bits), eps = from_bits(eps_bits), step = from_bits(step_bits);
  const int decays = keep != 1.f;
  for (int k = k0; k < k1; k++) {
    const float g = G[k];
    const float m = M[k] * b1 + g * c1;
    const float v = V[k] * b2 + (g * g) * c2;
    MO[k] = m;
    VO[k] = v;
    const float p = decays ? P[k] * keep : P[k];
    PO[k] = p - (m / (__builtin_sqrtf(v) / sqrt_c2 + eps)) * step;
  }
}

// An exponential moving average: T m + S (1 - m) (DINO's teacher).
void vp_ema(const float *T, const float *S, float *TO, int m_bits, int one_minus_m_bits, int k0, int k1) {
  const float m = from_bits(m_bits), c = from_bits(one_minus_m_bits);
  for (int k = k0; k < k1; k++) TO[k] = T[k] * m + S[k] * c;
}
