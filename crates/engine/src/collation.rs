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

#[cfg(test)]
mod tests {
    use super::*;

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
