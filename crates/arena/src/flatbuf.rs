//! A minimal, bounds-checked reader for the parts of the TFLite flatbuffer the
//! arena model needs (tensor shapes/types/buffers/quantization sizes, operator
//! wiring, operator codes, buffers, metadata names).
//!
//! It is deliberately independent of `tinyq-tflite`: the IR drops things the
//! allocator depends on (every tensor of every subgraph, unused tensors,
//! `is_variable`, the exact operator list and the metadata entries).

use crate::ArenaError;

#[derive(Clone, Copy)]
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    fn bytes<const N: usize>(&self, pos: usize) -> Result<[u8; N], ArenaError> {
        self.0
            .get(pos..pos.checked_add(N).ok_or_else(|| bad("offset overflow"))?)
            .map(|s| s.try_into().unwrap())
            .ok_or_else(|| bad(format!("read of {N} bytes at {pos} is past the end ({} bytes)", self.0.len())))
    }
    fn u8(&self, pos: usize) -> Result<u8, ArenaError> {
        Ok(self.bytes::<1>(pos)?[0])
    }
    fn u16(&self, pos: usize) -> Result<u16, ArenaError> {
        Ok(u16::from_le_bytes(self.bytes(pos)?))
    }
    fn u32(&self, pos: usize) -> Result<u32, ArenaError> {
        Ok(u32::from_le_bytes(self.bytes(pos)?))
    }
    fn i32(&self, pos: usize) -> Result<i32, ArenaError> {
        Ok(i32::from_le_bytes(self.bytes(pos)?))
    }
    fn table(&self, pos: usize) -> Result<Table<'a>, ArenaError> {
        let soff = self.i32(pos)? as i64;
        let vt = pos as i64 - soff;
        if vt < 0 {
            return Err(bad(format!("vtable of table at {pos} is out of range")));
        }
        let vt = vt as usize;
        let vt_len = self.u16(vt)? as usize;
        Ok(Table { buf: *self, pos, vt, vt_len })
    }
}

fn bad(msg: impl Into<String>) -> ArenaError {
    ArenaError::Malformed(msg.into())
}

#[derive(Clone, Copy)]
struct Table<'a> {
    buf: Buf<'a>,
    pos: usize,
    vt: usize,
    vt_len: usize,
}

impl<'a> Table<'a> {
    fn field(&self, id: usize) -> Result<Option<usize>, ArenaError> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vt_len {
            return Ok(None);
        }
        let off = self.buf.u16(self.vt + slot)? as usize;
        Ok(if off == 0 { None } else { Some(self.pos + off) })
    }
    fn deref(&self, at: usize) -> Result<usize, ArenaError> {
        Ok(at + self.buf.u32(at)? as usize)
    }
    fn table(&self, id: usize) -> Result<Option<Table<'a>>, ArenaError> {
        match self.field(id)? {
            Some(p) => Ok(Some(self.buf.table(self.deref(p)?)?)),
            None => Ok(None),
        }
    }
    /// (first element position, length) of a vector field.
    fn vector(&self, id: usize) -> Result<Option<(usize, usize)>, ArenaError> {
        match self.field(id)? {
            Some(p) => {
                let v = self.deref(p)?;
                Ok(Some((v + 4, self.buf.u32(v)? as usize)))
            }
            None => Ok(None),
        }
    }
    fn vec_len(&self, id: usize) -> Result<usize, ArenaError> {
        Ok(self.vector(id)?.map_or(0, |v| v.1))
    }
    fn i32_vec(&self, id: usize) -> Result<Vec<i32>, ArenaError> {
        let Some((start, len)) = self.vector(id)? else { return Ok(Vec::new()) };
        (0..len).map(|i| self.buf.i32(start + 4 * i)).collect()
    }
    fn tables(&self, id: usize) -> Result<Vec<Table<'a>>, ArenaError> {
        let Some((start, len)) = self.vector(id)? else { return Ok(Vec::new()) };
        (0..len)
            .map(|i| {
                let at = start + 4 * i;
                self.buf.table(self.deref(at)?)
            })
            .collect()
    }
    fn string(&self, id: usize) -> Result<Option<String>, ArenaError> {
        let Some((start, len)) = self.vector(id)? else { return Ok(None) };
        let s = self.buf.0.get(start..start + len).ok_or_else(|| bad("string past the end"))?;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }
    fn u8_or(&self, id: usize, default: u8) -> Result<u8, ArenaError> {
        self.field(id)?.map_or(Ok(default), |p| self.buf.u8(p))
    }
    fn i32_or(&self, id: usize, default: i32) -> Result<i32, ArenaError> {
        self.field(id)?.map_or(Ok(default), |p| self.buf.i32(p))
    }
    fn u32_or(&self, id: usize, default: u32) -> Result<u32, ArenaError> {
        self.field(id)?.map_or(Ok(default), |p| self.buf.u32(p))
    }
}

/// One tensor of a subgraph, as the allocator sees it.
#[derive(Clone, Debug)]
pub struct FbTensor {
    pub name: String,
    pub shape: Vec<i32>,
    /// `tflite::TensorType` code.
    pub ttype: u8,
    /// The tensor's buffer holds data (a constant living in the flatbuffer).
    pub has_data: bool,
    pub is_variable: bool,
    /// `Some(channels)` when the tensor has scale and zero_point vectors
    /// (TFLM then builds a `TfLiteAffineQuantization` for it).
    pub quant_channels: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct FbOp {
    pub builtin_code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
}

#[derive(Clone, Debug)]
pub struct FbSubgraph {
    pub tensors: Vec<FbTensor>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub ops: Vec<FbOp>,
}

#[derive(Clone, Debug)]
pub struct FbModel {
    pub subgraphs: Vec<FbSubgraph>,
    /// Names of `Model.metadata` entries (e.g. "OfflineMemoryAllocation").
    pub metadata_names: Vec<String>,
}

/// Parses the subset of the TFLite schema the arena model needs.
pub fn parse(bytes: &[u8]) -> Result<FbModel, ArenaError> {
    if bytes.len() < 8 || &bytes[4..8] != b"TFL3" {
        return Err(ArenaError::NotTflite);
    }
    let buf = Buf(bytes);
    let root = buf.table(buf.u32(0)? as usize)?;
    // Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 6 metadata.
    let mut codes = Vec::new();
    for oc in root.tables(1)? {
        // OperatorCode: 0 deprecated_builtin_code (byte), 3 builtin_code (int).
        let dep = oc.u8_or(0, 0)? as i8 as i32;
        let code = oc.i32_or(3, 0)?;
        codes.push(dep.max(code));
    }
    let mut buffer_has_data = Vec::new();
    for b in root.tables(4)? {
        buffer_has_data.push(b.vec_len(0)? > 0);
    }
    let mut metadata_names = Vec::new();
    for m in root.tables(6)? {
        metadata_names.push(m.string(0)?.unwrap_or_default());
    }
    let mut subgraphs = Vec::new();
    for sg in root.tables(2)? {
        // SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators.
        let mut tensors = Vec::new();
        for t in sg.tables(0)? {
            // Tensor: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization, 5 is_variable.
            let buffer = t.u32_or(2, 0)? as usize;
            let quant_channels = match t.table(4)? {
                // QuantizationParameters: 2 scale, 3 zero_point.
                Some(q) => {
                    let (s, z) = (q.vec_len(2)?, q.vec_len(3)?);
                    (s > 0 && z > 0).then_some(s)
                }
                None => None,
            };
            tensors.push(FbTensor {
                name: t.string(3)?.unwrap_or_default(),
                shape: t.i32_vec(0)?,
                ttype: t.u8_or(1, 0)?,
                has_data: buffer_has_data.get(buffer).copied().unwrap_or(false),
                is_variable: t.u8_or(5, 0)? != 0,
                quant_channels,
            });
        }
        let mut ops = Vec::new();
        for (k, op) in sg.tables(3)?.into_iter().enumerate() {
            // Operator: 0 opcode_index, 1 inputs, 2 outputs.
            let idx = op.u32_or(0, 0)? as usize;
            let builtin_code =
                *codes.get(idx).ok_or_else(|| bad(format!("operator {k}: opcode index {idx} out of range")))?;
            ops.push(FbOp { builtin_code, inputs: op.i32_vec(1)?, outputs: op.i32_vec(2)? });
        }
        let n = tensors.len() as i32;
        let check = |v: &[i32], what: &str| -> Result<(), ArenaError> {
            match v.iter().find(|&&i| i >= n || i < -1) {
                Some(i) => Err(bad(format!("{what}: tensor index {i} out of range ({n} tensors)"))),
                None => Ok(()),
            }
        };
        let (inputs, outputs) = (sg.i32_vec(1)?, sg.i32_vec(2)?);
        check(&inputs, "subgraph inputs")?;
        check(&outputs, "subgraph outputs")?;
        for (k, op) in ops.iter().enumerate() {
            check(&op.inputs, &format!("operator {k} inputs"))?;
            check(&op.outputs, &format!("operator {k} outputs"))?;
        }
        subgraphs.push(FbSubgraph { tensors, inputs, outputs, ops });
    }
    if subgraphs.is_empty() {
        return Err(bad("the model has no subgraph"));
    }
    Ok(FbModel { subgraphs, metadata_names })
}
