#include "tq_kernels.h"

static int8_t tq_dw_out(const tq_dwconv_params *p, int32_t acc, int32_t c) {
  return tq_output_stage(acc, p->bias, c, p->multiplier[c], p->shift[c], p->out_offset, p->act_min, p->act_max);
}

/* The sum of one output of a depthwise convolution over `plane` (element (y, x) at
 * (y * in_w + x) * stride + c), skipping out-of-image taps. */
static int32_t tq_dw_sum(const tq_dwconv_params *p, const int8_t *plane, int32_t stride, int32_t c, int32_t oc,
                         int32_t oy, int32_t ox) {
  const int32_t iy0 = oy * p->stride_h - p->pad_h;
  const int32_t ix0 = ox * p->stride_w - p->pad_w;
  int32_t acc = 0, ky, kx;
  for (ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = iy0 + p->dil_h * ky;
    for (kx = 0; kx < p->k_w; ++kx) {
      const int32_t ix = ix0 + p->dil_w * kx;
      if (ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h) {
        const int32_t v = plane[(iy * p->in_w + ix) * stride + c];
        const int32_t w = p->filter[(ky * p->k_w + kx) * p->out_c + oc];
        acc = (int32_t)((uint32_t)acc + (uint32_t)(w * (v + p->in_offset)));
      }
    }
  }
  return acc;
}

/* Output rows [row0, row0 + rows) of image 0, written from `out` on. */
void tq_dwconv_rows_s8(const tq_dwconv_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows) {
  int32_t oy, ox, ic, m;
  for (oy = row0; oy < row0 + rows; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      for (ic = 0; ic < p->in_c; ++ic) {
        for (m = 0; m < p->depth_mult; ++m) {
          const int32_t oc = m + ic * p->depth_mult;
          const int32_t acc = tq_dw_sum(p, in, p->in_c, ic, oc, oy, ox);
          out[((oy - row0) * p->out_w + ox) * p->out_c + oc] = tq_dw_out(p, acc, oc);
        }
      }
    }
  }
}

void tq_dwconv_s8(const tq_dwconv_params *p, const int8_t *in, int8_t *out) {
  int32_t b;
  for (b = 0; b < p->batches; ++b) {
    tq_dwconv_rows_s8(p, in + b * p->in_h * p->in_w * p->in_c, out + b * p->out_h * p->out_w * p->out_c, 0, p->out_h);
  }
}

void tq_dwconv_inplace_s8(const tq_dwconv_params *p, int8_t *buf, int8_t *scratch) {
  int32_t b, c, y, x, oy, ox;
  for (b = 0; b < p->batches; ++b) {
    int8_t *in = buf + b * p->in_h * p->in_w * p->in_c;
    int8_t *out = buf + b * p->out_h * p->out_w * p->out_c;
    for (c = 0; c < p->in_c; ++c) {
      for (y = 0; y < p->in_h; ++y) {
        for (x = 0; x < p->in_w; ++x) scratch[y * p->in_w + x] = in[(y * p->in_w + x) * p->in_c + c];
      }
      for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
          out[(oy * p->out_w + ox) * p->out_c + c] = tq_dw_out(p, tq_dw_sum(p, scratch, 1, 0, c, oy, ox), c);
        }
      }
    }
  }
}
