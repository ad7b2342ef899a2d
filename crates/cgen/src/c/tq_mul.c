#include "tq_kernels.h"

static int8_t tq_mul_one(const tq_mul_params *p, int8_t x, int8_t y) {
  const int32_t prod = (p->in1_offset + x) * (p->in2_offset + y);
  const int32_t o = p->out_offset + tq_mbqm(prod, p->out_mult, p->out_shift);
  return (int8_t)tq_clamp(o, p->act_min, p->act_max);
}

void tq_mul_s8(const tq_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n) {
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = tq_mul_one(p, a[i], b[i]);
}

void tq_mul_bcast_s8(const tq_mul_params *p, const tq_broadcast *s, const int8_t *a, const int8_t *b, int8_t *out) {
  int32_t i0, i1, i2, i3, i4, i5;
  for (i0 = 0; i0 < s->dims[0]; ++i0)
    for (i1 = 0; i1 < s->dims[1]; ++i1)
      for (i2 = 0; i2 < s->dims[2]; ++i2)
        for (i3 = 0; i3 < s->dims[3]; ++i3)
          for (i4 = 0; i4 < s->dims[4]; ++i4)
            for (i5 = 0; i5 < s->dims[5]; ++i5) {
              const int32_t ia = i0 * s->s1[0] + i1 * s->s1[1] + i2 * s->s1[2] + i3 * s->s1[3] + i4 * s->s1[4] +
                                 i5 * s->s1[5];
              const int32_t ib = i0 * s->s2[0] + i1 * s->s2[1] + i2 * s->s2[2] + i3 * s->s2[3] + i4 * s->s2[4] +
                                 i5 * s->s2[5];
              *out++ = tq_mul_one(p, a[ia], b[ib]);
            }
}
