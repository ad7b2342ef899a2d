/* In-place variants of CMSIS-NN's convolutions, written by tinyq: the output overwrites an input
 * no later step reads, and only a few rows of it are kept aside in `scratch` meanwhile. Each
 * output is computed by CMSIS-NN from exactly the taps the whole-tensor call would use. */
#include "tq_kernels.h"
#include "tq_cmsis.h"

/* Copies n bytes forward (dst below src when they overlap), a word at a time when both are
 * word aligned: the C library's small memcpy goes byte by byte. */
static void tq_copy_forward(int8_t *dst, const int8_t *src, int32_t n) {
  if ((((uintptr_t)dst | (uintptr_t)src) & 3u) == 0) {
    uint32_t *d = (uint32_t *)(void *)dst;
    const uint32_t *s = (const uint32_t *)(const void *)src;
    int32_t words = n >> 2;
    while (words >= 4) {
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
      d[3] = s[3];
      d += 4;
      s += 4;
      words -= 4;
    }
    while (words-- > 0) *d++ = *s++;
    dst = (int8_t *)d;
    src = (const int8_t *)s;
    n &= 3;
  }
  while (n-- > 0) *dst++ = *src++;
}

/* A 1x1, stride-1 CONV_2D with out_c <= in_c, `chunk` pixels at a time: their input is copied
 * to scratch (chunk * in_c bytes) and their output written at their output position, which ends
 * before the next chunk's input starts. */
void tq_cmsis_conv_1x1_inplace(const cmsis_nn_conv_params *cp, const cmsis_nn_per_channel_quant_params *q,
                               int32_t pixels, int32_t chunk, int32_t in_c, int32_t out_c, const int8_t *filter,
                               const int32_t *bias, int8_t *buf, int8_t *scratch) {
  cmsis_nn_context ctx = {NULL, 0};
  const cmsis_nn_dims fd = {1, 1, 1, in_c}, bd = {1, 1, 1, out_c};
  int32_t at;
  for (at = 0; at < pixels; at += chunk) {
    const int32_t n = pixels - at < chunk ? pixels - at : chunk;
    const cmsis_nn_dims id = {1, 1, n, in_c}, od = {1, 1, n, out_c};
    tq_copy_forward(scratch, buf + at * in_c, n * in_c);
    (void)arm_convolve_wrapper_s8(&ctx, cp, q, &id, scratch, &fd, filter, &bd, bias, &od, buf + at * out_c);
  }
}

/* A stride-1 depthwise convolution with depth multiplier 1 whose output has the input's height
 * and width, `band` output rows at a time: scratch holds the input rows the band reads (at most
 * band + k_h - 1 rows, those already overwritten kept from the previous band) followed by
 * CMSIS-NN's own buffer (dw_buf bytes). */
void tq_cmsis_dwconv_inplace(const cmsis_nn_dw_conv_params *cp, const cmsis_nn_per_channel_quant_params *q,
                             int32_t h, int32_t w, int32_t c, int32_t k_h, int32_t k_w, int32_t band,
                             const int8_t *filter, const int32_t *bias, int8_t *buf, int8_t *scratch,
                             int32_t dw_buf) {
  const int32_t row = w * c;
  const int32_t pad = cp->padding.h;
  const cmsis_nn_dims fd = {1, k_h, k_w, c}, bd = {1, 1, 1, c};
  int8_t *rows = scratch + dw_buf;
  int32_t lo = 0, hi = 0, r;
  for (r = 0; r < h; r += band) {
    const int32_t n = h - r < band ? h - r : band;
    const int32_t next_lo = r - pad > 0 ? r - pad : 0;
    const int32_t next_hi = r + n - 1 - pad + k_h < h ? r + n - 1 - pad + k_h : h;
    cmsis_nn_context ctx = {dw_buf > 0 ? (void *)scratch : NULL, dw_buf};
    cmsis_nn_dw_conv_params p = *cp;
    cmsis_nn_dims id, od;
    /* Keep the rows still needed, then read the new ones (not yet overwritten). */
    if (next_lo < hi) {
      tq_copy_forward(rows, rows + (next_lo - lo) * row, (hi - next_lo) * row);
    } else {
      hi = next_lo;
    }
    tq_copy_forward(rows + (hi - next_lo) * row, buf + hi * row, (next_hi - hi) * row);
    lo = next_lo;
    hi = next_hi;
    id.n = 1;
    id.h = hi - lo;
    id.w = w;
    id.c = c;
    od.n = 1;
    od.h = n;
    od.w = w;
    od.c = c;
    p.padding.h = lo - r + pad;
    (void)arm_depthwise_conv_wrapper_s8(&ctx, &p, q, &id, rows, &fd, filter, &bd, bias, &od, buf + r * row);
  }
}

/* Output rows [row0, row0 + rows) of one image's CONV_2D: the call sees only the input rows
 * they read, with the top padding those rows still need. */
void tq_cmsis_conv_rows(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                        const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                        const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd, const int32_t *bias,
                        const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows) {
  const int32_t first = row0 * cp->stride.h - cp->padding.h;
  const int32_t end = (row0 + rows - 1) * cp->stride.h - cp->padding.h + (fd->h - 1) * cp->dilation.h + 1;
  const int32_t lo = first > 0 ? first : 0;
  const int32_t hi = end < id->h ? end : id->h;
  cmsis_nn_conv_params p = *cp;
  cmsis_nn_dims i = *id, o = *od;
  p.padding.h = lo - first;
  i.n = 1;
  i.h = hi - lo;
  o.n = 1;
  o.h = rows;
  (void)arm_convolve_wrapper_s8(ctx, &p, q, &i, in + lo * id->w * id->c, fd, filter, bd, bias, &o, out);
}

/* The first out_rows rows of one image's pool with no top padding over the in_rows rows at `in`. */
void tq_cmsis_pool_rows(const cmsis_nn_context *ctx, const cmsis_nn_pool_params *pp, const cmsis_nn_dims *id,
                        const int8_t *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od, int8_t *out,
                        int32_t in_rows, int32_t out_rows, int32_t is_max) {
  cmsis_nn_dims i = *id, o = *od;
  i.n = 1;
  i.h = in_rows;
  o.n = 1;
  o.h = out_rows;
  if (is_max) {
    (void)arm_max_pool_s8(ctx, pp, &i, in, fd, &o, out);
  } else {
    (void)arm_avgpool_s8(ctx, pp, &i, in, fd, &o, out);
  }
}
