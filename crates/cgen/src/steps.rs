//! One function per kind of prepared step: what it allows the memory planner ([`sharing`]), and
//! the C it becomes ([`emit`]): constant arrays and a params struct in flash, one call in
//! `invoke`.

use std::fmt::Write;

use tinyq_int8::{PerChannel, StepKind, StepView};
use tinyq_kernels::fixedpoint::{exp_on_negative_values, multiply_by_quantized_multiplier_greater_than_one};

use crate::memory::{Mode, Sharing};

/// Integer bits of SOFTMAX's scaled input differences (TFLM `kScaledDiffIntegerBits`).
const SOFTMAX_DIFF_INTEGER_BITS: i32 = 5;

/// The C kernel files a kind of step needs (beside `tq_kernels.h`).
pub fn kernel_file(kind: &StepKind<'_>) -> Option<&'static str> {
    Some(match kind {
        StepKind::Conv2D(..) => "tq_conv.c",
        StepKind::DepthwiseConv2D(..) => "tq_dwconv.c",
        StepKind::FullyConnected(..) | StepKind::FullyConnectedPerChannel(..) => "tq_fc.c",
        StepKind::Add { .. } | StepKind::Sub { .. } => "tq_add.c",
        StepKind::Mul { .. } => "tq_mul.c",
        StepKind::MaxPool(_) | StepKind::AveragePool(_) => "tq_pool.c",
        StepKind::Mean(_) => "tq_mean.c",
        StepKind::Concat(_) | StepKind::Transpose(_) | StepKind::Pad { .. } => "tq_copy.c",
        StepKind::Softmax(_) => "tq_softmax.c",
        StepKind::Table(_) => "tq_table.c",
        StepKind::Reshape | StepKind::Other(_) => return None,
    })
}

/// How the step may share memory with its input (see `memory`). `sizes` are tensor bytes.
pub fn sharing(step: &StepView<'_>, sizes: &[usize]) -> Sharing {
    let out = sizes[step.output];
    match &step.kind {
        StepKind::Reshape => Sharing::View,
        StepKind::Table(_) | StepKind::Softmax(_) => Sharing::InPlace { input: 0, scratch: 0 },
        StepKind::Add { .. } | StepKind::Sub { .. } | StepKind::Mul { .. } => {
            match step.inputs.iter().position(|&t| sizes[t] == out) {
                Some(input) => Sharing::InPlace { input, scratch: 0 },
                None => Sharing::None,
            }
        }
        StepKind::Conv2D(p, _) => {
            let [_, h, w, c] = p.input_shape;
            let [oc, kh, kw, fc] = p.filter_shape;
            let pointwise = kh == 1 && kw == 1 && p.stride_height == 1 && p.stride_width == 1 && fc == c;
            let same_pixels = p.output_shape[1] == h && p.output_shape[2] == w;
            if pointwise && same_pixels && oc <= c {
                Sharing::InPlace { input: 0, scratch: c }
            } else {
                overlap(Rows::conv(p))
            }
        }
        StepKind::DepthwiseConv2D(p, _) => {
            let [_, h, w, _] = p.input_shape;
            if p.depth_multiplier == 1 && p.output_shape[1] * p.output_shape[2] <= h * w {
                Sharing::InPlace { input: 0, scratch: h * w }
            } else {
                overlap(Rows::depthwise(p))
            }
        }
        StepKind::MaxPool(p) | StepKind::AveragePool(p) => overlap(Rows::pool(p)),
        StepKind::FullyConnected(..)
        | StepKind::FullyConnectedPerChannel(..)
        | StepKind::Mean(_)
        | StepKind::Concat(_)
        | StepKind::Transpose(_)
        | StepKind::Pad { .. }
        | StepKind::Other(_) => Sharing::None,
    }
}

/// The rows of a step that reads its input rows and writes its output rows in order (one image):
/// output row `r` reads input rows from `r * stride - pad` on.
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    pub in_rows: usize,
    pub in_row_bytes: usize,
    pub out_rows: usize,
    pub out_row_bytes: usize,
    pub stride: usize,
    pub pad: usize,
    /// Input rows one output row spans (dilation included).
    pub taps: usize,
}

impl Rows {
    /// Bytes the output must start below the input so that, computing `band` output rows per
    /// call (or row by row), no output byte lands on an input row this or a later call reads.
    pub fn lag(&self, band: usize) -> usize {
        let band = band.max(1);
        (0..self.out_rows)
            .step_by(band)
            .map(|r0| {
                let end = (r0 + band).min(self.out_rows) * self.out_row_bytes;
                let lo = (r0 * self.stride).saturating_sub(self.pad).min(self.in_rows);
                end.saturating_sub(lo * self.in_row_bytes)
            })
            .max()
            .unwrap_or(0)
    }

    /// Bytes the output must start above the input so that, computing bands of `band` output
    /// rows from the bottom up, no output byte lands on an input row this or a later call reads.
    pub fn lead(&self, band: usize) -> usize {
        let band = band.max(1);
        (0..self.out_rows)
            .step_by(band)
            .map(|r0| {
                let r1 = (r0 + band).min(self.out_rows);
                let hi = ((r1 - 1) * self.stride + self.taps).saturating_sub(self.pad).min(self.in_rows);
                (hi * self.in_row_bytes).saturating_sub(r0 * self.out_row_bytes)
            })
            .max()
            .unwrap_or(0)
    }

    /// Overlap both ways with `band` rows per call.
    pub fn sharing(&self, band: usize) -> Sharing {
        Sharing::Overlap { input: 0, lag: self.lag(band), lead: self.lead(band) }
    }

    /// Whether every output row reads at least one input row (not only padding).
    pub fn reads_every_row(&self) -> bool {
        let last = (self.out_rows.max(1) - 1) * self.stride;
        self.taps > self.pad && last < self.in_rows + self.pad
    }

    fn of(input: [usize; 4], output: [usize; 4], [stride, pad, taps]: [usize; 3]) -> Option<Rows> {
        let ([n, h, w, c], [_, oh, ow, oc]) = (input, output);
        (n == 1).then_some(Rows {
            in_rows: h,
            in_row_bytes: w * c,
            out_rows: oh,
            out_row_bytes: ow * oc,
            stride,
            pad,
            taps,
        })
    }

    pub fn conv(c: &tinyq_kernels::conv::ConvPerChannelParams) -> Option<Rows> {
        let taps = c.dilation_height * (c.filter_shape[1].max(1) - 1) + 1;
        Rows::of(c.input_shape, c.output_shape, [c.stride_height, c.padding_values.height, taps])
    }

    pub fn depthwise(c: &tinyq_kernels::depthwise_conv::DepthwiseConvPerChannelParams) -> Option<Rows> {
        let taps = c.dilation_height * (c.filter_shape[1].max(1) - 1) + 1;
        Rows::of(c.input_shape, c.output_shape, [c.stride_height, c.padding_values.height, taps])
    }

    pub fn pool(p: &tinyq_kernels::pooling::PoolParams) -> Option<Rows> {
        Rows::of(p.input_shape, p.output_shape, [p.stride_height, p.padding_values.height, p.filter_height])
    }
}

/// Row-by-row overlap of a step whose C kernel writes its output rows in order.
fn overlap(rows: Option<Rows>) -> Sharing {
    rows.map_or(Sharing::None, |r| r.sharing(1))
}

/// The C of one step: definitions (file scope) and the statements of `invoke`.
pub struct Emitted {
    pub defs: String,
    pub body: String,
    /// Bytes of constant data the definitions hold.
    pub const_bytes: usize,
    /// Library files the step calls besides its kind's kernel file.
    pub files: Vec<&'static str>,
}

/// Where the step's operands are, as C expressions.
pub struct Operands {
    pub inputs: Vec<String>,
    pub output: String,
    /// The scratch pointer of an in-place step.
    pub scratch: Option<String>,
    /// Element counts of the inputs and the output.
    pub input_len: Vec<usize>,
    pub output_len: usize,
    /// Shapes of the inputs and the output.
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shape: Vec<usize>,
}

/// Emits step `s` named with prefix `p` (`<model>_<s>`).
pub fn emit(step: &StepView<'_>, mode: Mode, p: &str, ops: &Operands) -> Emitted {
    let mut e = Emitted::new();
    let (x, y) = (ops.inputs.first().cloned().unwrap_or_default(), ops.output.clone());
    let in_place = matches!(mode, Mode::InPlace { .. });
    // Bottom-up, one output row per call: `call(row_pointer)` of the row function.
    let reverse = matches!(mode, Mode::Overlap { reverse: true, .. });
    let rows_up = |e: &mut Emitted, f: &str| {
        let [oh, row] = [ops.output_shape[1], ops.output_shape[2] * ops.output_shape[3]];
        e.call(format!("{{ int32_t r; for (r = {oh} - 1; r >= 0; --r) {f}(&{p}_p, {x}, {y} + r * {row}, r, 1); }}"));
    };
    match &step.kind {
        StepKind::Conv2D(c, w) => {
            let [oc, kh, kw, fic] = c.filter_shape;
            let ptrs = e.per_channel(p, w);
            let geometry = Geometry {
                input: c.input_shape,
                output: c.output_shape,
                kernel: [oc, kh, kw, fic],
                stride: [c.stride_height, c.stride_width],
                dilation: [c.dilation_height, c.dilation_width],
                padding: [c.padding_values.height, c.padding_values.width],
            };
            let q = [c.input_offset, c.output_offset, c.quantized_activation_min, c.quantized_activation_max];
            e.params(p, "tq_conv_params", &geometry.fields(), &join(&q), &ptrs);
            match (&ops.scratch, in_place) {
                (Some(s), true) => e.call(format!("tq_conv_1x1_inplace_s8(&{p}_p, {y}, {s});")),
                _ if reverse => rows_up(&mut e, "tq_conv_rows_s8"),
                _ => e.call(format!("tq_conv_s8(&{p}_p, {x}, {y});")),
            }
        }
        StepKind::DepthwiseConv2D(c, w) => {
            let [_, kh, kw, oc] = c.filter_shape;
            let ptrs = e.per_channel(p, w);
            let geometry = Geometry {
                input: c.input_shape,
                output: c.output_shape,
                kernel: [oc, kh, kw, c.depth_multiplier],
                stride: [c.stride_height, c.stride_width],
                dilation: [c.dilation_height, c.dilation_width],
                padding: [c.padding_values.height, c.padding_values.width],
            };
            let q = [c.input_offset, c.output_offset, c.quantized_activation_min, c.quantized_activation_max];
            e.params(p, "tq_dwconv_params", &geometry.fields(), &join(&q), &ptrs);
            match (&ops.scratch, in_place) {
                (Some(s), true) => e.call(format!("tq_dwconv_inplace_s8(&{p}_p, {y}, {s});")),
                _ if reverse => rows_up(&mut e, "tq_dwconv_rows_s8"),
                _ => e.call(format!("tq_dwconv_s8(&{p}_p, {x}, {y});")),
            }
        }
        StepKind::FullyConnected(f, filter, bias) => {
            let w = PerChannel { multiplier: &[f.output_multiplier], shift: &[f.output_shift], filter, bias: *bias };
            let ptrs = e.per_channel(p, &w);
            let s = &f.shape;
            let q = [
                f.input_offset,
                f.weights_offset,
                f.output_offset,
                f.quantized_activation_min,
                f.quantized_activation_max,
                0,
            ];
            e.params(p, "tq_fc_params", &join(&[s.batches, s.accum_depth, s.output_depth]), &join(&q), &ptrs);
            e.call(format!("tq_fc_s8(&{p}_p, {x}, {y});"));
        }
        StepKind::FullyConnectedPerChannel(f, w) => {
            let ptrs = e.per_channel(p, w);
            let s = &f.shape;
            let q = [f.input_offset, 0, f.output_offset, f.quantized_activation_min, f.quantized_activation_max, 1];
            e.params(p, "tq_fc_params", &join(&[s.batches, s.accum_depth, s.output_depth]), &join(&q), &ptrs);
            e.call(format!("tq_fc_s8(&{p}_p, {x}, {y});"));
        }
        StepKind::Add { params: a, broadcast } | StepKind::Sub { params: a, broadcast } => {
            let sub = matches!(step.kind, StepKind::Sub { .. }) as i32;
            let q = [
                a.input1_offset,
                a.input2_offset,
                a.output_offset,
                a.left_shift,
                a.input1_multiplier,
                a.input1_shift,
                a.input2_multiplier,
                a.input2_shift,
                a.output_multiplier,
                a.output_shift,
                a.quantized_activation_min,
                a.quantized_activation_max,
            ];
            let _ = writeln!(e.defs, "static const tq_add_params {p}_p = {{{}}};", join(&q));
            let x2 = &ops.inputs[1];
            if *broadcast {
                e.broadcast(p, ops);
                e.call(format!("tq_add_bcast_s8(&{p}_p, {sub}, &{p}_b, {x}, {x2}, {y});"));
            } else {
                e.call(format!("tq_add_s8(&{p}_p, {sub}, {x}, {x2}, {y}, {});", ops.output_len));
            }
        }
        StepKind::Mul { params: m, broadcast } => {
            let q = [
                m.input1_offset,
                m.input2_offset,
                m.output_offset,
                m.output_multiplier,
                m.output_shift,
                m.quantized_activation_min,
                m.quantized_activation_max,
            ];
            let _ = writeln!(e.defs, "static const tq_mul_params {p}_p = {{{}}};", join(&q));
            let x2 = &ops.inputs[1];
            if *broadcast {
                e.broadcast(p, ops);
                e.call(format!("tq_mul_bcast_s8(&{p}_p, &{p}_b, {x}, {x2}, {y});"));
            } else {
                e.call(format!("tq_mul_s8(&{p}_p, {x}, {x2}, {y}, {});", ops.output_len));
            }
        }
        StepKind::MaxPool(q) | StepKind::AveragePool(q) => {
            let [b, h, w, c] = q.input_shape;
            let [_, oh, ow, _] = q.output_shape;
            let f = [
                b,
                h,
                w,
                c,
                oh,
                ow,
                q.filter_height,
                q.filter_width,
                q.stride_height,
                q.stride_width,
                q.padding_values.height,
                q.padding_values.width,
            ];
            let act = [q.quantized_activation_min, q.quantized_activation_max];
            let _ = writeln!(e.defs, "static const tq_pool_params {p}_p = {{{}, {}}};", join(&f), join(&act));
            let k = if matches!(step.kind, StepKind::MaxPool(_)) { "max" } else { "avg" };
            if reverse {
                rows_up(&mut e, &format!("tq_{k}_pool_band_s8"));
            } else {
                e.call(format!("tq_{k}_pool_s8(&{p}_p, {x}, {y});"));
            }
        }
        StepKind::Mean(m) => {
            let shape = m.input_shape.as_slice();
            let strides = contiguous_strides(shape);
            let (mut kept, mut red) = ((vec![], vec![]), (vec![], vec![]));
            for (a, (&d, &s)) in shape.iter().zip(&strides).enumerate() {
                let side = if m.reduced[a] { &mut red } else { &mut kept };
                side.0.push(d);
                side.1.push(s);
            }
            let six = |v: &[usize], fill: usize| {
                let mut a = [fill; 6];
                a[..v.len()].copy_from_slice(v);
                format!("{{{}}}", join(&a))
            };
            let _ = writeln!(
                e.defs,
                "static const tq_mean_params {p}_p = {{{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}}};",
                kept.0.len(),
                red.0.len(),
                six(&kept.0, 1),
                six(&kept.1, 0),
                six(&red.0, 1),
                six(&red.1, 0),
                m.output_size(),
                m.num_elements_in_axis,
                m.input_zero_point,
                m.output_zero_point,
                m.output_multiplier,
                m.output_shift
            );
            e.call(format!("tq_mean_s8(&{p}_p, {x}, {y});"));
        }
        StepKind::Concat(c) => {
            let mut offset = 0;
            let row = c.output_size / c.outer_size.max(1);
            for (k, (src, &len)) in ops.inputs.iter().zip(&ops.input_len).enumerate() {
                let size = len / c.outer_size.max(1);
                let dims = [1, 1, 1, 1, c.outer_size, size];
                e.copy(&format!("{p}_c{k}"), &dims, &[0, 0, 0, 0, size, 1], &[0, 0, 0, 0, row, 1]);
                e.call(format!("tq_copy_s8(&{p}_c{k}, {src}, {y} + {offset});"));
                offset += size;
            }
        }
        StepKind::Transpose(t) => {
            let in_shape = t.input_shape.as_slice();
            let in_strides = contiguous_strides(in_shape);
            let out_shape = t.output_shape.as_slice();
            let (dims, dst) = (pad6(out_shape, 1), pad6(&contiguous_strides(out_shape), 0));
            let src: Vec<usize> = (0..out_shape.len()).map(|i| in_strides[t.perm[i]]).collect();
            e.copy(&format!("{p}_c"), &dims, &pad6(&src, 0), &dst);
            e.call(format!("tq_copy_s8(&{p}_c, {x}, {y});"));
        }
        StepKind::Pad { params: q, value } => {
            let in_shape = q.input_shape.as_slice();
            let out_strides = contiguous_strides(q.output_shape.as_slice());
            let base: usize = (0..in_shape.len()).map(|d| q.before[d] * out_strides[d]).sum();
            let (dims, src) = (pad6(in_shape, 1), pad6(&contiguous_strides(in_shape), 0));
            e.copy(&format!("{p}_c"), &dims, &src, &pad6(&out_strides, 0));
            e.call(format!("memset({y}, {value}, {});", ops.output_len));
            e.call(format!("tq_copy_s8(&{p}_c, {x}, {y} + {base});"));
        }
        StepKind::Softmax(s) => {
            let table: Vec<i32> = (0..256i32)
                .map(|d| {
                    let diff = -d;
                    if diff < s.diff_min {
                        return 0;
                    }
                    let scaled = multiply_by_quantized_multiplier_greater_than_one(
                        diff,
                        s.input_multiplier,
                        s.input_left_shift,
                        s.rounding,
                    );
                    exp_on_negative_values(scaled, SOFTMAX_DIFF_INTEGER_BITS)
                })
                .collect();
            e.array(&format!("{p}_exp"), "int32_t", &table);
            let rows = ops.output_len / s.depth;
            let _ = writeln!(
                e.defs,
                "static const tq_softmax_params {p}_p = {{{rows}, {}, {}, {p}_exp}};",
                s.depth, s.diff_min
            );
            e.call(format!("tq_softmax_s8(&{p}_p, {x}, {y});"));
        }
        StepKind::Table(t) => {
            e.array(&format!("{p}_t"), "int8_t", t.as_slice());
            e.call(format!("tq_table_s8({p}_t, {x}, {y}, {});", ops.output_len));
        }
        StepKind::Reshape => {
            if mode == Mode::Copy {
                e.call(format!("memcpy({y}, {x}, {});", ops.output_len));
            }
        }
        StepKind::Other(_) => unreachable!("refused before emission"),
    }
    e
}

impl Emitted {
    pub(crate) fn new() -> Emitted {
        Emitted { defs: String::new(), body: String::new(), const_bytes: 0, files: vec![] }
    }

    pub(crate) fn line(&mut self, line: String) {
        self.call(line)
    }

    fn call(&mut self, line: String) {
        let _ = writeln!(self.body, "  {line}");
    }

    pub(crate) fn array<T: std::fmt::Display>(&mut self, name: &str, ty: &str, values: &[T]) {
        let _ = writeln!(self.defs, "static const {ty} {name}[{}] = {{", values.len().max(1));
        for chunk in values.chunks(24) {
            let line: Vec<String> = chunk.iter().map(|v| v.to_string()).collect();
            let _ = writeln!(self.defs, "  {},", line.join(", "));
        }
        if values.is_empty() {
            let _ = writeln!(self.defs, "  0");
        }
        let _ = writeln!(self.defs, "}};");
        self.const_bytes += std::mem::size_of_val(values);
    }

    /// Filter, bias, multipliers and shifts; returns the pointer fields of the params struct.
    pub(crate) fn per_channel(&mut self, p: &str, w: &PerChannel<'_>) -> String {
        self.array(&format!("{p}_w"), "int8_t", w.filter);
        self.array(&format!("{p}_m"), "int32_t", w.multiplier);
        self.array(&format!("{p}_s"), "int32_t", w.shift);
        let bias = match w.bias {
            Some(b) => {
                self.array(&format!("{p}_b"), "int32_t", b);
                format!("{p}_b")
            }
            None => "NULL".into(),
        };
        format!("{p}_w, {bias}, {p}_m, {p}_s")
    }

    fn params(&mut self, p: &str, ty: &str, shape: &str, quant: &str, ptrs: &str) {
        let _ = writeln!(self.defs, "static const {ty} {p}_p = {{{shape}, {quant}, {ptrs}}};");
    }

    fn copy(&mut self, name: &str, dims: &[usize], src: &[usize], dst: &[usize]) {
        let _ = writeln!(
            self.defs,
            "static const tq_copy_params {name} = {{{{{}}}, {{{}}}, {{{}}}}};",
            join(dims),
            join(src),
            join(dst)
        );
    }

    /// The 6-D broadcast of a binary step's inputs to its output.
    fn broadcast(&mut self, p: &str, ops: &Operands) {
        let out = pad6(&ops.output_shape, 1);
        let strides = |shape: &[usize]| {
            let dims = pad6(shape, 1);
            let contiguous = contiguous_strides(&dims);
            let s: Vec<usize> = (0..6).map(|d| if dims[d] == out[d] { contiguous[d] } else { 0 }).collect();
            join(&s)
        };
        let _ = writeln!(
            self.defs,
            "static const tq_broadcast {p}_b = {{{{{}}}, {{{}}}, {{{}}}}};",
            join(&out),
            strides(&ops.input_shapes[0]),
            strides(&ops.input_shapes[1])
        );
    }
}

/// The shape fields of `tq_conv_params` / `tq_dwconv_params`, in their order.
struct Geometry {
    input: [usize; 4],
    output: [usize; 4],
    /// `[out_c, k_h, k_w, filter input depth or depth multiplier]`.
    kernel: [usize; 4],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
}

impl Geometry {
    fn fields(&self) -> String {
        let ([b, h, w, c], [_, oh, ow, _], [oc, kh, kw, k4]) = (self.input, self.output, self.kernel);
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [ph, pw] = self.padding;
        join(&[b, h, w, c, oh, ow, oc, kh, kw, k4, sh, sw, dh, dw, ph, pw])
    }
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// Row-major element strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// `v` right-aligned in six entries, `fill` in front.
fn pad6(v: &[usize], fill: usize) -> Vec<usize> {
    let mut out = vec![fill; 6 - v.len()];
    out.extend_from_slice(v);
    out
}
