//! PAD folded into the convolution that reads it: a PAD with the convolution's input zero point
//! on height and width only, read by nothing else, becomes the convolution's own padding. TFLM's
//! kernels skip out-of-image taps, and a tap on the zero point adds `w · (zp − zp) = 0`, so the
//! sums are the same integers; the padded tensor is never built.

use tinyq_int8::{StepKind, StepView};
use tinyq_ir::{Graph, TensorId};
use tinyq_kernels::conv::ConvPerChannelParams;
use tinyq_kernels::depthwise_conv::DepthwiseConvPerChannelParams;
use tinyq_kernels::PaddingValues;

/// The params a convolution gets when it absorbs its PAD.
pub enum Absorbed {
    Conv(ConvPerChannelParams),
    Depthwise(DepthwiseConvPerChannelParams),
}

/// Per step: the new params and input of a convolution that absorbed a PAD, and whether the
/// step is gone (an absorbed PAD).
pub struct Fusion {
    pub absorbed: Vec<Option<(Absorbed, Vec<TensorId>)>>,
    pub dropped: Vec<bool>,
}

/// Finds every PAD → CONV_2D / DEPTHWISE_CONV_2D pair that can be folded.
pub fn pads_into_convs(views: &[StepView<'_>], graph: &Graph) -> Fusion {
    let n = views.len();
    let mut f = Fusion { absorbed: (0..n).map(|_| None).collect(), dropped: vec![false; n] };
    for (k, pad) in views.iter().enumerate() {
        let StepKind::Pad { params, value } = &pad.kind else { continue };
        let readers: Vec<usize> = (0..n).filter(|&j| views[j].inputs.contains(&pad.output)).collect();
        let (&[j], false) = (&readers[..], graph.outputs.contains(&pad.output)) else { continue };
        let shape = params.input_shape.as_slice();
        let out = params.output_shape.as_slice();
        if shape.len() != 4
            || params.before[0] != 0
            || params.before[3] != 0
            || shape[0] != out[0]
            || shape[3] != out[3]
        {
            continue;
        }
        let in_shape = [shape[0], shape[1], shape[2], shape[3]];
        let (top, left) = (params.before[1], params.before[2]);
        let v = &views[j];
        let absorbed = match &v.kind {
            StepKind::Conv2D(c, _) if -c.input_offset == *value as i32 && v.inputs[0] == pad.output => {
                let mut c = **c;
                (c.input_shape, c.padding_values) = padded(in_shape, c.padding_values, top, left);
                Absorbed::Conv(c)
            }
            StepKind::DepthwiseConv2D(c, _) if -c.input_offset == *value as i32 && v.inputs[0] == pad.output => {
                let mut c = **c;
                (c.input_shape, c.padding_values) = padded(in_shape, c.padding_values, top, left);
                Absorbed::Depthwise(c)
            }
            _ => continue,
        };
        let mut inputs = v.inputs.to_vec();
        inputs[0] = pad.inputs[0];
        f.absorbed[j] = Some((absorbed, inputs));
        f.dropped[k] = true;
    }
    f
}

/// A convolution's input shape and padding once it reads the PAD's input: its own padding grows
/// by the PAD's top and left rows.
fn padded(input: [usize; 4], mut padding: PaddingValues, top: usize, left: usize) -> ([usize; 4], PaddingValues) {
    padding.height += top;
    padding.width += left;
    (input, padding)
}

/// `views` with the folds of `f` applied, each with its step index.
pub fn apply<'a>(views: &'a [StepView<'a>], f: &'a Fusion) -> Vec<(usize, StepView<'a>)> {
    views
        .iter()
        .enumerate()
        .filter(|(s, _)| !f.dropped[*s])
        .map(|(s, v)| {
            let view = match (&f.absorbed[s], &v.kind) {
                (Some((Absorbed::Conv(c), inputs)), StepKind::Conv2D(_, w)) => {
                    StepView { kind: StepKind::Conv2D(c, *w), inputs, output: v.output }
                }
                (Some((Absorbed::Depthwise(c), inputs)), StepKind::DepthwiseConv2D(_, w)) => {
                    StepView { kind: StepKind::DepthwiseConv2D(c, *w), inputs, output: v.output }
                }
                _ => StepView { kind: v.kind.clone(), inputs: v.inputs, output: v.output },
            };
            (s, view)
        })
        .collect()
}
