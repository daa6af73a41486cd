//! A GGUF header reader with every size read from the file checked before it is used.
//!
//! Format (ggml `docs/gguf.md`): the bytes `GGUF`, a `u32` version (1, 2 or 3), the tensor
//! count and the metadata count (`u32` in version 1, `u64` after), the metadata key/value
//! pairs (key string, `u32` value type, value), the tensor infos (name string, `u32` number of
//! dimensions, the dimensions innermost first, `u32` ggml type, `u64` offset), then the tensor
//! data, starting at the next multiple of `general.alignment` (default 32). Strings are a
//! length (`u32` in version 1, `u64` after) and bytes.
//!
//! candle's reader (`candle_core::quantized::gguf_file::Content::read`) panics on some inputs
//! (an alignment of 0 divides by zero; tensor dimensions whose product overflows reach
//! `vec![0; n]` as "capacity overflow"). This reader never panics: counts and lengths are
//! bounded by the bytes left in the file, the dimension product, byte size, alignment and data
//! extent use checked arithmetic, and each tensor's data must lie inside the file. The tensors
//! are then read through candle's `TensorInfo::read`, whose arithmetic the checks here bound.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::gguf_file::{TensorInfo, Value};
use candle_core::quantized::GgmlDType;

/// At most this many dimensions per tensor (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Arrays nested deeper than this are refused (bounds the reader's recursion).
pub const MAX_VALUE_DEPTH: usize = 16;
/// Default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Longest string accepted (a chat template is a few KiB; 16 MiB leaves room).
pub const MAX_STRING_BYTES: u64 = 1 << 24;
/// Most elements in one metadata array (a vocabulary has a few 100 000 tokens).
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 24;

/// One tensor's entry in the header, checked against the file.
#[derive(Debug, Clone)]
pub struct GgufTensor {
    /// Tensor name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, outermost first (the reverse of the file's order, as candle and HF use).
    pub dims: Vec<usize>,
    /// The ggml type code as stored.
    pub type_code: u32,
    /// The type, when it is one candle can read.
    pub dtype: Option<GgmlDType>,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Number of elements (product of `dims`).
    pub elements: u64,
    /// Bytes of data (known for the types in `dtype`).
    pub bytes: Option<u64>,
}

impl GgufTensor {
    /// candle's `TensorInfo` for reading this tensor; `None` for a type candle cannot read.
    pub fn candle_info(&self) -> Option<TensorInfo> {
        Some(TensorInfo {
            ggml_dtype: self.dtype?,
            shape: candle_core::Shape::from(self.dims.clone()),
            offset: self.offset,
        })
    }
}

/// A parsed, checked GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// Format version (1, 2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub metadata: HashMap<String, Value>,
    /// Tensor infos, in file order.
    pub tensors: Vec<GgufTensor>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Size of the file.
    pub file_size: u64,
}

impl GgufHeader {
    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// A header problem: what is wrong, and where (a metadata key or tensor name when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    /// The metadata key, tensor name or header field concerned.
    pub at: String,
    /// Whether `at` names a tensor (else a metadata key or a header field).
    pub tensor: bool,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.tensor { "tensor " } else { "" };
        write!(f, "{what}`{}`: {}", self.at, self.reason)
    }
}

fn herr(at: impl Into<String>, reason: impl Into<String>) -> HeaderError {
    HeaderError {
        at: at.into(),
        tensor: false,
        reason: reason.into(),
    }
}

/// A problem with the tensor named `name`.
fn terr(name: impl Into<String>, reason: impl Into<String>) -> HeaderError {
    HeaderError {
        tensor: true,
        ..herr(name, reason)
    }
}

/// The ggml type codes candle reads (ggml `enum ggml_type`).
pub fn ggml_dtype(code: u32) -> Option<GgmlDType> {
    Some(match code {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

struct Reader<'a, R> {
    r: &'a mut R,
    pos: u64,
    size: u64,
    wide: bool,
}

impl<R: Read> Reader<'_, R> {
    fn left(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: u64, at: &str) -> Result<Vec<u8>, HeaderError> {
        if n > self.left() {
            return Err(herr(
                at,
                format!(
                    "needs {n} bytes at offset {}, only {} left in the file",
                    self.pos,
                    self.left()
                ),
            ));
        }
        let len = usize::try_from(n).map_err(|_| herr(at, format!("{n} bytes is too large")))?;
        let mut buf = vec![0u8; len];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| herr(at, format!("read failed at offset {}: {e}", self.pos)))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, at: &str) -> Result<[u8; N], HeaderError> {
        let v = self.bytes(N as u64, at)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }

    fn u8(&mut self, at: &str) -> Result<u8, HeaderError> {
        Ok(self.array::<1>(at)?[0])
    }
    fn u16(&mut self, at: &str) -> Result<u16, HeaderError> {
        Ok(u16::from_le_bytes(self.array(at)?))
    }
    fn u32(&mut self, at: &str) -> Result<u32, HeaderError> {
        Ok(u32::from_le_bytes(self.array(at)?))
    }
    fn u64(&mut self, at: &str) -> Result<u64, HeaderError> {
        Ok(u64::from_le_bytes(self.array(at)?))
    }

    /// A count or length: `u32` in version 1, `u64` after.
    fn len(&mut self, at: &str) -> Result<u64, HeaderError> {
        if self.wide {
            self.u64(at)
        } else {
            self.u32(at).map(u64::from)
        }
    }

    fn string(&mut self, at: &str) -> Result<String, HeaderError> {
        let n = self.len(at)?;
        if n > MAX_STRING_BYTES {
            return Err(herr(
                at,
                format!("a string of {n} bytes (at most {MAX_STRING_BYTES})"),
            ));
        }
        let mut v = self.bytes(n, at)?;
        // Strings are not NUL-terminated, but some writers add NULs; drop them.
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Smallest encoding of a value of type `t` (bounds array lengths before allocating).
    fn min_size(&self, t: u32) -> u64 {
        let len = if self.wide { 8 } else { 4 };
        match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => len,
            9 => 4 + len,
            _ => 1,
        }
    }

    fn value(&mut self, t: u32, at: &str, depth: usize) -> Result<Value, HeaderError> {
        Ok(match t {
            0 => Value::U8(self.u8(at)?),
            1 => Value::I8(self.u8(at)? as i8),
            2 => Value::U16(self.u16(at)?),
            3 => Value::I16(self.u16(at)? as i16),
            4 => Value::U32(self.u32(at)?),
            5 => Value::I32(self.u32(at)? as i32),
            6 => Value::F32(f32::from_le_bytes(self.array(at)?)),
            7 => match self.u8(at)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(herr(at, format!("bool byte {b} is neither 0 nor 1"))),
            },
            8 => Value::String(self.string(at)?),
            9 => {
                if depth >= MAX_VALUE_DEPTH {
                    return Err(herr(
                        at,
                        format!("arrays nested more than {MAX_VALUE_DEPTH} deep"),
                    ));
                }
                let et = self.u32(at)?;
                let n = self.len(at)?;
                if n > MAX_ARRAY_ELEMENTS {
                    return Err(herr(
                        at,
                        format!("an array of {n} elements (at most {MAX_ARRAY_ELEMENTS})"),
                    ));
                }
                let need = n.checked_mul(self.min_size(et));
                if need.is_none_or(|b| b > self.left()) {
                    return Err(herr(
                        at,
                        format!(
                            "array of {n} elements cannot fit in the {} bytes left",
                            self.left()
                        ),
                    ));
                }
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.value(et, at, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(at)?),
            11 => Value::I64(self.u64(at)? as i64),
            12 => Value::F64(f64::from_le_bytes(self.array(at)?)),
            other => return Err(herr(at, format!("unknown value type {other}"))),
        })
    }
}

/// Reads and checks the header of a GGUF stream; `r` is left past the tensor infos.
pub fn read_header<R: Read + Seek>(r: &mut R) -> Result<GgufHeader, HeaderError> {
    let size = r
        .seek(SeekFrom::End(0))
        .and_then(|s| r.seek(SeekFrom::Start(0)).map(|_| s))
        .map_err(|e| herr("file", format!("cannot seek: {e}")))?;
    let mut rd = Reader {
        r,
        pos: 0,
        size,
        wide: true,
    };
    if &rd.array::<4>("magic")? != b"GGUF" {
        return Err(herr(
            "magic",
            "not a GGUF file (does not start with `GGUF`)",
        ));
    }
    let version = rd.u32("version")?;
    if !(1..=3).contains(&version) {
        return Err(herr(
            "version",
            format!("version {version} is not supported (1, 2, 3 are)"),
        ));
    }
    rd.wide = version >= 2;
    let n_tensors = rd.len("tensor_count")?;
    let n_kv = rd.len("metadata_kv_count")?;
    // Each metadata entry takes at least a key length, a type and one byte; each tensor info a
    // name length, a dimension count, a type and an offset.
    let lenw = if rd.wide { 8u64 } else { 4 };
    let need = n_kv.checked_mul(lenw + 5).and_then(|a| {
        n_tensors
            .checked_mul(lenw + 16)
            .and_then(|b| a.checked_add(b))
    });
    if need.is_none_or(|b| b > rd.left()) {
        return Err(herr(
            "header",
            format!(
                "{n_tensors} tensors and {n_kv} metadata entries cannot fit in the {} bytes left",
                rd.left()
            ),
        ));
    }
    let mut metadata = HashMap::new();
    for _ in 0..n_kv {
        let key = rd.string("metadata key")?;
        let t = rd.u32(&key)?;
        let v = rd.value(t, &key, 0)?;
        if metadata.insert(key.clone(), v).is_some() {
            return Err(herr(key, "duplicate metadata key"));
        }
    }
    let mut tensors: Vec<GgufTensor> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for _ in 0..n_tensors {
        let name = rd.string("tensor name")?;
        if !names.insert(name.clone()) {
            return Err(terr(name, "duplicate tensor name"));
        }
        let n_dims = rd.u32(&name).map_err(|e| terr(&name, e.reason))?;
        if n_dims > MAX_DIMS {
            return Err(terr(
                name,
                format!("{n_dims} dimensions (at most {MAX_DIMS})"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = rd.len(&name).map_err(|e| terr(&name, e.reason))?;
            elements = elements
                .checked_mul(d)
                .ok_or_else(|| terr(&name, "the product of the dimensions overflows 64 bits"))?;
            dims.push(
                usize::try_from(d)
                    .map_err(|_| terr(&name, format!("dimension {d} does not fit in memory")))?,
            );
        }
        dims.reverse();
        usize::try_from(elements)
            .map_err(|_| terr(&name, format!("{elements} elements do not fit in memory")))?;
        let type_code = rd.u32(&name).map_err(|e| terr(&name, e.reason))?;
        let offset = rd.u64(&name).map_err(|e| terr(&name, e.reason))?;
        let dtype = ggml_dtype(type_code);
        let bytes = match dtype {
            None => None,
            Some(dt) => {
                let (block, size) = (dt.block_size() as u64, dt.type_size() as u64);
                if elements % block != 0 {
                    return Err(terr(
                        name,
                        format!("{elements} elements are not a multiple of the block size {block} of {dt:?}"),
                    ));
                }
                Some(
                    (elements / block)
                        .checked_mul(size)
                        .ok_or_else(|| terr(&name, "the byte size overflows 64 bits"))?,
                )
            }
        };
        tensors.push(GgufTensor {
            name,
            dims,
            type_code,
            dtype,
            offset,
            elements,
            bytes,
        });
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => v.to_u64().ok().filter(|&a| a > 0).ok_or_else(|| {
            herr(
                "general.alignment",
                format!("{v:?} is not a positive integer"),
            )
        })?,
    };
    let data_offset = rd
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| herr("general.alignment", "the data offset overflows 64 bits"))?;
    for t in &tensors {
        let Some(bytes) = t.bytes else { continue };
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(bytes));
        if end.is_none_or(|e| e > size) {
            return Err(terr(
                &t.name,
                format!(
                    "{bytes} bytes of data at offset {} (data section at {data_offset}) lie outside the {size}-byte file",
                    t.offset
                ),
            ));
        }
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        data_offset,
        file_size: size,
    })
}

/// [`read_header`] on bytes in memory.
pub fn parse_header(bytes: &[u8]) -> Result<GgufHeader, HeaderError> {
    read_header(&mut std::io::Cursor::new(bytes))
}

/// Writes GGUF headers (and zero-filled data) for tests and fuzzing: any field can be set to
/// any value, valid or not.
pub mod builder {
    /// A metadata value as written.
    #[derive(Debug, Clone)]
    pub enum Meta {
        /// Type 4.
        U32(u32),
        /// Type 5.
        I32(i32),
        /// Type 6.
        F32(f32),
        /// Type 8.
        Str(String),
        /// Type 9 of strings.
        Strs(Vec<String>),
        /// Any type code followed by raw bytes.
        Raw(u32, Vec<u8>),
    }

    /// A tensor info as written.
    #[derive(Debug, Clone)]
    pub struct TensorSpec {
        /// Name.
        pub name: String,
        /// Dimensions, innermost first (file order).
        pub dims: Vec<u64>,
        /// ggml type code.
        pub type_code: u32,
        /// Offset in the data section.
        pub offset: u64,
    }

    /// A whole file.
    #[derive(Debug, Clone)]
    pub struct GgufSpec {
        /// Version field.
        pub version: u32,
        /// Metadata.
        pub metadata: Vec<(String, Meta)>,
        /// Tensor infos.
        pub tensors: Vec<TensorSpec>,
        /// Zero bytes appended after the header (the data section, unaligned).
        pub data_bytes: usize,
    }

    fn put_len(out: &mut Vec<u8>, v1: bool, n: u64) {
        if v1 {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn put_str(out: &mut Vec<u8>, v1: bool, s: &str) {
        put_len(out, v1, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    impl GgufSpec {
        /// The file's bytes.
        pub fn bytes(&self) -> Vec<u8> {
            let v1 = self.version == 1;
            let mut out = b"GGUF".to_vec();
            out.extend_from_slice(&self.version.to_le_bytes());
            put_len(&mut out, v1, self.tensors.len() as u64);
            put_len(&mut out, v1, self.metadata.len() as u64);
            for (k, v) in &self.metadata {
                put_str(&mut out, v1, k);
                match v {
                    Meta::U32(x) => {
                        out.extend_from_slice(&4u32.to_le_bytes());
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                    Meta::I32(x) => {
                        out.extend_from_slice(&5u32.to_le_bytes());
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                    Meta::F32(x) => {
                        out.extend_from_slice(&6u32.to_le_bytes());
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                    Meta::Str(s) => {
                        out.extend_from_slice(&8u32.to_le_bytes());
                        put_str(&mut out, v1, s);
                    }
                    Meta::Strs(ss) => {
                        out.extend_from_slice(&9u32.to_le_bytes());
                        out.extend_from_slice(&8u32.to_le_bytes());
                        put_len(&mut out, v1, ss.len() as u64);
                        for s in ss {
                            put_str(&mut out, v1, s);
                        }
                    }
                    Meta::Raw(t, b) => {
                        out.extend_from_slice(&t.to_le_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
            for t in &self.tensors {
                put_str(&mut out, v1, &t.name);
                out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
                for &d in &t.dims {
                    put_len(&mut out, v1, d);
                }
                out.extend_from_slice(&t.type_code.to_le_bytes());
                out.extend_from_slice(&t.offset.to_le_bytes());
            }
            out.resize(out.len() + self.data_bytes, 0);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::builder::*;
    use super::*;

    fn file(tensors: Vec<TensorSpec>, metadata: Vec<(String, Meta)>, data: usize) -> Vec<u8> {
        GgufSpec {
            version: 3,
            metadata,
            tensors,
            data_bytes: data,
        }
        .bytes()
    }

    fn t(name: &str, dims: &[u64], type_code: u32, offset: u64) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            type_code,
            offset,
        }
    }

    #[test]
    fn valid_header_round_trips() {
        let meta = vec![
            (
                "general.architecture".to_string(),
                Meta::Str("llama".into()),
            ),
            (
                "x.list".to_string(),
                Meta::Strs(vec!["a".into(), "b".into()]),
            ),
        ];
        // 4 × 8 f32 = 128 bytes; 64 Q4_0 elements = 2 blocks of 18 bytes = 36 bytes
        let b = file(
            vec![t("a", &[4, 8], 0, 0), t("b", &[64], 2, 128)],
            meta,
            32 + 128 + 36,
        );
        let h = parse_header(&b).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.tensors[0].dims, vec![8, 4]);
        assert_eq!(h.tensors[0].bytes, Some(128));
        assert_eq!(h.tensors[1].bytes, Some(36));
        assert_eq!(h.data_offset % 32, 0);
        assert_eq!(
            h.metadata["general.architecture"].to_string().unwrap(),
            "llama"
        );
    }

    /// Dimensions whose product overflows, byte sizes past the file, an alignment of 0,
    /// absurd counts: errors naming the tensor or key, never a panic or an allocation.
    #[test]
    fn hostile_sizes_are_errors() {
        let big = 1u64 << 32;
        let e = parse_header(&file(vec![t("w", &[big, big, big], 0, 0)], vec![], 64)).unwrap_err();
        assert_eq!(e.at, "w");
        assert!(e.reason.contains("overflows"), "{e}");
        let e = parse_header(&file(vec![t("w", &[big, big], 0, 0)], vec![], 64)).unwrap_err();
        assert!(
            e.reason.contains("overflows") || e.reason.contains("outside"),
            "{e}"
        );
        let e = parse_header(&file(vec![t("w", &[1 << 20], 0, 0)], vec![], 64)).unwrap_err();
        assert!(e.reason.contains("outside"), "{e}");
        let e = parse_header(&file(vec![t("w", &[4], 0, u64::MAX)], vec![], 64)).unwrap_err();
        assert!(e.reason.contains("outside"), "{e}");
        let e = parse_header(&file(
            vec![],
            vec![("general.alignment".into(), Meta::U32(0))],
            0,
        ))
        .unwrap_err();
        assert_eq!(e.at, "general.alignment");
        let e = parse_header(&file(vec![t("w", &[1, 1, 1, 1, 1], 0, 0)], vec![], 8)).unwrap_err();
        assert!(e.reason.contains("dimensions"), "{e}");
        let e = parse_header(&file(vec![t("w", &[33], 2, 0)], vec![], 64)).unwrap_err();
        assert!(e.reason.contains("block size"), "{e}");
        // a header claiming 2^60 tensors in a small file
        let mut b = file(vec![], vec![], 0);
        b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(parse_header(&b).unwrap_err().reason.contains("cannot fit"));
        // a string or array longer than the file
        let e = parse_header(&file(
            vec![],
            vec![("k".into(), Meta::Raw(8, (u64::MAX).to_le_bytes().to_vec()))],
            0,
        ))
        .unwrap_err();
        assert_eq!(e.at, "k");
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&(u64::MAX / 4).to_le_bytes());
        let e = parse_header(&file(vec![], vec![("k".into(), Meta::Raw(9, arr))], 0)).unwrap_err();
        assert!(e.reason.contains("elements"), "{e}");
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&1000u64.to_le_bytes());
        let e = parse_header(&file(vec![], vec![("k".into(), Meta::Raw(9, arr))], 0)).unwrap_err();
        assert!(e.reason.contains("cannot fit"), "{e}");
        // arrays nested past the depth limit
        let mut nested = Vec::new();
        for _ in 0..40 {
            nested.extend_from_slice(&9u32.to_le_bytes());
            nested.extend_from_slice(&1u64.to_le_bytes());
        }
        nested.extend_from_slice(&0u32.to_le_bytes());
        nested.extend_from_slice(&0u64.to_le_bytes());
        let e =
            parse_header(&file(vec![], vec![("k".into(), Meta::Raw(9, nested))], 0)).unwrap_err();
        assert!(e.reason.contains("nested"), "{e}");
        // truncation anywhere is an error
        let b = file(
            vec![t("a", &[4, 8], 0, 0)],
            vec![("k".into(), Meta::U32(1))],
            200,
        );
        for cut in 0..b.len() - 200 {
            assert!(parse_header(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn version_one_uses_narrow_lengths() {
        let b = GgufSpec {
            version: 1,
            metadata: vec![("k".into(), Meta::Str("v".into()))],
            tensors: vec![t("a", &[2, 2], 0, 0)],
            data_bytes: 64,
        }
        .bytes();
        let h = parse_header(&b).unwrap();
        assert_eq!(h.tensors[0].dims, vec![2, 2]);
        assert_eq!(h.metadata["k"].to_string().unwrap(), "v");
    }
}
