//! Windows over H and W: Conv, the pools, the reductions, Pad and Resize.

use super::*;

/// Spatial attributes shared by Conv and the pools, for 1-D and 2-D windows (1-D as H = 1).
pub(super) struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
}

pub(super) fn window(c: &Ctx, spatial: &[usize], kernel: Vec<usize>) -> Result<Window, String> {
    let nd = spatial.len();
    let two = |v: Vec<usize>| -> [usize; 2] {
        if nd == 1 {
            [1, v[0]]
        } else {
            [v[0], v[1]]
        }
    };
    let get = |name: &str| -> Result<Vec<usize>, String> {
        match c.ints(name) {
            Some(v) if v.len() == nd => ints_to_usize(&v, name),
            Some(v) => Err(format!("{name} {v:?} does not match {nd} spatial dims")),
            None => Ok(vec![1; nd]),
        }
    };
    if kernel.len() != nd {
        return Err(format!("kernel {kernel:?} does not match {nd} spatial dims"));
    }
    let (stride, dilation) = (get("strides")?, get("dilations")?);
    if stride.contains(&0) || dilation.contains(&0) {
        return Err("strides and dilations must be positive".into());
    }
    if kernel.contains(&0) {
        return Err(format!("kernel_shape {kernel:?} must be positive"));
    }
    let input = two(spatial.to_vec());
    let (k, s, d) = (two(kernel), two(stride), two(dilation));
    let explicit = |p: Vec<usize>| {
        if nd == 1 {
            Padding::Explicit { top: 0, bottom: 0, left: p[0], right: p[1] }
        } else {
            Padding::Explicit { top: p[0], left: p[1], bottom: p[2], right: p[3] }
        }
    };
    let auto = c.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
    let padding = match auto.as_str() {
        "NOTSET" => match c.ints("pads") {
            Some(p) if p.len() == 2 * nd => explicit(ints_to_usize(&p, "pads")?),
            Some(p) => return Err(format!("pads {p:?} do not match {nd} spatial dims")),
            None => Padding::Valid,
        },
        "VALID" => Padding::Valid,
        "SAME_UPPER" => Padding::Same,
        "SAME_LOWER" => {
            let mut before = [0; 2];
            let mut after = [0; 2];
            for i in 0..2 {
                let out = input[i].div_ceil(s[i]);
                let total = ((out - 1) * s[i] + (k[i] - 1) * d[i] + 1).saturating_sub(input[i]);
                after[i] = total / 2;
                before[i] = total - after[i];
            }
            Padding::Explicit { top: before[0], bottom: after[0], left: before[1], right: after[1] }
        }
        other => return Err(format!("auto_pad `{other}` is not supported")),
    };
    Ok(Window { kernel: k, stride: s, dilation: d, padding: padding.canonical(input, k, s, d) })
}

/// The input as `[N, H, W, C]` (1-D inputs get H = 1) and how to turn the result back.
pub(super) fn spatial_input(imp: &mut Importer, v: &Value, what: &str) -> Result<(TensorId, usize), String> {
    let s = imp.shape(v);
    match s.len() {
        4 => Ok((imp.stored_as(v, &channels_last(4))?, 2)),
        3 => {
            let x = imp.stored_as(v, &channels_last(3))?;
            let name = format!("{}/as2d", imp.g.tensors[x].name);
            Ok((imp.reshape(x, vec![s[0], 1, s[2], s[1]], &name)?, 1))
        }
        r => Err(format!("{what} on a rank-{r} input is not supported (1-D and 2-D only)")),
    }
}

pub(super) fn spatial_output(imp: &mut Importer, y: TensorId, nd: usize, out: &str) -> Result<Value, String> {
    if nd == 2 {
        return Ok(Value::Tensor { id: y, layout: Layout::Perm(channels_last(4)) });
    }
    let s = imp.g.tensors[y].shape.clone();
    let id = imp.reshape(y, vec![s[0], s[2], s[3]], out)?;
    Ok(Value::Tensor { id, layout: Layout::Perm(channels_last(3)) })
}

pub(super) fn conv(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let w = c.const_input(imp, 1)?.ok_or("weights are missing")?;
    let bias = c.const_input(imp, 2)?;
    let xs = imp.shape(&x);
    if w.shape.len() != xs.len() || xs.len() < 3 {
        return Err(format!("weights {:?} do not fit input {xs:?}", w.shape));
    }
    let kernel = match c.ints("kernel_shape") {
        Some(k) => ints_to_usize(&k, "kernel_shape")?,
        None => w.shape[2..].to_vec(),
    };
    let win = window(c, &xs[2..], kernel)?;
    let group = c.int("group", 1) as usize;
    let (cout, cin_g) = (w.shape[0], w.shape[1]);
    let cin = xs[1];
    if group == 0 || cin_g * group != cin || cout % group != 0 {
        return Err(format!("weights {:?} with group {group} do not fit {cin} input channels", w.shape));
    }
    let w4 = if xs.len() == 3 { w.reshaped(vec![cout, cin_g, 1, w.shape[2]]) } else { w.clone() };
    let conv =
        Conv2D { stride: win.stride, dilation: win.dilation, padding: win.padding, activation: FusedActivation::None };
    let depthwise = group == cin && group > 1 && cin_g == 1;
    let (op, wt) = if depthwise {
        (Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: cout / cin }), w4.transposed(&[1, 2, 3, 0]))
    } else {
        (Op::Conv2D(conv), w4.transposed(&[0, 2, 3, 1]))
    };
    let (xi, nd) = spatial_input(imp, &x, "Conv")?;
    let mut inputs = vec![xi, imp.add_const(&wt, c.input_name(1).unwrap_or("weights"))];
    if let Some(b) = bias {
        if b.shape != [cout] {
            return Err(format!("bias shape {:?} is not [{cout}]", b.shape));
        }
        inputs.push(imp.add_const(&b, c.input_name(2).unwrap_or("bias")));
    }
    let out = c.out(0)?;
    let y = imp.emit(op, inputs, out, None)?;
    let v = spatial_output(imp, y, nd, out)?;
    imp.set(out, v);
    Ok(())
}

pub(super) fn pool(imp: &mut Importer, c: &Ctx, max: bool) -> Result<(), String> {
    if c.node.output.len() > 1 && !c.node.output[1].is_empty() {
        return Err("MaxPool's indices output is not supported".into());
    }
    let x = c.input(imp, 0)?;
    let xs = imp.shape(&x);
    if xs.len() < 3 {
        return Err(format!("input {xs:?} has no spatial dims"));
    }
    let kernel = ints_to_usize(&c.ints("kernel_shape").ok_or("kernel_shape is missing")?, "kernel_shape")?;
    let win = window(c, &xs[2..], kernel)?;
    if win.dilation != [1, 1] {
        return Err("dilated pooling is not supported".into());
    }
    let (mut xi, nd) = spatial_input(imp, &x, "pooling")?;
    let mut padding = win.padding;
    if c.int("ceil_mode", 0) != 0 {
        let s = &imp.g.tensors[xi].shape;
        for d in 0..2 {
            let pads = match padding {
                Padding::Explicit { top, bottom, left, right } => {
                    if d == 0 {
                        top + bottom
                    } else {
                        left + right
                    }
                }
                Padding::Same | Padding::Valid => 0,
            };
            let span = (s[1 + d] + pads).saturating_sub(win.kernel[d]);
            if padding != Padding::Same && span % win.stride[d] != 0 {
                return Err("ceil_mode = 1 changes the output size here; it is not supported".into());
            }
        }
    }
    if !max && c.int("count_include_pad", 0) != 0 && padding != Padding::Valid {
        let s = imp.g.tensors[xi].shape.clone();
        let h = padding.resolve(0, s[1], win.kernel[0], win.stride[0], 1)?;
        let w = padding.resolve(1, s[2], win.kernel[1], win.stride[1], 1)?;
        let after =
            |out: usize, before: usize, k: usize, st: usize, n: usize| ((out - 1) * st + k).saturating_sub(n + before);
        let pads = vec![
            [0, 0],
            [h.pad_before, after(h.out, h.pad_before, win.kernel[0], win.stride[0], s[1])],
            [w.pad_before, after(w.out, w.pad_before, win.kernel[1], win.stride[1], s[2])],
            [0, 0],
        ];
        let name = format!("{}/padded", c.out(0)?);
        xi = imp.emit(Op::Pad(Pad { pads, value: 0.0 }), vec![xi], &name, None)?;
        padding = Padding::Valid;
    }
    let p = Pool2D { filter: win.kernel, stride: win.stride, padding, activation: FusedActivation::None };
    let op = if max { Op::MaxPool2D(p) } else { Op::AvgPool2D(p) };
    let out = c.out(0)?;
    let y = imp.emit(op, vec![xi], out, None)?;
    let v = spatial_output(imp, y, nd, out)?;
    imp.set(out, v);
    Ok(())
}

pub(super) fn global_average_pool(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let rank = imp.shape(&x).len();
    if rank < 3 {
        return Err("GlobalAveragePool needs spatial dims".into());
    }
    let perm = channels_last(rank);
    let xi = imp.stored_as(&x, &perm)?;
    let id = imp.emit(Op::Mean(Mean { axes: (1..rank - 1).collect(), keep_dims: true }), vec![xi], c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(perm) });
    Ok(())
}

pub(super) fn global_max_pool(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let (xi, nd) = spatial_input(imp, &x, "GlobalMaxPool")?;
    let s = imp.g.tensors[xi].shape.clone();
    let p = Pool2D { filter: [s[1], s[2]], stride: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
    let out = c.out(0)?;
    let y = imp.emit(Op::MaxPool2D(p), vec![xi], out, None)?;
    let v = spatial_output(imp, y, nd, out)?;
    imp.set(out, v);
    Ok(())
}

/// ReduceMean → MEAN, ReduceMax → REDUCE_MAX, ReduceSum → SUM (`make` builds the op; the axes
/// are an input from opset `axes_input_since`: 13 for ReduceSum, 18 for the others).
pub(super) fn reduce(imp: &mut Importer, c: &Ctx, make: fn(Mean) -> Op, axes_input_since: i64) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let rank = imp.shape(&x).len();
    let keep = c.int("keepdims", 1) != 0;
    let axes: Vec<usize> = match c.axes(imp, 1, axes_input_since)? {
        Some(a) if !a.is_empty() => a.iter().map(|&a| constfold::axis(a, rank)).collect::<Result<_, _>>()?,
        _ if c.int("noop_with_empty_axes", 0) != 0 => return identity_op(imp, c),
        _ => (0..rank).collect(),
    };
    let (xi, perm) = match &x {
        Value::Tensor { id, layout: Layout::Perm(p) } => (*id, p.clone()),
        other => (imp.identity(other)?, identity(rank)),
    };
    let mut stored: Vec<usize> = (0..rank).filter(|&k| axes.contains(&perm[k])).collect();
    stored.sort_unstable();
    let p = Mean { axes: stored, keep_dims: keep };
    let id = imp.emit(make(p), vec![xi], c.out(0)?, None)?;
    let layout = if keep {
        perm
    } else {
        let kept: Vec<usize> = perm.iter().copied().filter(|a| !axes.contains(a)).collect();
        let mut sorted = kept.clone();
        sorted.sort_unstable();
        kept.iter().map(|a| sorted.iter().position(|s| s == a).unwrap()).collect()
    };
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(layout) });
    Ok(())
}

pub(super) fn pad(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let rank = imp.shape(&x).len();
    let mode = c.string("mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" && mode != "reflect" {
        return Err(format!("Pad mode `{mode}` is not supported (constant and reflect only)"));
    }
    let (pads, value, axes) = if imp.opset >= 11 {
        let pads = c.const_input(imp, 1)?.ok_or("pads are missing")?.data.to_i64();
        let value = c.const_input(imp, 2)?.map_or(0.0, |k| k.data.to_f32().first().copied().unwrap_or(0.0));
        let axes = c.const_input(imp, 3)?.map(|k| k.data.to_i64());
        (pads, value, axes)
    } else {
        (c.ints("pads").ok_or("pads are missing")?, c.float("value", 0.0), None)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| constfold::axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
    }
    let pads = ints_to_usize(&pads, "pads (negative pads crop)")?;
    let mut semantic = vec![[0usize; 2]; rank];
    for (k, &a) in axes.iter().enumerate() {
        semantic[a] = [pads[k], pads[k + axes.len()]];
    }
    let (xi, perm) = match &x {
        Value::Tensor { id, layout: Layout::Perm(p) } => (*id, p.clone()),
        other => (imp.identity(other)?, identity(rank)),
    };
    let stored = perm.iter().map(|&a| semantic[a]).collect();
    let op = if mode == "reflect" {
        Op::MirrorPad(irop::MirrorPad { pads: stored, reflect: true })
    } else {
        Op::Pad(Pad { pads: stored, value })
    };
    let id = imp.emit(op, vec![xi], c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(perm) });
    Ok(())
}

/// Resize / Upsample in linear mode → RESIZE_BILINEAR (coordinate modes `asymmetric`,
/// `half_pixel`, `pytorch_half_pixel`, `align_corners`), and in nearest mode →
/// RESIZE_NEAREST_NEIGHBOR, for the coordinate modes and
/// roundings that pick TFLite's source pixels: `asymmetric` + `floor` (PyTorch's `nearest`,
/// Upsample), `half_pixel` + `round_prefer_ceil` or `tf_half_pixel_for_nn` + `floor`
/// (`half_pixel_centers`), `align_corners` + `round_prefer_ceil`. Height and width change by a
/// whole factor (up or down), so `x / scale` and TFLite's `x · (in / out)` are the same float;
/// a linear resize may take any size (its weights move by a float's last bit at most).
pub(super) fn resize(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let xs = imp.shape(&x);
    if xs.len() != 4 {
        return Err(format!("{} of a rank-{} input is not supported (4-D NCHW only)", c.node.op_type, xs.len()));
    }
    let mode = c.string("mode").unwrap_or_else(|| "nearest".into());
    let linear = matches!(mode.as_str(), "linear" | "bilinear");
    if mode != "nearest" && !linear {
        return Err(format!("mode `{mode}` is not supported (nearest and linear only)"));
    }
    if c.int("antialias", 0) != 0 {
        return Err("antialias is not supported".into());
    }
    let upsample = c.node.op_type == "Upsample";
    if c.attr("axes").is_some() || c.string("keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        return Err("axes and keep_aspect_ratio_policy are not supported".into());
    }
    let scales = match (upsample, imp.opset) {
        (true, ..=8) => c.attr("scales").map(|a| a.floats.clone()),
        (true, _) | (false, 10) => c.const_input(imp, 1)?.map(|k| k.data.to_f32()),
        (false, _) => c.const_input(imp, 2)?.map(|k| k.data.to_f32()).filter(|v| !v.is_empty()),
    };
    let sizes = if !upsample && imp.opset >= 11 { c.const_input(imp, 3)?.map(|k| k.data.to_i64()) } else { None };
    let out: Vec<usize> = match (sizes, scales) {
        (Some(s), _) if s.len() == 4 => ints_to_usize(&s, "sizes")?,
        (None, Some(f)) if f.len() == 4 => xs.iter().zip(&f).map(|(&d, &k)| (d as f32 * k).floor() as usize).collect(),
        _ => return Err("needs 4 scales or 4 sizes".into()),
    };
    if out[..2] != xs[..2] || out[2..].contains(&0) {
        return Err(format!("resizes {xs:?} to {out:?}; only height and width may change"));
    }
    let whole = |i: usize, o: usize| o.is_multiple_of(i) || i.is_multiple_of(o);
    // A nearest pick can flip on the last bit of `x / scale`; a linear weight only moves by it.
    if !linear && (!whole(xs[2], out[2]) || !whole(xs[3], out[3])) {
        return Err(format!("resizing {:?} to {:?} is not by a whole factor; not supported", &xs[2..], &out[2..]));
    }
    let coord = if upsample || imp.opset < 11 {
        "asymmetric".into()
    } else {
        c.string("coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into())
    };
    let rounding = if upsample || imp.opset < 11 {
        "floor".into()
    } else {
        c.string("nearest_mode").unwrap_or_else(|| "round_prefer_floor".into())
    };
    let (align_corners, half_pixel_centers) = match (coord.as_str(), rounding.as_str()) {
        // Linear: TFLite's positions for these modes; the rounding does not apply.
        ("asymmetric", _) if linear => (false, false),
        ("half_pixel", _) if linear => (false, true),
        ("pytorch_half_pixel", _) if linear && out[2] > 1 && out[3] > 1 => (false, true),
        ("align_corners", _) if linear => (true, false),
        (cm, _) if linear => {
            return Err(format!("coordinate_transformation_mode `{cm}` of a linear resize has no TFLite equivalent"))
        }
        ("asymmetric", "floor") => (false, false),
        ("half_pixel", "round_prefer_ceil") | ("tf_half_pixel_for_nn", "floor") => (false, true),
        ("pytorch_half_pixel", "round_prefer_ceil") if out[2] > 1 && out[3] > 1 => (false, true),
        ("align_corners", "round_prefer_ceil") => (true, false),
        (cm, nm) => {
            return Err(format!(
                "coordinate_transformation_mode `{cm}` with nearest_mode `{nm}` has no TFLite equivalent"
            ))
        }
    };
    let xi = imp.stored_as(&x, &channels_last(4))?;
    let p = irop::ResizeNearest { size: [out[2], out[3]], align_corners, half_pixel_centers };
    let op = if linear { Op::ResizeBilinear(p) } else { Op::ResizeNearest(p) };
    let id = imp.emit(op, vec![xi], c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(channels_last(4)) });
    Ok(())
}
