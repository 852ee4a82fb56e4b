//! Vindexes: functions from a column value to a keyspace ID, compatible with Vitess so a Vitess
//! user's rows land on the same shards.

use std::collections::BTreeMap;
use std::fmt;

use des::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::Des;
use md5::{Digest, Md5};
use xxhash_rust::xxh64::xxh64;

/// The bytes a row maps to; shards own contiguous ranges of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyspaceId(pub Vec<u8>);

impl fmt::Display for KeyspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A literal value as it appears in SQL, before a vindex interprets it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    /// An integer literal that fits `i64`.
    Int(i64),
    /// An integer literal above `i64::MAX`.
    UInt(u64),
    /// A string literal (or any other literal kept as its text: decimals, floats).
    Text(Vec<u8>),
    /// A numeric literal that is not an integer, e.g. `1.5` or `1e3`, kept as written.
    Decimal(String),
    /// The value of bind variable `?N` (N = index + 1) of a cached plan, replaced by the value
    /// before the plan runs; vindexes refuse it.
    Param(usize),
    /// One value per column of a multi-column vindex, in its column order.
    Tuple(Vec<KeyValue>),
}

impl KeyValue {
    /// A bind variable, or a tuple holding one: no vindex can map it before it is bound.
    pub fn waits_for_binding(&self) -> bool {
        match self {
            KeyValue::Param(_) => true,
            KeyValue::Tuple(values) => values.iter().any(KeyValue::waits_for_binding),
            _ => false,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::UInt(v) => write!(f, "{v}"),
            KeyValue::Text(b) => write!(f, "'{}'", String::from_utf8_lossy(b)),
            KeyValue::Decimal(s) => f.write_str(s),
            KeyValue::Param(i) => write!(f, "?{}", i + 1),
            KeyValue::Tuple(values) => {
                let parts: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                write!(f, "({})", parts.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VindexKind {
    /// DES-ECB with an all-zero key over the value as a big-endian u64.
    Hash,
    /// XXH64 (seed 0) over the value's text, written little-endian.
    Xxhash,
    /// The integer itself as 8 big-endian bytes.
    Numeric,
    /// The value's bytes as they are.
    Binary,
    /// xxhash of the text's loose collation key ([`crate::loose_key`]), trailing spaces trimmed.
    UnicodeLooseXxhash,
    /// MD5 of the text's loose collation key, trailing spaces trimmed.
    UnicodeLooseMd5,
    /// MD5 of the value's bytes (16 bytes).
    BinaryMd5,
    /// The integer's 64 bits in reverse order, big-endian: consecutive ids spread out.
    ReverseBits,
    /// Every value to keyspace ID `00`: the first shard.
    Null,
    /// The integer, replaced by its entry in a static map when it has one, as 8 big-endian bytes.
    NumericStaticMap,
    /// Several columns, each hashed by its own vindex, the first bytes of each in turn
    /// ([`MultiColumn::Hashed`]).
    Multicol,
    /// Two columns: the region of the second (from a map) in 1 or 2 bytes, then the `hash` of
    /// the first ([`MultiColumn::Region`]).
    RegionJson,
}

/// How a multi-column vindex combines its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiColumn {
    /// `multicol`: each column's vindex and how many bytes of its keyspace ID it gives.
    Hashed(Vec<(VindexKind, usize)>),
    /// `region_json`: the region map (second column's text → region) and the region's bytes.
    Region {
        bytes: usize,
        map: BTreeMap<String, u64>,
    },
}

impl MultiColumn {
    /// `multicol`'s params: `column_count`, and optionally `column_vindex` (default `hash`) and
    /// `column_bytes` (the rest of the 8 bytes shared out, the earlier columns taking more), as
    /// Vitess reads them.
    pub fn hashed(
        count: &str,
        vindexes: Option<&str>,
        bytes: Option<&str>,
    ) -> Result<Self, String> {
        let count: usize = count
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=8).contains(n))
            .ok_or("column_count must be between 1 and 8")?;
        let list = |s: Option<&str>| -> Vec<String> {
            s.map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
                .unwrap_or_default()
        };
        let (names, sizes) = (list(vindexes), list(bytes));
        if names.len() > count || sizes.len() > count {
            return Err("more column_vindex or column_bytes entries than column_count".into());
        }
        let mut kinds = Vec::with_capacity(count);
        for i in 0..count {
            let name = names.get(i).map(String::as_str).filter(|n| !n.is_empty());
            let kind = VindexKind::parse(name.unwrap_or("hash"))
                .filter(|k| {
                    !matches!(
                        k,
                        VindexKind::Null
                            | VindexKind::NumericStaticMap
                            | VindexKind::Multicol
                            | VindexKind::RegionJson
                    )
                })
                .ok_or_else(|| {
                    format!(
                        "column_vindex {:?} is not a hashing vindex",
                        name.unwrap_or("hash")
                    )
                })?;
            kinds.push(kind);
        }
        let mut given: Vec<Option<usize>> = vec![None; count];
        for (i, s) in sizes.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            given[i] = Some(
                s.parse()
                    .map_err(|_| format!("column_bytes entry {s:?} is not a number"))?,
            );
        }
        let used: usize = given.iter().flatten().sum();
        let mut pending = given.iter().filter(|g| g.is_none()).count();
        let mut remaining = 8usize
            .checked_sub(used)
            .filter(|r| *r >= pending)
            .ok_or("column_bytes exceed the keyspace ID's 8 bytes")?;
        let mut out = Vec::with_capacity(count);
        for (kind, g) in kinds.into_iter().zip(given) {
            let n = match g {
                Some(n) => n,
                None => {
                    let n = remaining.div_ceil(pending);
                    remaining -= n;
                    pending -= 1;
                    n
                }
            };
            out.push((kind, n));
        }
        Ok(MultiColumn::Hashed(out))
    }

    /// `multicol`'s keyspace-ID prefix for values of its first columns, in order: the IDs of
    /// every row with those values start with it (Vitess routes such a query to a key range).
    pub fn prefix(&self, values: &[KeyValue]) -> Result<Vec<u8>, VindexError> {
        let MultiColumn::Hashed(parts) = self else {
            return Err(VindexError::Columns {
                vindex: "region_json",
                want: 2,
                got: values.len(),
            });
        };
        // Each column starts where the bytes before it end, zero-padded when the previous one
        // gave fewer.
        let mut id = Vec::with_capacity(8);
        let mut start = 0;
        for ((kind, bytes), v) in parts.iter().zip(values) {
            id.resize(id.len().max(start), 0);
            id.extend(kind.map(v)?.0.iter().take(*bytes));
            start += bytes;
        }
        Ok(id)
    }

    fn map(&self, name: &'static str, values: &[KeyValue]) -> Result<KeyspaceId, VindexError> {
        let want = match self {
            MultiColumn::Hashed(parts) => parts.len(),
            MultiColumn::Region { .. } => 2,
        };
        if values.len() != want {
            return Err(VindexError::Columns {
                vindex: name,
                want,
                got: values.len(),
            });
        }
        let mut id = Vec::with_capacity(8);
        match self {
            MultiColumn::Hashed(_) => id = self.prefix(values)?,
            MultiColumn::Region { bytes, map } => {
                let region_of = match &values[1] {
                    KeyValue::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => other.to_string(),
                };
                let region = map.get(&region_of).ok_or_else(|| VindexError::NoRegion {
                    value: values[1].to_string(),
                })?;
                let region = (*region as u16).to_be_bytes();
                id.extend(&region[2 - bytes..]);
                id.extend(VindexKind::Hash.map(&values[0])?.0);
            }
        }
        Ok(KeyspaceId(id))
    }
}

/// The vindex types a VSchema may name, for error messages.
pub const SUPPORTED: &str = "hash, xxhash, numeric, binary, binary_md5, reverse_bits, null, \
     numeric_static_map, unicode_loose_md5, unicode_loose_xxhash, multicol, region_json, lookup, lookup_unique, lookup_hash, \
     lookup_hash_unique, consistent_lookup, consistent_lookup_unique";

impl VindexKind {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "hash" => VindexKind::Hash,
            "xxhash" => VindexKind::Xxhash,
            "numeric" => VindexKind::Numeric,
            "binary" => VindexKind::Binary,
            "unicode_loose_xxhash" => VindexKind::UnicodeLooseXxhash,
            "unicode_loose_md5" => VindexKind::UnicodeLooseMd5,
            "binary_md5" => VindexKind::BinaryMd5,
            "reverse_bits" => VindexKind::ReverseBits,
            "null" => VindexKind::Null,
            "numeric_static_map" => VindexKind::NumericStaticMap,
            "multicol" => VindexKind::Multicol,
            "region_json" => VindexKind::RegionJson,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            VindexKind::Hash => "hash",
            VindexKind::Xxhash => "xxhash",
            VindexKind::Numeric => "numeric",
            VindexKind::Binary => "binary",
            VindexKind::UnicodeLooseXxhash => "unicode_loose_xxhash",
            VindexKind::UnicodeLooseMd5 => "unicode_loose_md5",
            VindexKind::BinaryMd5 => "binary_md5",
            VindexKind::ReverseBits => "reverse_bits",
            VindexKind::Null => "null",
            VindexKind::NumericStaticMap => "numeric_static_map",
            VindexKind::Multicol => "multicol",
            VindexKind::RegionJson => "region_json",
        }
    }

    /// All the vindexes here map one value to exactly one keyspace ID.
    pub fn is_unique(self) -> bool {
        true
    }
}

/// Why a value has no keyspace ID under a vindex. For reads the planner can fall back to a
/// scatter (always correct); for writes it is an error for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VindexError {
    #[error("vindex {vindex}: value {value} is not an integer")]
    NotAnInteger { vindex: &'static str, value: String },
    #[error(
        "vindex {vindex}: value {value} could compare as a number or as a string depending on the \
         column type; write it as an integer or as canonical text"
    )]
    AmbiguousNumber { vindex: &'static str, value: String },
    #[error("vindex {vindex}: value {value} is not valid UTF-8")]
    NotUtf8 { vindex: &'static str, value: String },
    #[error("bind variable ?{0} has no value")]
    Unbound(usize),
    #[error("vindex {vindex} maps {want} columns, given {got}")]
    Columns {
        vindex: &'static str,
        want: usize,
        got: usize,
    },
    #[error("region_json: {value} is not in the region map")]
    NoRegion { value: String },
}

/// A named vindex of a keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vindex {
    pub name: String,
    pub kind: VindexKind,
    /// `numeric_static_map`'s entries (empty for the other kinds).
    pub static_map: BTreeMap<u64, u64>,
    /// How a multi-column vindex combines its columns (`None` for the one-column kinds).
    pub multi: Option<MultiColumn>,
}

impl Vindex {
    pub fn new(name: &str, kind: VindexKind) -> Self {
        Vindex {
            name: name.to_string(),
            kind,
            static_map: BTreeMap::new(),
            multi: None,
        }
    }

    /// How many columns the vindex maps.
    pub fn column_count(&self) -> usize {
        match &self.multi {
            Some(MultiColumn::Hashed(parts)) => parts.len(),
            Some(MultiColumn::Region { .. }) => 2,
            None => 1,
        }
    }

    pub fn map(&self, value: &KeyValue) -> Result<KeyspaceId, VindexError> {
        match (&self.multi, value) {
            (Some(multi), KeyValue::Tuple(values)) => return multi.map(self.kind.name(), values),
            (Some(_), _) => {
                return Err(VindexError::Columns {
                    vindex: self.kind.name(),
                    want: self.column_count(),
                    got: 1,
                })
            }
            _ => {}
        }
        if self.kind == VindexKind::NumericStaticMap {
            let n = self.kind.as_u64(value)?;
            let n = self.static_map.get(&n).copied().unwrap_or(n);
            return Ok(KeyspaceId(n.to_be_bytes().to_vec()));
        }
        self.kind.map(value)
    }
}

/// A `numeric_static_map`'s JSON object of entries, `{"3": 2, ...}`.
pub fn parse_static_map(json: &str) -> Result<BTreeMap<u64, u64>, String> {
    let entries: BTreeMap<String, u64> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    entries
        .into_iter()
        .map(|(k, v)| {
            k.parse::<u64>()
                .map(|k| (k, v))
                .map_err(|_| format!("key {k:?} is not an unsigned integer"))
        })
        .collect()
}

impl VindexKind {
    pub fn map(self, value: &KeyValue) -> Result<KeyspaceId, VindexError> {
        Ok(KeyspaceId(match self {
            VindexKind::Hash => des_encrypt(self.as_u64(value)?).to_vec(),
            VindexKind::Numeric => self.as_u64(value)?.to_be_bytes().to_vec(),
            VindexKind::Xxhash => xxh64(&self.text_of(value)?, 0).to_le_bytes().to_vec(),
            VindexKind::Binary => self.text_of(value)?,
            VindexKind::UnicodeLooseXxhash => {
                xxh64(&self.loose_key(value)?, 0).to_le_bytes().to_vec()
            }
            VindexKind::UnicodeLooseMd5 => Md5::digest(self.loose_key(value)?).to_vec(),
            VindexKind::BinaryMd5 => Md5::digest(self.text_of(value)?).to_vec(),
            VindexKind::ReverseBits => self.as_u64(value)?.reverse_bits().to_be_bytes().to_vec(),
            VindexKind::Null => vec![0],
            // Without its map (see `Vindex::map`), numeric.
            VindexKind::NumericStaticMap => self.as_u64(value)?.to_be_bytes().to_vec(),
            // Only a `Vindex` knows its columns (see `Vindex::map`).
            VindexKind::Multicol | VindexKind::RegionJson => {
                return Err(VindexError::Columns {
                    vindex: self.name(),
                    want: 2,
                    got: 1,
                })
            }
        }))
    }

    /// The key the unicode_loose vindexes hash: MySQL ignores trailing spaces, and the
    /// collation key case, accents and width.
    fn loose_key(self, value: &KeyValue) -> Result<Vec<u8>, VindexError> {
        let text = self.text_of(value)?;
        let text = std::str::from_utf8(&text).map_err(|_| VindexError::NotUtf8 {
            vindex: self.name(),
            value: value.to_string(),
        })?;
        Ok(crate::loose_key::loose_key(text.trim_end_matches(' ')))
    }

    /// Integer vindexes: a negative value is reinterpreted as u64 (two's complement), as Vitess
    /// does, so that the same value always lands on the same shard. Text must be an integer.
    fn as_u64(self, value: &KeyValue) -> Result<u64, VindexError> {
        match value {
            KeyValue::Int(v) => Ok(*v as u64),
            KeyValue::UInt(v) => Ok(*v),
            KeyValue::Text(t) => {
                let s = std::str::from_utf8(t).ok();
                s.and_then(|s| {
                    s.parse::<u64>()
                        .ok()
                        .or_else(|| s.parse::<i64>().ok().map(|v| v as u64))
                })
                .ok_or_else(|| VindexError::NotAnInteger {
                    vindex: self.name(),
                    value: value.to_string(),
                })
            }
            KeyValue::Decimal(_) => Err(VindexError::NotAnInteger {
                vindex: self.name(),
                value: value.to_string(),
            }),
            KeyValue::Param(i) => Err(VindexError::Unbound(*i + 1)),
            KeyValue::Tuple(values) => Err(VindexError::Columns {
                vindex: self.name(),
                want: 1,
                got: values.len(),
            }),
        }
    }

    /// Byte vindexes hash the value's MySQL text. A string that reads as a number but is not in
    /// canonical integer form (`'01'`, `'1.0'`, `' 1'`) is refused: on an integer column MySQL
    /// would store `1`, on a string column `01`, and the two hash differently.
    fn text_of(self, value: &KeyValue) -> Result<Vec<u8>, VindexError> {
        match value {
            KeyValue::Int(v) => Ok(v.to_string().into_bytes()),
            KeyValue::UInt(v) => Ok(v.to_string().into_bytes()),
            KeyValue::Text(t) => {
                if looks_numeric_non_canonical(t) {
                    Err(VindexError::AmbiguousNumber {
                        vindex: self.name(),
                        value: value.to_string(),
                    })
                } else {
                    Ok(t.clone())
                }
            }
            KeyValue::Decimal(_) => Err(VindexError::AmbiguousNumber {
                vindex: self.name(),
                value: value.to_string(),
            }),
            KeyValue::Param(i) => Err(VindexError::Unbound(*i + 1)),
            KeyValue::Tuple(values) => Err(VindexError::Columns {
                vindex: self.name(),
                want: 1,
                got: values.len(),
            }),
        }
    }
}

fn looks_numeric_non_canonical(t: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(t) else {
        return false;
    };
    let trimmed = s.trim();
    if trimmed.is_empty() || trimmed.parse::<f64>().is_err() {
        return false;
    }
    let canonical = trimmed
        .parse::<i64>()
        .map(|v| v.to_string())
        .or_else(|_| trimmed.parse::<u64>().map(|v| v.to_string()));
    canonical.map(|c| c != s).unwrap_or(true)
}

/// The all-zero-key cipher, its key schedule computed once (it showed in profiles of point
/// selects when built per value).
fn des_cipher() -> &'static Des {
    static CIPHER: std::sync::OnceLock<Des> = std::sync::OnceLock::new();
    CIPHER.get_or_init(|| Des::new(&Array::from([0u8; 8])))
}

fn des_encrypt(v: u64) -> [u8; 8] {
    let mut block = Array::from(v.to_be_bytes());
    des_cipher().encrypt_block(&mut block);
    block.into()
}

/// The inverse of the `hash` vindex: the integer a keyspace ID came from.
pub fn hash_reverse(id: &KeyspaceId) -> Option<u64> {
    let bytes: [u8; 8] = id.0.as_slice().try_into().ok()?;
    let mut block = Array::from(bytes);
    des_cipher().decrypt_block(&mut block);
    Some(u64::from_be_bytes(block.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(kind: VindexKind, v: KeyValue) -> String {
        kind.map(&v).unwrap().to_string()
    }

    /// The values themselves are checked against Vitess's in `tests/vitess_vectors.rs`.
    #[test]
    fn hash_of_text_and_reverse() {
        for v in 1..=6i64 {
            let id = VindexKind::Hash.map(&KeyValue::Int(v)).unwrap();
            assert_eq!(
                VindexKind::Hash
                    .map(&KeyValue::Text(v.to_string().into_bytes()))
                    .unwrap(),
                id,
                "hash({v}) of its text"
            );
            assert_eq!(hash_reverse(&id), Some(v as u64));
        }
    }

    #[test]
    fn hash_negative_is_reinterpreted_as_u64() {
        let neg = VindexKind::Hash.map(&KeyValue::Int(-1)).unwrap();
        let max = VindexKind::Hash.map(&KeyValue::UInt(u64::MAX)).unwrap();
        assert_eq!(neg, max);
        assert_eq!(
            VindexKind::Hash
                .map(&KeyValue::Text(b"-1".to_vec()))
                .unwrap(),
            neg
        );
    }

    #[test]
    fn integer_vindexes_refuse_non_integers() {
        for kind in [VindexKind::Hash, VindexKind::Numeric] {
            assert!(matches!(
                kind.map(&KeyValue::Text(b"abc".to_vec())),
                Err(VindexError::NotAnInteger { .. })
            ));
            assert!(matches!(
                kind.map(&KeyValue::Decimal("1.5".into())),
                Err(VindexError::NotAnInteger { .. })
            ));
        }
    }

    #[test]
    fn numeric_is_identity() {
        assert_eq!(
            hex(VindexKind::Numeric, KeyValue::Int(1)),
            "0000000000000001"
        );
        assert_eq!(
            hex(VindexKind::Numeric, KeyValue::UInt(0x8000_0000_0000_0000)),
            "8000000000000000"
        );
    }

    #[test]
    fn xxhash_known_answers() {
        assert_eq!(
            hex(VindexKind::Xxhash, KeyValue::Text(b"test1".to_vec())),
            "d01ab7e4d6978f0b"
        );
        assert_eq!(
            hex(VindexKind::Xxhash, KeyValue::Int(1)),
            "d46405367612b4b7"
        );
        assert_eq!(
            hex(VindexKind::Xxhash, KeyValue::Int(-1)),
            "d8e2a6a7c8c7623d"
        );
        // An integer and its canonical text are the same value.
        assert_eq!(
            hex(VindexKind::Xxhash, KeyValue::Text(b"1".to_vec())),
            "d46405367612b4b7"
        );
    }

    #[test]
    fn byte_vindexes_refuse_ambiguous_numbers() {
        for t in ["01", "1.0", " 1", "1e3"] {
            let r = VindexKind::Xxhash.map(&KeyValue::Text(t.as_bytes().to_vec()));
            assert!(matches!(r, Err(VindexError::AmbiguousNumber { .. })), "{t}");
        }
        assert!(VindexKind::Xxhash
            .map(&KeyValue::Text(b"abc".to_vec()))
            .is_ok());
    }

    #[test]
    fn binary_is_the_bytes() {
        assert_eq!(
            hex(VindexKind::Binary, KeyValue::Text(b"\x01\x02".to_vec())),
            "0102"
        );
        assert_eq!(hex(VindexKind::Binary, KeyValue::Int(12)), "3132");
    }

    #[test]
    fn unicode_loose_folds_case_accents_and_trailing_spaces() {
        let map = |s: &str| {
            VindexKind::UnicodeLooseXxhash
                .map(&KeyValue::Text(s.as_bytes().to_vec()))
                .unwrap()
        };
        assert_eq!(map("Test"), map("test"));
        assert_eq!(map("Éclair  "), map("eclair"));
        assert_eq!(map("ｔｅｓｔ"), map("test"));
        assert_ne!(map("test"), map(" test"));
        assert!(VindexKind::UnicodeLooseXxhash
            .map(&KeyValue::Text(vec![0xff]))
            .is_err());
    }
}
