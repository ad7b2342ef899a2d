//! Corrupted input must give errors, never panics.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use tinyq_data::*;

fn valid_npz() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.npz");
    let x = NdArray { shape: vec![4, 3], data: ArrayData::F32((0..12).map(|i| i as f32 * 0.5).collect()) };
    let y = NdArray { shape: vec![4], data: ArrayData::I64(vec![0, 1, 2, 3]) };
    write_npz(&path, &[("x", &x), ("y", &y)]).unwrap();
    std::fs::read(path).unwrap()
}

fn valid_idx_gz() -> Vec<u8> {
    let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    raw.extend(0..18u8);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&raw).unwrap();
    enc.finish().unwrap()
}

/// Opens and reads every array; only the absence of a panic matters.
fn exercise(path: &Path) {
    if let Ok(ds) = Dataset::open(path, &LoadOptions::default()) {
        for k in ds.keys() {
            let _ = ds.array(&k).map(|a| a.check_finite(&k));
        }
        let _ = ds.array("missing");
    }
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(at, v) in edits {
        let n = bytes.len();
        bytes[at % n] = v;
    }
    bytes.truncate(bytes.len() - cut % bytes.len());
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn corrupted_files_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in 0usize..64,
        kind in 0usize..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes) = match kind {
            0 => ("d.npz", valid_npz()),
            1 => ("d-images-idx3-ubyte.gz", valid_idx_gz()),
            _ => ("d.npy", valid_npz()[30..].to_vec()),
        };
        let path = dir.path().join(name);
        std::fs::write(&path, mutate(bytes, &edits, cut)).unwrap();
        exercise(&path);
    }

    #[test]
    fn arbitrary_headers_never_panic(header in "\\{'descr': '[<>|]?[a-zA-Z?]{1,3}', 'fortran_order': (True|False), 'shape': \\(([0-9]{0,12}, ?){0,4}\\), \\}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.npy");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[7u8; 48]);
        std::fs::write(&path, bytes).unwrap();
        exercise(&path);
    }
}
