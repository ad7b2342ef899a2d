//! TFLite's dense int4 packing, as TFLM's `UnpackDenseInt4IntoInt8` reads it: the tensor's
//! values in row-major order, two per byte, the even-indexed value in the low nibble and the
//! odd-indexed one in the high nibble; an odd count leaves the last byte's high nibble zero.

use tinyq_ir::{I4_MAX, I4_MIN};

/// `numel` signed 4-bit values from `packed` (which holds at least `numel.div_ceil(2)` bytes).
pub(crate) fn unpack(packed: &[u8], numel: usize) -> Vec<i8> {
    (0..numel)
        .map(|i| {
            let byte = packed[i / 2];
            let nibble = if i % 2 == 0 { byte << 4 } else { byte & 0xf0 };
            (nibble as i8) >> 4
        })
        .collect()
}

/// Packs values in `I4_MIN..=I4_MAX` two per byte; an error names the first value outside.
pub(crate) fn pack(values: &[i8]) -> Result<Vec<u8>, String> {
    if let Some((at, v)) = values.iter().enumerate().find(|(_, v)| !(I4_MIN..=I4_MAX).contains(*v)) {
        return Err(format!("int4 value #{at} is {v}, outside {I4_MIN}..={I4_MAX}"));
    }
    Ok(values.chunks(2).map(|c| (c[0] as u8 & 0x0f) | (c.get(1).map_or(0, |&h| (h as u8) << 4))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use planus::ReadAsRoot;
    use tinyq_ir::op::FullyConnected;
    use tinyq_ir::{DType, Graph, Node, Op, QParams, Tensor, TensorData};

    #[test]
    fn nibble_order_matches_tflm() {
        // 0x21: low nibble 1 first, then high nibble 2; 0xF8: -8 then -1; a lone 7 in the low half.
        assert_eq!(unpack(&[0x21, 0xf8, 0x07], 5), vec![1, 2, -8, -1, 7]);
        assert_eq!(pack(&[1, 2, -8, -1, 7]).unwrap(), vec![0x21, 0xf8, 0x07]);
    }

    #[test]
    fn every_pair_round_trips_and_out_of_range_is_refused() {
        let all: Vec<i8> = (I4_MIN..=I4_MAX).flat_map(|a| (I4_MIN..=I4_MAX).map(move |b| [a, b])).flatten().collect();
        assert_eq!(unpack(&pack(&all).unwrap(), all.len()), all);
        assert!(pack(&[0, 8]).unwrap_err().contains("#1 is 8"));
        assert!(pack(&[-9]).is_err());
    }

    /// x (int8) → FULLY_CONNECTED with 3×5 int4 weights (an odd count) → y.
    fn int4_dense() -> Graph {
        let q = |s: f32| Some(QParams { scale: vec![s], zero_point: vec![0], axis: None });
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor { qparams: q(0.5), ..Tensor::activation("x", vec![1, 5], DType::I8) });
        let values: Vec<i8> = (0..15).map(|i| (i % 16 - 8) as i8).collect();
        let w =
            Tensor { dtype: DType::I4, qparams: q(0.25), ..Tensor::constant("w", vec![3, 5], TensorData::I8(values)) };
        let w = g.add_tensor(w);
        let y = g.add_tensor(Tensor { qparams: q(1.0), ..Tensor::activation("y", vec![1, 3], DType::I8) });
        g.nodes.push(Node {
            name: "y".into(),
            op: Op::FullyConnected(FullyConnected::default()),
            inputs: vec![x, w],
            outputs: vec![y],
        });
        g.inputs = vec![x];
        g.outputs = vec![y];
        g.validate().unwrap();
        g
    }

    #[test]
    fn int4_weights_round_trip_packed_and_counted_at_half_a_byte() {
        let g = int4_dense();
        let bytes = crate::write_tflite(&g).unwrap();
        assert_eq!(crate::read_tflite(&bytes).unwrap(), g);
        let model = crate::generated::ModelRef::read_as_root(&bytes[..]).unwrap();
        let sg = model.subgraphs().unwrap().unwrap().get(0).unwrap().unwrap();
        let t = sg.tensors().unwrap().unwrap().get(1).unwrap().unwrap();
        assert_eq!(t.type_().unwrap(), crate::generated::TensorType::Int4);
        let buffer = model.buffers().unwrap().unwrap().get(t.buffer().unwrap() as usize).unwrap().unwrap();
        let data = buffer.data().unwrap().unwrap();
        assert_eq!(data, &pack(&(0..15).map(|i| (i % 16 - 8) as i8).collect::<Vec<_>>()).unwrap()[..]);
        assert_eq!(data.len(), 8);
        assert_eq!(crate::flash_breakdown(&bytes).unwrap().weights, 8);
        assert_eq!(g.tensors[1].size_bytes(), 8);
    }

    #[test]
    fn int4_values_out_of_range_are_refused_by_tensor() {
        let mut g = int4_dense();
        if let Some(TensorData::I8(v)) = &mut g.tensors[1].data {
            v[3] = 9;
        }
        let err = crate::write_tflite(&g).unwrap_err().to_string();
        assert!(err.contains("`w`") && err.contains("#3 is 9"), "{err}");
        assert!(g.validate().unwrap_err().to_string().contains("int4 value #3 is 9"));
    }
}
