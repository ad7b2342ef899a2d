//! The struct sizes the arena model uses, named as TFLM names them, so that they can be checked
//! against `sizeof` of the real structs compiled from a TFLM tree (crates/verify's
//! `tests/struct_sizes.rs` does, for arm-none-eabi-g++ and the host compiler).

use crate::tflm::{op, op_footprint, OpShapes, Sizes};
use crate::{Kernels, PlanConfig};

/// One struct: the TFLM source that defines it (a header, or the kernel `.cc` for structs in an
/// anonymous namespace), the C++ type, and the size the model uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructSize {
    pub source: &'static str,
    pub type_name: &'static str,
    pub bytes: usize,
}

fn sizes(config: &PlanConfig) -> Sizes {
    Sizes {
        e: if config.short_enums { 1 } else { 4 },
        kernels: config.kernels,
        wheel_options: false,
        ..Sizes::new(config.pointer_width, config.compression_build)
    }
}

fn footprint(code: i32, s: &Sizes) -> crate::tflm::OpFootprint {
    let shapes = OpShapes {
        input_shapes: vec![],
        output_shapes: vec![],
        input_channels: vec![],
        input_types: vec![],
        conv: None,
    };
    op_footprint(code, s, &shapes)
}

/// The structs whose sizes the model for `config` relies on.
pub fn struct_sizes(config: &PlanConfig) -> Vec<StructSize> {
    let s = sizes(config);
    let opdata = |code| footprint(code, &s).op_data.unwrap_or(0);
    let options = |code| footprint(code, &s).builtin_data.map_or(0, |b| b.0);
    let st = |source, type_name, bytes| StructSize { source, type_name, bytes };
    let mut v = vec![
        st(
            "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h",
            "tflite::SingleArenaBufferAllocator",
            s.single_arena_allocator(),
        ),
        st(
            "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h",
            "tflite::GreedyMemoryPlanner",
            s.greedy_planner(),
        ),
        st("tensorflow/lite/micro/micro_allocator.h", "tflite::MicroAllocator", s.micro_allocator()),
        st("tensorflow/lite/micro/micro_allocator.h", "tflite::SubgraphAllocations", s.subgraph_allocations()),
        st("tensorflow/lite/micro/micro_allocator.h", "tflite::NodeAndRegistration", s.node_and_registration()),
        st("tensorflow/lite/micro/micro_allocator.h", "tflite::internal::ScratchBufferRequest", s.scratch_request()),
        st("tensorflow/lite/micro/micro_allocator.h", "tflite::ScratchBufferHandle", s.scratch_handle()),
        st("tensorflow/lite/micro/micro_allocation_info.h", "tflite::AllocationInfo", s.allocation_info()),
        st("tensorflow/lite/core/c/common.h", "TfLiteEvalTensor", s.eval_tensor()),
        st("tensorflow/lite/core/c/common.h", "TfLiteTensor", s.tflite_tensor()),
        st("tensorflow/lite/core/c/common.h", "TfLiteAffineQuantization", s.affine_quantization()),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteFullyConnectedParams", options(op::FULLY_CONNECTED)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteAddParams", options(op::ADD)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteSubParams", options(op::SUB)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteMulParams", options(op::MUL)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteConvParams", options(op::CONV_2D)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteDepthwiseConvParams", options(op::DEPTHWISE_CONV_2D)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLitePoolParams", options(op::MAX_POOL_2D)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteConcatenationParams", options(op::CONCATENATION)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteReshapeParams", options(op::RESHAPE)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteSqueezeParams", options(op::SQUEEZE)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteStridedSliceParams", options(op::STRIDED_SLICE)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteReducerParams", options(op::MEAN)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteSoftmaxParams", options(op::SOFTMAX)),
        st("tensorflow/lite/core/c/builtin_op_data.h", "TfLiteLeakyReluParams", options(op::LEAKY_RELU)),
        st("tensorflow/lite/micro/kernels/add.h", "tflite::OpDataAdd", opdata(op::ADD)),
        st("tensorflow/lite/micro/kernels/sub.h", "tflite::OpDataSub", opdata(op::SUB)),
        st("tensorflow/lite/micro/kernels/mul.h", "tflite::OpDataMul", opdata(op::MUL)),
        st("tensorflow/lite/micro/kernels/reduce.h", "tflite::OpDataReduce", opdata(op::MEAN)),
        st("tensorflow/lite/micro/kernels/pad.h", "tflite::OpData", opdata(op::PAD)),
        st("tensorflow/lite/micro/kernels/quantize.h", "tflite::OpDataQuantizeReference", opdata(op::QUANTIZE)),
        st("tensorflow/lite/micro/kernels/dequantize.h", "tflite::DequantizeOpData", opdata(op::DEQUANTIZE)),
        st("tensorflow/lite/micro/kernels/logistic.h", "tflite::OpDataLogistic", opdata(op::LOGISTIC)),
        st("tensorflow/lite/micro/kernels/activations.h", "tflite::ReluOpData", opdata(op::RELU)),
        st("tensorflow/lite/micro/kernels/activations.h", "tflite::Relu6OpData", opdata(op::RELU6)),
        st("tensorflow/lite/micro/kernels/leaky_relu.h", "tflite::LeakyReluOpData", opdata(op::LEAKY_RELU)),
        st("tensorflow/lite/kernels/internal/types.h", "tflite::HardSwishParams", opdata(op::HARD_SWISH)),
        st("tensorflow/lite/micro/kernels/strided_slice.h", "tflite::StridedSliceParams", opdata(op::STRIDED_SLICE)),
        st("tensorflow/lite/micro/kernels/concatenation.cc", "tflite::OpData", opdata(op::CONCATENATION)),
        st("tensorflow/lite/micro/kernels/tanh.cc", "tflite::OpData", opdata(op::TANH)),
    ];
    match config.kernels {
        Kernels::Reference => v.extend([
            st(
                "tensorflow/lite/micro/kernels/fully_connected.h",
                "tflite::OpDataFullyConnected",
                opdata(op::FULLY_CONNECTED),
            ),
            st("tensorflow/lite/micro/kernels/conv.h", "tflite::OpDataConv", opdata(op::CONV_2D)),
            st("tensorflow/lite/micro/kernels/pooling.h", "tflite::OpDataPooling", opdata(op::MAX_POOL_2D)),
            st("tensorflow/lite/micro/kernels/softmax.h", "tflite::SoftmaxParams", opdata(op::SOFTMAX)),
        ]),
        Kernels::CmsisNn => v.extend([
            st(
                "tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cc",
                "tflite::OpData",
                opdata(op::FULLY_CONNECTED),
            ),
            st("tensorflow/lite/micro/kernels/cmsis_nn/conv.cc", "tflite::OpData", opdata(op::CONV_2D)),
            st(
                "tensorflow/lite/micro/kernels/cmsis_nn/depthwise_conv.cc",
                "tflite::OpData",
                opdata(op::DEPTHWISE_CONV_2D),
            ),
            st("tensorflow/lite/micro/kernels/cmsis_nn/pooling.cc", "tflite::OpData", opdata(op::MAX_POOL_2D)),
            st(
                "tensorflow/lite/micro/kernels/cmsis_nn/softmax.cc",
                "tflite::CMSISNNSoftmaxParams",
                opdata(op::SOFTMAX),
            ),
            st("tensorflow/lite/micro/kernels/cmsis_nn/add.cc", "tflite::OpData", opdata(op::ADD)),
        ]),
    }
    v
}
