//! The workspace's one table of TFLite builtin operators: for every builtin code its schema name,
//! the `tflite::MicroMutableOpResolver` method that registers TFLM's kernel for it, and the
//! highest version LiteRT registers. The reader, the writer, the arena model and the C export all
//! ask this table; nothing else spells a builtin code.
//!
//! Sources: the TFLite schema's `BuiltinOperator` enum (codes and names),
//! `tensorflow/lite/micro/micro_mutable_op_resolver.h` (resolver methods; `-` where TFLM has no
//! kernel) and `tflite/core/kernels/register.cc` (the highest registered version, a builtin
//! registered without a range having only version 1; `-` for builtins tinyq does not read, which
//! are not checked).

/// One builtin operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Builtin {
    pub code: i32,
    /// The schema's name, e.g. `CONV_2D`.
    pub name: &'static str,
    /// The `MicroMutableOpResolver` method, e.g. `AddConv2D`; `None` when TFLM has no kernel.
    pub resolver: Option<&'static str>,
    /// The highest version LiteRT registers, for the builtins tinyq reads.
    pub max_version: Option<i32>,
}

macro_rules! builtins {
    ($($code:literal $name:ident $resolver:tt $max:tt;)*) => {
        $(pub const $name: i32 = $code;)*
        /// Every builtin, indexed by its code.
        pub const BUILTINS: &[Builtin] = &[$(Builtin {
            code: $code,
            name: stringify!($name),
            resolver: builtins!(@opt $resolver),
            max_version: builtins!(@opt $max),
        }),*];
    };
    (@opt -) => { None };
    (@opt $v:literal) => { Some($v) };
}

builtins! {
    0 ADD "AddAdd" 5;
    1 AVERAGE_POOL_2D "AddAveragePool2D" 3;
    2 CONCATENATION "AddConcatenation" 5;
    3 CONV_2D "AddConv2D" 8;
    4 DEPTHWISE_CONV_2D "AddDepthwiseConv2D" 7;
    5 DEPTH_TO_SPACE "AddDepthToSpace" -;
    6 DEQUANTIZE "AddDequantize" 8;
    7 EMBEDDING_LOOKUP "AddEmbeddingLookup" -;
    8 FLOOR "AddFloor" -;
    9 FULLY_CONNECTED "AddFullyConnected" 14;
    10 HASHTABLE_LOOKUP - -;
    11 L2_NORMALIZATION "AddL2Normalization" -;
    12 L2_POOL_2D "AddL2Pool2D" -;
    13 LOCAL_RESPONSE_NORMALIZATION - -;
    14 LOGISTIC "AddLogistic" 3;
    15 LSH_PROJECTION - -;
    16 LSTM - -;
    17 MAX_POOL_2D "AddMaxPool2D" 3;
    18 MUL "AddMul" 7;
    19 RELU "AddRelu" 3;
    20 RELU_N1_TO_1 - 1;
    21 RELU6 "AddRelu6" 3;
    22 RESHAPE "AddReshape" 1;
    23 RESIZE_BILINEAR "AddResizeBilinear" 4;
    24 RNN - -;
    25 SOFTMAX "AddSoftmax" 3;
    26 SPACE_TO_DEPTH "AddSpaceToDepth" -;
    27 SVDF "AddSvdf" -;
    28 TANH "AddTanh" 3;
    29 CONCAT_EMBEDDINGS - -;
    30 SKIP_GRAM - -;
    31 CALL - -;
    32 CUSTOM - -;
    33 EMBEDDING_LOOKUP_SPARSE - -;
    34 PAD "AddPad" 5;
    35 UNIDIRECTIONAL_SEQUENCE_RNN - -;
    36 GATHER "AddGather" 7;
    37 BATCH_TO_SPACE_ND "AddBatchToSpaceNd" -;
    38 SPACE_TO_BATCH_ND "AddSpaceToBatchNd" -;
    39 TRANSPOSE "AddTranspose" 7;
    40 MEAN "AddMean" 3;
    41 SUB "AddSub" 5;
    42 DIV "AddDiv" -;
    43 SQUEEZE "AddSqueeze" 2;
    44 UNIDIRECTIONAL_SEQUENCE_LSTM "AddUnidirectionalSequenceLSTM" -;
    45 STRIDED_SLICE "AddStridedSlice" 8;
    46 BIDIRECTIONAL_SEQUENCE_RNN - -;
    47 EXP "AddExp" -;
    48 TOPK_V2 - -;
    49 SPLIT "AddSplit" -;
    50 LOG_SOFTMAX "AddLogSoftmax" 2;
    51 DELEGATE - -;
    52 BIDIRECTIONAL_SEQUENCE_LSTM - -;
    53 CAST "AddCast" -;
    54 PRELU "AddPrelu" 1;
    55 MAXIMUM "AddMaximum" 4;
    56 ARG_MAX "AddArgMax" -;
    57 MINIMUM "AddMinimum" 4;
    58 LESS "AddLess" -;
    59 NEG "AddNeg" -;
    60 PADV2 "AddPadV2" 5;
    61 GREATER "AddGreater" -;
    62 GREATER_EQUAL "AddGreaterEqual" -;
    63 LESS_EQUAL "AddLessEqual" -;
    64 SELECT - -;
    65 SLICE "AddSlice" -;
    66 SIN "AddSin" -;
    67 TRANSPOSE_CONV "AddTransposeConv" -;
    68 SPARSE_TO_DENSE - -;
    69 TILE - -;
    70 EXPAND_DIMS "AddExpandDims" 1;
    71 EQUAL "AddEqual" -;
    72 NOT_EQUAL "AddNotEqual" -;
    73 LOG "AddLog" -;
    74 SUM "AddSum" 2;
    75 SQRT "AddSqrt" -;
    76 RSQRT "AddRsqrt" -;
    77 SHAPE "AddShape" 1;
    78 POW - -;
    79 ARG_MIN "AddArgMin" -;
    80 FAKE_QUANT - -;
    81 REDUCE_PROD - -;
    82 REDUCE_MAX "AddReduceMax" 3;
    83 PACK "AddPack" 4;
    84 LOGICAL_OR "AddLogicalOr" -;
    85 ONE_HOT - -;
    86 LOGICAL_AND "AddLogicalAnd" -;
    87 LOGICAL_NOT "AddLogicalNot" -;
    88 UNPACK "AddUnpack" -;
    89 REDUCE_MIN "AddReduceMin" -;
    90 FLOOR_DIV "AddFloorDiv" -;
    91 REDUCE_ANY - -;
    92 SQUARE "AddSquare" -;
    93 ZEROS_LIKE "AddZerosLike" -;
    94 FILL "AddFill" -;
    95 FLOOR_MOD "AddFloorMod" -;
    96 RANGE - -;
    97 RESIZE_NEAREST_NEIGHBOR "AddResizeNearestNeighbor" 4;
    98 LEAKY_RELU "AddLeakyRelu" 2;
    99 SQUARED_DIFFERENCE "AddSquaredDifference" -;
    100 MIRROR_PAD "AddMirrorPad" 3;
    101 ABS "AddAbs" 5;
    102 SPLIT_V "AddSplitV" -;
    103 UNIQUE - -;
    104 CEIL "AddCeil" -;
    105 REVERSE_V2 "AddReverseV2" -;
    106 ADD_N "AddAddN" -;
    107 GATHER_ND "AddGatherNd" -;
    108 COS "AddCos" -;
    109 WHERE - -;
    110 RANK - -;
    111 ELU "AddElu" 1;
    112 REVERSE_SEQUENCE - -;
    113 MATRIX_DIAG - -;
    114 QUANTIZE "AddQuantize" 5;
    115 MATRIX_SET_DIAG - -;
    116 ROUND "AddRound" -;
    117 HARD_SWISH "AddHardSwish" 1;
    118 IF "AddIf" -;
    119 WHILE "AddWhile" -;
    120 NON_MAX_SUPPRESSION_V4 - -;
    121 NON_MAX_SUPPRESSION_V5 - -;
    122 SCATTER_ND - -;
    123 SELECT_V2 "AddSelectV2" -;
    124 DENSIFY - -;
    125 SEGMENT_SUM - -;
    126 BATCH_MATMUL "AddBatchMatMul" -;
    127 PLACEHOLDER_FOR_GREATER_OP_CODES - -;
    128 CUMSUM "AddCumSum" -;
    129 CALL_ONCE "AddCallOnce" -;
    130 BROADCAST_TO "AddBroadcastTo" -;
    131 RFFT2D - -;
    132 CONV_3D - -;
    133 IMAG - -;
    134 REAL - -;
    135 COMPLEX_ABS - -;
    136 HASHTABLE - -;
    137 HASHTABLE_FIND - -;
    138 HASHTABLE_IMPORT - -;
    139 HASHTABLE_SIZE - -;
    140 REDUCE_ALL - -;
    141 CONV_3D_TRANSPOSE - -;
    142 VAR_HANDLE "AddVarHandle" -;
    143 READ_VARIABLE "AddReadVariable" -;
    144 ASSIGN_VARIABLE "AddAssignVariable" -;
    145 BROADCAST_ARGS "AddBroadcastArgs" -;
    146 RANDOM_STANDARD_NORMAL - -;
    147 BUCKETIZE - -;
    148 RANDOM_UNIFORM - -;
    149 MULTINOMIAL - -;
    150 GELU - -;
    151 DYNAMIC_UPDATE_SLICE - -;
    152 RELU_0_TO_1 - -;
    153 UNSORTED_SEGMENT_PROD - -;
    154 UNSORTED_SEGMENT_MAX - -;
    155 UNSORTED_SEGMENT_SUM - -;
    156 ATAN2 - -;
    157 UNSORTED_SEGMENT_MIN - -;
    158 SIGN - -;
    159 BITCAST - -;
    160 BITWISE_XOR - -;
    161 RIGHT_SHIFT - -;
}

/// The table row of a builtin code, `None` for codes the schema does not name.
pub fn builtin(code: i32) -> Option<&'static Builtin> {
    usize::try_from(code).ok().and_then(|c| BUILTINS.get(c))
}

/// The operator code of an `OperatorCode` table: the larger of its two code fields.
pub fn builtin_code(builtin_code: i32, deprecated_builtin_code: i8) -> i32 {
    builtin_code.max(deprecated_builtin_code as i32)
}

/// The highest version of a builtin that LiteRT's builtin op resolver registers, for the
/// builtins tinyq reads. No interpreter runs a higher version, so a file naming one is refused.
/// `None` for builtins tinyq does not read.
pub fn max_version(code: i32) -> Option<i32> {
    builtin(code).and_then(|b| b.max_version)
}

/// The published name of a builtin operator code, or `"?"`.
pub fn op_name(code: i32) -> &'static str {
    builtin(code).map_or("?", |b| b.name)
}

/// The `tflite::MicroMutableOpResolver` method registering a builtin, if TFLM has one.
pub fn resolver_method(code: i32) -> Option<&'static str> {
    builtin(code).and_then(|b| b.resolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sit_at_their_codes() {
        for (k, b) in BUILTINS.iter().enumerate() {
            assert_eq!(b.code as usize, k, "{}", b.name);
            if let Some(m) = b.resolver {
                assert!(m.starts_with("Add") && m.len() > 3, "{}: {m}", b.name);
            }
        }
    }

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
        assert_eq!(resolver_method(CONV_2D), Some("AddConv2D"));
        assert_eq!(resolver_method(CUSTOM), None);
        assert_eq!(max_version(FULLY_CONNECTED), Some(14));
        assert_eq!(max_version(SIN), None);
        assert_eq!(builtin_code(0, 4), 4);
        assert_eq!(builtin_code(130, 127), 130);
    }
}
