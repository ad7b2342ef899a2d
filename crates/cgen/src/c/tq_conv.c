#include "tq_kernels.h"

static int8_t tq_conv_out(const tq_conv_params *p, int32_t acc, int32_t c) {
  return tq_output_stage(acc, p->bias, c, p->multiplier[c], p->shift[c], p->out_offset, p->act_min, p->act_max);
}

/* Output rows [row0, row0 + rows) of image 0, written from `out` on. */
void tq_conv_rows_s8(const tq_conv_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows) {
  const int32_t groups = p->in_c / p->f_in_c;
  const int32_t per_group = p->out_c / groups;
  int32_t oy, ox, oc, ky, kx, ic;
  for (oy = row0; oy < row0 + rows; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_w;
      for (oc = 0; oc < p->out_c; ++oc) {
        const int32_t group = oc / per_group;
        int32_t acc = 0;
        for (ky = 0; ky < p->k_h; ++ky) {
          const int32_t iy = iy0 + p->dil_h * ky;
          if (iy < 0 || iy >= p->in_h) continue;
          for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + p->dil_w * kx;
            const int8_t *x;
            const int8_t *w;
            if (ix < 0 || ix >= p->in_w) continue;
            x = in + (iy * p->in_w + ix) * p->in_c + group * p->f_in_c;
            w = p->filter + ((oc * p->k_h + ky) * p->k_w + kx) * p->f_in_c;
            for (ic = 0; ic < p->f_in_c; ++ic) {
              acc = (int32_t)((uint32_t)acc + (uint32_t)((int32_t)w[ic] * ((int32_t)x[ic] + p->in_offset)));
            }
          }
        }
        *out++ = tq_conv_out(p, acc, oc);
      }
    }
  }
}

void tq_conv_rows_from_s8(const tq_conv_params *p, const int8_t *in, int32_t in_lo, int32_t in_hi, int8_t *out,
                          int32_t row0, int32_t rows) {
  tq_conv_params q = *p;
  q.in_h = in_hi - in_lo;
  q.pad_h = p->pad_h + in_lo;
  tq_conv_rows_s8(&q, in, out, row0, rows);
}

void tq_conv_s8(const tq_conv_params *p, const int8_t *in, int8_t *out) {
  int32_t b;
  for (b = 0; b < p->batches; ++b) {
    tq_conv_rows_s8(p, in + b * p->in_h * p->in_w * p->in_c, out + b * p->out_h * p->out_w * p->out_c, 0, p->out_h);
  }
}

void tq_conv_1x1_inplace_s8(const tq_conv_params *p, int8_t *buf, int8_t *scratch) {
  const int32_t pixels = p->batches * p->out_h * p->out_w;
  int32_t px, oc, ic;
  for (px = 0; px < pixels; ++px) {
    memcpy(scratch, buf + px * p->in_c, (size_t)p->in_c);
    for (oc = 0; oc < p->out_c; ++oc) {
      const int8_t *w = p->filter + oc * p->in_c;
      int32_t acc = 0;
      for (ic = 0; ic < p->in_c; ++ic) {
        acc = (int32_t)((uint32_t)acc + (uint32_t)((int32_t)w[ic] * ((int32_t)scratch[ic] + p->in_offset)));
      }
      buf[px * p->out_c + oc] = tq_conv_out(p, acc, oc);
    }
  }
}
