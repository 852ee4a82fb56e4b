//! Values written as SQL literals for the shards, by one policy: no literal ever holds a
//! backslash escape, so each means the same under any sql_mode (NO_BACKSLASH_ESCAPES or not).
//! Pull-outs, joins, lookup-vindex rows, prepared statements' parameters and the gate's own
//! SET all write their values here.

use std::fmt::Write as _;

/// A string: quoted, with quotes doubled. Text holding a backslash or a NUL (whose reading
/// depends on the sql_mode) goes as a hex string with a utf8mb4 introducer, and bytes that are
/// not UTF-8 as a binary hex string.
pub fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains(['\\', '\0']) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                if c == '\'' {
                    out.push('\'');
                }
                out.push(c);
            }
            out.push('\'');
            out
        }
        Ok(_) => hex(bytes, true),
        Err(_) => hex(bytes, false),
    }
}

/// Whether [`text`] writes `bytes` as a string of characters (rather than as binary).
pub fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

/// A hex string: `_utf8mb4 X'…'` for text (which compares under the other operand's
/// collation, as a column would), `X'…'` for binary.
pub fn hex(bytes: &[u8], utf8mb4: bool) -> String {
    let prefix = if utf8mb4 { "_utf8mb4 X'" } else { "X'" };
    let mut out = String::with_capacity(prefix.len() + 1 + bytes.len() * 2);
    out.push_str(prefix);
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_backslash_escapes() {
        assert_eq!(text(b"it's"), "'it''s'");
        assert_eq!(text("zoë".as_bytes()), "'zoë'");
        assert_eq!(text(b"a\\b"), "_utf8mb4 X'615C62'");
        assert_eq!(text(b"a\0"), "_utf8mb4 X'6100'");
        assert_eq!(text(&[0xff, 0]), "X'FF00'");
        assert_eq!(hex(b"a", true), "_utf8mb4 X'61'");
        assert!(!is_text(&[0xff]));
    }
}
