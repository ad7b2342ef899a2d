//! Re-runs every operator dumped by `scripts/dump_tflm_ops.py` with this crate's kernels and
//! compares the int8 outputs byte for byte with what the TFLM interpreter produced.
//!
//! `cargo run -p tinyq-kernels --example tflm_replay -- OPS.txt` prints one line per op kind with
//! the number of ops and mismatching elements, and exits non-zero on any mismatch.

use std::collections::BTreeMap;
use std::process::ExitCode;

use tinyq_kernels::add::{add_s8, broadcast_add_s8, prepare_add};
use tinyq_kernels::average_pool::{average_pool_s8, prepare_average_pool_s8};
use tinyq_kernels::conv::{conv_per_channel, prepare_conv_per_channel, ConvOptions, ConvQParams};
use tinyq_kernels::depthwise_conv::{
    depthwise_conv_per_channel, prepare_depthwise_conv_per_channel, DepthwiseConvOptions,
};
use tinyq_kernels::fully_connected::{
    fully_connected, fully_connected_per_channel, prepare_fully_connected, prepare_fully_connected_per_channel,
    FullyConnectedQParams, FullyConnectedShape,
};
use tinyq_kernels::hard_swish::{hard_swish_s8, prepare_hard_swish_s8};
use tinyq_kernels::leaky_relu::{leaky_relu_s8, prepare_leaky_relu_s8};
use tinyq_kernels::logistic::{logistic_s8, prepare_logistic_s8};
use tinyq_kernels::max_pool::{max_pool_s8, prepare_max_pool_s8};
use tinyq_kernels::mean::{mean_s8, prepare_mean_s8};
use tinyq_kernels::mul::{broadcast_mul_s8, mul_s8, prepare_mul};
use tinyq_kernels::pooling::PoolOptions;
use tinyq_kernels::requantize::{prepare_requantize_s8, requantize_s8};
use tinyq_kernels::softmax::{prepare_softmax_s8, softmax_s8};
use tinyq_kernels::sub::{broadcast_sub_s8, prepare_sub, sub_s8};
use tinyq_kernels::tanh::{prepare_tanh_s8, tanh_s8};
use tinyq_kernels::{BroadcastShapes, FusedActivation, Padding, QParamsS8, Rounding};

#[derive(Debug, Default)]
struct Tensor {
    dtype: String,
    shape: Vec<usize>,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    values: Vec<i64>,
}

impl Tensor {
    fn qparams(&self) -> QParamsS8 {
        QParamsS8::new(self.scales[0], self.zero_points[0])
    }
    fn s8(&self) -> Vec<i8> {
        self.values.iter().map(|&v| v as i8).collect()
    }
    fn s32(&self) -> Vec<i32> {
        self.values.iter().map(|&v| v as i32).collect()
    }
    fn nhwc(&self) -> [usize; 4] {
        self.shape.clone().try_into().expect("4-D tensor")
    }
}

#[derive(Debug, Default)]
struct Op {
    name: String,
    options: BTreeMap<String, f64>,
    inputs: Vec<Option<Tensor>>,
    outputs: Vec<Tensor>,
}

impl Op {
    fn int(&self, key: &str) -> i64 {
        self.options[key] as i64
    }
    fn activation(&self) -> FusedActivation {
        match self.options.get("fusedActivationFunction").copied().unwrap_or(0.0) as i64 {
            0 => FusedActivation::None,
            1 => FusedActivation::Relu,
            2 => FusedActivation::ReluN1To1,
            3 => FusedActivation::Relu6,
            other => panic!("activation {other}"),
        }
    }
    fn padding(&self) -> Padding {
        if self.int("padding") == 0 {
            Padding::Same
        } else {
            Padding::Valid
        }
    }
    fn input(&self, i: usize) -> &Tensor {
        self.inputs[i].as_ref().expect("input present")
    }
}

fn parse(text: &str) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut op = Op::default();
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        match tokens.next() {
            Some("OP") => {
                op = Op::default();
                op.name = format!("{} #{} {}", tokens.next().unwrap(), tokens.next().unwrap(), tokens.next().unwrap());
            }
            Some("OPT") => {
                let key = tokens.next().unwrap().to_string();
                let value = match tokens.next().unwrap() {
                    "i" => tokens.next().unwrap().parse::<i64>().unwrap() as f64,
                    _ => f32::from_bits(u32::from_str_radix(tokens.next().unwrap(), 16).unwrap()) as f64,
                };
                op.options.insert(key, value);
            }
            Some("T") => {
                let role = tokens.next().unwrap();
                let _slot = tokens.next();
                let dtype = tokens.next().unwrap().to_string();
                if dtype == "none" {
                    op.inputs.push(None);
                    continue;
                }
                let mut next = || tokens.next().unwrap();
                let rank: usize = next().parse().unwrap();
                let shape = (0..rank).map(|_| next().parse().unwrap()).collect();
                let n: usize = next().parse().unwrap();
                let scales = (0..n).map(|_| f32::from_bits(u32::from_str_radix(next(), 16).unwrap())).collect();
                let n: usize = next().parse().unwrap();
                let zero_points = (0..n).map(|_| next().parse().unwrap()).collect();
                let _qdim = next();
                let n: usize = next().parse().unwrap();
                let values = if dtype == "f32" {
                    (0..n)
                        .map(|_| {
                            next();
                            0
                        })
                        .collect()
                } else {
                    (0..n).map(|_| next().parse().unwrap()).collect()
                };
                let tensor = Tensor { dtype, shape, scales, zero_points, values };
                if role == "in" {
                    op.inputs.push(Some(tensor));
                } else {
                    op.outputs.push(tensor);
                }
            }
            Some("END") => ops.push(std::mem::take(&mut op)),
            _ => {}
        }
    }
    ops
}

/// Runs one op; `None` when this replay does not handle it.
fn run(op: &Op) -> Option<Vec<i8>> {
    let kind = op.name.rsplit(' ').next().unwrap();
    let out = &op.outputs[0];
    if out.dtype != "i8" {
        return None;
    }
    let mut result = vec![0i8; out.values.len()];
    let rounding = Rounding::Double;
    match kind {
        "CONV_2D" | "DEPTHWISE_CONV_2D" => {
            let (input, filter) = (op.input(0), op.input(1));
            let bias = op.inputs.get(2).and_then(|b| b.as_ref()).map(|b| b.s32());
            let qparams = ConvQParams {
                input: input.qparams(),
                filter_scales: &filter.scales,
                filter_zero_points: &filter.zero_points,
                output: out.qparams(),
            };
            let channels = out.shape[3];
            let (mut m, mut s) = (vec![0; channels], vec![0; channels]);
            if kind == "CONV_2D" {
                let options = ConvOptions {
                    padding: op.padding(),
                    stride_height: op.int("strideH") as usize,
                    stride_width: op.int("strideW") as usize,
                    dilation_height: op.int("dilationHFactor") as usize,
                    dilation_width: op.int("dilationWFactor") as usize,
                    activation: op.activation(),
                };
                let params =
                    prepare_conv_per_channel(input.nhwc(), filter.nhwc(), &options, &qparams, rounding, &mut m, &mut s)
                        .unwrap();
                assert_eq!(params.output_shape, out.nhwc());
                conv_per_channel(&params, &m, &s, &input.s8(), &filter.s8(), bias.as_deref(), &mut result);
            } else {
                let options = DepthwiseConvOptions {
                    padding: op.padding(),
                    stride_height: op.int("strideH") as usize,
                    stride_width: op.int("strideW") as usize,
                    dilation_height: op.int("dilationHFactor") as usize,
                    dilation_width: op.int("dilationWFactor") as usize,
                    activation: op.activation(),
                };
                let params = prepare_depthwise_conv_per_channel(
                    input.nhwc(),
                    filter.nhwc(),
                    &options,
                    &qparams,
                    rounding,
                    &mut m,
                    &mut s,
                )
                .unwrap();
                assert_eq!(params.output_shape, out.nhwc());
                depthwise_conv_per_channel(&params, &m, &s, &input.s8(), &filter.s8(), bias.as_deref(), &mut result);
            }
        }
        "FULLY_CONNECTED" => {
            let (input, filter) = (op.input(0), op.input(1));
            let bias = op.inputs.get(2).and_then(|b| b.as_ref());
            let units = filter.shape[0];
            let shape = FullyConnectedShape {
                batches: out.values.len() / units,
                accum_depth: *filter.shape.last().unwrap(),
                output_depth: units,
            };
            let bias_values = bias.map(|b| b.s32());
            if filter.scales.len() == 1 {
                let qparams = FullyConnectedQParams {
                    input: input.qparams(),
                    filter: filter.qparams(),
                    bias_scale: bias.map(|b| b.scales[0]),
                    output: out.qparams(),
                };
                let params = prepare_fully_connected(shape, &qparams, op.activation(), rounding).unwrap();
                fully_connected(&params, &input.s8(), &filter.s8(), bias_values.as_deref(), &mut result);
            } else {
                let qparams = ConvQParams {
                    input: input.qparams(),
                    filter_scales: &filter.scales,
                    filter_zero_points: &filter.zero_points,
                    output: out.qparams(),
                };
                let (mut m, mut s) = (vec![0; units], vec![0; units]);
                let params =
                    prepare_fully_connected_per_channel(shape, &qparams, op.activation(), rounding, &mut m, &mut s)
                        .unwrap();
                fully_connected_per_channel(
                    &params,
                    &m,
                    &s,
                    &input.s8(),
                    &filter.s8(),
                    bias_values.as_deref(),
                    &mut result,
                );
            }
        }
        "ADD" | "SUB" | "MUL" => {
            let (a, b) = (op.input(0), op.input(1));
            let same = a.shape == b.shape;
            let shapes = BroadcastShapes::new(&a.shape, &b.shape).unwrap();
            let (x, y) = (a.s8(), b.s8());
            if kind == "MUL" {
                let params = prepare_mul(a.qparams(), b.qparams(), out.qparams(), op.activation(), rounding).unwrap();
                if same {
                    mul_s8(&params, &x, &y, &mut result)
                } else {
                    broadcast_mul_s8(&params, &shapes, &x, &y, &mut result)
                }
            } else if kind == "ADD" {
                let params = prepare_add(a.qparams(), b.qparams(), out.qparams(), op.activation(), rounding).unwrap();
                if same {
                    add_s8(&params, &x, &y, &mut result)
                } else {
                    broadcast_add_s8(&params, &shapes, &x, &y, &mut result)
                }
            } else {
                let params = prepare_sub(a.qparams(), b.qparams(), out.qparams(), op.activation(), rounding).unwrap();
                if same {
                    sub_s8(&params, &x, &y, &mut result)
                } else {
                    broadcast_sub_s8(&params, &shapes, &x, &y, &mut result)
                }
            }
        }
        "AVERAGE_POOL_2D" | "MAX_POOL_2D" => {
            let input = op.input(0);
            let options = PoolOptions {
                padding: op.padding(),
                stride_height: op.int("strideH") as usize,
                stride_width: op.int("strideW") as usize,
                filter_height: op.int("filterHeight") as usize,
                filter_width: op.int("filterWidth") as usize,
                activation: op.activation(),
            };
            if kind == "MAX_POOL_2D" {
                let params = prepare_max_pool_s8(input.nhwc(), &options, input.qparams(), out.qparams()).unwrap();
                max_pool_s8(&params, &input.s8(), &mut result);
            } else {
                let params = prepare_average_pool_s8(input.nhwc(), &options, input.qparams(), out.qparams()).unwrap();
                average_pool_s8(&params, &input.s8(), &mut result);
            }
        }
        "SOFTMAX" => {
            let input = op.input(0);
            let beta = op.options["beta"] as f32;
            let params =
                prepare_softmax_s8(beta, input.qparams(), out.qparams(), *input.shape.last().unwrap(), rounding)
                    .unwrap();
            softmax_s8(&params, &input.s8(), &mut result);
        }
        "LOGISTIC" => {
            let params = prepare_logistic_s8(op.input(0).qparams(), out.qparams(), rounding).unwrap();
            logistic_s8(&params, &op.input(0).s8(), &mut result);
        }
        "TANH" => {
            let params = prepare_tanh_s8(op.input(0).qparams(), out.qparams(), rounding).unwrap();
            tanh_s8(&params, &op.input(0).s8(), &mut result);
        }
        "HARD_SWISH" => {
            let params = prepare_hard_swish_s8(op.input(0).qparams(), out.qparams()).unwrap();
            hard_swish_s8(&params, &op.input(0).s8(), &mut result);
        }
        "LEAKY_RELU" => {
            let alpha = op.options["alpha"] as f32;
            let params = prepare_leaky_relu_s8(alpha, op.input(0).qparams(), out.qparams(), rounding).unwrap();
            leaky_relu_s8(&params, &op.input(0).s8(), &mut result);
        }
        "MEAN" => {
            let (input, axes) = (op.input(0), op.input(1).s32());
            let params = prepare_mean_s8(&input.shape, &axes, input.qparams(), out.qparams(), rounding).unwrap();
            mean_s8(&params, &input.s8(), &mut result);
        }
        "QUANTIZE" if op.input(0).dtype == "i8" => {
            let params = prepare_requantize_s8(op.input(0).qparams(), out.qparams(), rounding).unwrap();
            requantize_s8(&params, &op.input(0).s8(), &mut result);
        }
        "RESHAPE" => result.copy_from_slice(&op.input(0).s8()),
        _ => return None,
    }
    Some(result)
}

fn main() -> ExitCode {
    let path = std::env::args().nth(1).expect("usage: tflm_replay OPS.txt");
    let ops = parse(&std::fs::read_to_string(path).expect("readable dump"));
    let mut summary: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    for op in &ops {
        let kind = op.name.rsplit(' ').next().unwrap().to_string();
        let entry = summary.entry(kind).or_default();
        match run(op) {
            None => entry.3 += 1,
            Some(result) => {
                let expected = op.outputs[0].s8();
                let mismatches = result.iter().zip(&expected).filter(|(a, b)| a != b).count();
                if mismatches > 0 {
                    let first = result.iter().zip(&expected).position(|(a, b)| a != b).unwrap();
                    eprintln!(
                        "{}: {mismatches} mismatches, first at {first}: ours {} tflm {}",
                        op.name, result[first], expected[first]
                    );
                }
                entry.0 += 1;
                entry.1 += mismatches;
                entry.2 += expected.len();
            }
        }
    }
    let mut total_mismatches = 0;
    for (kind, (ops, mismatches, elements, skipped)) in &summary {
        println!("{kind:20} ops {ops:3}  elements {elements:8}  mismatches {mismatches}  skipped {skipped}");
        total_mismatches += mismatches;
    }
    if total_mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
