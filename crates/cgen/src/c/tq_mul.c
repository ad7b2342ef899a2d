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
  int32_t idx[6] = {0, 0, 0, 0, 0, 0};
  int32_t n = 1, i, ia = 0, ib = 0;
  for (i = 0; i < 6; ++i) n *= s->dims[i];
  for (i = 0; i < n; ++i) {
    out[i] = tq_mul_one(p, a[ia], b[ib]);
    tq_next6(idx, s->dims, s->s1, s->s2, &ia, &ib);
  }
}
