/* tinyq's in-place variants of CMSIS-NN's convolutions (tq_cmsis.c). */
#ifndef TQ_CMSIS_H
#define TQ_CMSIS_H

#include "arm_nnfunctions.h"

void tq_cmsis_conv_1x1_inplace(const cmsis_nn_conv_params *cp, const cmsis_nn_per_channel_quant_params *q,
                               int32_t pixels, int32_t chunk, int32_t in_c, int32_t out_c, const int8_t *filter,
                               const int32_t *bias, int8_t *buf, int8_t *scratch);
void tq_cmsis_dwconv_inplace(const cmsis_nn_dw_conv_params *cp, const cmsis_nn_per_channel_quant_params *q,
                             int32_t h, int32_t w, int32_t c, int32_t k_h, int32_t k_w, int32_t band,
                             const int8_t *filter, const int32_t *bias, int8_t *buf, int8_t *scratch,
                             int32_t dw_buf);
/* Banded calls (a convolution fused with the pool after it): output rows [row0, row0 + rows) of a
 * CONV_2D, and a pool without top padding over the rows just written. */
void tq_cmsis_conv_rows(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                        const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                        const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd, const int32_t *bias,
                        const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows);
void tq_cmsis_pool_rows(const cmsis_nn_context *ctx, const cmsis_nn_pool_params *pp, const cmsis_nn_dims *id,
                        const int8_t *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od, int8_t *out,
                        int32_t in_rows, int32_t out_rows, int32_t is_max);

#endif
