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

#endif
