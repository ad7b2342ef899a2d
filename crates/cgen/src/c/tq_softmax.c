#include "tq_kernels.h"

static int32_t tq_rescale_down(int32_t x, int exponent) { return tq_rdbpot(x, exponent); }

/* gemmlowp one_over_one_plus_x_for_x_in_0_1 (Newton-Raphson in Q2.29). */
static int32_t tq_one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + (int64_t)INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = (int32_t)((uint32_t)1515870810 + (uint32_t)tq_srdhm(half_denominator, -1010580540));
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t e = (int32_t)((uint32_t)(1 << 29) - (uint32_t)tq_srdhm(half_denominator, x));
    const int32_t m = tq_srdhm(x, e);
    /* Rescale from 4 to 2 integer bits: a saturating doubling twice. */
    int64_t s = (int64_t)m * 4;
    if (s > INT32_MAX) s = INT32_MAX;
    if (s < INT32_MIN) s = INT32_MIN;
    x = (int32_t)((uint32_t)x + (uint32_t)(int32_t)s);
  }
  {
    int64_t s = (int64_t)x * 2;
    if (s > INT32_MAX) s = INT32_MAX;
    if (s < INT32_MIN) s = INT32_MIN;
    return (int32_t)s;
  }
}

void tq_softmax_s8(const tq_softmax_params *p, const int8_t *in, int8_t *out) {
  int32_t r, i;
  for (r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * p->depth;
    int8_t *y = out + r * p->depth;
    int32_t max = -128, sum = 0, headroom, bits_over_unit, shifted_sum_minus_one, scale, exponent;
    for (i = 0; i < p->depth; ++i)
      if (x[i] > max) max = x[i];
    for (i = 0; i < p->depth; ++i) {
      const int32_t diff = x[i] - max;
      if (diff >= p->diff_min) sum = (int32_t)((uint32_t)sum + (uint32_t)tq_rescale_down(p->exp_table[-diff], 12));
    }
    {
      uint32_t u = (uint32_t)sum;
      headroom = 0;
      if (u == 0) {
        headroom = 32;
      } else {
        while (!(u & 0x80000000u)) {
          u <<= 1;
          ++headroom;
        }
      }
    }
    bits_over_unit = 12 - headroom;
    shifted_sum_minus_one = (int32_t)((headroom >= 32 ? 0u : ((uint32_t)sum << headroom)) - 0x80000000u);
    scale = tq_one_over_one_plus_x(shifted_sum_minus_one);
    exponent = tq_clamp(bits_over_unit + 31 - 8, 0, 31);
    for (i = 0; i < p->depth; ++i) {
      const int32_t diff = x[i] - max;
      if (diff >= p->diff_min) {
        const int32_t o = tq_rdbpot(tq_srdhm(scale, p->exp_table[-diff]), exponent);
        y[i] = (int8_t)tq_clamp(o - 128, -128, 127);
      } else {
        y[i] = -128;
      }
    }
  }
}
