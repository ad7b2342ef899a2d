//! `.npy` headers and data, `.npz` archives (read lazily, written atomically).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zip::{write::FileOptions, CompressionMethod, ZipArchive, ZipWriter};

use crate::{format_err, io_err, DType, DataError, NdArray, DTYPE_NAMES};

const MAGIC: &[u8] = b"\x93NUMPY";
const MAX_HEADER: usize = 1 << 20;

/// A parsed `.npy` header. `dtype` is `Err(descr)` for dtypes this crate cannot hold.
struct Header {
    dtype: Result<(DType, bool), String>,
    shape: Vec<usize>,
    fortran: bool,
    /// Bytes from the magic to the end of the header text.
    len: u64,
}

impl Header {
    fn read(r: &mut impl Read) -> Result<Header, String> {
        let mut pre = [0u8; 12];
        read_exact(r, &mut pre[..10])?;
        if &pre[..6] != MAGIC {
            return Err("not an .npy array (bad magic bytes)".into());
        }
        let len = match pre[6] {
            1 => u16::from_le_bytes([pre[8], pre[9]]) as usize,
            2 | 3 => {
                read_exact(r, &mut pre[10..])?;
                u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize
            }
            v => return Err(format!("unsupported .npy format version {v}")),
        };
        if len > MAX_HEADER {
            return Err(format!(".npy header of {len} bytes is implausibly large"));
        }
        let mut text = vec![0u8; len];
        read_exact(r, &mut text)?;
        let text = String::from_utf8(text).map_err(|_| "npy header is not valid text".to_string())?;
        let mut h = Header::parse(&text).ok_or_else(|| format!("cannot parse npy header {:?}", text.trim_end()))?;
        h.len = (len + if pre[6] == 1 { 10 } else { 12 }) as u64;
        Ok(h)
    }

    fn parse(text: &str) -> Option<Header> {
        let descr = dict_value(text, "descr")?;
        let dtype = match descr.chars().next()? {
            q @ ('\'' | '"') => {
                let d = descr[1..].split(q).next()?;
                parse_descr(d).ok_or_else(|| d.to_string())
            }
            _ => Err("structured (record) dtype".to_string()),
        };
        let fortran = match dict_value(text, "fortran_order")? {
            v if v.starts_with("True") => true,
            v if v.starts_with("False") => false,
            _ => return None,
        };
        let shape = dict_value(text, "shape")?.strip_prefix('(')?;
        let shape = shape[..shape.find(')')?]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('L').parse().ok())
            .collect::<Option<Vec<usize>>>()?;
        Some(Header { dtype, shape, fortran, len: 0 })
    }

    /// Element type and byte count of the data, or a message if unsupported/too large.
    fn layout(&self) -> Result<(DType, bool, usize), String> {
        let (dt, big) = self.dtype.clone().map_err(|d| format!("unsupported dtype {d} (supported: {DTYPE_NAMES})"))?;
        let bytes = tinyq_ir::size::tensor_numel(&self.shape, dt.size())? * dt.size();
        Ok((dt, big, bytes))
    }

    fn into_array(self, bytes: &[u8]) -> Result<NdArray, String> {
        let (dt, big, _) = self.layout()?;
        let data = if self.fortran && self.shape.len() > 1 {
            dt.decode(&fortran_to_c(bytes, &self.shape, dt.size()), big)
        } else {
            dt.decode(bytes, big)
        };
        Ok(NdArray { shape: self.shape, data })
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => "truncated .npy header".to_string(),
        _ => format!("cannot read .npy header: {e}"),
    })
}

/// The text after `'key':` in a Python dict literal, left-trimmed.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("'{key}'")).or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = text[at + key.len() + 2..].trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

/// Maps a numpy type string such as `<f4` or `|u1` to a dtype and "is big-endian".
fn parse_descr(d: &str) -> Option<(DType, bool)> {
    let (big, code) = match d.chars().next()? {
        '<' | '=' | '|' => (false, &d[1..]),
        '>' => (true, &d[1..]),
        _ => (false, d),
    };
    DType::from_npy_code(code).map(|dt| (dt, big))
}

/// Reorders Fortran-order element bytes into C order.
fn fortran_to_c(bytes: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let mut strides = vec![size; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(bytes.len());
    for _ in 0..bytes.len() / size {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&bytes[off..off + size]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Reads a whole `.npy` file.
pub(crate) fn read_npy(path: &Path) -> Result<NdArray, DataError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut r = &bytes[..];
    let header = Header::read(&mut r).map_err(|m| format_err(path, m))?;
    let (_, _, n) = header.layout().map_err(|m| format_err(path, m))?;
    if r.len() != n {
        return Err(format_err(path, size_mismatch(n, r.len())));
    }
    header.into_array(r).map_err(|m| format_err(path, m))
}

fn size_mismatch(expected: usize, got: usize) -> String {
    if got < expected {
        format!("truncated: header declares {expected} data bytes but only {got} are present")
    } else {
        format!("{} unexpected bytes after the {expected} data bytes", got - expected)
    }
}

/// An open `.npz` archive with the zip index of each loadable array.
/// The array an `.npz` entry holds: `x.npy` → `x` (numpy's names; other entries are no arrays).
fn array_name(entry: &str) -> Option<String> {
    let entry = entry.split('\0').next().unwrap_or(entry);
    entry.strip_suffix(".npy").map(str::to_string)
}

pub(crate) struct NpzSource {
    zip: Mutex<ZipArchive<BufReader<File>>>,
    entries: HashMap<String, usize>,
    unsupported: HashMap<String, String>,
    shapes: HashMap<String, Vec<usize>>,
}

impl NpzSource {
    /// Opens the archive and reads every entry's header; returns the loadable keys in
    /// archive order.
    pub(crate) fn open(path: &Path) -> Result<(NpzSource, Vec<String>), DataError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut zip = ZipArchive::new(BufReader::new(file))
            .map_err(|e| format_err(path, format!("not a valid .npz (zip) archive: {e}")))?;
        let (mut keys, mut entries, mut unsupported) = (Vec::new(), HashMap::new(), HashMap::new());
        let mut shapes = HashMap::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| format_err(path, format!("corrupt zip entry #{i}: {e}")))?;
            let Some(key) = array_name(entry.name()) else {
                continue;
            };
            let header = Header::read(&mut entry).map_err(|m| format_err(path, format!("array \"{key}\": {m}")))?;
            match header.layout() {
                Err(m) => _ = unsupported.insert(key, m),
                Ok(_) if entries.contains_key(&key) => {}
                Ok(_) => {
                    keys.push(key.clone());
                    shapes.insert(key.clone(), header.shape);
                    entries.insert(key, i);
                }
            }
        }
        Ok((NpzSource { zip: Mutex::new(zip), entries, unsupported, shapes }, keys))
    }

    /// The shape array `key`'s header declares, known without inflating its data.
    pub(crate) fn shape(&self, key: &str) -> Option<&[usize]> {
        self.shapes.get(key).map(Vec::as_slice)
    }

    /// Decodes array `key`; `Ok(None)` if the archive has no such array.
    pub(crate) fn read(&self, path: &Path, key: &str) -> Result<Option<NdArray>, DataError> {
        let err = |m: String| format_err(path, format!("array \"{key}\": {m}"));
        if let Some(m) = self.unsupported.get(key) {
            return Err(err(m.clone()));
        }
        let Some(&i) = self.entries.get(key) else {
            return Ok(None);
        };
        let mut zip = self.zip.lock().unwrap_or_else(|e| e.into_inner());
        let mut entry = zip.by_index(i).map_err(|e| err(format!("corrupt zip entry: {e}")))?;
        let header = Header::read(&mut entry).map_err(err)?;
        let (_, _, n) = header.layout().map_err(err)?;
        // The archive's own record of the entry's size is checked before anything is inflated,
        // so an entry that claims more (or less) data than its header promises costs nothing.
        let stored = entry.size().saturating_sub(header.len);
        if stored != n as u64 {
            return Err(err(size_mismatch(n, usize::try_from(stored).unwrap_or(usize::MAX))));
        }
        let mut data = Vec::new();
        let corrupt = |e: io::Error| err(format!("corrupt compressed data: {e}"));
        (&mut entry).take(n as u64).read_to_end(&mut data).map_err(corrupt)?;
        let extra = entry.read(&mut [0u8; 64]).map_err(corrupt)?;
        if data.len() != n || extra > 0 {
            return Err(err(size_mismatch(n, data.len() + extra)));
        }
        header.into_array(&data).map(Some).map_err(err)
    }
}

/// A complete `.npy` file (format version 1.0, or 2.0 for huge headers) for `a`.
fn npy_bytes(a: &NdArray) -> Vec<u8> {
    let dt = a.data.dtype();
    let descr = format!("{}{}", if dt.size() == 1 { '|' } else { '<' }, dt.npy_code());
    let dims: Vec<String> = a.shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let v1 = dict.len() < 65_000;
    let prefix = if v1 { 10 } else { 12 };
    dict.extend(std::iter::repeat_n(' ', 63 - (prefix + dict.len()) % 64));
    dict.push('\n');
    let mut out = MAGIC.to_vec();
    match v1 {
        true => out.extend([1, 0].into_iter().chain((dict.len() as u16).to_le_bytes())),
        false => out.extend([2, 0].into_iter().chain((dict.len() as u32).to_le_bytes())),
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(&a.data.to_le_bytes());
    out
}

/// Writes `arrays` as a deflate-compressed `.npz` (readable by `numpy.load`).
///
/// The archive is written to a temporary file in the destination directory and
/// renamed over `path` only once complete, so `path` is either left untouched or
/// holds the whole new archive. Fails if an array's shape does not match its
/// element count or a name repeats.
pub fn write_npz(path: &Path, arrays: &[(&str, &NdArray)]) -> Result<(), DataError> {
    for (i, (name, a)) in arrays.iter().enumerate() {
        let expected = a.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(a.len()) {
            let msg = format!("array \"{name}\": shape {:?} does not match its {} elements", a.shape, a.len());
            return Err(format_err(path, msg));
        }
        if arrays[..i].iter().any(|(n, _)| n == name) {
            return Err(format_err(path, format!("array \"{name}\" given twice")));
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format_err(path, format!("the folder {} does not exist", dir.display())));
    }
    let file_name = path.file_name().ok_or_else(|| format_err(path, "not a file path"))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{}.{}-{nanos}.tmp", file_name.to_string_lossy(), std::process::id()));
    let result = write_zip(&tmp, arrays).and_then(|()| std::fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_zip(tmp: &Path, arrays: &[(&str, &NdArray)]) -> Result<(), DataError> {
    let file = File::options().write(true).create_new(true).open(tmp).map_err(io_err(tmp))?;
    let zip_err = |e: zip::result::ZipError| DataError::Io { path: tmp.to_path_buf(), source: e.into() };
    let mut zip = ZipWriter::new(BufWriter::new(file));
    for (name, a) in arrays {
        let bytes = npy_bytes(a);
        let opts = FileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .large_file(bytes.len() >= u32::MAX as usize);
        zip.start_file(format!("{name}.npy"), opts).map_err(zip_err)?;
        zip.write_all(&bytes).map_err(io_err(tmp))?;
    }
    let file = zip.finish().map_err(zip_err)?.into_inner().map_err(|e| io_err(tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArrayData;

    #[test]
    fn parses_numpy_headers() {
        let h = Header::parse("{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3L), }").unwrap();
        assert_eq!(h.dtype, Ok((DType::I16, true)));
        assert_eq!(h.shape, vec![2, 3]);
        assert!(h.fortran);
        let h = Header::parse("{'descr': '<U25', 'fortran_order': False, 'shape': (), }").unwrap();
        assert_eq!(h.dtype, Err("<U25".into()));
        assert!(h.shape.is_empty());
        let h = Header::parse("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (4,), }").unwrap();
        assert!(h.layout().unwrap_err().contains("structured"));
        assert!(Header::parse("{'descr': '<f4', 'shape': (4,), }").is_none());
        let huge = Header::parse("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }");
        assert!(huge.unwrap().layout().unwrap_err().contains("more elements than fit"));
    }

    #[test]
    fn fortran_order_is_transposed() {
        // numpy: np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)) stores 0 3 1 4 2 5
        assert_eq!(fortran_to_c(&[0, 3, 1, 4, 2, 5], &[2, 3], 1), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn written_header_is_aligned_and_parses_back() {
        let a = NdArray { shape: vec![2, 1], data: ArrayData::I64(vec![-1, 7]) };
        let bytes = npy_bytes(&a);
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let mut r = &bytes[..];
        let h = Header::read(&mut r).unwrap();
        assert_eq!(h.into_array(r).unwrap(), a);
    }
}
