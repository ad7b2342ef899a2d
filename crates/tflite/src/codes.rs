//! TFLite builtin operator codes and the names of every builtin, for error messages.

pub const ADD: i32 = 0;
pub const AVERAGE_POOL_2D: i32 = 1;
pub const CONCATENATION: i32 = 2;
pub const CONV_2D: i32 = 3;
pub const DEPTHWISE_CONV_2D: i32 = 4;
pub const DEQUANTIZE: i32 = 6;
pub const FULLY_CONNECTED: i32 = 9;
pub const LOGISTIC: i32 = 14;
pub const MAX_POOL_2D: i32 = 17;
pub const MUL: i32 = 18;
pub const RELU: i32 = 19;
pub const RELU_N1_TO_1: i32 = 20;
pub const RELU6: i32 = 21;
pub const RESHAPE: i32 = 22;
pub const SOFTMAX: i32 = 25;
pub const TANH: i32 = 28;
pub const CUSTOM: i32 = 32;
pub const PAD: i32 = 34;
pub const GATHER: i32 = 36;
pub const TRANSPOSE: i32 = 39;
pub const MEAN: i32 = 40;
pub const SUB: i32 = 41;
pub const SQUEEZE: i32 = 43;
pub const STRIDED_SLICE: i32 = 45;
pub const PRELU: i32 = 54;
pub const PADV2: i32 = 60;
pub const EXPAND_DIMS: i32 = 70;
pub const SHAPE: i32 = 77;
pub const REDUCE_MAX: i32 = 82;
pub const PACK: i32 = 83;
pub const RESIZE_NEAREST_NEIGHBOR: i32 = 97;
pub const LEAKY_RELU: i32 = 98;
pub const ELU: i32 = 111;
pub const QUANTIZE: i32 = 114;
pub const HARD_SWISH: i32 = 117;
/// Codes above this live only in `OperatorCode.builtin_code`.
pub const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;

/// The operator code of an `OperatorCode` table: the larger of its two code fields.
pub fn builtin_code(builtin_code: i32, deprecated_builtin_code: i8) -> i32 {
    builtin_code.max(deprecated_builtin_code as i32)
}

/// The highest version of a builtin that LiteRT's builtin op resolver registers
/// (`tflite/core/kernels/register.cc`; a builtin registered without a range has only version 1),
/// for the builtins tinyq reads. No interpreter runs a higher version, so a file naming one is
/// refused. `None` for builtins tinyq does not read.
pub fn max_version(code: i32) -> Option<i32> {
    Some(match code {
        RELU_N1_TO_1 | RESHAPE | PRELU | EXPAND_DIMS | SHAPE | ELU | HARD_SWISH => 1,
        SQUEEZE | LEAKY_RELU => 2,
        AVERAGE_POOL_2D | MAX_POOL_2D | LOGISTIC | RELU | RELU6 | SOFTMAX | TANH | MEAN | REDUCE_MAX => 3,
        PACK | RESIZE_NEAREST_NEIGHBOR => 4,
        ADD | SUB | CONCATENATION | PAD | PADV2 | QUANTIZE => 5,
        DEPTHWISE_CONV_2D | MUL | GATHER | TRANSPOSE => 7,
        CONV_2D | DEQUANTIZE | STRIDED_SLICE => 8,
        FULLY_CONNECTED => 14,
        _ => return None,
    })
}

/// The published name of a builtin operator code, or `"?"`.
pub fn op_name(code: i32) -> &'static str {
    usize::try_from(code).ok().and_then(|c| NAMES.get(c)).copied().unwrap_or("?")
}

const NAMES: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
    "BROADCAST_TO",
    "RFFT2D",
    "CONV_3D",
    "IMAG",
    "REAL",
    "COMPLEX_ABS",
    "HASHTABLE",
    "HASHTABLE_FIND",
    "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE",
    "REDUCE_ALL",
    "CONV_3D_TRANSPOSE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE",
    "RANDOM_UNIFORM",
    "MULTINOMIAL",
    "GELU",
    "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM",
    "ATAN2",
    "UNSORTED_SEGMENT_MIN",
    "SIGN",
    "BITCAST",
    "BITWISE_XOR",
    "RIGHT_SHIFT",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_codes() {
        for (code, name) in [
            (ADD, "ADD"),
            (CONV_2D, "CONV_2D"),
            (PADV2, "PADV2"),
            (LEAKY_RELU, "LEAKY_RELU"),
            (QUANTIZE, "QUANTIZE"),
            (HARD_SWISH, "HARD_SWISH"),
            (PLACEHOLDER_FOR_GREATER_OP_CODES, "PLACEHOLDER_FOR_GREATER_OP_CODES"),
        ] {
            assert_eq!(op_name(code), name);
        }
        assert_eq!(op_name(161), "RIGHT_SHIFT");
        assert_eq!(op_name(-3), "?");
        assert_eq!(builtin_code(0, 4), 4);
        assert_eq!(builtin_code(130, 127), 130);
    }
}
