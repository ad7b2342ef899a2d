/* tinyq's pointwise (1x1, no padding) convolution for the CMSIS-NN build, written by tinyq.
 *
 * CMSIS-NN's 1x1 routines add the input offset's share, input_offset * sum(w[c]), to every
 * output channel's accumulator; on a core with the DSP extension they sum each weight row again
 * on every call (and, with a stride, on every output row). tinyq folds that share into the bias
 * when it exports the model (exact int32 arithmetic, wrapping as the device's does), so this
 * kernel only multiplies and accumulates: acc = bias'[c] + sum(x * w[c]). The output stage is
 * CMSIS-NN's own (arm_nn_requantize), so the outputs equal its 1x1 routines' bit for bit.
 *
 * The weights are int16, laid out at export for the dual 16-bit multiply-accumulate (SMLAD):
 * output channels go in blocks of two (the last alone if their count is odd), a block's rows
 * taken four columns at a time, each row's four as two words {w[k], w[k + 2]}, {w[k + 1],
 * w[k + 3]}: the lanes SXTB16 gives of four int8 inputs and of the same rotated by 8 bits. The
 * last cols % 4 columns follow, one int16 per row of the block. Two pixels by two channels go
 * at a time, so each widened input word feeds two channels and each weight word two pixels. */
#include "tq_cmsis.h"
#include "arm_nnsupportfunctions.h"

#if defined(ARM_MATH_DSP)
#define PW_LO(v) SXTB16(v)
#define PW_HI(v) SXTB16_RORn(v, 8)
#define PW_MAC(x, w, acc) SMLAD(x, w, acc)
#else
/* The same lanes and sums in plain C, for cores without the DSP extension. */
__STATIC_FORCEINLINE int32_t pw_pack(int32_t lo, int32_t hi) {
  return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
#define PW_LO(v) pw_pack((int8_t)(v), (int8_t)((v) >> 16))
#define PW_HI(v) pw_pack((int8_t)((v) >> 8), (int8_t)((v) >> 24))
#define PW_MAC(x, w, acc) ((acc) + (int16_t)(x) * (int16_t)(w) + ((x) >> 16) * ((w) >> 16))
#endif

/* CMSIS-NN's output stage: requantize, add the output offset, clamp. */
__STATIC_FORCEINLINE int8_t pw_out(int32_t acc, int32_t multiplier, int32_t shift, int32_t offset, int32_t lo, int32_t hi) {
  acc = arm_nn_requantize(acc, multiplier, shift) + offset;
  acc = MAX(acc, lo);
  return (int8_t)MIN(acc, hi);
}

typedef struct {
  const int16_t *w;
  const int32_t *bias, *multiplier, *shift;
  int32_t cols, rows, offset, lo, hi;
} pw_args;

/* Four columns of two pixels (x, x + step) by two channels (the next 8 weights at w). */
#define PW_STEP()                                                                                                      \
  do {                                                                                                                 \
    const int32_t xa = arm_nn_read_s8x4_ia(&x), xb = arm_nn_read_s8x4(x + xo);                                        \
    const int32_t xa0 = PW_LO(xa), xa1 = PW_HI(xa), xb0 = PW_LO(xb), xb1 = PW_HI(xb);                                \
    int32_t v = arm_nn_read_q15x2_ia(&w);                                                                              \
    a00 = PW_MAC(xa0, v, a00);                                                                                         \
    a10 = PW_MAC(xb0, v, a10);                                                                                         \
    v = arm_nn_read_q15x2_ia(&w);                                                                                      \
    a00 = PW_MAC(xa1, v, a00);                                                                                         \
    a10 = PW_MAC(xb1, v, a10);                                                                                         \
    v = arm_nn_read_q15x2_ia(&w);                                                                                      \
    a01 = PW_MAC(xa0, v, a01);                                                                                         \
    a11 = PW_MAC(xb0, v, a11);                                                                                         \
    v = arm_nn_read_q15x2_ia(&w);                                                                                      \
    a01 = PW_MAC(xa1, v, a01);                                                                                         \
    a11 = PW_MAC(xb1, v, a11);                                                                                         \
  } while (0)

/* Output channels c, c + 1 of the pixel pairs at in, in + step; in + 2 step, in + 3 step; ... */
static void pw_two_by_two(const pw_args *a, const int8_t *in, int32_t step, int32_t pairs, int32_t c, int8_t *out) {
  const int32_t cols = a->cols, rows = a->rows, xo = step - 4;
  const int32_t m0 = a->multiplier[c], m1 = a->multiplier[c + 1], s0 = a->shift[c], s1 = a->shift[c + 1];
  const int32_t b0 = a->bias[c], b1 = a->bias[c + 1];
  int32_t p;
  for (p = 0; p < pairs; ++p) {
    const int8_t *x = in;
    const int16_t *w = a->w + c * cols;
    int32_t a00 = b0, a01 = b1, a10 = b0, a11 = b1, k;
    for (k = cols >> 4; k > 0; --k) {
      PW_STEP();
      PW_STEP();
      PW_STEP();
      PW_STEP();
    }
    for (k = (cols >> 2) & 3; k > 0; --k) {
      PW_STEP();
    }
    for (k = cols & 3; k > 0; --k, ++x, w += 2) {
      a00 += x[0] * w[0];
      a01 += x[0] * w[1];
      a10 += x[step] * w[0];
      a11 += x[step] * w[1];
    }
    out[0] = pw_out(a00, m0, s0, a->offset, a->lo, a->hi);
    out[1] = pw_out(a01, m1, s1, a->offset, a->lo, a->hi);
    out[rows] = pw_out(a10, m0, s0, a->offset, a->lo, a->hi);
    out[rows + 1] = pw_out(a11, m1, s1, a->offset, a->lo, a->hi);
    in += 2 * step;
    out += 2 * rows;
  }
}

/* Four columns of one pixel (x) by two channels (the next 8 weights at w). */
#define PW_STEP1()                                                                                                     \
  do {                                                                                                                 \
    const int32_t xv = arm_nn_read_s8x4_ia(&x), x0 = PW_LO(xv), x1 = PW_HI(xv);                                      \
    int32_t v = arm_nn_read_q15x2_ia(&w);                                                                              \
    a0 = PW_MAC(x0, v, a0);                                                                                            \
    v = arm_nn_read_q15x2_ia(&w);                                                                                      \
    a0 = PW_MAC(x1, v, a0);                                                                                            \
    v = arm_nn_read_q15x2_ia(&w);                                                                                      \
    a1 = PW_MAC(x0, v, a1);                                                                                            \
    v = arm_nn_read_q15x2_ia(&w);                                                                                      \
    a1 = PW_MAC(x1, v, a1);                                                                                            \
  } while (0)

/* Output channels c, c + 1 of the pixel at x (the last of an odd count). */
static void pw_one_by_two(const pw_args *a, const int8_t *x, int32_t c, int8_t *out) {
  const int32_t cols = a->cols;
  const int16_t *w = a->w + c * cols;
  int32_t a0 = a->bias[c], a1 = a->bias[c + 1], k;
  for (k = cols >> 4; k > 0; --k) {
    PW_STEP1();
    PW_STEP1();
    PW_STEP1();
    PW_STEP1();
  }
  for (k = (cols >> 2) & 3; k > 0; --k) {
    PW_STEP1();
  }
  for (k = cols & 3; k > 0; --k, ++x, w += 2) {
    a0 += x[0] * w[0];
    a1 += x[0] * w[1];
  }
  out[0] = pw_out(a0, a->multiplier[c], a->shift[c], a->offset, a->lo, a->hi);
  out[1] = pw_out(a1, a->multiplier[c + 1], a->shift[c + 1], a->offset, a->lo, a->hi);
}

/* Output channel c, the last of an odd count (a block of one row), of the pixel at x. */
static int8_t pw_one_by_one(const pw_args *a, const int8_t *x, int32_t c) {
  const int16_t *w = a->w + c * a->cols;
  int32_t acc = a->bias[c], k;
  for (k = a->cols >> 2; k > 0; --k) {
    const int32_t xv = arm_nn_read_s8x4_ia(&x);
    const int32_t v0 = arm_nn_read_q15x2_ia(&w), v1 = arm_nn_read_q15x2_ia(&w);
    acc = PW_MAC(PW_HI(xv), v1, PW_MAC(PW_LO(xv), v0, acc));
  }
  for (k = a->cols & 3; k > 0; --k) {
    acc += *x++ * *w++;
  }
  return pw_out(acc, a->multiplier[c], a->shift[c], a->offset, a->lo, a->hi);
}

/* `pixels` pixels `step` bytes apart, written contiguously from `out`. */
static void pw_pixels(const pw_args *a, const int8_t *in, int32_t step, int32_t pixels, int8_t *out) {
  const int32_t even = a->rows & ~1;
  int32_t c, p;
  for (c = 0; c < even; c += 2) {
    pw_two_by_two(a, in, step, pixels >> 1, c, out + c);
    if (pixels & 1) {
      pw_one_by_two(a, in + (pixels - 1) * step, c, out + (pixels - 1) * a->rows + c);
    }
  }
  if (a->rows & 1) {
    for (p = 0; p < pixels; ++p) {
      out[p * a->rows + even] = pw_one_by_one(a, in + p * step, even);
    }
  }
}

arm_cmsis_nn_status tq_pointwise_s8(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                                    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id,
                                    const int8_t *in, const cmsis_nn_dims *fd, const int8_t *filter,
                                    const cmsis_nn_dims *bd, const int32_t *bias, const cmsis_nn_dims *od,
                                    int8_t *out) {
  pw_args a;
  int32_t n, r;
  (void)ctx;
  (void)fd;
  (void)bd;
  a.w = (const int16_t *)(const void *)filter;
  a.bias = bias;
  a.multiplier = q->multiplier;
  a.shift = q->shift;
  a.cols = id->c;
  a.rows = od->c;
  a.offset = cp->output_offset;
  a.lo = cp->activation.min;
  a.hi = cp->activation.max;
  if (cp->stride.w == 1 && cp->stride.h == 1) {
    /* Every pixel of every image, in one run. */
    pw_pixels(&a, in, id->c, id->n * id->h * id->w, out);
    return ARM_CMSIS_NN_SUCCESS;
  }
  for (n = 0; n < od->n; ++n) {
    const int8_t *image = in + n * id->h * id->w * id->c;
    for (r = 0; r < od->h; ++r) {
      pw_pixels(&a, image + r * cp->stride.h * id->w * id->c, cp->stride.w * id->c, od->w, out);
      out += od->w * od->c;
    }
  }
  return ARM_CMSIS_NN_SUCCESS;
}

void tq_pointwise_rows_from(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                            const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                            int32_t in_lo, const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd,
                            const int32_t *bias, const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows) {
  /* No padding and a 1x1 kernel: the band reads input rows row0 * stride_h, ... one per row. */
  cmsis_nn_dims i = *id, o = *od;
  const int32_t lo = row0 * cp->stride.h;
  i.n = 1;
  i.h = (rows - 1) * cp->stride.h + 1;
  o.n = 1;
  o.h = rows;
  (void)tq_pointwise_s8(ctx, cp, q, &i, in + (lo - in_lo) * id->w * id->c, fd, filter, bd, bias, &o, out);
}

void tq_pointwise_rows(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                       const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                       const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd, const int32_t *bias,
                       const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows) {
  tq_pointwise_rows_from(ctx, cp, q, id, in, 0, fd, filter, bd, bias, od, out, row0, rows);
}
