#include "tq_kernels.h"

void tq_copy_s8(const tq_copy_params *p, const int8_t *src, int8_t *dst) {
  int32_t i0, i1, i2, i3, i4, i5;
  for (i0 = 0; i0 < p->dims[0]; ++i0)
    for (i1 = 0; i1 < p->dims[1]; ++i1)
      for (i2 = 0; i2 < p->dims[2]; ++i2)
        for (i3 = 0; i3 < p->dims[3]; ++i3)
          for (i4 = 0; i4 < p->dims[4]; ++i4) {
            const int8_t *s = src + i0 * p->src_strides[0] + i1 * p->src_strides[1] + i2 * p->src_strides[2] +
                              i3 * p->src_strides[3] + i4 * p->src_strides[4];
            int8_t *d = dst + i0 * p->dst_strides[0] + i1 * p->dst_strides[1] + i2 * p->dst_strides[2] +
                        i3 * p->dst_strides[3] + i4 * p->dst_strides[4];
            if (p->src_strides[5] == 1 && p->dst_strides[5] == 1) {
              memcpy(d, s, (size_t)p->dims[5]);
            } else {
              for (i5 = 0; i5 < p->dims[5]; ++i5) d[i5 * p->dst_strides[5]] = s[i5 * p->src_strides[5]];
            }
          }
}
