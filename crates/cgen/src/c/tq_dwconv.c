#include "tq_kernels.h"

static int8_t tq_dw_out(const tq_dwconv_params *p, int32_t acc, int32_t c) {
  if (p->bias) acc = (int32_t)((uint32_t)acc + (uint32_t)p->bias[c]);
  acc = tq_mbqm(acc, p->multiplier[c], p->shift[c]);
  acc = (int32_t)((uint32_t)acc + (uint32_t)p->out_offset);
  return (int8_t)tq_clamp(acc, p->act_min, p->act_max);
}

void tq_dwconv_s8(const tq_dwconv_params *p, const int8_t *in, int8_t *out) {
  int32_t b, oy, ox, ic, m, ky, kx;
  for (b = 0; b < p->batches; ++b) {
    for (oy = 0; oy < p->out_h; ++oy) {
      for (ox = 0; ox < p->out_w; ++ox) {
        for (ic = 0; ic < p->in_c; ++ic) {
          for (m = 0; m < p->depth_mult; ++m) {
            const int32_t oc = m + ic * p->depth_mult;
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int32_t acc = 0;
            for (ky = 0; ky < p->k_h; ++ky) {
              const int32_t iy = iy0 + p->dil_h * ky;
              for (kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = ix0 + p->dil_w * kx;
                if (ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h) {
                  const int32_t x = in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic];
                  const int32_t w = p->filter[(ky * p->k_w + kx) * p->out_c + oc];
                  acc = (int32_t)((uint32_t)acc + (uint32_t)(w * (x + p->in_offset)));
                }
              }
            }
            out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = tq_dw_out(p, acc, oc);
          }
        }
      }
    }
  }
}

void tq_dwconv_inplace_s8(const tq_dwconv_params *p, int8_t *buf, int8_t *scratch) {
  int32_t b, c, y, x, oy, ox, ky, kx;
  for (b = 0; b < p->batches; ++b) {
    int8_t *in = buf + b * p->in_h * p->in_w * p->in_c;
    int8_t *out = buf + b * p->out_h * p->out_w * p->out_c;
    for (c = 0; c < p->in_c; ++c) {
      for (y = 0; y < p->in_h; ++y) {
        for (x = 0; x < p->in_w; ++x) scratch[y * p->in_w + x] = in[(y * p->in_w + x) * p->in_c + c];
      }
      for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
          const int32_t iy0 = oy * p->stride_h - p->pad_h;
          const int32_t ix0 = ox * p->stride_w - p->pad_w;
          int32_t acc = 0;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = iy0 + p->dil_h * ky;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int32_t ix = ix0 + p->dil_w * kx;
              if (ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h) {
                const int32_t v = scratch[iy * p->in_w + ix];
                const int32_t w = p->filter[(ky * p->k_w + kx) * p->out_c + c];
                acc = (int32_t)((uint32_t)acc + (uint32_t)(w * (v + p->in_offset)));
              }
            }
          }
          out[(oy * p->out_w + ox) * p->out_c + c] = tq_dw_out(p, acc, c);
        }
      }
    }
  }
}
