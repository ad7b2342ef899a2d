//! A folder with one subfolder of images per class.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::{format_err, io_err, ArrayData, DataError, ImageOptions, Layout, NdArray};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Returns `x` (float32 images), `y` (int64 class indices) and the class names.
pub(crate) fn load_folder(dir: &Path, o: &ImageOptions) -> Result<(NdArray, NdArray, Vec<String>), DataError> {
    let channels = if o.grayscale { 1 } else { 3 };
    let mean = per_channel(dir, "--mean", &o.mean, channels, 0.0)?;
    let std = per_channel(dir, "--std", &o.std, channels, 1.0)?;
    if let Some(s) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
        return Err(format_err(dir, format!("--std value {s} must be finite and non-zero")));
    }
    let classes = sorted_entries(dir, |p| p.is_dir())?;
    if classes.is_empty() {
        return Err(format_err(dir, "directory has neither .bin files nor class subfolders of png/jpeg/bmp images"));
    }
    let (mut x, mut y, mut size) = (Vec::new(), Vec::new(), None);
    for (label, class_dir) in classes.iter().enumerate() {
        let is_image = |p: &Path| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_lowercase().as_str()))
        };
        for file in sorted_entries(class_dir, is_image)? {
            let (hw, pixels) = decode(&file, o, channels)?;
            let (first, first_file) = size.get_or_insert_with(|| (hw, file.clone()));
            if *first != hw {
                let msg = format!(
                    "image is {hw:?} (height, width) but {} is {first:?}; pass --resize for images of different sizes",
                    first_file.display()
                );
                return Err(format_err(&file, msg));
            }
            let hw_len = hw.0 as usize * hw.1 as usize;
            let total = [y.len() + 1, hw.0 as usize, hw.1 as usize, channels];
            tinyq_ir::size::tensor_numel(&total, 4)
                .map_err(|m| format_err(dir, format!("the images together: {m}")))?;
            let at = x.len();
            x.resize(at + hw_len * channels, 0.0);
            for (i, px) in pixels.chunks_exact(channels).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    let dst = match o.layout {
                        Layout::Nhwc => i * channels + c,
                        Layout::Nchw => c * hw_len + i,
                    };
                    x[at + dst] = (v as f32 * o.scale - mean[c]) / std[c];
                }
            }
            y.push(label as i64);
        }
    }
    let Some(((h, w), _)) = size else {
        return Err(format_err(dir, "no png/jpeg/bmp images found in the class subfolders"));
    };
    let (n, h, w) = (y.len(), h as usize, w as usize);
    let shape = match o.layout {
        Layout::Nhwc => vec![n, h, w, channels],
        Layout::Nchw => vec![n, channels, h, w],
    };
    let names = classes.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    Ok((NdArray { shape, data: ArrayData::F32(x) }, NdArray { shape: vec![n], data: ArrayData::I64(y) }, names))
}

/// Decodes one image to interleaved 8-bit pixels; returns ((height, width), pixels).
fn decode(file: &Path, o: &ImageOptions, channels: usize) -> Result<((u32, u32), Vec<u8>), DataError> {
    let mut reader =
        image::ImageReader::open(file).map_err(io_err(file))?.with_guessed_format().map_err(io_err(file))?;
    // Decoded 8-bit pixels become 4-byte floats: cap the decoder at a quarter of the tensor limit,
    // so a small file declaring a huge image is refused before its pixels are allocated.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some((tinyq_ir::size::max_tensor_bytes() / 4) as u64);
    reader.limits(limits);
    let img = guarded(file, || reader.decode())?.map_err(|e| format_err(file, format!("cannot decode image: {e}")))?;
    let img = match o.resize {
        Some((h, w)) if h == 0 || w == 0 => return Err(format_err(file, "--resize needs non-zero height and width")),
        Some((h, w)) if tinyq_ir::size::tensor_numel(&[h as usize, w as usize, 4], 4).is_err() => {
            let msg = tinyq_ir::size::tensor_numel(&[h as usize, w as usize, 4], 4).unwrap_err();
            return Err(format_err(file, format!("--resize {h}x{w}: {msg}")));
        }
        Some((h, w)) if (img.height(), img.width()) != (h, w) => img.resize_exact(w, h, FilterType::Triangle),
        _ => img,
    };
    let hw = (img.height(), img.width());
    let pixels = if channels == 1 { img.into_luma8().into_raw() } else { img.into_rgb8().into_raw() };
    Ok((hw, pixels))
}

thread_local! {
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a third-party image decoder, turning a panic inside it (a decoder bug that a malformed
/// file reaches, such as an assertion in a JPEG upsampler) into an error naming the file. The
/// panic message of such a panic is not printed; every other panic prints as before.
fn guarded<T>(file: &Path, decode: impl FnOnce() -> T) -> Result<T, DataError> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODER.with(std::cell::Cell::get) {
                previous(info)
            }
        }));
    });
    IN_DECODER.with(|d| d.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
    IN_DECODER.with(|d| d.set(false));
    result.map_err(|_| format_err(file, "cannot decode image: the decoder failed on this malformed file"))
}

fn per_channel(dir: &Path, flag: &str, v: &[f32], channels: usize, default: f32) -> Result<Vec<f32>, DataError> {
    match v.len() {
        0 => Ok(vec![default; channels]),
        1 => Ok(vec![v[0]; channels]),
        n if n == channels => Ok(v.to_vec()),
        n => Err(format_err(dir, format!("{flag} has {n} values but images have {channels} channel(s)"))),
    }
}

/// Non-hidden entries of `dir` accepted by `keep`, sorted by path.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = entry.map_err(io_err(dir))?.path();
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && keep(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
