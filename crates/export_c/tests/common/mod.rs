//! Test helpers: the shared example models, a tiny forward-layout flatbuffer builder for
//! synthetic models, and an operator-code reader written independently of the crate's.
#![allow(dead_code)]

use std::path::PathBuf;

/// `model_int8_*.tflite` files of the shared model set (hybrid models skipped), or `None`
/// when the set is absent.
pub fn shared_int8_models() -> Option<Vec<PathBuf>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).ok()? {
        let dir = dir.ok()?.path();
        for f in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = f.path();
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            if n.starts_with("model_int8_") && n.ends_with(".tflite") {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
}

pub enum Val {
    I8(i8),
    I32(i32),
    Ref(Node),
}

pub enum Node {
    Table(Vec<(usize, Val)>),
    Tables(Vec<Node>),
    I32s(Vec<i32>),
    F32s(Vec<f32>),
    I64s(Vec<i64>),
    Str(String),
}

fn align(buf: &mut Vec<u8>, a: usize) {
    while !buf.len().is_multiple_of(a) {
        buf.push(0);
    }
}

fn patch(buf: &mut [u8], at: usize, target: usize) {
    buf[at..at + 4].copy_from_slice(&((target - at) as u32).to_le_bytes());
}

fn put(buf: &mut Vec<u8>, node: &Node) -> usize {
    match node {
        Node::Table(fields) => {
            let max = fields.iter().map(|f| f.0).max().map_or(0, |m| m + 1);
            align(buf, 4);
            // vtable first (before the table, so its soffset is positive)
            let vt_len = 4 + 2 * max;
            let vt = buf.len();
            buf.extend((vt_len as u16).to_le_bytes());
            buf.extend(((4 + 4 * fields.len()) as u16).to_le_bytes());
            let mut slots = vec![0u16; max];
            for (k, (id, _)) in fields.iter().enumerate() {
                slots[*id] = (4 + 4 * k) as u16;
            }
            for s in slots {
                buf.extend(s.to_le_bytes());
            }
            align(buf, 4);
            let pos = buf.len();
            buf.extend(((pos - vt) as i32).to_le_bytes());
            let mut refs = Vec::new();
            for (_, v) in fields {
                let at = buf.len();
                match v {
                    Val::I8(x) => buf.extend([*x as u8, 0, 0, 0]),
                    Val::I32(x) => buf.extend(x.to_le_bytes()),
                    Val::Ref(n) => {
                        buf.extend([0; 4]);
                        refs.push((at, n));
                    }
                }
            }
            for (at, n) in refs {
                let target = put(buf, n);
                patch(buf, at, target);
            }
            pos
        }
        Node::Tables(items) => {
            align(buf, 4);
            let pos = buf.len();
            buf.extend((items.len() as u32).to_le_bytes());
            let slots: Vec<usize> = items
                .iter()
                .map(|_| {
                    buf.extend([0; 4]);
                    buf.len() - 4
                })
                .collect();
            for (at, n) in slots.into_iter().zip(items) {
                let target = put(buf, n);
                patch(buf, at, target);
            }
            pos
        }
        Node::I32s(v) => scalars(buf, 4, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Node::F32s(v) => scalars(buf, 4, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Node::I64s(v) => scalars(buf, 8, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Node::Str(s) => {
            let pos = scalars(buf, 4, s.len(), s.as_bytes().to_vec());
            buf.push(0);
            pos
        }
    }
}

fn scalars(buf: &mut Vec<u8>, elem_align: usize, len: usize, bytes: Vec<u8>) -> usize {
    align(buf, 4);
    while !(buf.len() + 4).is_multiple_of(elem_align) {
        buf.extend([0; 4]);
    }
    let pos = buf.len();
    buf.extend((len as u32).to_le_bytes());
    buf.extend(bytes);
    pos
}

/// Serializes `root` as a TFLite file (identifier "TFL3").
pub fn finish(root: Node) -> Vec<u8> {
    let mut buf = vec![0u8; 8];
    buf[4..8].copy_from_slice(b"TFL3");
    let pos = put(&mut buf, &root);
    patch(&mut buf, 0, pos);
    buf
}

/// An int8 tensor table.
pub fn tensor(name: &str, shape: &[i32], scale: f32, zp: i64) -> Node {
    Node::Table(vec![
        (0, Val::Ref(Node::I32s(shape.to_vec()))),
        (1, Val::I8(9)),
        (2, Val::I32(0)),
        (3, Val::Ref(Node::Str(name.into()))),
        (4, Val::Ref(Node::Table(vec![(2, Val::Ref(Node::F32s(vec![scale]))), (3, Val::Ref(Node::I64s(vec![zp])))]))),
    ])
}

/// A one-subgraph model; `codes` are (builtin code, custom name) per operator-code entry and
/// `ops` the opcode index of each operator (all reading tensor 0 and writing tensor 1).
pub fn model(codes: &[(i32, Option<&str>)], ops: &[u32]) -> Vec<u8> {
    let opcodes = codes
        .iter()
        .map(|(c, custom)| {
            let mut f = vec![(0, Val::I8((*c).min(127) as i8)), (2, Val::I32(1)), (3, Val::I32(*c))];
            if let Some(n) = custom {
                f.push((1, Val::Ref(Node::Str(n.to_string()))));
            }
            Node::Table(f)
        })
        .collect();
    let operators = ops
        .iter()
        .map(|&i| {
            Node::Table(vec![
                (0, Val::I32(i as i32)),
                (1, Val::Ref(Node::I32s(vec![0]))),
                (2, Val::Ref(Node::I32s(vec![1]))),
            ])
        })
        .collect();
    let subgraph = Node::Table(vec![
        (0, Val::Ref(Node::Tables(vec![tensor("in", &[1, 4], 0.5, -3), tensor("out", &[1, 3], 0.00390625, -128)]))),
        (1, Val::Ref(Node::I32s(vec![0]))),
        (2, Val::Ref(Node::I32s(vec![1]))),
        (3, Val::Ref(Node::Tables(operators))),
    ]);
    finish(Node::Table(vec![
        (0, Val::I32(3)),
        (1, Val::Ref(Node::Tables(opcodes))),
        (2, Val::Ref(Node::Tables(vec![subgraph]))),
        (4, Val::Ref(Node::Tables(vec![Node::Table(vec![])]))),
    ]))
}

// ---- independent reader: builtin codes referenced by operators of every subgraph ----

fn u32_at(b: &[u8], p: usize) -> usize {
    u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize
}

fn field(b: &[u8], table: usize, id: usize) -> Option<usize> {
    let vt = (table as i64 - i32::from_le_bytes(b[table..table + 4].try_into().unwrap()) as i64) as usize;
    let vt_len = u16::from_le_bytes([b[vt], b[vt + 1]]) as usize;
    if 4 + 2 * id + 2 > vt_len {
        return None;
    }
    let off = u16::from_le_bytes([b[vt + 4 + 2 * id], b[vt + 5 + 2 * id]]) as usize;
    (off != 0).then_some(table + off)
}

fn deref(b: &[u8], p: usize) -> usize {
    p + u32_at(b, p)
}

fn tables(b: &[u8], table: usize, id: usize) -> Vec<usize> {
    let Some(f) = field(b, table, id) else { return vec![] };
    let v = deref(b, f);
    (0..u32_at(b, v)).map(|i| deref(b, v + 4 + 4 * i)).collect()
}

/// Sorted, deduplicated builtin codes of the operators in `bytes`.
pub fn used_codes(bytes: &[u8]) -> Vec<i32> {
    let root = deref(bytes, 0);
    let codes: Vec<i32> = tables(bytes, root, 1)
        .into_iter()
        .map(|oc| {
            let dep = field(bytes, oc, 0).map_or(0, |p| bytes[p] as i8 as i32);
            let new = field(bytes, oc, 3).map_or(0, |p| u32_at(bytes, p) as i32);
            dep.max(new)
        })
        .collect();
    let mut used: Vec<i32> = tables(bytes, root, 2)
        .into_iter()
        .flat_map(|sg| tables(bytes, sg, 3))
        .map(|op| codes[field(bytes, op, 0).map_or(0, |p| u32_at(bytes, p))])
        .collect();
    used.sort();
    used.dedup();
    used
}

/// Sorted, deduplicated codes of the whole operator-code table.
pub fn table_codes(bytes: &[u8]) -> Vec<i32> {
    let root = deref(bytes, 0);
    let mut codes: Vec<i32> = tables(bytes, root, 1)
        .into_iter()
        .map(|oc| {
            let dep = field(bytes, oc, 0).map_or(0, |p| bytes[p] as i8 as i32);
            let new = field(bytes, oc, 3).map_or(0, |p| u32_at(bytes, p) as i32);
            dep.max(new)
        })
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// The bytes of the array literal in a generated `_model_data.cc`.
pub fn parse_array(cc: &str) -> Vec<u8> {
    let start = cc.find("[] = {").expect("array start") + 6;
    let end = start + cc[start..].find("};").expect("array end");
    cc[start..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| u8::from_str_radix(s.strip_prefix("0x").expect("hex byte"), 16).expect("hex byte"))
        .collect()
}

/// Builtin codes named by the `resolver.AddXxx()` lines of a generated ops header.
pub fn resolver_calls(ops_h: &str) -> Vec<String> {
    ops_h
        .lines()
        .filter_map(|l| l.trim().strip_prefix("if (resolver."))
        .map(|l| l.split('(').next().unwrap().to_string())
        .collect()
}

pub fn constant(text: &str, name: &str) -> String {
    let key = format!(" {name} = ");
    let line = text.lines().find(|l| l.contains(&key)).unwrap_or_else(|| panic!("{name} missing"));
    let v = line.split(&key).nth(1).unwrap();
    v.split(';').next().unwrap().trim().to_string()
}
