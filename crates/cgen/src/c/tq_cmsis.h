/* tinyq's banded calls of CMSIS-NN's convolutions and pools (tq_cmsis.c), and its pointwise
 * convolution for the CMSIS-NN build (tq_pointwise.c). */
#ifndef TQ_CMSIS_H
#define TQ_CMSIS_H

#include "arm_nnfunctions.h"

/* Output rows [row0, row0 + rows) of one image's CONV_2D / DEPTHWISE_CONV_2D, and a pool without
 * top padding over the in_rows rows a fused convolution just wrote. */
void tq_cmsis_conv_rows(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                        const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                        const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd, const int32_t *bias,
                        const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows);
/* The same with `in` holding the input from row in_lo on. */
void tq_cmsis_conv_rows_from(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                             const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                             int32_t in_lo, const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd,
                             const int32_t *bias, const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows);
void tq_cmsis_dwconv_rows(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *cp,
                          const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                          const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd,
                          const int32_t *bias, const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows);
void tq_cmsis_pool_rows(const cmsis_nn_context *ctx, const cmsis_nn_pool_params *pp, const cmsis_nn_dims *id,
                        const int8_t *in, const cmsis_nn_dims *fd, const cmsis_nn_dims *od, int8_t *out,
                        int32_t in_rows, int32_t out_rows, int32_t is_max);

/* A 1x1 CONV_2D without padding or dilation (any stride), with arm_convolve_wrapper_s8's
 * arguments except that `filter` holds the int16 weights in tq_pointwise.c's layout and `bias`
 * holds bias + input_offset * sum(w) per output channel (never NULL; cp->input_offset is not
 * read). Equals arm_convolve_wrapper_s8 on the plain weights and bias. */
arm_cmsis_nn_status tq_pointwise_s8(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                                    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id,
                                    const int8_t *in, const cmsis_nn_dims *fd, const int8_t *filter,
                                    const cmsis_nn_dims *bd, const int32_t *bias, const cmsis_nn_dims *od,
                                    int8_t *out);
/* Its output rows [row0, row0 + rows) of one image, as tq_cmsis_conv_rows(_from). */
void tq_pointwise_rows(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                       const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                       const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd, const int32_t *bias,
                       const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows);
void tq_pointwise_rows_from(const cmsis_nn_context *ctx, const cmsis_nn_conv_params *cp,
                            const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in,
                            int32_t in_lo, const cmsis_nn_dims *fd, const int8_t *filter, const cmsis_nn_dims *bd,
                            const int32_t *bias, const cmsis_nn_dims *od, int8_t *out, int32_t row0, int32_t rows);

#endif
