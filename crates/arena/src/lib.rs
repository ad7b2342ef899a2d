//! `tinyq-arena`: predicts the tensor arena TensorFlow Lite Micro needs for a
//! `.tflite` model, by replaying what TFLM's `MicroAllocator` does with it.
//!
//! The arena has two ends (see `docs/arena.md` for the full model):
//!
//! * the **head** (non-persistent, grows up from the aligned arena start): the
//!   activation tensors and scratch buffers, packed by TFLM's greedy memory
//!   planner ([`greedy_plan`]); while the model is being prepared the head also
//!   holds temporary data (scratch-buffer requests, temporary `TfLiteTensor`s,
//!   the planner's own work arrays);
//! * the **tail** (persistent, grows down from the arena end): allocator
//!   objects, per-tensor and per-node structs, builtin options, kernel op data,
//!   per-channel multipliers/shifts, scratch-buffer handles, variable tensors and
//!   the interpreter's input/output `TfLiteTensor`s.
//!
//! The required arena is the largest head + tail over the allocation phases,
//! rounded up to the 16-byte arena alignment.  Struct sizes depend on the pointer
//! width, so the answer differs between a 64-bit host and a 32-bit MCU.
//!
//! ```no_run
//! let bytes = std::fs::read("model.tflite").unwrap();
//! let plan = tinyq_arena::plan_arena(&bytes, tinyq_arena::PointerWidth::Bits32).unwrap();
//! println!("arena: {} bytes (head {}, tail {})", plan.total_bytes, plan.head_bytes, plan.tail_bytes);
//! ```

mod flatbuf;
mod greedy;
mod structs;
mod tflm;

use std::collections::BTreeMap;
use std::path::Path;

pub use flatbuf::ConvGeometry;
pub use greedy::{greedy_plan, BufferRequest, GreedyPlan};
pub use structs::{struct_sizes, StructSize};
use tflm::{align_up, op_footprint, OpShapes, Sizes, ARENA_ALIGN, GREEDY_PER_BUFFER, MAX_SCRATCH_PER_OP};
pub use tflm::{cmsis_conv_s8_scratch, cmsis_depthwise_s8_scratch, Kernels, Temp};

/// Pointer width of the target running TFLM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointerWidth {
    /// 32-bit MCUs (Cortex-M, RISC-V 32, Xtensa).
    Bits32,
    /// 64-bit hosts (x86-64, AArch64), e.g. the `tflite-micro` Python interpreter.
    Bits64,
}

impl PointerWidth {
    /// `sizeof(void*)`.
    pub fn bytes(self) -> usize {
        match self {
            PointerWidth::Bits32 => 4,
            PointerWidth::Bits64 => 8,
        }
    }
}

/// How the TFLM that will run the model is built and set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    pub pointer_width: PointerWidth,
    /// TFLM built with `USE_TFLM_COMPRESSION` (the Python wheel is): kernels'
    /// op data carry extra scratch indices and `SubgraphAllocations` a pointer more.
    pub compression_build: bool,
    /// The allocator is a `RecordingMicroAllocator` (the Python interpreter's
    /// default) rather than a plain `MicroAllocator`.
    pub recording_allocator: bool,
    /// Bytes lost when the arena buffer itself is not 16-byte aligned (0 to 15);
    /// added to the total.  0 for `malloc`/`new` buffers and `alignas(16)` arrays.
    pub base_misalignment: usize,
    /// Reference or CMSIS-NN kernels.
    pub kernels: Kernels,
    /// C enums take the smallest integer type that holds them (arm-none-eabi's AAPCS
    /// default); otherwise they are 4 bytes.
    pub short_enums: bool,
}

impl PlanConfig {
    /// The `tflite-micro` Python interpreter on a 64-bit host: recording
    /// allocator, compression-enabled build, 16-byte aligned `new[]` arena.
    pub fn python_host() -> Self {
        PlanConfig {
            pointer_width: PointerWidth::Bits64,
            compression_build: true,
            recording_allocator: true,
            base_misalignment: 0,
            kernels: Kernels::Reference,
            short_enums: false,
        }
    }
    /// A firmware build: plain `MicroAllocator`, no compression, aligned arena, reference
    /// kernels. 32-bit firmware is taken to be built by arm-none-eabi-gcc (short enums).
    pub fn firmware(pointer_width: PointerWidth) -> Self {
        PlanConfig {
            pointer_width,
            compression_build: false,
            recording_allocator: false,
            base_misalignment: 0,
            kernels: Kernels::Reference,
            short_enums: pointer_width == PointerWidth::Bits32,
        }
    }
    /// The same configuration with `kernels`.
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        PlanConfig { kernels, ..self }
    }
    /// The default for a pointer width: [`PlanConfig::python_host`] for 64 bits
    /// (what one measures on a host), [`PlanConfig::firmware`] for 32 bits.
    pub fn for_width(pointer_width: PointerWidth) -> Self {
        Self::for_build(pointer_width, TflmBuild::default_for(pointer_width))
    }
    /// The configuration of `build` at `pointer_width`.
    pub fn for_build(pointer_width: PointerWidth, build: TflmBuild) -> Self {
        match build {
            TflmBuild::Python => Self::python_host(),
            TflmBuild::Firmware => Self::firmware(pointer_width),
        }
    }
}

/// Which build of TFLM loads the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TflmBuild {
    /// The `tflite-micro` Python package's interpreter (64-bit only): [`PlanConfig::python_host`].
    Python,
    /// TFLM compiled into a program: [`PlanConfig::firmware`].
    Firmware,
}

impl TflmBuild {
    /// `python` at 64 bits (where one usually measures), `firmware` at 32.
    pub fn default_for(pointer_width: PointerWidth) -> Self {
        match pointer_width {
            PointerWidth::Bits64 => TflmBuild::Python,
            PointerWidth::Bits32 => TflmBuild::Firmware,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TflmBuild::Python => "python",
            TflmBuild::Firmware => "firmware",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "python" => Some(TflmBuild::Python),
            "firmware" => Some(TflmBuild::Firmware),
            _ => None,
        }
    }
}

/// Kinds of persistent (tail) allocations.  Alignment padding is charged to the
/// allocation that needed it, as TFLM's recording allocator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PersistentKind {
    /// The buffer allocator, the greedy planner and the `MicroAllocator` objects,
    /// which TFLM places in the arena itself, plus the builtin-data allocator.
    AllocatorObjects,
    /// `SubgraphAllocations`, one per subgraph.
    SubgraphAllocations,
    /// `TfLiteEvalTensor`, one per tensor of every subgraph.
    EvalTensors,
    /// `NodeAndRegistration` (a `TfLiteNode` + registration pointer), one per operator.
    NodeAndRegistrations,
    /// Builtin options structs parsed from the flatbuffer (`TfLiteConvParams`, ...).
    BuiltinData,
    /// Each kernel's `OpData`, allocated in `Init`.
    OpData,
    /// Per-channel output multipliers and shifts (and other `Prepare`-time buffers).
    PerChannelQuantization,
    /// `ScratchBufferHandle`s, one per scratch-buffer request.
    ScratchBufferHandles,
    /// Buffers of variable tensors.
    VariableTensors,
    /// The interpreter's `TfLiteTensor*` arrays for inputs and outputs.
    IoTensorArrays,
    /// Persistent `TfLiteTensor`s for the model inputs and outputs.
    IoTensors,
    /// `TfLiteAffineQuantization` + zero-point arrays of those tensors.
    IoQuantization,
}

/// Bytes (including alignment padding) and allocation count of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistentUse {
    pub bytes: usize,
    pub count: usize,
}

/// Where the planner put one activation tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlacement {
    /// Tensor index in subgraph 0.
    pub index: usize,
    pub name: String,
    /// `TfLiteEvalTensorByteLength`.
    pub bytes: usize,
    /// Size handed to the planner (rounded up to 16).
    pub aligned_bytes: usize,
    /// Offset from the start of the head.
    pub offset: usize,
    /// Allocation scopes: 0 is "before the first operator", operator `i` is `i + 1`.
    pub first_use: i32,
    pub last_use: i32,
}

/// Where the planner put one kernel scratch buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScratchPlacement {
    /// Operator index that requested it.
    pub node: usize,
    pub bytes: usize,
    pub aligned_bytes: usize,
    pub offset: usize,
}

/// The allocation phase that needs the most arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakPhase {
    /// An operator's `Prepare` (scratch-request area + temporary tensors).
    Prepare { node: usize },
    /// `CommitStaticMemoryPlan`: allocation info and the greedy planner's work arrays.
    MemoryPlanning,
    /// After `AllocateTensors`: the planned head plus the whole tail.
    Steady,
}

/// The predicted arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    pub config: PlanConfig,
    /// Size of the non-persistent head after `AllocateTensors` (the greedy plan).
    pub head_bytes: usize,
    /// Size of the persistent tail after `AllocateTensors`.
    pub tail_bytes: usize,
    /// The smallest arena `AllocateTensors` and `Invoke` succeed with.
    pub total_bytes: usize,
    /// Which phase sets `total_bytes`.
    pub peak_phase: PeakPhase,
    /// Arena needed by each phase: `(phase, bytes)`, unrounded.
    pub phase_requirements: Vec<(PeakPhase, usize)>,
    /// Every planned activation tensor of subgraph 0.
    pub per_tensor: Vec<TensorPlacement>,
    /// Every planned scratch buffer.
    pub scratch: Vec<ScratchPlacement>,
    /// Bytes of head alive at each allocation scope `0..=operators`.
    pub per_step_live_bytes: Vec<usize>,
    /// The tail broken down by kind.
    pub persistent: BTreeMap<PersistentKind, PersistentUse>,
    /// Builtin codes of operators this model does not know; their tail use is a
    /// generous guess.
    pub unknown_ops: Vec<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    #[error("not a TFLite flatbuffer (no \"TFL3\" identifier)")]
    NotTflite,
    #[error("malformed TFLite flatbuffer: {0}")]
    Malformed(String),
    #[error("not supported by the arena model: {0}")]
    Unsupported(String),
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Predicts the arena for `model` (a `.tflite` flatbuffer) with the default
/// configuration for `pointer_width` ([`PlanConfig::for_width`]).
pub fn plan_arena(model: &[u8], pointer_width: PointerWidth) -> Result<ArenaPlan, ArenaError> {
    plan_arena_with(model, &PlanConfig::for_width(pointer_width))
}

/// [`plan_arena`] on a file.
pub fn plan_arena_file(path: impl AsRef<Path>, pointer_width: PointerWidth) -> Result<ArenaPlan, ArenaError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ArenaError::Io { path: path.display().to_string(), source })?;
    plan_arena(&bytes, pointer_width)
}

/// The persistent tail as a list of allocation events, interleaved with the
/// points where the head must fit below it.  Replayed once per possible
/// alignment of the arena end (TFLM aligns every tail allocation *down*, so the
/// padding depends on `arena_size % 16`).
#[derive(Default)]
struct Tail {
    events: Vec<TailEvent>,
}

enum TailEvent {
    Alloc(PersistentKind, usize, usize),
    /// The head reaches this many bytes from the arena start here.
    Need(PeakPhase, usize),
}

impl Tail {
    fn alloc(&mut self, kind: PersistentKind, size: usize, align: usize) {
        self.events.push(TailEvent::Alloc(kind, size, align));
    }
    fn need(&mut self, phase: PeakPhase, head_end: usize) {
        self.events.push(TailEvent::Need(phase, head_end));
    }
    /// Replays the events with the arena end at an address `== residue (mod 16)`.
    fn replay(&self, residue: usize) -> Replay {
        let top: u64 = (1u64 << 60) + residue as u64;
        let mut cur = top;
        let mut out = Replay { used: 0, kinds: BTreeMap::new(), needs: Vec::new() };
        for e in &self.events {
            match *e {
                TailEvent::Alloc(kind, size, align) => {
                    let new = (cur - size as u64) / align as u64 * align as u64;
                    let u = out.kinds.entry(kind).or_default();
                    u.bytes += (cur - new) as usize;
                    u.count += 1;
                    cur = new;
                }
                TailEvent::Need(phase, head_end) => out.needs.push((phase, head_end + (top - cur) as usize)),
            }
        }
        out.used = (top - cur) as usize;
        out
    }
}

struct Replay {
    used: usize,
    kinds: BTreeMap<PersistentKind, PersistentUse>,
    /// Per phase: the arena size needed (for this residue).
    needs: Vec<(PeakPhase, usize)>,
}

fn tensor_bytes(t: &flatbuf::FbTensor) -> usize {
    let n: usize = t.shape.iter().map(|&d| d.max(0) as usize).product();
    n * tflm::type_size(t.ttype)
}

/// Predicts the arena for `model` under `config`.
pub fn plan_arena_with(model: &[u8], config: &PlanConfig) -> Result<ArenaPlan, ArenaError> {
    let m = flatbuf::parse(model)?;
    if m.subgraphs.len() > 1 {
        return Err(ArenaError::Unsupported(format!(
            "{} subgraphs (control flow); only single-subgraph models are modelled",
            m.subgraphs.len()
        )));
    }
    if m.metadata_names.iter().any(|n| n == "OfflineMemoryAllocation") {
        return Err(ArenaError::Unsupported("offline-planned (OfflineMemoryAllocation) models".into()));
    }
    let sg = &m.subgraphs[0];
    let s = Sizes {
        e: if config.short_enums { 1 } else { 4 },
        kernels: config.kernels,
        wheel_options: config.recording_allocator && config.compression_build,
        ..Sizes::new(config.pointer_width, config.compression_build)
    };
    let p = s.p;
    let mut tail = Tail::default();
    use PersistentKind as K;

    // MicroAllocator::Create: the allocator objects live at the top of the tail.
    if config.recording_allocator {
        tail.alloc(K::AllocatorObjects, s.recording_single_arena_allocator(), p);
        tail.alloc(K::AllocatorObjects, s.greedy_planner(), p);
        tail.alloc(K::AllocatorObjects, s.recording_micro_allocator(), p);
    } else {
        tail.alloc(K::AllocatorObjects, s.single_arena_allocator(), p);
        tail.alloc(K::AllocatorObjects, s.greedy_planner(), p);
        tail.alloc(K::AllocatorObjects, s.micro_allocator(), p);
    }
    // StartModelAllocation.
    tail.alloc(K::AllocatorObjects, s.builtin_data_allocator(), p);
    tail.alloc(K::SubgraphAllocations, s.subgraph_allocations() * m.subgraphs.len(), p);
    tail.alloc(K::EvalTensors, s.eval_tensor() * sg.tensors.len(), p);
    tail.alloc(K::NodeAndRegistrations, s.node_and_registration() * sg.ops.len(), p);

    // What each kernel allocates.
    let tensor = |i: i32| (i >= 0).then(|| &sg.tensors[i as usize]);
    let mut unknown_ops = Vec::new();
    let footprints: Vec<_> = sg
        .ops
        .iter()
        .map(|op| {
            let shapes = OpShapes {
                input_shapes: op.inputs.iter().map(|&i| tensor(i).map(|t| t.shape.as_slice())).collect(),
                output_shapes: op.outputs.iter().map(|&i| tensor(i).map(|t| t.shape.as_slice())).collect(),
                input_channels: op.inputs.iter().map(|&i| tensor(i).and_then(|t| t.quant_channels)).collect(),
                input_types: op.inputs.iter().map(|&i| tensor(i).map(|t| t.ttype)).collect(),
                conv: op.conv,
            };
            let f = op_footprint(op.builtin_code, &s, &shapes);
            if !f.known && !unknown_ops.contains(&op.builtin_code) {
                unknown_ops.push(op.builtin_code);
            }
            f
        })
        .collect();

    // PrepareNodeAndRegistrationDataFromFlatbuffer: builtin options.
    for f in &footprints {
        if let Some((size, align)) = f.builtin_data {
            tail.alloc(K::BuiltinData, size, align);
        }
    }
    // InitSubgraphs: op data (AllocatePersistentBuffer aligns to 16).
    for f in &footprints {
        if let Some(size) = f.op_data {
            tail.alloc(K::OpData, size, ARENA_ALIGN);
        }
    }
    // PrepareSubgraphs: per-channel data, scratch requests, temporary tensors.
    // A temporary TfLiteTensor from `start`: (end of what DeallocateTempTfLiteTensor reads, end
    // of the allocation). Deallocating reads the struct and, when quantized, the zero-point
    // pointer of its TfLiteAffineQuantization (for the temp allocator's checksum), not the
    // zero-point array.
    let temp_tensor_bytes = |start: usize, idx: i32| -> (usize, usize) {
        let Some(t) = tensor(idx) else { return (start, start) };
        let mut read_end = align_up(start, p) + s.tflite_tensor();
        let mut at = read_end;
        if let Some(ch) = t.quant_channels {
            at = align_up(at, p);
            read_end = at + 2 * p; // `scale` and `zero_point` pointers
            at += s.affine_quantization();
            at = align_up(at, 4) + Sizes::int_array(ch);
        }
        (read_end, at)
    };
    let mut scratch_requests: Vec<(usize, usize)> = Vec::new(); // (node, bytes)
    for (node, (op, f)) in sg.ops.iter().zip(&footprints).enumerate() {
        // The request area reserved before this node: room for 12 more requests.
        let request_area = s.scratch_request() * (scratch_requests.len() + MAX_SCRATCH_PER_OP);
        // Kernels take temporary TfLiteTensors (`OpFootprint::prepare_temps`, all held until
        // the node's Prepare ends) and allocate their per-channel buffers from the tail. The
        // allocator checks a persistent allocation against `head_` only, not `temp_`, so the
        // buffers can land on temporaries; what the kernel still reads must not be under them
        // (all of it, unless `OpFootprint::prepare_overlap` says less).
        let mut temp = request_area;
        let mut kept = temp;
        for (k, t) in f.prepare_temps.iter().enumerate() {
            let index = match *t {
                Temp::In(j) => op.inputs.get(j),
                Temp::Out(j) => op.outputs.get(j),
            };
            if let Some(&i) = index {
                let (read_end, end) = temp_tensor_bytes(temp, i);
                if f.prepare_overlap.is_none_or(|last| k < last) {
                    kept = end;
                } else if f.prepare_overlap == Some(k) {
                    kept = read_end;
                }
                temp = end;
            }
        }
        if f.prepare_overlap.is_some() {
            // Every temporary fits below the tail before the buffers are allocated; what is
            // still read fits below it after.
            tail.need(PeakPhase::Prepare { node }, temp);
            temp = kept;
        }
        for &bytes in &f.prepare_persistent {
            tail.alloc(K::PerChannelQuantization, bytes, ARENA_ALIGN);
        }
        tail.need(PeakPhase::Prepare { node }, temp);
        scratch_requests.extend(f.scratch.iter().map(|&b| (node, b)));
    }

    // FinishModelAllocation: scratch handles, then CommitStaticMemoryPlan.
    if !scratch_requests.is_empty() {
        tail.alloc(K::ScratchBufferHandles, s.scratch_handle() * scratch_requests.len(), p);
    }
    for t in sg.tensors.iter().filter(|t| t.is_variable) {
        tail.alloc(K::VariableTensors, tensor_bytes(t), ARENA_ALIGN);
    }

    // Lifetimes (AllocationInfoBuilder::MarkAllocationLifetimes, subgraph 0).
    let n = sg.tensors.len();
    let (mut first, mut last) = (vec![-1i32; n], vec![-1i32; n]);
    // UpdateFirstCreated keeps the first scope; UpdateLastUsed the latest one.
    let mut created = |i: i32, scope: i32| {
        if i >= 0 && first[i as usize] == -1 {
            first[i as usize] = scope;
        }
    };
    let end = sg.ops.len() as i32;
    for &i in &sg.inputs {
        created(i, 0);
    }
    for (k, op) in sg.ops.iter().enumerate() {
        for &o in &op.outputs {
            created(o, k as i32 + 1);
        }
    }
    for &o in &sg.outputs {
        created(o, end);
    }
    let mut used = |i: i32, scope: i32| {
        if i >= 0 {
            last[i as usize] = scope;
        }
    };
    for &i in &sg.inputs {
        used(i, 0);
    }
    for (k, op) in sg.ops.iter().enumerate() {
        for &i in op.inputs.iter().chain(&op.outputs) {
            used(i, k as i32 + 1);
        }
    }
    for &o in &sg.outputs {
        used(o, end);
    }
    let mut requests = Vec::new();
    let mut planned_tensors = Vec::new();
    for (i, t) in sg.tensors.iter().enumerate() {
        let bytes = tensor_bytes(t);
        if !t.has_data && !t.is_variable && bytes != 0 {
            requests.push(BufferRequest::new(align_up(bytes, ARENA_ALIGN), first[i], last[i]));
            planned_tensors.push((i, bytes));
        }
    }
    for &(node, bytes) in &scratch_requests {
        requests.push(BufferRequest::new(align_up(bytes, ARENA_ALIGN), node as i32 + 1, node as i32 + 1));
    }
    let plan = greedy_plan(&requests);

    // Planning-time head: request area, subgraph offsets, AllocationInfo array,
    // then the planner's arrays in whatever is left (aligned to 16 at both ends).
    let request_area = s.scratch_request() * (scratch_requests.len() + MAX_SCRATCH_PER_OP);
    let mut temp = align_up(request_area, p) + p * m.subgraphs.len();
    temp = align_up(temp, p) + s.allocation_info() * (n + scratch_requests.len());
    let planner_need = align_up(align_up(temp, ARENA_ALIGN) + GREEDY_PER_BUFFER * requests.len(), ARENA_ALIGN);
    tail.need(PeakPhase::MemoryPlanning, planner_need);

    // Interpreter: input/output TfLiteTensor arrays and tensors.
    let head_bytes = plan.size;
    for list in [&sg.inputs, &sg.outputs] {
        tail.alloc(K::IoTensorArrays, p * list.len(), ARENA_ALIGN);
        for &i in list.iter() {
            tail.alloc(K::IoTensors, s.tflite_tensor(), p);
            if let Some(ch) = tensor(i).and_then(|t| t.quant_channels) {
                tail.alloc(K::IoQuantization, s.affine_quantization(), p);
                tail.alloc(K::IoQuantization, Sizes::int_array(ch), 4);
            }
        }
    }
    tail.need(PeakPhase::Steady, head_bytes);

    // For arena sizes N = r (mod 16) the allocation succeeds iff N >= need(r).
    // The answer is the smallest N above every failing size, so that any larger
    // arena works too (what a bisection over N finds).
    let mut total_bytes = 0;
    for r in 0..ARENA_ALIGN {
        let need = tail.replay(r).needs.iter().map(|n| n.1).max().unwrap_or(0);
        if need > r {
            let largest_failing = need - 1 - (need - 1 - r) % ARENA_ALIGN;
            total_bytes = total_bytes.max(largest_failing + 1);
        }
    }
    total_bytes += config.base_misalignment;
    // The breakdown is reported for a 16-byte aligned arena end.
    let aligned = tail.replay(0);
    let phase_requirements = aligned.needs.clone();
    // The first phase reaching the maximum.
    let (peak_phase, _) =
        phase_requirements.iter().copied().fold(phase_requirements[0], |best, x| if x.1 > best.1 { x } else { best });

    let per_tensor = planned_tensors
        .iter()
        .enumerate()
        .map(|(k, &(i, bytes))| TensorPlacement {
            index: i,
            name: sg.tensors[i].name.clone(),
            bytes,
            aligned_bytes: requests[k].size,
            offset: plan.offsets[k],
            first_use: requests[k].first_used,
            last_use: requests[k].last_used,
        })
        .collect();
    let scratch = scratch_requests
        .iter()
        .enumerate()
        .map(|(k, &(node, bytes))| {
            let r = planned_tensors.len() + k;
            ScratchPlacement { node, bytes, aligned_bytes: requests[r].size, offset: plan.offsets[r] }
        })
        .collect();
    let per_step_live_bytes = (0..=end)
        .map(|t| requests.iter().filter(|r| r.first_used <= t && t <= r.last_used).map(|r| r.size).sum())
        .collect();

    Ok(ArenaPlan {
        config: *config,
        head_bytes,
        tail_bytes: aligned.used,
        total_bytes,
        peak_phase,
        phase_requirements,
        per_tensor,
        scratch,
        per_step_live_bytes,
        persistent: aligned.kinds,
        unknown_ops,
    })
}

impl ArenaPlan {
    /// A short human-readable report.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "arena {} B ({}-bit, peak in {:?}): head {} B + tail {} B\n",
            self.total_bytes,
            self.config.pointer_width.bytes() * 8,
            self.peak_phase,
            self.head_bytes,
            self.tail_bytes
        );
        for (k, u) in &self.persistent {
            s += &format!("  {:<24} {:>8} B in {} allocation(s)\n", format!("{k:?}"), u.bytes, u.count);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_tflm_on_64_bit() {
        let s = Sizes::new(PointerWidth::Bits64, true);
        assert_eq!(s.eval_tensor(), 24);
        assert_eq!(s.node_and_registration(), 64);
        assert_eq!(s.tflite_tensor(), 64);
        assert_eq!(s.affine_quantization(), 24);
        assert_eq!(s.scratch_request(), 16);
        assert_eq!(s.allocation_info(), 32);
        assert_eq!(s.greedy_planner(), 72);
        assert_eq!(s.single_arena_allocator(), 72);
        assert_eq!(s.micro_allocator(), 72);
    }

    #[test]
    fn struct_sizes_on_32_bit() {
        let s = Sizes::new(PointerWidth::Bits32, false);
        assert_eq!(s.eval_tensor(), 12);
        assert_eq!(s.node_and_registration(), 32);
        assert_eq!(s.tflite_tensor(), 40);
        assert_eq!(s.affine_quantization(), 12);
        assert_eq!(s.scratch_request(), 12);
        assert_eq!(s.allocation_info(), 24);
    }

    /// Adding an op makes its builtin's row in the builtin table name a highest version; from then
    /// on this test asks for its footprint arm. Left out: builtins TFLM has no kernel for, and
    /// those the reader folds away (SHAPE, PACK and GATHER of shape subgraphs) or reads as RESHAPE
    /// (EXPAND_DIMS), which tinyq never writes.
    #[test]
    fn every_builtin_tinyq_reads_has_a_footprint() {
        use tflm::op;
        let never_written = [op::SHAPE, op::PACK, op::GATHER, op::EXPAND_DIMS];
        let s = Sizes::new(PointerWidth::Bits32, false);
        let shapes = || OpShapes {
            input_shapes: vec![],
            output_shapes: vec![],
            input_channels: vec![],
            input_types: vec![],
            conv: None,
        };
        let mut checked = 0;
        for b in tinyq_tflite::BUILTINS {
            if b.max_version.is_none() || b.resolver.is_none() || never_written.contains(&b.code) {
                continue;
            }
            assert!(op_footprint(b.code, &s, &shapes()).known, "{} has no arm in op_footprint", b.name);
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} builtins checked");
    }

    #[test]
    fn rejects_non_tflite() {
        assert!(matches!(plan_arena(b"not a model", PointerWidth::Bits64), Err(ArenaError::NotTflite)));
        assert!(plan_arena(b"\x10\0\0\0TFL3\0\0", PointerWidth::Bits64).is_err());
    }
}
