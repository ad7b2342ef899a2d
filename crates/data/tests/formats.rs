use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{write::GzEncoder, Compression};
use tinyq_data::*;
use zip::{write::FileOptions, CompressionMethod, ZipArchive, ZipWriter};

fn open(path: &Path) -> Result<Dataset, DataError> {
    Dataset::open(path, &LoadOptions::default())
}

fn err_text(r: Result<impl std::fmt::Debug, DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

fn arr(shape: &[usize], data: ArrayData) -> NdArray {
    NdArray { shape: shape.to_vec(), data }
}

/// A hand-written `.npy` file with an arbitrary descr and raw data bytes.
fn npy_raw(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write_zip(path: &Path, method: CompressionMethod, entries: &[(&str, Vec<u8>)]) {
    let mut zip = ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        zip.start_file(*name, FileOptions::default().compression_method(method)).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn idx_bytes(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn all_dtypes() -> Vec<(&'static str, NdArray)> {
    vec![
        ("f32", arr(&[2, 3], ArrayData::F32(vec![0.0, -1.5, f32::MAX, f32::MIN_POSITIVE, 1e-30, 3.25]))),
        ("f64", arr(&[3], ArrayData::F64(vec![std::f64::consts::PI, -0.0, 1e300]))),
        ("u8", arr(&[2, 2], ArrayData::U8(vec![0, 1, 254, 255]))),
        ("i8", arr(&[3], ArrayData::I8(vec![i8::MIN, 0, i8::MAX]))),
        ("i16", arr(&[1, 3], ArrayData::I16(vec![i16::MIN, -2, i16::MAX]))),
        ("i32", arr(&[2], ArrayData::I32(vec![i32::MIN, i32::MAX]))),
        ("i64", arr(&[2, 1, 1], ArrayData::I64(vec![i64::MIN, i64::MAX]))),
        ("b", arr(&[4], ArrayData::Bool(vec![true, false, false, true]))),
        ("scalar", arr(&[], ArrayData::F32(vec![7.0]))),
        ("empty", arr(&[0, 5], ArrayData::U8(vec![]))),
    ]
}

#[test]
fn npz_round_trip_of_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.npz");
    let arrays = all_dtypes();
    let refs: Vec<(&str, &NdArray)> = arrays.iter().map(|(k, a)| (*k, a)).collect();
    write_npz(&path, &refs).unwrap();

    let ds = open(&path).unwrap();
    assert_eq!(ds.keys(), arrays.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>());
    assert_eq!(ds.path(), path.as_path());
    assert!(ds.class_names().is_none());
    for (key, a) in &arrays {
        assert!(ds.has(key));
        let got = ds.array(key).unwrap();
        assert_eq!(&got, a, "array {key}");
        assert_eq!(got.dtype_name(), a.dtype_name());
    }
    let names: Vec<&str> = arrays.iter().map(|(_, a)| a.dtype_name()).collect();
    assert_eq!(&names[..8], ["float32", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"]);

    // written compressed, and nothing else left in the directory
    let mut zip = ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(zip.by_index(0).unwrap().compression(), CompressionMethod::Deflated);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn stored_npz_with_numpy_quirks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quirks.npz");
    let be: Vec<u8> = [1i32, -2, 3].iter().flat_map(|v| v.to_be_bytes()).collect();
    let fortran: Vec<u8> = [0u8, 3, 1, 4, 2, 5].to_vec();
    let names: Vec<u8> = "ab\0cd\0".chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
    write_zip(
        &path,
        CompressionMethod::Stored,
        &[
            ("x.npy", npy_raw(">i4", false, "(3,)", &be)),
            ("names.npy", npy_raw("<U2", false, "(3,)", &names[..24])),
            ("f.npy", npy_raw("|u1", true, "(2, 3)", &fortran)),
            ("readme.txt", b"not an array".to_vec()),
        ],
    );
    let ds = open(&path).unwrap();
    assert_eq!(ds.keys(), ["x", "f"]);
    assert!(!ds.has("names"));
    assert_eq!(ds.array("x").unwrap(), arr(&[3], ArrayData::I32(vec![1, -2, 3])));
    assert_eq!(ds.array("f").unwrap(), arr(&[2, 3], ArrayData::U8(vec![0, 1, 2, 3, 4, 5])));
    let e = err_text(ds.array("names"));
    assert!(e.contains("quirks.npz") && e.contains("\"names\"") && e.contains("<U2"), "{e}");
}

#[test]
fn npy_file_is_key_x() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.npy");
    let data: Vec<u8> = [1.5f64, 2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, npy_raw("<f8", false, "(2, 1)", &data)).unwrap();
    let ds = open(&path).unwrap();
    assert_eq!(ds.keys(), ["x"]);
    assert_eq!(ds.array("x").unwrap(), arr(&[2, 1], ArrayData::F64(vec![1.5, 2.5])));

    std::fs::write(&path, npy_raw("<f8", false, "(3, 1)", &data)).unwrap();
    let e = err_text(open(&path));
    assert!(e.contains("one.npy") && e.contains("truncated"), "{e}");
    std::fs::write(&path, npy_raw("<c8", false, "(1,)", &data)).unwrap();
    let e = err_text(open(&path));
    assert!(e.contains("unsupported dtype <c8"), "{e}");
}

#[test]
fn missing_key_error_lists_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mnist.npz");
    let a = arr(&[1], ArrayData::U8(vec![1]));
    write_npz(&path, &[("x", &a), ("y", &a), ("x_calib", &a)]).unwrap();
    let ds = open(&path).unwrap();
    let e = ds.array("xx").unwrap_err();
    assert!(matches!(e, DataError::MissingKey { .. }));
    assert!(e.to_string().ends_with("mnist.npz: no array \"xx\" (arrays: x, y, x_calib)"), "{e}");
}

#[test]
fn npz_arrays_are_cached_after_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.npz");
    let a = arr(&[3], ArrayData::F32(vec![1.0, 2.0, 3.0]));
    write_npz(&path, &[("x", &a), ("y", &a)]).unwrap();
    let ds = open(&path).unwrap();
    assert_eq!(ds.array("x").unwrap(), a);
    // overwrite the same inode: only the cached array survives
    std::fs::write(&path, vec![0u8; 400]).unwrap();
    assert_eq!(ds.array("x").unwrap(), a);
    assert!(ds.array("y").is_err());
}

#[test]
fn garbage_and_truncated_npz_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npz");
    std::fs::write(&path, b"this is certainly not a zip archive").unwrap();
    let e = err_text(open(&path));
    assert!(e.contains("bad.npz") && e.contains("not a valid .npz"), "{e}");

    let good = dir.path().join("good.npz");
    let big = arr(&[4096], ArrayData::F32((0..4096).map(|i| (i as f32).sin()).collect()));
    write_npz(&good, &[("x", &big)]).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 10, 30] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = err_text(open(&path).and_then(|d| d.array("x")));
        assert!(e.contains("bad.npz"), "{e}");
    }
    // corrupt the compressed payload but keep the zip directory intact
    let mut flipped = bytes.clone();
    flipped[200] ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    let e = err_text(open(&path).and_then(|d| d.array("x")));
    assert!(e.contains("bad.npz"), "{e}");
}

#[test]
fn idx_with_sibling_labels_gz_and_plain() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 2 * 2).collect();
    let images = idx_bytes(0x08, &[3, 2, 2], &pixels);
    let labels = idx_bytes(0x08, &[3], &[7, 8, 9]);
    std::fs::write(dir.path().join("t-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(dir.path().join("t-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    std::fs::write(dir.path().join("t-images-idx3-ubyte"), &images).unwrap();

    let ds = open(&dir.path().join("t-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(ds.keys(), ["x", "y"]);
    assert_eq!(ds.array("x").unwrap(), arr(&[3, 2, 2], ArrayData::U8(pixels.clone())));
    assert_eq!(ds.array("y").unwrap(), arr(&[3], ArrayData::U8(vec![7, 8, 9])));

    // the plain file has no plain sibling
    let ds = open(&dir.path().join("t-images-idx3-ubyte")).unwrap();
    assert_eq!(ds.keys(), ["x"]);

    let ds = open(&dir.path().join("t-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(ds.keys(), ["y"]);

    // big-endian non-byte types
    let f = dir.path().join("vals.idx");
    let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(&f, idx_bytes(0x0d, &[1, 2], &data)).unwrap();
    assert_eq!(open(&f).unwrap().array("x").unwrap(), arr(&[1, 2], ArrayData::F32(vec![1.5, -2.0])));
}

#[test]
fn idx_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let trunc = idx_bytes(0x08, &[3, 2, 2], &[0; 10]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a-images-idx3-ubyte", trunc.clone(), "truncated"),
        ("b-images-idx3-ubyte.gz", gzip(&trunc), "truncated"),
        ("c-images-idx3-ubyte.gz", gzip(&trunc)[..20].to_vec(), "gzip"),
        ("d-idx3-ubyte", vec![0, 0, 8], "truncated IDX header"),
        ("e-idx3-ubyte", vec![0, 0, 8, 3, 0, 0], "truncated IDX header"),
        ("f-idx3-ubyte", vec![1, 2, 8, 1, 0, 0, 0, 0], "magic"),
        ("g-idx3-ubyte", idx_bytes(0x0a, &[1], &[0]), "data type code 0x0a"),
        ("h-idx1-ubyte", idx_bytes(0x08, &[2], &[0, 1, 2]), "1 extra"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = err_text(open(&p));
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    // sibling with a mismatching count
    std::fs::write(dir.path().join("m-images-idx3-ubyte"), idx_bytes(8, &[2, 1, 1], &[0, 1])).unwrap();
    std::fs::write(dir.path().join("m-labels-idx1-ubyte"), idx_bytes(8, &[3], &[0, 1, 2])).unwrap();
    let e = err_text(open(&dir.path().join("m-images-idx3-ubyte")));
    assert!(e.contains("m-labels-idx1-ubyte") && e.contains("2 images"), "{e}");
}

#[test]
fn check_finite_reports_first_bad_value() {
    let a = arr(&[4], ArrayData::F32(vec![1.0, f32::NAN, f32::INFINITY, 0.0]));
    let e = a.check_finite("x of mnist.npz").unwrap_err();
    assert!(matches!(e, DataError::NonFinite { index: 1, .. }));
    assert_eq!(e.to_string(), "x of mnist.npz: non-finite value NaN at flat index 1");
    let a = arr(&[2], ArrayData::F64(vec![0.0, f64::NEG_INFINITY]));
    assert!(a.check_finite("y").unwrap_err().to_string().contains("-inf at flat index 1"));
    assert!(arr(&[1], ArrayData::I8(vec![-1])).check_finite("z").is_ok());
    assert!(arr(&[2], ArrayData::F32(vec![1.0, 2.0])).check_finite("w").is_ok());
}

#[test]
fn conversions() {
    let f = arr(&[3], ArrayData::F64(vec![1.0, -2.0, 3.0]));
    assert_eq!(f.to_i64(), Some(vec![1, -2, 3]));
    assert_eq!(f.to_f32(), vec![1.0, -2.0, 3.0]);
    assert_eq!(arr(&[1], ArrayData::F32(vec![0.5])).to_i64(), None);
    assert_eq!(arr(&[1], ArrayData::F32(vec![f32::NAN])).to_i64(), None);
    assert_eq!(arr(&[1], ArrayData::F64(vec![1e19])).to_i64(), None);
    assert_eq!(arr(&[2], ArrayData::Bool(vec![true, false])).to_f32(), vec![1.0, 0.0]);
    assert_eq!(arr(&[2], ArrayData::U8(vec![255, 0])).to_i64(), Some(vec![255, 0]));
    assert_eq!(arr(&[2], ArrayData::I8(vec![-128, 1])).to_f32(), vec![-128.0, 1.0]);
    let e = arr(&[2, 2], ArrayData::I16(vec![0; 4]));
    assert_eq!((e.len(), e.is_empty(), e.dtype_name()), (4, false, "int16"));
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert!(got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} != {want:?}");
}

fn save_rgb(path: &Path, w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(px(x, y))).save(path).unwrap();
}

fn image_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imgs");
    for class in ["cat", "dog", ".hidden"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    save_rgb(&root.join("dog/b.png"), 2, 2, |_, _| [255, 0, 0]);
    save_rgb(&root.join("dog/a.bmp"), 2, 2, |x, y| [(x * 10) as u8, (y * 10) as u8, 51]);
    save_rgb(&root.join("cat/z.PNG"), 2, 2, |_, _| [0, 255, 102]);
    std::fs::write(root.join("cat/notes.txt"), "ignored").unwrap();
    (dir, root)
}

#[test]
fn image_folder_nhwc_default() {
    let (_dir, root) = image_folder();
    let ds = open(&root).unwrap();
    assert_eq!(ds.class_names().unwrap(), ["cat", "dog"]);
    assert_eq!(ds.keys(), ["x", "y"]);
    assert_eq!(ds.array("y").unwrap(), arr(&[3], ArrayData::I64(vec![0, 1, 1])));
    let x = ds.array("x").unwrap();
    assert_eq!(x.shape, [3, 2, 2, 3]);
    let v = x.to_f32();
    assert_close(&v[..3], &[0.0, 1.0, 0.4]); // cat/z.PNG pixel (0,0)
    assert_close(&v[12 + 9..12 + 12], &[10.0 / 255.0, 10.0 / 255.0, 0.2]); // dog/a.bmp pixel (x=1,y=1)
}

#[test]
fn image_folder_resize_mean_std_nchw_gray() {
    let (_dir, root) = image_folder();
    save_rgb(&root.join("dog/c.png"), 5, 3, |_, _| [255, 0, 0]);
    let e = err_text(open(&root));
    assert!(e.contains("c.png") && e.contains("--resize"), "{e}");

    let image = ImageOptions {
        resize: Some((3, 4)),
        scale: 1.0,
        mean: vec![100.0, 0.0, 2.0],
        std: vec![2.0],
        layout: Layout::Nchw,
        grayscale: false,
    };
    let mut opts = LoadOptions { image, raw: None };
    let x = Dataset::open(&root, &opts).unwrap().array("x").unwrap();
    assert_eq!(x.shape, [4, 3, 3, 4]);
    let v = x.to_f32();
    // cat/z.PNG is uniform (0,255,102): channel planes are constant after resizing
    assert!(v[..12].iter().all(|&p| p == -50.0), "{:?}", &v[..12]);
    assert!(v[12..24].iter().all(|&p| p == 127.5));
    assert!(v[24..36].iter().all(|&p| p == 50.0));

    opts.image.grayscale = true;
    let e = err_text(Dataset::open(&root, &opts));
    assert!(e.contains("--mean has 3 values") && e.contains("1 channel"), "{e}");
    opts.image.mean = vec![];
    opts.image.std = vec![];
    let x = Dataset::open(&root, &opts).unwrap().array("x").unwrap();
    assert_eq!(x.shape, [4, 1, 3, 4]);

    opts.image.std = vec![0.0];
    assert!(err_text(Dataset::open(&root, &opts)).contains("--std"));
}

#[test]
fn image_folder_errors() {
    let (_dir, root) = image_folder();
    std::fs::write(root.join("dog/broken.png"), b"\x89PNG but not really").unwrap();
    let e = err_text(open(&root));
    assert!(e.contains("broken.png") && e.contains("cannot decode"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = err_text(open(empty.path()));
    assert!(e.contains("neither .bin files nor class subfolders"), "{e}");
    std::fs::create_dir(empty.path().join("a")).unwrap();
    assert!(err_text(open(empty.path())).contains("no png/jpeg/bmp images"));
}

#[test]
fn raw_bin_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.bin");
    let b = dir.path().join("b.bin");
    std::fs::write(&a, [1u8, 2, 3, 4, 5, 6]).unwrap();
    std::fs::write(&b, (-7i16).to_le_bytes().repeat(3)).unwrap();

    let e = err_text(open(&a));
    assert!(e.contains("a.bin") && e.contains("--shape") && e.contains("--dtype"), "{e}");
    assert!(err_text(open(dir.path())).contains("--shape"));

    let raw = Some(RawOptions { shape: vec![3], dtype: "int8".into() });
    let mut opts = LoadOptions { raw, ..Default::default() };
    let x = Dataset::open(&a, &opts).unwrap().array("x").unwrap();
    assert_eq!(x, arr(&[2, 3], ArrayData::I8(vec![1, 2, 3, 4, 5, 6])));
    let x = Dataset::open(dir.path(), &opts).unwrap().array("x").unwrap();
    assert_eq!(x.shape, [4, 3]);

    opts.raw = Some(RawOptions { shape: vec![2, 2], dtype: "int16".into() });
    let e = err_text(Dataset::open(&a, &opts));
    assert!(e.contains("a.bin") && e.contains("6 bytes is not a whole number of samples"), "{e}");

    opts.raw = Some(RawOptions { shape: vec![3], dtype: "int16".into() });
    let x = Dataset::open(&b, &opts).unwrap().array("x").unwrap();
    assert_eq!(x, arr(&[1, 3], ArrayData::I16(vec![-7; 3])));

    opts.raw = Some(RawOptions { shape: vec![3], dtype: "float16".into() });
    assert!(err_text(Dataset::open(&b, &opts)).contains("unknown --dtype \"float16\""));
    opts.raw = Some(RawOptions { shape: vec![0], dtype: "uint8".into() });
    assert!(err_text(Dataset::open(&b, &opts)).contains("invalid --shape"));
}

#[test]
fn unknown_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(open(&dir.path().join("nope.npz")));
    assert!(e.contains("nope.npz") && e.contains("No such file"), "{e}");
    let junk = dir.path().join("data.csv");
    std::fs::write(&junk, "1,2,3\n").unwrap();
    let e = err_text(open(&junk));
    assert!(e.contains("data.csv") && e.contains("unrecognized data format"), "{e}");
    // content sniffing for an extension-less npz
    let npz = dir.path().join("blob");
    write_npz(&npz, &[("q", &arr(&[1], ArrayData::I32(vec![5])))]).unwrap();
    assert_eq!(open(&npz).unwrap().keys(), ["q"]);
}

#[test]
fn write_npz_rejects_bad_input_and_keeps_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npz");
    let good = arr(&[2], ArrayData::U8(vec![1, 2]));
    write_npz(&path, &[("x", &good)]).unwrap();
    let before = std::fs::read(&path).unwrap();

    let bad = arr(&[3], ArrayData::U8(vec![1, 2]));
    let e = err_text(write_npz(&path, &[("x", &good), ("y", &bad)]));
    assert!(e.contains("out.npz") && e.contains("\"y\""), "{e}");
    assert!(err_text(write_npz(&path, &[("x", &good), ("x", &good)])).contains("twice"));
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let missing_dir = dir.path().join("no/such/dir.npz");
    assert!(write_npz(&missing_dir, &[("x", &good)]).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn shared_data_if_present() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !root.is_dir() {
        println!("shared-data test skipped: {} is absent", root.display());
        return;
    }
    let ds = open(&root.join("mnist.npz")).unwrap();
    for key in ["x", "y", "x_calib", "y_calib"] {
        assert!(ds.has(key), "mnist.npz lacks {key}: {:?}", ds.keys());
    }
    let x = ds.array("x").unwrap();
    assert_eq!((x.shape.as_slice(), x.dtype_name()), (&[10000, 1, 28, 28][..], "float32"));
    x.check_finite("mnist x").unwrap();
    let y = ds.array("y").unwrap().to_i64().unwrap();
    assert!(y.len() == 10000 && y.iter().all(|v| (0..10).contains(v)));

    let ds = open(&root.join("mnist_idx/t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(ds.array("x").unwrap().shape, [10000, 28, 28]);
    assert_eq!(ds.array("y").unwrap().shape, [10000]);

    let kws = root.join("kws01.npz");
    if kws.is_file() {
        let ds = open(&kws).unwrap();
        assert!(!ds.has("names") && ds.array("names").is_err());
        assert_eq!(ds.array("x_int8").unwrap().dtype_name(), "int8");
    }
    println!("shared-data test ran against {}", root.display());
}

#[test]
fn dataset_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Dataset>();
    assert_send_sync::<DataError>();
}
