//! Comparing text at the proxy, where the shards cannot weigh it (a condition over a joined row,
//! HAVING over a merged aggregate, WHERE over a derived table's rows).
//!
//! The result metadata does not name a column's collation: MariaDB reports the connection's
//! character set with its default collation for every text column, and sets BINARY_FLAG for the
//! `_bin` ones. So this compares only values on which every collation of that family agrees, and
//! refuses the rest with 1235 instead of guessing:
//! - binary strings (character set 63): bytes, as MySQL does;
//! - `_bin` collations: code points (UTF-8 byte order), for values without control characters or
//!   trailing spaces, where PAD SPACE and NO PAD agree;
//! - the case-insensitive ones (`general_ci`, `unicode_ci`, `unicode_520_ci`, `0900_ai_ci`,
//!   `swedish_ci`, their `nopad` forms): ASCII letters, digits and inner spaces, which all of them
//!   order as upper-case ASCII (checked against MariaDB by `tests/collation.rs`).

use std::cmp::Ordering;

use mysql_common::constants::ColumnFlags;

use crate::{Column, EngineError};

/// How a column's text compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOrder {
    Bytes,
    CodePoints,
    CaseFolded,
}

impl TextOrder {
    pub fn of(column: &Column) -> Self {
        if column.character_set() == 63 {
            TextOrder::Bytes
        } else if column.flags().contains(ColumnFlags::BINARY_FLAG) {
            TextOrder::CodePoints
        } else {
            TextOrder::CaseFolded
        }
    }

    /// Compares two values of this order, or refuses when the collation could decide otherwise.
    pub fn compare(self, a: &[u8], b: &[u8]) -> Result<Ordering, EngineError> {
        let plain = |s: &[u8]| s.last() != Some(&b' ') && !s.iter().any(|c| *c < b' ');
        match self {
            TextOrder::Bytes => Ok(a.cmp(b)),
            TextOrder::CodePoints if plain(a) && plain(b) => Ok(a.cmp(b)),
            TextOrder::CaseFolded
                if [a, b].iter().all(|s| {
                    plain(s) && s.iter().all(|c| c.is_ascii_alphanumeric() || *c == b' ')
                }) =>
            {
                Ok(a.iter()
                    .map(u8::to_ascii_uppercase)
                    .cmp(b.iter().map(u8::to_ascii_uppercase)))
            }
            _ => Err(EngineError::Unsupported(format!(
                "comparing '{}' with '{}' at the proxy: the result does not say which collation \
                 applies, and collations order these differently",
                String::from_utf8_lossy(a).escape_debug(),
                String::from_utf8_lossy(b).escape_debug()
            ))),
        }
    }
}

/// A column collation whose weights the proxy computes itself, known from the catalog (the
/// result metadata does not name it). The weights order and equate values as the shards'
/// `WEIGHT_STRING(RTRIM(x))` does, so a merge needs no weight column from the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collation {
    /// utf8mb4_general_ci and utf8mb3_general_ci: a 16-bit weight per character.
    GeneralCi,
    /// utf8mb4_bin and utf8mb3_bin: code points, which UTF-8 bytes order.
    Bin,
}

impl Collation {
    /// The collation `information_schema.COLUMNS.COLLATION_NAME` names, when the proxy weighs it.
    /// Values arrive in UTF-8 (the backends' connection character set), so only UTF-8 columns.
    pub fn named(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4_general_ci" | "utf8mb3_general_ci" | "utf8_general_ci" => {
                Some(Collation::GeneralCi)
            }
            "utf8mb4_bin" | "utf8mb3_bin" | "utf8_bin" => Some(Collation::Bin),
            _ => None,
        }
    }

    /// Whether a result column of this collation carries BINARY_FLAG (MariaDB sets it for the
    /// `_bin` ones): a column whose collation changed behind the proxy shows it.
    pub(crate) fn binary_flag(self) -> bool {
        self == Collation::Bin
    }

    /// The space's weight, whose length every weight of the collation has.
    fn space(self) -> &'static [u8] {
        match self {
            Collation::GeneralCi => &[0, b' '],
            Collation::Bin => b" ",
        }
    }

    /// Compares two texts as the collation does, weight by weight without storing them: the
    /// shorter as though it went on with spaces (PAD SPACE), so trailing spaces do not count.
    pub fn compare(self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            Collation::Bin => padded(
                a.iter().map(|&c| u16::from(c)),
                b.iter().map(|&c| u16::from(c)),
                u16::from(b' '),
            ),
            // ASCII weighs as its upper case: no decoding (sysbench's text is all ASCII).
            Collation::GeneralCi if a.is_ascii() && b.is_ascii() => padded(
                a.iter().map(|&c| u16::from(c.to_ascii_uppercase())),
                b.iter().map(|&c| u16::from(c.to_ascii_uppercase())),
                0x20,
            ),
            Collation::GeneralCi => padded(general_ci_weights(a), general_ci_weights(b), 0x20),
        }
    }

    /// Compares two texts' weights (from [`Collation::weigh`]) as PAD SPACE does: the shorter as
    /// though it went on with spaces.
    pub(crate) fn cmp_weights(self, a: &[u8], b: &[u8]) -> Ordering {
        let common = a.len().min(b.len());
        let ord = a[..common].cmp(&b[..common]);
        if ord != Ordering::Equal || a.len() == b.len() {
            return ord;
        }
        let space = self.space();
        let (rest, longer_is_a) = match a.len() > b.len() {
            true => (&a[common..], true),
            false => (&b[common..], false),
        };
        let ord = rest
            .chunks(space.len())
            .map(|w| w.cmp(space))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal);
        match longer_is_a {
            true => ord,
            false => ord.reverse(),
        }
    }

    /// Appends the weights of UTF-8 `text` to `out`, without its trailing spaces'. Compared as
    /// PAD SPACE compares (the shorter padded with [`Collation::space`]), they order and equate
    /// as the collation does the text.
    pub fn weigh(self, text: &[u8], out: &mut Vec<u8>) {
        let text = rtrim(text);
        match self {
            Collation::Bin => out.extend_from_slice(text),
            Collation::GeneralCi => {
                out.reserve(text.len() * 2);
                if text.is_ascii() {
                    for &b in text {
                        out.extend_from_slice(&[0, b.to_ascii_uppercase()]);
                    }
                    return;
                }
                for weight in general_ci_weights(text) {
                    out.extend_from_slice(&weight.to_be_bytes());
                }
            }
        }
    }
}

/// Compares weight sequences, the shorter padded with `space`.
fn padded(
    mut a: impl Iterator<Item = u16>,
    mut b: impl Iterator<Item = u16>,
    space: u16,
) -> Ordering {
    loop {
        let (x, y) = match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => (x.unwrap_or(space), y.unwrap_or(space)),
        };
        if x != y {
            return x.cmp(&y);
        }
    }
}

/// general_ci's weight of each character of UTF-8 `text`: a malformed sequence counts as one
/// U+FFFD (as `String::from_utf8_lossy` reads it), a character beyond the BMP weighs 0xFFFD.
fn general_ci_weights(text: &[u8]) -> impl Iterator<Item = u16> + '_ {
    let table = general_ci_table();
    text.utf8_chunks()
        .flat_map(|chunk| {
            let bad = (!chunk.invalid().is_empty()).then_some(char::REPLACEMENT_CHARACTER);
            chunk.valid().chars().chain(bad)
        })
        .map(|c| u16::try_from(u32::from(c)).map_or(0xFFFD, |bmp| table[usize::from(bmp)]))
}

/// `text` without trailing U+0020, as RTRIM: tabs and other blanks weigh.
fn rtrim(text: &[u8]) -> &[u8] {
    let end = text.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
    &text[..end]
}

/// general_ci's weight of every BMP code point, built once from its exceptions.
fn general_ci_table() -> &'static [u16; 0x10000] {
    static TABLE: std::sync::OnceLock<Box<[u16; 0x10000]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: Box<[u16; 0x10000]> = vec![0u16; 0x10000]
            .into_boxed_slice()
            .try_into()
            .expect("0x10000 entries");
        for (cp, weight) in table.iter_mut().enumerate() {
            *weight = cp as u16;
        }
        for &(cp, weight) in crate::general_ci::EXCEPTIONS {
            table[usize::from(cp)] = weight;
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(c: Collation, s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        c.weigh(s.as_bytes(), &mut out);
        out
    }

    #[test]
    fn general_ci_weights_as_mariadb() {
        // Values from MariaDB 10.11's WEIGHT_STRING(RTRIM(x) COLLATE utf8mb4_general_ci).
        let ci = Collation::GeneralCi;
        assert_eq!(weight(ci, "ab  "), [0, 0x41, 0, 0x42]);
        assert_eq!(weight(ci, "aé"), weight(ci, "AE"));
        assert_eq!(weight(ci, "\u{1F600}"), [0xFF, 0xFD]);
        assert_eq!(weight(ci, "ß"), weight(ci, "s"));
        assert_eq!(weight(ci, "µ"), [0x03, 0x9C]);
        assert!(weight(ci, "a_") > weight(ci, "aZ"));
        assert_eq!(weight(ci, "   "), Vec::<u8>::new());
    }

    #[test]
    fn bin_weights_order_code_points() {
        let bin = Collation::Bin;
        assert!(weight(bin, "a") > weight(bin, "A"));
        assert!(weight(bin, "é") > weight(bin, "z"));
        assert_eq!(weight(bin, "a "), weight(bin, "a"));
        assert_eq!(Collation::named("UTF8MB4_BIN"), Some(bin));
        assert_eq!(Collation::named("utf8mb4_unicode_ci"), None);
    }

    #[test]
    fn case_folded_text_compares_only_where_collations_agree() {
        let ci = TextOrder::CaseFolded;
        assert_eq!(ci.compare(b"ana", b"ANA").unwrap(), Ordering::Equal);
        assert_eq!(ci.compare(b"Bob", b"alice").unwrap(), Ordering::Greater);
        assert_eq!(ci.compare(b"a b", b"ab").unwrap(), Ordering::Less);
        assert_eq!(ci.compare(b"9", b"a").unwrap(), Ordering::Less);
        // Punctuation orders differently under general_ci and unicode_ci; trailing spaces under
        // PAD SPACE and NO PAD; accents under general_ci and 0900_ai_ci.
        assert!(ci.compare(b"a_", b"aa").is_err());
        assert!(ci.compare(b"a ", b"a").is_err());
        assert!(ci.compare("é".as_bytes(), b"e").is_err());
    }

    #[test]
    fn bin_and_binary_text() {
        let bin = TextOrder::CodePoints;
        assert_eq!(bin.compare(b"a", b"A").unwrap(), Ordering::Greater);
        assert_eq!(
            bin.compare("é".as_bytes(), "z".as_bytes()).unwrap(),
            Ordering::Greater
        );
        assert!(bin.compare(b"a", b"a\t").is_err());
        assert_eq!(
            TextOrder::Bytes.compare(b"a", b"a ").unwrap(),
            Ordering::Less
        );
    }
}
