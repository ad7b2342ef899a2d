#include "tq_kernels.h"

static int8_t tq_add_one(const tq_add_params *p, int32_t sub, int8_t x, int8_t y) {
  const int32_t a = tq_mbqm_lt1((p->in1_offset + x) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
  const int32_t b = tq_mbqm_lt1((p->in2_offset + y) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
  const int32_t raw = (int32_t)(sub ? (uint32_t)a - (uint32_t)b : (uint32_t)a + (uint32_t)b);
  const int32_t o = tq_mbqm_lt1(raw, p->out_mult, p->out_shift) + p->out_offset;
  return (int8_t)tq_clamp(tq_clamp(o, p->act_min, p->act_max), -128, 127);
}

void tq_add_s8(const tq_add_params *p, int32_t sub, const int8_t *a, const int8_t *b, int8_t *out, int32_t n) {
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = tq_add_one(p, sub, a[i], b[i]);
}

void tq_add_bcast_s8(const tq_add_params *p, int32_t sub, const tq_broadcast *s, const int8_t *a, const int8_t *b,
                     int8_t *out) {
  int32_t idx[6] = {0, 0, 0, 0, 0, 0};
  int32_t n = 1, i, ia = 0, ib = 0;
  for (i = 0; i < 6; ++i) n *= s->dims[i];
  for (i = 0; i < n; ++i) {
    out[i] = tq_add_one(p, sub, a[ia], b[ib]);
    tq_next6(idx, s->dims, s->s1, s->s2, &ia, &ib);
  }
}
