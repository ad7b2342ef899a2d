#include "tq_kernels.h"

/* Advances a multi-index over dims; 0 when it wrapped around. */
static int tq_next(int32_t *index, const int32_t *dims, int32_t n) {
  int32_t k;
  for (k = n - 1; k >= 0; --k) {
    if (++index[k] < dims[k]) return 1;
    index[k] = 0;
  }
  return 0;
}

void tq_mean_s8(const tq_mean_params *p, const int8_t *in, int8_t *out) {
  const int32_t zero_point_sum = (int32_t)((uint32_t)p->in_zero_point * (uint32_t)p->count);
  int32_t kept[6] = {0, 0, 0, 0, 0, 0};
  int32_t o, k;
  for (o = 0; o < p->out_size; ++o) {
    int32_t reduced[6] = {0, 0, 0, 0, 0, 0};
    int32_t base = 0, sum = 0, value;
    for (k = 0; k < p->n_kept; ++k) base += kept[k] * p->kept_strides[k];
    do {
      int32_t offset = 0;
      for (k = 0; k < p->n_reduced; ++k) offset += reduced[k] * p->reduced_strides[k];
      sum = (int32_t)((uint32_t)sum + (uint32_t)in[base + offset]);
    } while (tq_next(reduced, p->reduced_dims, p->n_reduced));
    value = tq_mbqm((int32_t)((uint32_t)sum - (uint32_t)zero_point_sum), p->multiplier, p->shift);
    value = (int32_t)((uint32_t)value + (uint32_t)p->out_zero_point);
    out[o] = (int8_t)tq_clamp(value, -128, 127);
    tq_next(kept, p->kept_dims, p->n_kept);
  }
}
