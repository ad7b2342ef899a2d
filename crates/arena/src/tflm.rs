//! Sizes of the TFLM structures that land in the arena, as functions of the
//! pointer width, and the per-operator allocations of TFLM's reference kernels.
//!
//! Every size is `sizeof` under the usual C ABI rules for the given pointer
//! width (`size_t`, `intptr_t` and pointers are `P` bytes; `double` is
//! 8-aligned, as on Arm EABI and x86-64).  The structs are the
//! `TF_LITE_STATIC_MEMORY` variants TFLM builds with.

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

/// Struct sizes for one pointer width and build flavour.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub p: usize,
    pub compression: bool,
}

impl Sizes {
    pub fn new(pw: PointerWidth, compression: bool) -> Self {
        Sizes { p: pw.bytes(), compression }
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
    /// `RecordingMicroAllocator`: a pointer plus eight `RecordedAllocation`s
    /// (3 `size_t` each); fitted to the tflite-micro Python wheel's 64-bit arena.
    pub fn recording_micro_allocator(&self) -> usize {
        self.micro_allocator() + self.p + 8 * 3 * self.p
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
        align_up(2 * self.p + 4, self.p)
    }
    /// `NodeAndRegistration`: `TfLiteNode` (6 pointers + int) + registration pointer.
    pub fn node_and_registration(&self) -> usize {
        align_up(6 * self.p + 4, self.p) + self.p
    }
    /// `TfLiteTensor` (static-memory layout).
    pub fn tflite_tensor(&self) -> usize {
        let p = self.p;
        // quantization {enum, void*}, params {float, int32}, data, dims, bytes, type, alloc type, bool
        let quant = align_up(4, p) + p;
        align_up(quant + 8 + 3 * p + 4 + 4 + 1, p)
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

/// Builtin operator codes the model knows.
pub mod op {
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
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const SOFTMAX: i32 = 25;
    pub const TANH: i32 = 28;
    pub const PAD: i32 = 34;
    pub const TRANSPOSE: i32 = 39;
    pub const MEAN: i32 = 40;
    pub const SUB: i32 = 41;
    pub const SQUEEZE: i32 = 43;
    pub const STRIDED_SLICE: i32 = 45;
    pub const PRELU: i32 = 54;
    pub const SUM: i32 = 74;
    pub const REDUCE_MAX: i32 = 82;
    pub const RESIZE_NEAREST_NEIGHBOR: i32 = 97;
    pub const LEAKY_RELU: i32 = 98;
    pub const ELU: i32 = 111;
    pub const QUANTIZE: i32 = 114;
    pub const HARD_SWISH: i32 = 117;
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
    /// False when the operator is not in the table and a generous default is used.
    pub known: bool,
}

/// Shapes the kernels consult, resolved by the caller.
pub struct OpShapes<'a> {
    pub input_shapes: Vec<Option<&'a [i32]>>,
    pub output_shapes: Vec<Option<&'a [i32]>>,
    /// Quantization channel count of each input (None: not quantized / absent).
    pub input_channels: Vec<Option<usize>>,
    /// Element type of each input.
    pub input_types: Vec<Option<u8>>,
}

fn elems(s: Option<&[i32]>) -> usize {
    s.map_or(0, |s| s.iter().map(|&d| d.max(0) as usize).product())
}

/// The allocations TFLM's reference kernels make for operator `code`.
pub fn op_footprint(code: i32, s: &Sizes, sh: &OpShapes) -> OpFootprint {
    let p = s.p;
    let c = s.compression;
    let mut f = OpFootprint { known: true, ..Default::default() };
    let filter = sh.input_shapes.get(1).copied().flatten();
    let filter_is_int4 = sh.input_types.get(1).copied().flatten() == Some(17);
    match code {
        op::FULLY_CONNECTED => {
            // TfLiteFullyConnectedParams: 16 bytes in the TFLM sources read, but the
            // Python wheel's arena shows 32 per FULLY_CONNECTED; use the larger.
            f.builtin_data = Some((32, 4));
            // OpDataFullyConnected: 9 ints, 2 pointers, a bool (+2 ints with compression)
            let base = align_up(36, p) + 2 * p;
            f.op_data = Some(align_up(base + 1 + if c { 3 + 8 } else { 0 }, p));
            if let Some(ch) = sh.input_channels.get(1).copied().flatten().filter(|&ch| ch > 1) {
                f.prepare_persistent = vec![4 * ch, 4 * ch];
            }
            if filter_is_int4 {
                f.scratch.push(elems(filter));
            }
        }
        op::CONV_2D | op::DEPTHWISE_CONV_2D => {
            // TfLiteConvParams (7 ints) / TfLiteDepthwiseConvParams (7 ints)
            f.builtin_data = Some((28, 4));
            // OpDataConv: TfLitePaddingValues, 5 ints, 2 pointers, 3 ints (+2 with compression)
            let base = align_up(16 + 20, p) + 2 * p + 12 + if c { 8 } else { 0 };
            f.op_data = Some(align_up(base, p));
            let ch_dim = if code == op::CONV_2D { 0 } else { 3 };
            let ch = filter.and_then(|f| f.get(ch_dim)).map_or(0, |&d| d.max(0) as usize);
            f.prepare_persistent = vec![4 * ch, 4 * ch];
            if filter_is_int4 {
                f.scratch.push(elems(filter));
            }
        }
        op::ADD | op::SUB => {
            f.builtin_data = Some((8, 4)); // TfLiteAddParams / TfLiteSubParams
            f.op_data = Some(60); // OpDataAdd / OpDataSub: bool + 12 ints + 2 floats
        }
        op::MUL => {
            f.builtin_data = Some((4, 4));
            f.op_data = Some(36); // OpDataMul
        }
        op::AVERAGE_POOL_2D | op::MAX_POOL_2D => {
            f.builtin_data = Some((40, 4)); // TfLitePoolParams
            f.op_data = Some(32); // OpDataPooling
        }
        op::RESHAPE => {
            f.builtin_data = Some((36, 4)); // TfLiteReshapeParams
        }
        op::SQUEEZE => {
            f.builtin_data = Some((36, 4)); // TfLiteSqueezeParams
        }
        op::SOFTMAX => {
            f.builtin_data = Some((4, 4)); // TfLiteSoftmaxParams
                                           // SoftmaxParams: double, 6 int32, float, 5 pointers
            f.op_data = Some(align_up(align_up(8 + 24 + 4, 8) + 5 * p, 8));
            if sh.input_types.first().copied().flatten() == Some(7) {
                // int16 softmax: exp and 1/(1+x) lookup tables of 513 int16 each.
                f.prepare_persistent = vec![2 * 513, 2 * 513];
            }
        }
        op::MEAN | op::SUM => {
            f.builtin_data = Some((1, 1)); // TfLiteReducerParams
            f.op_data = Some(44); // OpDataReduce
            let in_rank = sh.input_shapes.first().copied().flatten().map_or(0, |s| s.len());
            let num_axis = elems(sh.input_shapes.get(1).copied().flatten());
            let out_elems = elems(sh.output_shapes.first().copied().flatten());
            let quantized = matches!(sh.input_types.first().copied().flatten(), Some(9) | Some(7));
            if quantized {
                f.scratch.push(4 * out_elems);
            }
            f.scratch.push(4 * in_rank);
            f.scratch.push(4 * num_axis);
        }
        op::REDUCE_MAX => {
            f.builtin_data = Some((1, 1)); // TfLiteReducerParams
            f.op_data = Some(44); // OpDataReduce
            let in_rank = sh.input_shapes.first().copied().flatten().map_or(0, |s| s.len());
            f.scratch.push(4 * in_rank);
            f.scratch.push(4 * elems(sh.input_shapes.get(1).copied().flatten()));
        }
        op::PAD => {
            f.op_data = Some(56); // OpData { PadParams, int32 }
        }
        op::CONCATENATION => {
            f.builtin_data = Some((8, 4));
            // ConcatenationParams: int32, 2 pointers, 2 int32, float (+int[10] with compression)
            let base = align_up(align_up(4, p) + 2 * p + 12, p);
            f.op_data = Some(base + if c { 40 } else { 0 });
        }
        op::QUANTIZE => f.op_data = Some(32),   // OpDataQuantizeReference
        op::DEQUANTIZE => f.op_data = Some(32), // DequantizeOpData
        op::LOGISTIC | op::TANH => f.op_data = Some(16),
        op::LEAKY_RELU => {
            f.builtin_data = Some((4, 4));
            f.op_data = Some(24);
        }
        op::HARD_SWISH => f.op_data = Some(20), // HardSwishParams
        op::PRELU => f.op_data = Some(28),      // PreluParams
        op::ELU => f.op_data = Some(256),       // OpData { int8_t table[256] }
        op::RESIZE_NEAREST_NEIGHBOR => f.builtin_data = Some((2, 1)), // TfLiteResizeNearestNeighborParams
        op::RELU => f.op_data = Some(24),       // ReluOpData
        op::RELU6 => f.op_data = Some(8),       // Relu6OpData
        op::TRANSPOSE => {}
        op::STRIDED_SLICE => {
            f.builtin_data = Some((24, 4));
            f.op_data = Some(84); // StridedSliceParams
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
