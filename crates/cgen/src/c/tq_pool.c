#include "tq_kernels.h"

/* Both pools over the window clipped to the image (padding never counts): output rows
 * [row0, row0 + rows) of every image. */
static void tq_pool_range(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows,
                          int is_max) {
  int32_t b, oy, ox, c, y, x;
  for (b = 0; b < p->batches; ++b) {
    for (oy = row0; oy < row0 + rows; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_h;
      const int32_t y0 = iy0 > 0 ? iy0 : 0;
      int32_t y1 = iy0 + p->k_h < p->in_h ? iy0 + p->k_h : p->in_h;
      if (y1 < 0) y1 = 0;
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_w;
        const int32_t x0 = ix0 > 0 ? ix0 : 0;
        int32_t x1 = ix0 + p->k_w < p->in_w ? ix0 + p->k_w : p->in_w;
        if (x1 < 0) x1 = 0;
        for (c = 0; c < p->depth; ++c) {
          int32_t acc = is_max ? -128 : 0, count = 0, v;
          for (y = y0; y < y1; ++y) {
            for (x = x0; x < x1; ++x) {
              v = in[((b * p->in_h + y) * p->in_w + x) * p->depth + c];
              if (is_max) {
                if (v > acc) acc = v;
              } else {
                acc += v;
                ++count;
              }
            }
          }
          if (!is_max) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          *out++ = (int8_t)tq_clamp(tq_clamp(acc, p->act_min, p->act_max), -128, 127);
        }
      }
    }
  }
}

static void tq_pool_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int is_max) {
  tq_pool_range(p, in, out, 0, p->out_h, is_max);
}

void tq_max_pool_s8(const tq_pool_params *p, const int8_t *in, int8_t *out) { tq_pool_s8(p, in, out, 1); }

void tq_avg_pool_s8(const tq_pool_params *p, const int8_t *in, int8_t *out) { tq_pool_s8(p, in, out, 0); }

void tq_max_pool_band_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows) {
  tq_pool_range(p, in, out, row0, rows, 1);
}

void tq_avg_pool_band_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t row0, int32_t rows) {
  tq_pool_range(p, in, out, row0, rows, 0);
}

/* Output rows [0, out_rows) of a pool without top padding whose windows lie in the `in_rows`
 * rows at `in` (one image). */
void tq_pool_rows_s8(const tq_pool_params *p, const int8_t *in, int8_t *out, int32_t in_rows, int32_t out_rows,
                     int32_t is_max) {
  tq_pool_params q = *p;
  q.batches = 1;
  q.in_h = in_rows;
  q.out_h = out_rows;
  tq_pool_s8(&q, in, out, is_max);
}
