/* Banded calls of CMSIS-NN's convolutions and pools, written by tinyq: each call computes a band
 * of output rows of one image and sees only the input rows that band reads, with the top padding
 * those rows still need, so every output comes from exactly the taps the whole-tensor call uses.
 * A band's output may then overlap input rows no later band reads, or feed a pool. */
#include "tq_kernels.h"
#include "tq_cmsis.h"

/* The input rows output rows [row0, row0 + rows) of one image read, for a kernel of height kh:
 * sets `*pad_h` to the top padding those rows still need (it holds the layer's on entry), `i` and
 * `o` to one image of the rows read and written, and returns the first input row read. */
static int32_t band(int32_t stride_h, int32_t dilation_h, int32_t kh, const cmsis_nn_dims *id,
                    const cmsis_nn_dims *od, int32_t row0, int32_t rows, int32_t *pad_h, cmsis_nn_dims *i,
                    cmsis_nn_dims *o) {
  const int32_t first = row0 * stride_h - *pad_h;
  const int32_t end = (row0 + rows - 1) * stride_h - *pad_h + (kh - 1) * dilation_h + 1;
  const int32_t lo = first > 0 ? first : 0;
  const int32_t hi = end < id->h ? end : id->h;
  *pad_h = lo - first;
  *i = *id;
  *o = *od;
  i->n = 1;
  i->h = hi > lo ? hi - lo : 0;
  o->n = 1;
  o->h = rows;
  return lo;
}

/* Output rows [row0, row0 + rows) of one image's CONV_2D: the call sees only the input rows
 * they read, with the top padding those rows still need. `in` holds the input from row in_lo on
 * (the rows the band reads). */
void tq_cmsis_conv_rows_from(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                             const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                             int32_t in_lo, const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd,
                             const int32_t *bias, const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows) {
  cmsis_nn_conv_params p = *cp;
  cmsis_nn_dims i, o;
  const int32_t lo = band(cp->stride.h, cp->dilation.h, fd->h, id, od, row0, rows, &p.padding.h, &i, &o);
  (void)arm_convolve_wrapper_s8(ctx, &p, q, &i, in + (lo - in_lo) * id->w * id->c, fd, filter, bd, bias, &o, out);
}

void tq_cmsis_conv_rows(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                        const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                        const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd, const int32_t *bias,
                        const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows) {
  tq_cmsis_conv_rows_from(ctx, cp, q, id, in, 0, fd, filter, bd, bias, od, out, row0, rows);
}

/* Output rows [row0, row0 + rows) of one image's DEPTHWISE_CONV_2D (see tq_cmsis_conv_rows). */
void tq_cmsis_dwconv_rows(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *cp,
                          const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                          const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd,
                          const int32_t *bias, const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows) {
  cmsis_nn_dw_conv_params p = *cp;
  cmsis_nn_dims i, o;
  const int32_t lo = band(cp->stride.h, cp->dilation.h, fd->h, id, od, row0, rows, &p.padding.h, &i, &o);
  (void)arm_depthwise_conv_wrapper_s8(ctx, &p, q, &i, in + lo * id->w * id->c, fd, filter, bd, bias, &o, out);
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
