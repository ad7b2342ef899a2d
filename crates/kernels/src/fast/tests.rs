//! Every fast kernel against its reference kernel: random shapes, strides, padding, dilation,
//! depth multipliers, groups, per-channel scales, zero points at the int8 edges, wrapping biases,
//! on every path this CPU runs ([`Isa::available`]). One helper, [`check_cases`], drives all ops.

use super::conv::ConvFast;
use super::depthwise_conv::DepthwiseConvFast;
use super::fully_connected::FullyConnectedFast;
use super::stage::OutputStage;
use super::Isa;
use crate::conv::{conv_per_channel, prepare_conv_per_channel, ConvOptions, ConvQParams};
use crate::depthwise_conv::{depthwise_conv_per_channel, prepare_depthwise_conv_per_channel};
use crate::fully_connected::{
    fully_connected, fully_connected_per_channel, prepare_fully_connected, prepare_fully_connected_per_channel,
    FullyConnectedQParams, FullyConnectedShape,
};
use crate::{FusedActivation, Padding, QParamsS8, Rounding};

/// Cases that must be checked per op (cases the reference prepare refuses do not count).
const CASES: usize = 1000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    /// A zero point, at the int8 edges one time in two.
    fn zero_point(&mut self) -> i32 {
        match self.next() % 4 {
            0 => -128,
            1 => 127,
            _ => self.next() as i8 as i32,
        }
    }
    /// A positive scale spread over many binades, so shifts of both signs occur.
    fn scale(&mut self) -> f32 {
        2f32.powf(self.range(0, 2400) as f32 / 100.0 - 16.0)
    }
    fn scales(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.scale()).collect()
    }
    /// Biases from small to ones that make the int32 sum wrap.
    fn biases(&mut self, n: usize) -> Option<Vec<i32>> {
        let wide = self.one_in(8);
        match self.next() % 4 {
            0 => None,
            _ => Some(
                (0..n)
                    .map(|_| if wide { self.next() as i32 } else { (self.next() % 200_001) as i32 - 100_000 })
                    .collect(),
            ),
        }
    }
    fn activation(&mut self) -> FusedActivation {
        [FusedActivation::None, FusedActivation::Relu, FusedActivation::Relu6, FusedActivation::ReluN1To1]
            [self.range(0, 3)]
    }
    fn conv_options(&mut self) -> ConvOptions {
        ConvOptions {
            padding: if self.one_in(2) { Padding::Same } else { Padding::Valid },
            stride_height: self.range(1, 3),
            stride_width: self.range(1, 3),
            dilation_height: if self.one_in(3) { self.range(2, 3) } else { 1 },
            dilation_width: if self.one_in(3) { self.range(2, 3) } else { 1 },
            activation: self.activation(),
        }
    }
}

/// `run` on every path this CPU has.
fn on_every_path(run: impl Fn(Isa) -> Vec<i8>) -> Vec<(Isa, Vec<i8>)> {
    Isa::available().into_iter().map(|isa| (isa, run(isa))).collect()
}

/// One scale for every channel (a time in four) or one per channel.
fn channel_scales(rng: &mut Rng, channels: usize) -> Vec<f32> {
    if rng.one_in(4) {
        rng.scales(1)
    } else {
        rng.scales(channels)
    }
}

/// Conv-like quantization with `scales` on the filter and random input and output parameters.
fn conv_qparams<'a>(rng: &mut Rng, scales: &'a [f32], zero_points: &'a [i32]) -> ConvQParams<'a> {
    ConvQParams {
        input: QParamsS8::new(rng.scale(), rng.zero_point()),
        filter_scales: scales,
        filter_zero_points: &zero_points[..scales.len()],
        output: QParamsS8::new(rng.scale(), rng.zero_point()),
    }
}

/// Runs `case` until [`CASES`] cases were checked. `case` draws a case and returns `None` when
/// the reference prepare refuses it, else the reference output and each path's fast output.
fn check_cases(op: &str, seed: u64, mut case: impl FnMut(&mut Rng) -> Option<(Vec<i8>, Vec<(Isa, Vec<i8>)>)>) {
    let mut rng = Rng(seed);
    let (mut checked, mut drawn) = (0, 0);
    while checked < CASES {
        drawn += 1;
        assert!(drawn < 20 * CASES, "{op}: the reference refused too many random cases");
        let Some((reference, fast)) = case(&mut rng) else { continue };
        assert_eq!(fast.len(), Isa::available().len(), "{op}: one output per path");
        for (isa, out) in fast {
            assert_eq!(out, reference, "{op}: case {checked} (draw {drawn}, seed {seed}) differs on {isa:?}");
        }
        checked += 1;
    }
}

#[test]
fn conv_equals_the_reference() {
    check_cases("conv", 0x5eed_c0de, |rng| {
        let batches = rng.range(1, 2);
        let (h, w) = (rng.range(1, 9), rng.range(1, 9));
        let (groups, cin_g) = (if rng.one_in(5) { rng.range(2, 3) } else { 1 }, rng.range(1, 12));
        let per_group = rng.range(1, 40);
        let (cin, cout) = (cin_g * groups, per_group * groups);
        let (kh, kw) = (rng.range(1, 4), rng.range(1, 4));
        let mut options = rng.conv_options();
        // One case in six a pointwise conv (1x1, stride 1), which the byte GEMM multiplies in place.
        let pointwise = rng.one_in(6);
        let (kh, kw) = if pointwise { (1, 1) } else { (kh, kw) };
        if pointwise {
            (options.stride_height, options.stride_width) = (1, 1);
        }
        let (scales, zero_points) = (channel_scales(rng, cout), vec![0; cout]);
        let q = conv_qparams(rng, &scales, &zero_points);
        let (mut m, mut s) = (vec![0; cout], vec![0; cout]);
        let p = prepare_conv_per_channel(
            [batches, h, w, cin],
            [cout, kh, kw, cin_g],
            &options,
            &q,
            Rounding::Double,
            &mut m,
            &mut s,
        )
        .ok()?;
        let (input, filter, bias) = (rng.i8s(batches * h * w * cin), rng.i8s(cout * kh * kw * cin_g), rng.biases(cout));
        let mut reference = vec![0i8; p.output_shape.iter().product()];
        conv_per_channel(&p, &m, &s, &input, &filter, bias.as_deref(), &mut reference);
        let fast = on_every_path(|isa| {
            let k = ConvFast::new(&p, &m, &s, &filter, bias.as_deref(), isa).expect("double rounding");
            assert_eq!(k.isa(), isa);
            let mut out = vec![0i8; reference.len()];
            k.eval(&input, &mut vec![0; k.scratch_len()], &mut out);
            out
        });
        Some((reference, fast))
    });
}

#[test]
fn depthwise_conv_equals_the_reference() {
    check_cases("depthwise conv", 0x0d0e_51de, |rng| {
        let batches = rng.range(1, 2);
        let (h, w) = (rng.range(1, 10), rng.range(1, 10));
        let (cin, multiplier) = (rng.range(1, 40), if rng.one_in(3) { rng.range(2, 4) } else { 1 });
        let cout = cin * multiplier;
        let (kh, kw) = (rng.range(1, 5), rng.range(1, 5));
        let options = rng.conv_options();
        let (scales, zero_points) = (channel_scales(rng, cout), vec![0; cout]);
        let q = conv_qparams(rng, &scales, &zero_points);
        let (mut m, mut s) = (vec![0; cout], vec![0; cout]);
        let p = prepare_depthwise_conv_per_channel(
            [batches, h, w, cin],
            [1, kh, kw, cout],
            &options,
            &q,
            Rounding::Double,
            &mut m,
            &mut s,
        )
        .ok()?;
        let (input, filter, bias) = (rng.i8s(batches * h * w * cin), rng.i8s(kh * kw * cout), rng.biases(cout));
        let mut reference = vec![0i8; p.output_shape.iter().product()];
        depthwise_conv_per_channel(&p, &m, &s, &input, &filter, bias.as_deref(), &mut reference);
        let fast = on_every_path(|isa| {
            let k = DepthwiseConvFast::new(&p, &m, &s, &filter, bias.as_deref(), isa).expect("double rounding");
            let mut out = vec![0i8; reference.len()];
            k.eval(&input, &mut vec![0; k.scratch_len()], &mut out);
            out
        });
        Some((reference, fast))
    });
}

#[test]
fn fully_connected_equals_the_reference() {
    check_cases("fully connected", 0xfc_fc_fc, |rng| {
        let shape = FullyConnectedShape {
            batches: rng.range(1, 9),
            accum_depth: rng.range(1, 300),
            output_depth: rng.range(1, 70),
        };
        let (input, filter) =
            (rng.i8s(shape.batches * shape.accum_depth), rng.i8s(shape.output_depth * shape.accum_depth));
        let bias = rng.biases(shape.output_depth);
        let (input_q, output_q) =
            (QParamsS8::new(rng.scale(), rng.zero_point()), QParamsS8::new(rng.scale(), rng.zero_point()));
        let activation = rng.activation();
        let mut reference = vec![0i8; shape.batches * shape.output_depth];
        let per_channel = rng.one_in(2);
        let fast_kernel: Box<dyn Fn(Isa) -> FullyConnectedFast> = if per_channel {
            let scales = rng.scales(shape.output_depth);
            let q = ConvQParams {
                input: input_q,
                filter_scales: &scales,
                filter_zero_points: &vec![0; scales.len()],
                output: output_q,
            };
            let (mut m, mut s) = (vec![0; shape.output_depth], vec![0; shape.output_depth]);
            let p =
                prepare_fully_connected_per_channel(shape, &q, activation, Rounding::Double, &mut m, &mut s).ok()?;
            fully_connected_per_channel(&p, &m, &s, &input, &filter, bias.as_deref(), &mut reference);
            let (filter, bias) = (filter.clone(), bias.clone());
            Box::new(move |isa| FullyConnectedFast::per_channel(&p, &m, &s, &filter, bias.as_deref(), isa).unwrap())
        } else {
            let filter_q = QParamsS8::new(rng.scale(), rng.zero_point());
            let q = FullyConnectedQParams { input: input_q, filter: filter_q, bias_scale: None, output: output_q };
            let p = prepare_fully_connected(shape, &q, activation, Rounding::Double).ok()?;
            fully_connected(&p, &input, &filter, bias.as_deref(), &mut reference);
            let (filter, bias) = (filter.clone(), bias.clone());
            Box::new(move |isa| FullyConnectedFast::per_tensor(&p, &filter, bias.as_deref(), isa).unwrap())
        };
        let fast = on_every_path(|isa| {
            let k = fast_kernel(isa);
            let mut out = vec![0i8; reference.len()];
            k.eval(&input, &mut vec![0; k.scratch_len()], &mut out);
            out
        });
        Some((reference, fast))
    });
}

#[test]
fn output_stage_vector_form_equals_the_scalar_form() {
    // The scalar form is the reference `MultiplyByQuantizedMultiplier`; the AVX2 form must agree
    // on random and extreme accumulators, multipliers and shifts.
    if Isa::detect() == Isa::Portable {
        return println!("skipped: this CPU has no AVX2, only the scalar form runs");
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut rng = Rng(7);
        let edges = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, 1 << 30, -(1 << 30)];
        for round in 0..20_000 {
            let m: Vec<i32> =
                (0..8).map(|_| if rng.one_in(8) { i32::MAX } else { (rng.next() as u32 >> 1) as i32 }).collect();
            let s: Vec<i32> = (0..8).map(|_| rng.range(0, 62) as i32 - 31).collect();
            let acc: Vec<i32> =
                (0..8).map(|_| if rng.one_in(4) { edges[rng.range(0, 7)] } else { rng.next() as i32 }).collect();
            let stage = OutputStage::new(8, None, &m, &s, 0, i32::MIN, i32::MAX).unwrap();
            let mut got = [0i32; 8];
            // SAFETY: AVX2 was detected above; the stage has 8 channels.
            unsafe {
                let v = super::stage::avx2::apply8(&stage, 0, _mm256_loadu_si256(acc.as_ptr() as *const __m256i));
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
            }
            for lane in 0..8 {
                let want = crate::fixedpoint::multiply_by_quantized_multiplier(acc[lane], m[lane], s[lane]);
                assert_eq!(got[lane], want, "round {round} lane {lane}: acc {} m {} s {}", acc[lane], m[lane], s[lane]);
            }
        }
    }
}

#[test]
fn output_stage_avx512_form_equals_the_scalar_form() {
    // The 16-lane form (AVX-512, used on `Isa::Avx512Vnni`) against the reference
    // `MultiplyByQuantizedMultiplier`, with the offset and clamp, on random and extreme values.
    if Isa::detect() != Isa::Avx512Vnni {
        return println!("skipped: this CPU has no AVX-512 VNNI");
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut rng = Rng(11);
        let edges = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, 1 << 30, -(1 << 30)];
        for round in 0..20_000 {
            let m: Vec<i32> =
                (0..16).map(|_| if rng.one_in(8) { i32::MAX } else { (rng.next() as u32 >> 1) as i32 }).collect();
            let s: Vec<i32> = (0..16).map(|_| rng.range(0, 62) as i32 - 31).collect();
            let acc: Vec<i32> =
                (0..16).map(|_| if rng.one_in(4) { edges[rng.range(0, 7)] } else { rng.next() as i32 }).collect();
            let bias = rng.biases(16);
            let (offset, (min, max)) = (rng.zero_point(), if rng.one_in(2) { (-128, 127) } else { (-5, 90) });
            let stage = OutputStage::new(16, bias.as_deref(), &m, &s, offset, min, max).unwrap();
            let n = rng.range(1, 16);
            let mut got = [0x55i8; 16];
            // SAFETY: AVX-512 VNNI (with F) was detected above; the stage has 16 channels.
            unsafe {
                let v = super::stage::avx512::apply16(&stage, 0, _mm512_loadu_si512(acc.as_ptr() as *const __m512i));
                super::stage::avx512::store16(v, got.as_mut_ptr(), n);
            }
            for lane in 0..16 {
                let want = if lane < n { stage.apply(lane, acc[lane]) } else { 0x55 };
                assert_eq!(got[lane], want, "round {round} lane {lane}: acc {} m {} s {}", acc[lane], m[lane], s[lane]);
            }
        }
    }
}

#[test]
fn add_equals_the_reference() {
    check_cases("add", 0xadd0_add0, |rng| {
        let len = rng.range(1, 100);
        let q = [0; 3].map(|_| QParamsS8::new(rng.scale(), rng.zero_point()));
        let p = crate::add::prepare_add(q[0], q[1], q[2], rng.activation(), Rounding::Double).ok()?;
        let (a, b) = (rng.i8s(len), rng.i8s(len));
        let mut reference = vec![0i8; len];
        crate::add::add(&p, &a, &b, &mut reference);
        let fast = on_every_path(|isa| {
            let k = super::add::AddFast::new(&p, isa).expect("double rounding");
            let mut out = vec![0i8; len];
            k.eval(&a, &b, &mut out);
            out
        });
        Some((reference, fast))
    });
}

#[test]
fn pad_equals_the_reference() {
    check_cases("pad", 0x9ad_9ad, |rng| {
        let rank = rng.range(1, 5);
        let shape: Vec<usize> = (0..rank).map(|_| rng.range(1, 6)).collect();
        let paddings: Vec<[usize; 2]> =
            (0..rank).map(|_| if rng.one_in(2) { [0, 0] } else { [rng.range(0, 3), rng.range(0, 3)] }).collect();
        let p = crate::pad::prepare_pad(&shape, &paddings).ok()?;
        let input = rng.i8s(shape.iter().product());
        let value = rng.zero_point() as i8;
        let mut reference = vec![0i8; p.output_shape.flat_size()];
        crate::pad::pad(&p, value, &input, &mut reference);
        let mut out = vec![0i8; reference.len()];
        super::pad::pad(&p, value, &input, &mut out);
        // One path: the copy is plain Rust on every target.
        Some((reference, on_every_path(|_| out.clone())))
    });
}

/// MAX_POOL_2D and AVERAGE_POOL_2D on `T` with quantization `Q` (whose zero points `qparams`
/// draws), compared as bytes.
fn check_pools<Q: crate::ActivationQParams>(
    what: &str,
    seed: u64,
    qparams: impl Fn(&mut Rng) -> Q,
    value: impl Fn(&mut Rng) -> Q::Int,
    bytes: impl Fn(&[Q::Int]) -> Vec<i8>,
) {
    use crate::pooling::{prepare_pool, PoolOptions};
    for average in [false, true] {
        check_cases(
            &format!("{what} {}", if average { "average pool" } else { "max pool" }),
            seed + average as u64,
            |rng| {
                // Whole 16-channel vectors one time in four (the int8 max pool's vector path).
                let depth = if rng.one_in(4) { 16 * rng.range(1, 4) } else { rng.range(1, 80) };
                let shape = [rng.range(1, 2), rng.range(1, 9), rng.range(1, 9), depth];
                let options = PoolOptions {
                    padding: if rng.one_in(2) { Padding::Same } else { Padding::Valid },
                    stride_height: rng.range(1, 3),
                    stride_width: rng.range(1, 3),
                    filter_height: rng.range(1, 4),
                    filter_width: rng.range(1, 4),
                    activation: rng.activation(),
                };
                let q = qparams(rng);
                let p = prepare_pool(shape, &options, q, q).ok()?;
                let input: Vec<Q::Int> = (0..shape.iter().product()).map(|_| value(rng)).collect();
                let n = p.output_shape.iter().product();
                let mut reference = vec![<Q::Int as crate::QuantizedInt>::MIN; n];
                if average {
                    crate::average_pool::average_pool(&p, &input, &mut reference);
                } else {
                    crate::max_pool::max_pool(&p, &input, &mut reference);
                }
                let fast = on_every_path(|isa| {
                    let mut out = vec![<Q::Int as crate::QuantizedInt>::MIN; n];
                    if average {
                        super::pool::average_pool(isa, &p, &input, &mut out);
                    } else {
                        super::pool::max_pool(isa, &p, &input, &mut out);
                    }
                    bytes(&out)
                });
                Some((bytes(&reference), fast))
            },
        );
    }
}

#[test]
fn pools_equal_the_reference() {
    check_pools(
        "int8",
        0x9001,
        |rng| QParamsS8::new(rng.scale(), rng.zero_point()),
        |rng| rng.next() as i8,
        <[i8]>::to_vec,
    );
}

#[test]
fn int16_pools_equal_the_reference() {
    check_pools(
        "int16",
        0x1616,
        |rng| crate::QParamsS16 { scale: rng.scale(), zero_point: 0 },
        |rng| rng.next() as i16,
        |v| v.iter().flat_map(|x| x.to_le_bytes()).map(|b| b as i8).collect(),
    );
}

/// MEAN on `T` with quantization `Q` over random axes (adjacent runs, as global average pooling,
/// and any other set, which falls back to the reference), compared as bytes.
fn check_mean<Q: crate::ActivationQParams>(
    what: &str,
    seed: u64,
    qparams: impl Fn(&mut Rng) -> Q,
    value: impl Fn(&mut Rng) -> Q::Int,
    bytes: impl Fn(&[Q::Int]) -> Vec<i8>,
) {
    use crate::mean::prepare_mean;
    check_cases(&format!("{what} mean"), seed, |rng| {
        let rank = rng.range(1, 4);
        let shape: Vec<usize> = (0..rank).map(|_| rng.range(1, 9)).collect();
        let axes: Vec<i32> = if rng.one_in(4) {
            (0..rank as i32).filter(|_| rng.one_in(2)).collect()
        } else {
            let first = rng.range(0, rank - 1);
            (first..rng.range(first, rank - 1) + 1).map(|a| a as i32).collect()
        };
        let p = prepare_mean(&shape, &axes, qparams(rng), qparams(rng), Rounding::Double).ok()?;
        if p.num_elements_in_axis == 0 {
            return None;
        }
        let input: Vec<Q::Int> = (0..shape.iter().product()).map(|_| value(rng)).collect();
        let n = p.output_size();
        let (mut reference, mut out) =
            (vec![<Q::Int as crate::QuantizedInt>::MIN; n], vec![<Q::Int as crate::QuantizedInt>::MIN; n]);
        crate::mean::mean(&p, &input, &mut reference);
        super::mean::mean(&p, &input, &mut out);
        // One path: plain Rust on every target.
        Some((bytes(&reference), on_every_path(|_| bytes(&out))))
    });
}

#[test]
fn mean_equals_the_reference() {
    check_mean(
        "int8",
        0x3ea9,
        |rng| QParamsS8::new(rng.scale(), rng.zero_point()),
        |rng| rng.next() as i8,
        <[i8]>::to_vec,
    );
    check_mean(
        "int16",
        0x3ea16,
        |rng| crate::QParamsS16 { scale: rng.scale(), zero_point: 0 },
        |rng| rng.next() as i16,
        |v| v.iter().flat_map(|x| x.to_le_bytes()).map(|b| b as i8).collect(),
    );
}
