#include "tq_kernels.h"

void tq_fc_s8(const tq_fc_params *p, const int8_t *in, int8_t *out) {
  int32_t b, u, d;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *x = in + b * p->depth;
    for (u = 0; u < p->units; ++u) {
      const int8_t *w = p->filter + u * p->depth;
      const int32_t k = p->per_channel ? u : 0;
      int32_t acc = 0;
      for (d = 0; d < p->depth; ++d) {
        acc = (int32_t)((uint32_t)acc +
                        (uint32_t)(((int32_t)w[d] + p->weights_offset) * ((int32_t)x[d] + p->in_offset)));
      }
      out[b * p->units + u] =
          tq_output_stage(acc, p->bias, u, p->multiplier[k], p->shift[k], p->out_offset, p->act_min, p->act_max);
    }
  }
}
