//! Sizes of the TFLM structures that land in the arena, as functions of the
//! pointer width, and the per-operator allocations of TFLM's reference kernels.
//!
//! Every size is `sizeof` under the usual C ABI rules for the given pointer
//! width (`size_t`, `intptr_t` and pointers are `P` bytes; `double` is
//! 8-aligned, as on Arm EABI and x86-64).  The structs are the
//! `TF_LITE_STATIC_MEMORY` variants TFLM builds with.

use crate::flatbuf::ConvGeometry;
use crate::PointerWidth;

/// Arena buffer alignment (`MicroArenaBufferAlignment()`).
pub const ARENA_ALIGN: usize = 16;
/// `kMaxScratchBuffersPerOp` in micro_allocator.cc.
pub const MAX_SCRATCH_PER_OP: usize = 12;
/// Bytes `GreedyMemoryPlanner` needs per planned buffer (`per_buffer_size()`):
/// `BufferRequirements` (4 ints) + 2 sort ints + `ListEntry` (3 ints) + an offset int.
pub const GREEDY_PER_BUFFER: usize = 16 + 4 + 4 + 12 + 4;

pub fn align_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

/// `(size, align)` of a C struct with the given `(size, align)` fields, laid out in order.
pub fn layout(fields: &[(usize, usize)]) -> (usize, usize) {
    let mut at = 0;
    let mut align = 1;
    for &(size, a) in fields {
        at = align_up(at, a) + size;
        align = align.max(a);
    }
    (align_up(at, align), align)
}

/// Struct sizes for one target: pointer width, enum size, build flavour and kernel set.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub p: usize,
    pub compression: bool,
    /// `sizeof` a C enum: 1 for the smallest enums under arm-none-eabi (the AAPCS bare-metal
    /// default, `-fshort-enums`), 4 elsewhere.
    pub e: usize,
    pub kernels: Kernels,
    /// The options structs of the tflite-micro Python wheel (see `docs/arena.md`).
    pub wheel_options: bool,
}

impl Sizes {
    pub fn new(pw: PointerWidth, compression: bool) -> Self {
        Sizes { p: pw.bytes(), compression, e: 4, kernels: Kernels::Reference, wheel_options: false }
    }
    fn ptr(&self) -> (usize, usize) {
        (self.p, self.p)
    }
    fn en(&self) -> (usize, usize) {
        (self.e, self.e)
    }
    /// `SingleArenaBufferAllocator`: two vtable pointers (it implements both buffer
    /// allocator interfaces), five `uint8_t*`, an `intptr_t` checksum and an `int` count.
    pub fn single_arena_allocator(&self) -> usize {
        align_up(8 * self.p + 4, self.p)
    }
    /// `RecordingSingleArenaBufferAllocator` adds four `size_t` counters.
    pub fn recording_single_arena_allocator(&self) -> usize {
        self.single_arena_allocator() + 4 * self.p
    }
    /// `GreedyMemoryPlanner`: vtable, 2 ints, 4 array pointers, 2 ints, 1 pointer, a bool.
    pub fn greedy_planner(&self) -> usize {
        let p = self.p;
        align_up(align_up(p + 8, p) + 4 * p + 8 + p + 1, p)
    }
    /// `MicroAllocator`: vtable, 4 pointers, a bool, 3 `size_t`/pointers.
    pub fn micro_allocator(&self) -> usize {
        let p = self.p;
        5 * p + p + 3 * p
    }
    /// `RecordingMicroAllocator`: a pointer plus seven `RecordedAllocation`s (3 `size_t`
    /// each), eight in a compression build.
    pub fn recording_micro_allocator(&self) -> usize {
        self.micro_allocator() + self.p + (7 + self.compression as usize) * 3 * self.p
    }
    /// `MicroBuiltinDataAllocator`: vtable + one pointer.
    pub fn builtin_data_allocator(&self) -> usize {
        2 * self.p
    }
    /// `SubgraphAllocations`: two pointers, plus `CompressedTensorList` (one pointer)
    /// when TFLM is built with `USE_TFLM_COMPRESSION`.
    pub fn subgraph_allocations(&self) -> usize {
        (2 + self.compression as usize) * self.p
    }
    /// `TfLiteEvalTensor`: data pointer, dims pointer, `TfLiteType`.
    pub fn eval_tensor(&self) -> usize {
        layout(&[self.ptr(), self.ptr(), self.en()]).0
    }
    /// `NodeAndRegistration`: `TfLiteNode` (6 pointers + int) + registration pointer.
    pub fn node_and_registration(&self) -> usize {
        align_up(6 * self.p + 4, self.p) + self.p
    }
    /// `TfLiteTensor` (`TF_LITE_STATIC_MEMORY` layout): `TfLiteQuantization` {enum, pointer},
    /// `TfLiteQuantizationParams` {float, int32}, data, dims, `size_t` bytes, `TfLiteType`,
    /// `TfLiteAllocationType`, bool.
    pub fn tflite_tensor(&self) -> usize {
        let quant = layout(&[self.en(), self.ptr()]);
        layout(&[quant, (8, 4), self.ptr(), self.ptr(), self.ptr(), self.en(), self.en(), (1, 1)]).0
    }
    /// `TfLiteAffineQuantization`: two array pointers and an int32.
    pub fn affine_quantization(&self) -> usize {
        align_up(2 * self.p + 4, self.p)
    }
    /// `TfLiteIntArray` of `n` elements.
    pub fn int_array(n: usize) -> usize {
        4 + 4 * n
    }
    /// `internal::ScratchBufferRequest`: `size_t` bytes + 2 ints.
    pub fn scratch_request(&self) -> usize {
        align_up(self.p + 8, self.p)
    }
    /// `ScratchBufferHandle`: one pointer.
    pub fn scratch_handle(&self) -> usize {
        self.p
    }
    /// `AllocationInfo`: `size_t`, `void**`, 3 ints, a bool.
    pub fn allocation_info(&self) -> usize {
        align_up(2 * self.p + 12 + 1, self.p)
    }
    /// `OpDataFullyConnected` (fully_connected.h): 9 ints, 2 pointers, a bool (+ scratch
    /// indices with compression).
    fn op_data_fully_connected(&self) -> usize {
        let base = align_up(36, self.p) + 2 * self.p;
        align_up(base + 1 + if self.compression { 3 + 8 } else { 0 }, self.p)
    }
    /// `OpDataConv` (conv.h): `TfLitePaddingValues`, 5 ints, 2 pointers, 3 ints.
    fn op_data_conv(&self) -> usize {
        let base = align_up(16 + 20, self.p) + 2 * self.p + 12 + if self.compression { 8 } else { 0 };
        align_up(base, self.p)
    }
    /// `SoftmaxParams` (internal/types.h): a double, 6 int32, a float, 5 pointers.
    fn softmax_params(&self) -> usize {
        align_up(align_up(8 + 24 + 4, self.p) + 5 * self.p, 8)
    }
}

/// Which kernel implementations the TFLM build uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// TFLM's reference kernels (`tensorflow/lite/micro/kernels/*.cc`).
    #[default]
    Reference,
    /// Arm CMSIS-NN (`kernels/cmsis_nn/*.cc` over the CMSIS-NN library) where TFLM has them,
    /// built for a Cortex-M with the DSP extension (M4, M7, M33) by GCC.
    CmsisNn,
}

impl Kernels {
    /// `reference` or `cmsis-nn`, as the command-line flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Reference => "reference",
            Kernels::CmsisNn => "cmsis-nn",
        }
    }
    /// Parses [`Kernels::name`].
    pub fn parse(s: &str) -> Option<Kernels> {
        match s {
            "reference" => Some(Kernels::Reference),
            "cmsis-nn" => Some(Kernels::CmsisNn),
            _ => None,
        }
    }
}

/// `tflite::TensorType` → element size in bytes (as `TfLiteTypeSizeOf`).
pub fn type_size(ttype: u8) -> usize {
    match ttype {
        0 => 4,   // FLOAT32
        1 => 2,   // FLOAT16
        2 => 4,   // INT32
        3 => 1,   // UINT8
        4 => 8,   // INT64
        5 => 1,   // STRING (not supported by TFLM; counted per byte)
        6 => 1,   // BOOL
        7 => 2,   // INT16
        8 => 8,   // COMPLEX64
        9 => 1,   // INT8
        10 => 8,  // FLOAT64
        11 => 16, // COMPLEX128
        12 => 8,  // UINT64
        15 => 4,  // UINT32
        16 => 2,  // UINT16
        17 => 1,  // INT4 (unpacked in the arena)
        _ => 1,
    }
}

/// Shapes the kernels consult, resolved by the caller.
pub struct OpShapes<'a> {
    pub input_shapes: Vec<Option<&'a [i32]>>,
    pub output_shapes: Vec<Option<&'a [i32]>>,
    /// Quantization channel count of each input (None: not quantized / absent).
    pub input_channels: Vec<Option<usize>>,
    /// Element type of each input.
    pub input_types: Vec<Option<u8>>,
    /// Stride, dilation and padding of a convolution.
    pub conv: Option<ConvGeometry>,
}

const INT8: u8 = 9;
const INT16: u8 = 7;
const INT64: u8 = 4;
const INT4: u8 = 17;

fn elems(s: Option<&[i32]>) -> usize {
    s.map_or(0, |s| s.iter().map(|&d| d.max(0) as usize).product())
}

fn dim(s: Option<&[i32]>, k: usize) -> usize {
    s.and_then(|s| s.get(k)).map_or(0, |&d| d.max(0) as usize)
}

/// Padding TFLM computes for a convolution (`ComputePaddingHeightWidth`, padding.h), one axis.
fn conv_padding(same: bool, stride: usize, dilation: usize, input: usize, filter: usize) -> usize {
    let stride = stride.max(1);
    let effective = (filter.max(1) - 1) * dilation.max(1) + 1;
    let out = if same { input.div_ceil(stride) } else { (input + stride).saturating_sub(effective) / stride };
    ((out.max(1) - 1) * stride + effective).saturating_sub(input) / 2
}

/// Builtin codes, from the workspace's one builtin table.
pub use tinyq_tflite::codes as op;

/// A temporary tensor a kernel's `Prepare` takes: the node's input or output at an index. An
/// index the node does not have (an absent optional input) allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temp {
    In(usize),
    Out(usize),
}

/// What one operator puts in the arena tail (besides its `NodeAndRegistration`).
#[derive(Clone, Debug, Default)]
pub struct OpFootprint {
    /// `(size, align)` of the builtin options struct `ParseOpData` allocates, if any.
    pub builtin_data: Option<(usize, usize)>,
    /// `sizeof(OpData)` the kernel's `Init` asks `AllocatePersistentBuffer` for.
    pub op_data: Option<usize>,
    /// Byte sizes of further `AllocatePersistentBuffer` calls made in `Prepare`
    /// (per-channel multipliers and shifts, lookup tables).
    pub prepare_persistent: Vec<usize>,
    /// Byte sizes of `RequestScratchBufferInArena` calls made in `Prepare`.
    pub scratch: Vec<usize>,
    /// The temporary `TfLiteTensor`s `Prepare` takes, in order (`AllocateTempInputTensor` /
    /// `AllocateTempOutputTensor`, in the kernel and the helpers it calls). Deallocating one does
    /// not give its bytes back: the temporary area is reset only after the node's `Prepare`
    /// (`FinishPrepareNodeAllocations`), so they all count. By default every input, then every
    /// output.
    pub prepare_temps: Vec<Temp>,
    /// `Some(k)`: the `prepare_persistent` buffers are allocated after every temporary, and
    /// from then on the kernel and `DeallocateTempTfLiteTensor` read temporaries `..=k` only,
    /// and of temporary `k` not its zero-point array. The allocator checks a persistent
    /// allocation against the head alone, so the buffers may overwrite what is read no more.
    /// `None`: the temporaries must all stay intact (or are taken after the buffers).
    pub prepare_overlap: Option<usize>,
    /// False when the operator is not in the table and a generous default is used.
    pub known: bool,
}

/// The allocations TFLM's kernels (reference or CMSIS-NN, per `s.kernels`) make for `code`.
pub fn op_footprint(code: i32, s: &Sizes, sh: &OpShapes) -> OpFootprint {
    use Temp::{In, Out};
    let p = s.p;
    let cmsis = s.kernels == Kernels::CmsisNn;
    let every = (0..sh.input_shapes.len()).map(In).chain((0..sh.output_shapes.len()).map(Out)).collect();
    let mut f = OpFootprint { known: true, prepare_temps: every, ..Default::default() };
    let input = sh.input_shapes.first().copied().flatten();
    let filter = sh.input_shapes.get(1).copied().flatten();
    let output = sh.output_shapes.first().copied().flatten();
    let in_type = sh.input_types.first().copied().flatten();
    let filter_type = sh.input_types.get(1).copied().flatten();
    let filter_is_int4 = filter_type == Some(INT4);
    match code {
        op::FULLY_CONNECTED => {
            // TfLiteFullyConnectedParams: activation, weights_format, 2 bools, quantized_bias_type.
            f.builtin_data =
                Some(if s.wheel_options { (32, 8) } else { layout(&[s.en(), s.en(), (1, 1), (1, 1), s.en()]) });
            // FullyConnectedPrepare (both kernel sets). CalculateOpDataFullyConnected then
            // allocates the per-channel buffers and reads the input's and output's parameters
            // and the filter's quantization, not the output's quantization arrays.
            f.prepare_temps = vec![In(0), In(1), In(2), Out(0)];
            f.prepare_overlap = Some(3);
            let reference = s.op_data_fully_connected();
            // CMSIS-NN OpData: OpDataFullyConnected, 2 buffer indices, kernel_sums, 3 int32.
            f.op_data = Some(if cmsis { align_up(align_up(reference + 8, p) + p + 12, p) } else { reference });
            // CalculateOpDataFullyConnected: multipliers and shifts when scale has > 1 entry.
            let per_channel = sh.input_channels.get(1).copied().flatten().filter(|&ch| ch > 1);
            if let Some(ch) = per_channel {
                f.prepare_persistent = vec![4 * ch, 4 * ch];
            }
            if filter_is_int4 && !cmsis {
                f.scratch.push(elems(filter));
            }
            if cmsis && in_type == Some(INT8) && !filter_is_int4 {
                let out_rank = output.map_or(0, |o| o.len());
                let accum_depth = filter.and_then(|f| f.last()).map_or(0, |&d| d.max(0) as usize);
                // CMSIS-NN FullyConnected Prepare: the 1x1-convolution path keeps per-tensor
                // multipliers in a scratch buffer of 2 int32 per output channel; its own buffer
                // (arm_convolve_1x1_s8_fast_get_buffer_size) and arm_fully_connected_s8's are
                // 0 on a DSP core built with GCC.
                if out_rank > 2 && accum_depth % 4 == 0 && per_channel.is_none() {
                    f.scratch.push(output.and_then(|o| o.last()).map_or(0, |&d| d.max(0) as usize) * 8);
                }
            }
        }
        op::CONV_2D | op::DEPTHWISE_CONV_2D => {
            f.builtin_data = Some((28, 4)); // TfLiteConvParams / TfLiteDepthwiseConvParams: 7 int-sized fields
                                            // CMSIS-NN OpData: OpDataConv + a scratch index.
            f.op_data = Some(if cmsis { align_up(s.op_data_conv() + 4, p) } else { s.op_data_conv() });
            // ConvPrepare / DepthwiseConvPrepare take output, input and filter (CMSIS-NN's
            // Prepare: input, filter, output), then CalculateOpDataConv / ...DepthwiseConv
            // input, filter, bias and output again.
            let first = if cmsis { [In(0), In(1), Out(0)] } else { [Out(0), In(0), In(1)] };
            f.prepare_temps = [&first[..], &[In(0), In(1), In(2), Out(0)]].concat();
            let ch_dim = if code == op::CONV_2D { 0 } else { 3 };
            let ch = dim(filter, ch_dim);
            // The reference Prepare (conv_common.cc / depthwise_conv_common.cc) allocates the
            // per-channel multipliers and shifts for every type; CMSIS-NN's only for int8/int16.
            if !cmsis || matches!(in_type, Some(INT8) | Some(INT16)) {
                f.prepare_persistent = vec![4 * ch, 4 * ch];
            }
            if filter_is_int4 && !cmsis {
                f.scratch.push(elems(filter));
            }
            if cmsis {
                let bias_type = sh.input_types.get(2).copied().flatten();
                if let Some(b) = cmsis_conv_scratch(code, sh, in_type, bias_type) {
                    f.scratch.push(b);
                }
            }
        }
        op::ADD | op::SUB => {
            f.builtin_data = Some(layout(&[s.en(), (1, 1)])); // TfLiteAddParams / TfLiteSubParams
                                                              // OpDataAdd: a bool + 14 int32 (CMSIS-NN's OpData has the same fields); OpDataSub: a bool + 12.
            f.op_data = Some(if code == op::ADD { 60 } else { 52 });
            f.prepare_temps = vec![In(0), In(1), Out(0)]; // AddPrepare / SubPrepare
        }
        op::MUL => {
            f.builtin_data = Some(s.en()); // TfLiteMulParams
            f.op_data = Some(36); // OpDataMul
            f.prepare_temps = vec![In(0), In(1), Out(0)]; // CalculateOpDataMul
        }
        op::AVERAGE_POOL_2D | op::MAX_POOL_2D => {
            f.builtin_data = Some((40, 4)); // TfLitePoolParams
                                            // OpDataPooling; CMSIS-NN adds a scratch index.
            f.op_data = Some(if cmsis { 36 } else { 32 });
            // PoolingPrepare; CMSIS-NN's AveragePrepare takes input and output once more.
            f.prepare_temps = if cmsis && code == op::AVERAGE_POOL_2D {
                vec![In(0), Out(0), In(0), Out(0)]
            } else {
                vec![In(0), Out(0)]
            };
            if cmsis && code == op::AVERAGE_POOL_2D && matches!(in_type, Some(INT8) | Some(INT16)) {
                // arm_avgpool_s8/s16_get_buffer_size (DSP): one int32 per channel.
                f.scratch.push(4 * dim(output, 3));
            }
        }
        op::RESHAPE | op::SQUEEZE => {
            f.builtin_data = Some((36, 4)); // TfLiteReshapeParams / TfLiteSqueezeParams
            f.prepare_temps = vec![In(0), Out(0)]; // ReshapeOutput / SqueezeContext: not the shape
        }
        op::SOFTMAX => {
            f.builtin_data = Some((4, 4)); // TfLiteSoftmaxParams
                                           // SoftmaxParams; CMSIS-NN's CMSISNNSoftmaxParams adds num_rows and row_size.
            f.op_data = Some(if cmsis { align_up(s.softmax_params() + 8, 8) } else { s.softmax_params() });
            f.prepare_temps = vec![In(0), Out(0)];
            if in_type == Some(INT16) {
                // CalculateSoftmaxParams (softmax_common.cc): exp and 1/(1+x) tables of 513 int16.
                f.prepare_persistent = vec![2 * 513, 2 * 513];
            }
        }
        op::MEAN | op::SUM => {
            f.builtin_data = Some((1, 1)); // TfLiteReducerParams
            f.op_data = Some(44); // OpDataReduce
            let in_rank = input.map_or(0, |s| s.len());
            let num_axis = elems(sh.input_shapes.get(1).copied().flatten());
            let out_elems = elems(output);
            // PrepareMeanOrSumHelper: input, output, axis; then PrepareSimple.
            f.prepare_temps = [&[In(0), Out(0), In(1)][..], &prepare_simple(in_type)].concat();
            if matches!(in_type, Some(INT8) | Some(INT16)) {
                f.scratch.push(4 * out_elems);
            }
            f.scratch.push(4 * in_rank);
            f.scratch.push(4 * num_axis);
        }
        op::REDUCE_MAX => {
            f.builtin_data = Some((1, 1)); // TfLiteReducerParams
            f.op_data = Some(44); // OpDataReduce
            let in_rank = sh.input_shapes.first().copied().flatten().map_or(0, |s| s.len());
            // PrepareMinMaxHelper: PrepareSimple, then input, output, axis.
            f.prepare_temps = [&prepare_simple(in_type)[..], &[In(0), Out(0), In(1)]].concat();
            f.scratch.push(4 * in_rank);
            f.scratch.push(4 * elems(sh.input_shapes.get(1).copied().flatten()));
        }
        op::PAD | op::PADV2 => {
            // PADV2 is registered with pad.cc's Init and Prepare; neither has builtin options.
            f.op_data = Some(56); // OpData { PadParams, int32 }
            f.prepare_temps = vec![In(0), In(1), In(2), Out(0)]; // PadPrepare
        }
        op::CONCATENATION => {
            f.builtin_data = Some(layout(&[(4, 4), s.en()])); // TfLiteConcatenationParams
                                                              // OpData: ConcatenationParams: int32, 2 pointers, 2 int32, float (+int[10] with compression)
            let base = align_up(align_up(4, p) + 2 * p + 12, p);
            f.op_data = Some(base + if s.compression { 40 } else { 0 });
            // ConcatenationPrepare: the first input and the output, then every input.
            let inputs = (0..sh.input_shapes.len()).map(In);
            f.prepare_temps = [In(0), Out(0)].into_iter().chain(inputs).collect();
        }
        op::QUANTIZE | op::DEQUANTIZE => {
            f.op_data = Some(32); // OpDataQuantizeReference / DequantizeOpData
            f.prepare_temps = vec![In(0), Out(0)];
        }
        op::LOG_SOFTMAX => {
            // CalculateOpData: the input and output, then (int8 only) LogSoftmaxOpData (five
            // int32, two size_t) from AllocatePersistentBuffer; no builtin data.
            f.prepare_temps = vec![In(0), Out(0)];
            if in_type == Some(INT8) {
                f.prepare_persistent = vec![align_up(20, p) + 2 * p];
            }
        }
        op::LOGISTIC => {
            f.op_data = Some(16); // OpDataLogistic
            f.prepare_temps = vec![In(0), Out(0)];
        }
        op::TANH => {
            f.op_data = Some(16); // tanh's OpData
                                  // TanhPrepare takes the input, then CalculateArithmeticOpData input and output.
            f.prepare_temps = vec![In(0), In(0), Out(0)];
        }
        op::LEAKY_RELU => {
            f.builtin_data = Some((4, 4)); // TfLiteLeakyReluParams
            f.op_data = Some(24); // LeakyReluOpData
            f.prepare_temps = vec![In(0), Out(0)];
        }
        op::HARD_SWISH | op::ELU | op::RELU | op::ABS => {
            // HardSwishParams; elu's OpData { int8_t table[256] }; ReluOpData (7 int32);
            // OpDataAbsRsqrt (four int32, a bool, two enums).
            f.op_data = Some(match code {
                op::HARD_SWISH => 20,
                op::ELU => 256,
                _ => 28,
            });
            f.prepare_temps = vec![In(0), Out(0)];
        }
        op::RELU6 => {
            f.op_data = Some(8); // Relu6OpData
            f.prepare_temps = vec![In(0)]; // Relu6Prepare reads the input only
        }
        op::PRELU | op::RESIZE_NEAREST_NEIGHBOR | op::RESIZE_BILINEAR | op::TRANSPOSE => {
            match code {
                op::PRELU => f.op_data = Some(28), // PreluParams
                // TfLiteResizeNearestNeighborParams, TfLiteResizeBilinearParams: two bools.
                op::RESIZE_NEAREST_NEIGHBOR | op::RESIZE_BILINEAR => f.builtin_data = Some((2, 1)),
                _ => {}
            }
            // PreluPrepare: input, alpha, output; the resize's input, size, output; TransposeContext.
            f.prepare_temps = vec![In(0), In(1), Out(0)];
        }
        op::MIRROR_PAD => {
            f.builtin_data = Some(layout(&[s.en()])); // TfLiteMirrorPaddingParams
            f.op_data = Some(20); // OpDataMirrorPad: five int
            f.prepare_temps = vec![In(0), In(1), Out(0)];
            let rank = input.map_or(0, |s| s.len());
            f.scratch = vec![4 * rank, 4 * rank];
        }
        op::MAXIMUM | op::MINIMUM => {
            // maximum_minimum.cc registers neither Init nor Prepare, and ParseMaximum/ParseMinimum
            // allocate no builtin data: nothing is planned for them.
            f.prepare_temps = vec![];
        }
        op::STRIDED_SLICE => {
            f.builtin_data = Some((24, 4));
            f.op_data = Some(84); // StridedSliceParams
            f.prepare_temps = vec![In(0), In(1), In(2), In(3), Out(0)]; // StridedSliceContext
        }
        _ => {
            // Unknown to this model: assume a large options struct and op data.
            f.known = false;
            f.builtin_data = Some((64, p));
            f.op_data = Some(128);
        }
    }
    f
}

/// The temporary tensors reduce_common.cc's `PrepareSimple` takes: input and axis, and the
/// output when the input is int8.
fn prepare_simple(in_type: Option<u8>) -> Vec<Temp> {
    let mut t = vec![Temp::In(0), Temp::In(1)];
    if in_type == Some(INT8) {
        t.push(Temp::Out(0));
    }
    t
}

/// `arm_convolve_wrapper_s8_get_buffer_size_dsp` (Cortex-M with the DSP extension, GCC): none for
/// a 1x1 convolution (`arm_convolve_1x1_s8_fast` needs one only with Arm Compiler 6, the strided
/// 1x1 kernel none); otherwise the im2col of two columns in int16, the columns rounded up to a
/// multiple of 4 (`arm_convolve_s8_get_buffer_size`, shared by `arm_convolve_1_x_n_s8`).
pub fn cmsis_conv_s8_scratch(
    [kh, kw]: [usize; 2],
    in_c: usize,
    filter_c: usize,
    [pad_h, pad_w]: [usize; 2],
    [dil_h, dil_w]: [usize; 2],
) -> usize {
    let is_1x1 = pad_w == 0 && pad_h == 0 && kw == 1 && kh == 1 && dil_w == 1 && dil_h == 1 && in_c == filter_c;
    if is_1x1 {
        0
    } else {
        2 * align_up(kw * kh * in_c, 4) * 2
    }
}

/// `arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp`: the optimised path (channel multiplier
/// 1, batch 1, no dilation) needs `in_c · kw · kh` int16 values, except the 3x3 kernel with
/// padding at most 1; the other paths none.
pub fn cmsis_depthwise_s8_scratch(
    [kh, kw]: [usize; 2],
    in_n: usize,
    in_c: usize,
    out_c: usize,
    [pad_h, pad_w]: [usize; 2],
    [dil_h, dil_w]: [usize; 2],
) -> usize {
    if in_c != out_c || in_n != 1 || dil_w != 1 || dil_h != 1 || (kw == 3 && kh == 3 && pad_h <= 1 && pad_w <= 1) {
        return 0;
    }
    in_c * kw * kh * 2
}

/// The scratch buffer CMSIS-NN's Conv / DepthwiseConv `Prepare` requests on a Cortex-M with
/// the DSP extension (`ARM_MATH_DSP`, no MVE), built with GCC.
fn cmsis_conv_scratch(code: i32, sh: &OpShapes, in_type: Option<u8>, bias_type: Option<u8>) -> Option<usize> {
    let input = sh.input_shapes.first().copied().flatten()?;
    let filter = sh.input_shapes.get(1).copied().flatten()?;
    let output = sh.output_shapes.first().copied().flatten()?;
    let g = sh.conv?;
    let d = |s: &[i32], k: usize| s.get(k).map_or(0, |&v| v.max(0) as usize);
    let (in_n, in_h, in_w, in_c) = (d(input, 0), d(input, 1), d(input, 2), d(input, 3));
    let (kh, kw) = (d(filter, 1), d(filter, 2));
    let (dil_h, dil_w) = (g.dilation_h.max(1) as usize, g.dilation_w.max(1) as usize);
    let (stride_h, stride_w) = (g.stride_h.max(1) as usize, g.stride_w.max(1) as usize);
    let pad_h = conv_padding(g.same, stride_h, dil_h, in_h, kh);
    let pad_w = conv_padding(g.same, stride_w, dil_w, in_w, kw);
    let bytes = if code == op::CONV_2D {
        let filter_c = d(filter, 3);
        match in_type {
            Some(INT8) => cmsis_conv_s8_scratch([kh, kw], in_c, filter_c, [pad_h, pad_w], [dil_h, dil_w]),
            // arm_convolve_wrapper_s16_get_buffer_size, used when the bias is int64 (or absent).
            Some(INT16) if matches!(bias_type, None | Some(INT64)) => 2 * in_c * kw * kh * 2,
            _ => 0,
        }
    } else {
        let out_c = d(output, 3);
        let filter_type = sh.input_types.get(1).copied().flatten();
        match in_type {
            // arm_depthwise_conv_wrapper_s4_get_buffer_size: the s8 optimized kernel's buffer on
            // a DSP core whenever that kernel applies, without the s8 wrapper's 3x3 exception.
            Some(INT8) if filter_type == Some(INT4) && in_c == out_c && in_n == 1 && dil_h == 1 && dil_w == 1 => {
                in_c * kw * kh * 2
            }
            Some(INT8) if filter_type == Some(INT4) => 0,
            Some(INT8) => cmsis_depthwise_s8_scratch([kh, kw], in_n, in_c, out_c, [pad_h, pad_w], [dil_h, dil_w]),
            _ => 0,
        }
    };
    (bytes > 0).then_some(bytes)
}
