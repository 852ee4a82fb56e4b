//! Key ranges: the part of the keyspace-ID space a shard owns, named the Vitess way.
//!
//! `-80` is `[start, 0x80)`, `80-` is `[0x80, end)`, `40-80` is `[0x40, 0x80)`, and `0` or `-` is
//! the whole space. Keyspace IDs and bounds compare bytewise; an empty start is the beginning of the
//! space and an empty end is its end.

use std::fmt;

/// A half-open range `[start, end)` of keyspace IDs. Trailing zero bytes are stripped from both
/// bounds on parse, so `80` and `8000` name the same point (true for every ID at least as long as
/// the bound, which keyspace IDs are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    start: Vec<u8>,
    end: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRangeError {
    #[error("shard name {0:?} is not a key range: expected `-80`, `80-`, `40-80`, `0` or `-`")]
    Malformed(String),
    #[error("shard name {0:?} is not a key range: {1:?} is not an even-length hex string")]
    BadHex(String, String),
    #[error("shard name {0:?} is an empty key range: its start is not below its end")]
    Empty(String),
}

impl KeyRange {
    /// The whole keyspace-ID space.
    pub fn full() -> Self {
        KeyRange {
            start: Vec::new(),
            end: Vec::new(),
        }
    }

    pub fn parse(name: &str) -> Result<Self, KeyRangeError> {
        if name == "0" || name == "-" {
            return Ok(Self::full());
        }
        let (start, end) = name
            .split_once('-')
            .ok_or_else(|| KeyRangeError::Malformed(name.to_string()))?;
        if end.contains('-') {
            return Err(KeyRangeError::Malformed(name.to_string()));
        }
        let range = KeyRange {
            start: parse_bound(name, start)?,
            end: parse_bound(name, end)?,
        };
        if !range.end.is_empty() && range.start >= range.end {
            return Err(KeyRangeError::Empty(name.to_string()));
        }
        Ok(range)
    }

    pub fn start(&self) -> &[u8] {
        &self.start
    }

    pub fn end(&self) -> &[u8] {
        &self.end
    }

    pub fn is_full(&self) -> bool {
        self.start.is_empty() && self.end.is_empty()
    }

    /// Whether the keyspace ID `id` falls inside this range.
    pub fn contains(&self, id: &[u8]) -> bool {
        self.start.as_slice() <= id && (self.end.is_empty() || id < self.end.as_slice())
    }
}

fn parse_bound(name: &str, hex: &str) -> Result<Vec<u8>, KeyRangeError> {
    let bad = || KeyRangeError::BadHex(name.to_string(), hex.to_string());
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    Ok(bytes)
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_full() {
            return f.write_str("-");
        }
        for b in &self.start {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in &self.end {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a set of ranges does not tile the whole space exactly once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilingError {
    #[error("no shards")]
    NoShards,
    #[error("shards {0} and {1} overlap")]
    Overlap(String, String),
    #[error("gap in the key space between shards {0} and {1}")]
    Gap(String, String),
    #[error("no shard covers the start of the key space (the lowest shard is {0})")]
    MissingStart(String),
    #[error("no shard covers the end of the key space (the highest shard is {0})")]
    MissingEnd(String),
}

/// Checks that `ranges` (name, range) cover every keyspace ID exactly once. Returns the indexes of
/// the ranges in key order.
pub fn check_tiling(ranges: &[(&str, &KeyRange)]) -> Result<Vec<usize>, TilingError> {
    if ranges.is_empty() {
        return Err(TilingError::NoShards);
    }
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by(|&a, &b| ranges[a].1.start.cmp(&ranges[b].1.start));
    let first = ranges[order[0]];
    if !first.1.start.is_empty() {
        return Err(TilingError::MissingStart(first.0.to_string()));
    }
    for pair in order.windows(2) {
        let (a, b) = (ranges[pair[0]], ranges[pair[1]]);
        if a.1.end.is_empty() || a.1.end > b.1.start {
            return Err(TilingError::Overlap(a.0.to_string(), b.0.to_string()));
        }
        if a.1.end < b.1.start {
            return Err(TilingError::Gap(a.0.to_string(), b.0.to_string()));
        }
    }
    let last = ranges[*order.last().expect("non-empty")];
    if !last.1.end.is_empty() {
        return Err(TilingError::MissingEnd(last.0.to_string()));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kr(s: &str) -> KeyRange {
        KeyRange::parse(s).unwrap()
    }

    #[test]
    fn parses_vitess_names() {
        assert!(kr("0").is_full());
        assert!(kr("-").is_full());
        assert_eq!(kr("-80").end(), &[0x80]);
        assert_eq!(kr("80-").start(), &[0x80]);
        assert_eq!(kr("40-80").start(), &[0x40]);
        assert_eq!(kr("4000-8000"), kr("40-80"));
        assert_eq!(kr("40-80").to_string(), "40-80");
    }

    #[test]
    fn rejects_malformed_names() {
        assert!(matches!(
            KeyRange::parse("80"),
            Err(KeyRangeError::Malformed(_))
        ));
        assert!(matches!(
            KeyRange::parse("-8"),
            Err(KeyRangeError::BadHex(..))
        ));
        assert!(matches!(
            KeyRange::parse("zz-"),
            Err(KeyRangeError::BadHex(..))
        ));
        assert!(matches!(
            KeyRange::parse("80-40"),
            Err(KeyRangeError::Empty(_))
        ));
        assert!(matches!(
            KeyRange::parse("1-2-3"),
            Err(KeyRangeError::Malformed(_))
        ));
    }

    #[test]
    fn containment_is_half_open() {
        let low = kr("-80");
        let high = kr("80-");
        let id = |b: u8| [b, 0, 0, 0, 0, 0, 0, 1];
        assert!(low.contains(&id(0x00)));
        assert!(low.contains(&id(0x7f)));
        assert!(!low.contains(&id(0x80)));
        assert!(high.contains(&id(0x80)));
        assert!(high.contains(&[0xff; 8]));
        assert!(high.contains(&[0x80]));
        assert!(!kr("40-80").contains(&[0x3f, 0xff]));
        assert!(kr("0").contains(&[]));
    }

    #[test]
    fn tiling() {
        let check = |names: &[&str]| {
            let ranges: Vec<KeyRange> = names.iter().map(|n| kr(n)).collect();
            let pairs: Vec<(&str, &KeyRange)> = names.iter().copied().zip(ranges.iter()).collect();
            check_tiling(&pairs)
        };
        assert_eq!(check(&["80-", "-80"]).unwrap(), vec![1, 0]);
        assert!(check(&["-40", "40-80", "80-c0", "c0-"]).is_ok());
        assert!(check(&["0"]).is_ok());
        assert_eq!(check(&[]), Err(TilingError::NoShards));
        assert!(matches!(check(&["-80", "90-"]), Err(TilingError::Gap(..))));
        assert!(matches!(
            check(&["-90", "80-"]),
            Err(TilingError::Overlap(..))
        ));
        assert!(matches!(
            check(&["-80", "0"]),
            Err(TilingError::Overlap(..))
        ));
        assert!(matches!(
            check(&["10-80", "80-"]),
            Err(TilingError::MissingStart(_))
        ));
        assert!(matches!(
            check(&["-80", "80-c0"]),
            Err(TilingError::MissingEnd(_))
        ));
    }
}
