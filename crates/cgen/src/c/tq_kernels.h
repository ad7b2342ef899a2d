/* Portable int8 kernels written by tinyq: C99 mirrors of TensorFlow Lite Micro's reference
 * integer arithmetic (double rounding), with no heap and no state. Every parameter was
 * precomputed when the model was exported. */
#ifndef TQ_KERNELS_H
#define TQ_KERNELS_H

#include <stdint.h>
#include <string.h>

/* gemmlowp SaturatingRoundingDoublingHighMul. */
static inline int32_t tq_srdhm(int32_t a, int32_t b) {
  int64_t ab;
  int64_t nudge;
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1LL << 30) : (1LL - (1LL << 30));
  return (int32_t)((ab + nudge) / (1LL << 31));
}

/* gemmlowp RoundingDivideByPOT, 0 <= exponent <= 31. */
static inline int32_t tq_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1LL << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier (double rounding); the left shift wraps as in C++. */
static inline int32_t tq_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? (int)shift : 0;
  const int right = shift > 0 ? 0 : (-shift > 31 ? 31 : (int)-shift);
  return tq_rdbpot(tq_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp (double rounding). */
static inline int32_t tq_mbqm_lt1(int32_t x, int32_t multiplier, int32_t shift) {
  return tq_rdbpot(tq_srdhm(x, multiplier), -shift > 31 ? 31 : (int)-shift);
}

static inline int32_t tq_clamp(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/* TFLM's int8 output stage of the conv-like kernels: bias (wrapping), rescale, offset, clamp. */
static inline int8_t tq_output_stage(int32_t acc, const int32_t *bias, int32_t c, int32_t multiplier, int32_t shift,
                                     int32_t offset, int32_t act_min, int32_t act_max) {
  if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]);
  acc = tq_mbqm(acc, multiplier, shift);
  acc = (int32_t)((uint32_t)acc + (uint32_t)offset);
  return (int8_t)tq_clamp(acc, act_min, act_max);
}

/* Advances a 6-D row-major index over dims; the two input offsets follow their strides. */
static inline void tq_next6(int32_t *idx, const int32_t *dims, const int32_t *s1, const int32_t *s2, int32_t *o1,
                            int32_t *o2) {
  int k;
  for (k = 5; k >= 0; --k) {
    *o1 += s1[k];
    *o2 += s2[k];
    if (++idx[k] < dims[k]) return;
    *o1 -= s1[k] * dims[k];
    *o2 -= s2[k] * dims[k];
    idx[k] = 0;
  }
}

/* CONV_2D (ConvPerChannel), also grouped. Shapes NHWC, filter OHWI. */
typedef struct {
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, f_in_c;
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t *filter;
  const int32_t *bias; /* NULL: none */
  const int32_t *multiplier;
  const int32_t *shift;
} tq_conv_params;
void tq_conv_s8(const tq_conv_params *p, const int8_t *in, int8_t *out);
/* Output rows [row0, row0 + rows) of image 0 (the rows a band of a fused step needs). */
void tq_conv_rows_s8(const tq_conv_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows);
/* The same with `in` holding only input rows [in_lo, in_hi) (every row those outputs read). */
void tq_conv_rows_from_s8(const tq_conv_params *p, const int8_t *in, int32_t in_lo, int32_t in_hi, int8_t *out,
                          int32_t row0, int32_t rows);
/* A 1x1 stride-1 CONV_2D whose output has no more channels than its input, written over its
 * input: `scratch` holds one input pixel (in_c bytes). */
void tq_conv_1x1_inplace_s8(const tq_conv_params *p, int8_t *buf, int8_t *scratch);

/* DEPTHWISE_CONV_2D (DepthwiseConvPerChannel). Filter [1, k_h, k_w, out_c]. */
typedef struct {
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, depth_mult;
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t *filter;
  const int32_t *bias;
  const int32_t *multiplier;
  const int32_t *shift;
} tq_dwconv_params;
void tq_dwconv_s8(const tq_dwconv_params *p, const int8_t *in, int8_t *out);
/* Output rows [row0, row0 + rows) of image 0. */
void tq_dwconv_rows_s8(const tq_dwconv_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows);
/* Depth multiplier 1, output no larger than the input, written over its input one channel at a
 * time: `scratch` holds one input channel plane (in_h * in_w bytes). */
void tq_dwconv_inplace_s8(const tq_dwconv_params *p, int8_t *buf, int8_t *scratch);

/* FULLY_CONNECTED, per-tensor (multiplier/shift of length 1, weights_offset) or per-channel. */
typedef struct {
  int32_t batches, depth, units;
  int32_t in_offset, weights_offset, out_offset, act_min, act_max;
  int32_t per_channel;
  const int8_t *filter;
  const int32_t *bias;
  const int32_t *multiplier;
  const int32_t *shift;
} tq_fc_params;
void tq_fc_s8(const tq_fc_params *p, const int8_t *in, int8_t *out);

/* ADD / SUB (ArithmeticParams of the general quantized path) and MUL. */
typedef struct {
  int32_t in1_offset, in2_offset, out_offset, left_shift;
  int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
  int32_t act_min, act_max;
} tq_add_params;
typedef struct {
  int32_t in1_offset, in2_offset, out_offset, out_mult, out_shift, act_min, act_max;
} tq_mul_params;
/* A broadcast over up to 6 dimensions: output dims and each input's element strides (0 where
 * it is broadcast). */
typedef struct {
  int32_t dims[6];
  int32_t s1[6];
  int32_t s2[6];
} tq_broadcast;
enum { TQ_ADD = 0, TQ_SUB = 1 };
void tq_add_s8(const tq_add_params *p, int32_t sub, const int8_t *a, const int8_t *b, int8_t *out, int32_t n);
void tq_add_bcast_s8(const tq_add_params *p, int32_t sub, const tq_broadcast *s, const int8_t *a, const int8_t *b,
                     int8_t *out);
void tq_mul_s8(const tq_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n);
void tq_mul_bcast_s8(const tq_mul_params *p, const tq_broadcast *s, const int8_t *a, const int8_t *b, int8_t *out);

/* MAX_POOL_2D and AVERAGE_POOL_2D. */
typedef struct {
  int32_t batches, in_h, in_w, depth, out_h, out_w;
  int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} tq_pool_params;
void tq_max_pool_s8(const tq_pool_params *p, const int8_t *in, int8_t *out);
void tq_avg_pool_s8(const tq_pool_params *p, const int8_t *in, int8_t *out);
/* Output rows [row0, row0 + rows) of one image, written from `out` on. */
void tq_max_pool_band_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows);
void tq_avg_pool_band_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows);
/* The first out_rows rows of one image's pool with no top padding, from the in_rows rows at
 * `in` (the band a fused convolution just wrote). */
void tq_pool_rows_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t in_rows, int32_t out_rows,
                     int32_t is_max);

/* MEAN over any axes: kept and reduced axes with their input strides. */
typedef struct {
  int32_t n_kept, n_reduced;
  int32_t kept_dims[6], kept_strides[6], reduced_dims[6], reduced_strides[6];
  int32_t out_size, count, in_zero_point, out_zero_point, multiplier, shift;
} tq_mean_params;
void tq_mean_s8(const tq_mean_params *p, const int8_t *in, int8_t *out);

/* SOFTMAX (int8 in, output 1/256, -128). `exp_table[-diff]` holds the Q0.31 exponential of
 * each input difference to the row maximum down to diff_min, precomputed at export. */
typedef struct {
  int32_t rows, depth, diff_min;
  const int32_t *exp_table;
} tq_softmax_params;
void tq_softmax_s8(const tq_softmax_params *p, const int8_t *in, int8_t *out);

/* Elementwise int8 maps by table (activations, requantization); in place allowed. */
void tq_table_s8(const int8_t *table, const int8_t *in, int8_t *out, int32_t n);

/* A strided copy over up to 6 dimensions (TRANSPOSE, PAD, CONCATENATION). */
typedef struct {
  int32_t dims[6];
  int32_t src_strides[6];
  int32_t dst_strides[6];
} tq_copy_params;
void tq_copy_s8(const tq_copy_params *p, const int8_t *src, int8_t *dst);

#endif
