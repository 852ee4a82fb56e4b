//! Statement normalisation for the plan cache: literals become numbered bind variables (`?1`,
//! `?2`, ...) so that statements differing only in their values share one cached plan, found
//! without running the SQL parser.
//!
//! A literal stays in the text wherever the planner reads it as more than a value: LIMIT and
//! OFFSET counts, ORDER BY / GROUP BY positions, typed literals (`DATE '...'`) and strings after a
//! character set introducer. Comments stay as written. Statements with executable comments
//! (`/*! */`, which the gate resolves first) and statements other than SELECT / INSERT / UPDATE /
//! DELETE / REPLACE are not normalised.

use std::fmt::Write as _;
use std::ops::Range;

use vschema::KeyValue;

/// A value that a bind variable stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    /// The value as SQL text, spliced into the statement in place of its bind variable.
    pub sql: String,
    pub kind: LiteralKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiteralKind {
    /// A numeric literal, kept as written.
    Number,
    /// A quoted string; the bytes it denotes.
    Text(Vec<u8>),
    /// `NULL` (bound by a prepared statement).
    Null,
    /// Anything else (hex and binary strings): fine to splice, never used for routing.
    Other,
}

impl Literal {
    pub fn number(sql: String) -> Self {
        Literal {
            sql,
            kind: LiteralKind::Number,
        }
    }

    /// The value as a vindex input, as the planner reads the same literal; `None` for NULL and
    /// for literals the planner does not route by.
    pub fn key_value(&self) -> Option<KeyValue> {
        match &self.kind {
            LiteralKind::Number => Some(crate::routing::number(&self.sql, false)),
            LiteralKind::Text(bytes) => Some(KeyValue::Text(bytes.clone())),
            LiteralKind::Null | LiteralKind::Other => None,
        }
    }
}

/// One bind variable of a normalised statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A literal of the statement, at this byte range of its text.
    Literal(Range<usize>, LiteralKind),
    /// The statement's own `?` (prepared statements): the n-th parameter of an execution.
    Param(usize),
}

/// A statement with its literals replaced by bind variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The statement with `?1`, `?2`, ... in place of its literals: the plan cache key.
    pub text: String,
    /// What each bind variable stands for, in order.
    pub slots: Vec<Slot>,
}

impl Normalized {
    /// The literal each bind variable stands for, with `params` for the statement's own `?`.
    pub fn literals(&self, sql: &str, params: &[Literal]) -> Option<Vec<Literal>> {
        self.slots
            .iter()
            .map(|s| match s {
                Slot::Literal(range, kind) => Some(Literal {
                    sql: sql.get(range.clone())?.to_string(),
                    kind: kind.clone(),
                }),
                Slot::Param(n) => params.get(*n).cloned(),
            })
            .collect()
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Keywords that end an ORDER BY / GROUP BY list.
const CLAUSE_WORDS: &[&str] = &[
    "FROM", "WHERE", "HAVING", "LIMIT", "UNION", "WINDOW", "FOR", "LOCK", "INTO", "SELECT", "ON",
    "ORDER", "GROUP", "WITH", "OFFSET",
];

/// Longest statement text the plan cache takes.
pub const MAX_CACHED_LEN: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    Start,
    /// A word (identifier or keyword): its range.
    Word(usize, usize),
    Punct(u8),
    Value,
}

/// Normalises `sql`; `None` when it is not a statement the plan cache takes. With `placeholders`,
/// the statement's own `?` markers become [`Slot::Param`]s (COM_STMT_PREPARE); without, a `?`
/// makes the statement uncacheable.
pub fn normalize(sql: &str, placeholders: bool) -> Option<Normalized> {
    // Bulk INSERTs and the like: their plans are not worth a cache slot (nor the memory).
    if sql.len() > MAX_CACHED_LEN {
        return None;
    }
    let b = sql.as_bytes();
    let mut at = 0;
    while at < b.len() {
        match crate::text::comment_end(b, at) {
            Some(end) => at = end,
            None if b[at].is_ascii_whitespace() || b[at] == b'(' => at += 1,
            None => break,
        }
    }
    let first_word: String = sql[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if !["SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|w| first_word.eq_ignore_ascii_case(w))
    {
        return None;
    }
    let word =
        |p: Prev, w: &str| matches!(p, Prev::Word(s, e) if sql[s..e].eq_ignore_ascii_case(w));
    let mut text = String::with_capacity(sql.len() + 8);
    let mut slots = Vec::new();
    let mut copied = 0;
    let mut prev = Prev::Start;
    let mut depth = 0usize;
    // Paren depth of the ORDER BY / GROUP BY list being read, if any.
    let mut by_depth: Option<usize> = None;
    let mut in_limit = false;
    let mut params = 0usize;
    let mut i = 0;
    while i < b.len() {
        if let Some(end) = crate::text::comment_end(b, i) {
            // Comments stay in the text, as written: they are not values. An executable one
            // holds SQL; the gate resolves those before it normalises.
            if b[i..].starts_with(b"/*!") || b[i..].starts_with(b"/*M!") {
                return None;
            }
            i = end;
            continue;
        }
        let c = b[i];
        let start = i;
        // One token per iteration; `literal` is set for tokens that become bind variables.
        let mut literal: Option<LiteralKind> = None;
        let mut param = false;
        let token_prev;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            // `--` not followed by a space: MySQL reads `1--1` as 1 - -1.
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'\'' | b'"' => {
                let (end, bytes) = scan_string(b, i)?;
                i = end;
                let introduced = matches!(prev, Prev::Word(s, _) if b[s] == b'_' || (start > 0 && is_word_byte(b[start - 1])))
                    || word(prev, "DATE")
                    || word(prev, "TIME")
                    || word(prev, "TIMESTAMP")
                    || word(prev, "N")
                    // GROUP_CONCAT's separator is part of the plan (the proxy joins with it),
                    // and a parameter there is a syntax error.
                    || word(prev, "SEPARATOR");
                if !introduced {
                    literal = Some(LiteralKind::Text(bytes));
                }
                token_prev = Prev::Value;
            }
            b'`' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'`') if b.get(i + 1) == Some(&b'`') => i += 2,
                        Some(b'`') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                token_prev = Prev::Word(start, i);
            }
            b'?' => {
                if !placeholders {
                    return None;
                }
                i += 1;
                param = true;
                token_prev = Prev::Value;
            }
            b'0'..=b'9' | b'.' | b'-'
                if (c != b'.' || b.get(i + 1).is_some_and(u8::is_ascii_digit))
                    && (c != b'-' || negative_literal_at(b, i, prev, sql)) =>
            {
                let hex_or_bits = c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'b'));
                i = scan_number(b, if c == b'-' { i + 1 } else { i });
                if i < b.len() && is_word_byte(b[i]) || hex_or_bits {
                    // `1abc` is an identifier in MySQL; `0x1F` / `0b101` stay as written.
                    while i < b.len() && is_word_byte(b[i]) {
                        i += 1;
                    }
                    token_prev = if hex_or_bits {
                        Prev::Value
                    } else {
                        Prev::Word(start, i)
                    };
                } else {
                    let ordinal =
                        by_depth == Some(depth) && (word(prev, "BY") || prev == Prev::Punct(b','));
                    if !in_limit && !ordinal {
                        literal = Some(LiteralKind::Number);
                    }
                    token_prev = Prev::Value;
                }
            }
            b'x' | b'X' | b'b' | b'B' if b.get(i + 1) == Some(&b'\'') => {
                let (end, _) = scan_string(b, i + 1)?;
                i = end;
                literal = Some(LiteralKind::Other);
                token_prev = Prev::Value;
            }
            c if is_word_byte(c) => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                let w = &sql[start..i];
                if w.eq_ignore_ascii_case("LIMIT") || w.eq_ignore_ascii_case("OFFSET") {
                    in_limit = true;
                } else if !w.eq_ignore_ascii_case("BY")
                    && CLAUSE_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
                    && by_depth == Some(depth)
                {
                    by_depth = None;
                }
                if w.eq_ignore_ascii_case("BY") && (word(prev, "ORDER") || word(prev, "GROUP")) {
                    by_depth = Some(depth);
                }
                token_prev = Prev::Word(start, i);
            }
            _ => {
                i += 1;
                match c {
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.checked_sub(1)?;
                        if by_depth.is_some_and(|d| d > depth) {
                            by_depth = None;
                        }
                    }
                    b';' => return None,
                    _ => {}
                }
                token_prev = Prev::Punct(c);
            }
        }
        if in_limit && !matches!(token_prev, Prev::Value | Prev::Punct(b',')) {
            in_limit = matches!(token_prev, Prev::Word(s, e) if sql[s..e].eq_ignore_ascii_case("LIMIT") || sql[s..e].eq_ignore_ascii_case("OFFSET"));
        }
        if literal.is_some() || param {
            text.push_str(&sql[copied..start]);
            copied = i;
            slots.push(match literal {
                Some(kind) => Slot::Literal(start..i, kind),
                None => {
                    params += 1;
                    Slot::Param(params - 1)
                }
            });
            let _ = write!(text, "?{}", slots.len());
        }
        prev = token_prev;
    }
    text.push_str(&sql[copied..]);
    Some(Normalized { text, slots })
}

/// Whether the `-` at `i` is the sign of a number (after an operator, `(`, `,` or a keyword that
/// takes a value) rather than a subtraction.
fn negative_literal_at(b: &[u8], i: usize, prev: Prev, sql: &str) -> bool {
    const BEFORE_VALUE: &[&str] = &[
        "AND", "OR", "NOT", "WHERE", "SELECT", "BETWEEN", "WHEN", "THEN", "ELSE", "IN", "IS",
        "LIKE", "SET", "VALUES", "ON", "XOR",
    ];
    b.get(i + 1).is_some_and(u8::is_ascii_digit)
        && match prev {
            Prev::Punct(p) => p != b')',
            Prev::Word(s, e) => BEFORE_VALUE
                .iter()
                .any(|w| sql[s..e].eq_ignore_ascii_case(w)),
            Prev::Start | Prev::Value => false,
        }
}

/// Digits, an optional fraction and exponent.
fn scan_number(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// A quoted string starting at `i`: the index after it and the bytes it denotes (MySQL's
/// backslash escapes and doubled quotes).
fn scan_string(b: &[u8], mut i: usize) -> Option<(usize, Vec<u8>)> {
    let quote = b[i];
    i += 1;
    let mut out = Vec::new();
    loop {
        let c = *b.get(i)?;
        if c == quote {
            if b.get(i + 1) == Some(&quote) {
                out.push(quote);
                i += 2;
                continue;
            }
            return Some((i + 1, out));
        }
        if c == b'\\' {
            let e = *b.get(i + 1)?;
            match e {
                b'0' => out.push(0),
                b'b' => out.push(8),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'Z' => out.push(26),
                // LIKE wildcards keep their backslash.
                b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                other => out.push(other),
            }
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
}

/// Replaces each bind variable `?N` of `template` (outside strings, quoted identifiers and
/// comments) by the SQL of
/// `literals[N-1]`. `None` when a number is out of range.
pub fn substitute(template: &str, literals: &[Literal]) -> Option<String> {
    if !template.as_bytes().contains(&b'?') {
        return Some(template.to_string());
    }
    let mut out = String::with_capacity(template.len() + 16);
    each_variable(template, &mut out, |n, out| {
        out.push_str(&literals.get(n)?.sql);
        Some(())
    })?;
    Some(out)
}

/// A template's text to prepare on a shard: the bind variables that stand for a prepared
/// statement's own `?` become `?` again, the others their literal. With it, the parameter that
/// each `?` takes, in order.
pub fn prepared_text(
    template: &str,
    slots: &[Slot],
    literals: &[Literal],
) -> Option<(String, Vec<usize>)> {
    let mut out = String::with_capacity(template.len());
    let mut params = Vec::new();
    each_variable(template, &mut out, |n, out| {
        match slots.get(n)? {
            Slot::Param(p) => {
                out.push('?');
                params.push(*p);
            }
            Slot::Literal(..) => out.push_str(&literals.get(n)?.sql),
        }
        Some(())
    })?;
    Some((out, params))
}

/// Copies `template` to `out`, with `put` writing in place of each bind variable `?N` (given
/// N - 1); `None` when one is malformed or `put` gives up.
fn each_variable(
    template: &str,
    out: &mut String,
    mut put: impl FnMut(usize, &mut String) -> Option<()>,
) -> Option<()> {
    let b = template.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'?' => {
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let n: usize = template[i + 1..j].parse().ok()?;
                out.push_str(&template[copied..i]);
                put(n.checked_sub(1)?, out)?;
                copied = j;
                i = j;
            }
            _ => i = crate::text::skip_quoted(b, i).unwrap_or(i + 1),
        }
    }
    out.push_str(&template[copied.min(template.len())..]);
    Some(())
}

/// Byte offsets of the `?` parameter markers of a statement (outside strings, quoted identifiers
/// and comments), for statements [`normalize`] does not take.
pub fn parameter_markers(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'?' {
            found.push(i);
        }
        i = crate::text::skip_quoted(b, i).unwrap_or(i + 1);
    }
    found
}

/// `sql` with each `?` marker replaced by the SQL of the next parameter.
pub fn bind_markers(sql: &str, params: &[Literal]) -> Option<String> {
    let markers = parameter_markers(sql);
    if markers.len() != params.len() {
        return None;
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0;
    for (at, p) in markers.into_iter().zip(params) {
        out.push_str(&sql[copied..at]);
        out.push_str(&p.sql);
        copied = at + 1;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> Option<String> {
        normalize(sql, false).map(|n| n.text)
    }

    #[test]
    fn literals_become_bind_variables() {
        assert_eq!(
            key("SELECT c FROM sbtest1 WHERE id=42").unwrap(),
            "SELECT c FROM sbtest1 WHERE id=?1"
        );
        let n = normalize(
            "select * from t where a = 'x''y' and b in (1, 2.5e3, -3)",
            false,
        )
        .unwrap();
        assert_eq!(n.text, "select * from t where a = ?1 and b in (?2, ?3, ?4)");
        assert_eq!(
            n.slots[0],
            Slot::Literal(26..32, LiteralKind::Text(b"x'y".to_vec()))
        );
        assert_eq!(
            key("INSERT INTO t (a, b) VALUES (1, 'a\\'b'), (2, NULL)").unwrap(),
            "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, NULL)"
        );
    }

    #[test]
    fn structural_literals_stay() {
        assert_eq!(
            key("SELECT a-1 FROM t WHERE b > 3 ORDER BY 1 DESC, a + 2 LIMIT 5, 10").unwrap(),
            "SELECT a-?1 FROM t WHERE b > ?2 ORDER BY 1 DESC, a + ?3 LIMIT 5, 10"
        );
        assert_eq!(
            key("SELECT a, COUNT(*) FROM t GROUP BY 1 HAVING COUNT(*) > 2 LIMIT 3 OFFSET 4")
                .unwrap(),
            "SELECT a, COUNT(*) FROM t GROUP BY 1 HAVING COUNT(*) > ?1 LIMIT 3 OFFSET 4"
        );
        assert_eq!(
            key("SELECT _utf8mb4'x', DATE '2020-01-01', t1.a FROM t1 WHERE x = 0x1F").unwrap(),
            "SELECT _utf8mb4'x', DATE '2020-01-01', t1.a FROM t1 WHERE x = 0x1F"
        );
        assert_eq!(
            key("SELECT a FROM t WHERE b IN (SELECT c FROM u ORDER BY 2) AND d = 1").unwrap(),
            "SELECT a FROM t WHERE b IN (SELECT c FROM u ORDER BY 2) AND d = ?1"
        );
        assert_eq!(
            key("SELECT GROUP_CONCAT(a ORDER BY 1 SEPARATOR '; ') FROM t WHERE b = 'x'").unwrap(),
            "SELECT GROUP_CONCAT(a ORDER BY 1 SEPARATOR '; ') FROM t WHERE b = ?1"
        );
    }

    #[test]
    fn comments_stay_and_hold_no_values() {
        assert_eq!(
            key("/* a 1 */ SELECT 1 /* c '2' */ -- 3 ?\n FROM t # 4").unwrap(),
            "/* a 1 */ SELECT ?1 /* c '2' */ -- 3 ?\n FROM t # 4"
        );
        let lit = |sql: &str| Literal::number(sql.into());
        assert_eq!(
            substitute("SELECT ?1 /* ? */, _utf8mb4'?' -- ?2", &[lit("7")]).unwrap(),
            "SELECT 7 /* ? */, _utf8mb4'?' -- ?2"
        );
    }

    #[test]
    fn uncacheable_statements() {
        assert_eq!(key("SET @a = 1"), None);
        assert_eq!(key("SELECT 1 /*!40100 + 1 */"), None);
        assert_eq!(key("SELECT 1 /*M!100100 + 1 */"), None);
        assert_eq!(key("SELECT 1--1"), None);
        assert_eq!(key("SELECT ?"), None);
        assert_eq!(key("SELECT 'unterminated"), None);
        assert_eq!(key("SELECT 1; SELECT 2"), None);
        let long = format!("SELECT a FROM t WHERE a IN ({})", "1,".repeat(9000) + "1");
        assert_eq!(key(&long), None);
    }

    #[test]
    fn prepared_placeholders_and_substitution() {
        let sql = "SELECT c FROM t WHERE id = ? AND k > 5 AND d = ?";
        let n = normalize(sql, true).unwrap();
        assert_eq!(
            n.text,
            "SELECT c FROM t WHERE id = ?1 AND k > ?2 AND d = ?3"
        );
        let lits = n
            .literals(
                sql,
                &[
                    Literal::number("7".into()),
                    Literal {
                        sql: "'x'".into(),
                        kind: LiteralKind::Text(b"x".to_vec()),
                    },
                ],
            )
            .unwrap();
        assert_eq!(
            substitute(&n.text, &lits).unwrap(),
            "SELECT c FROM t WHERE id = 7 AND k > 5 AND d = 'x'"
        );
        assert_eq!(
            substitute("SELECT `a?1` FROM t WHERE a = ?1", &lits).unwrap(),
            "SELECT `a?1` FROM t WHERE a = 7"
        );
        assert_eq!(substitute("SELECT ?9", &lits), None);
    }

    #[test]
    fn markers_outside_strings_and_comments() {
        let sql = "SET @a = ? /* ? */ + '?' + `?` -- ?\n + ?";
        assert_eq!(parameter_markers(sql).len(), 2);
        let p = [Literal::number("1".into()), Literal::number("2".into())];
        assert_eq!(
            bind_markers(sql, &p).unwrap(),
            "SET @a = 1 /* ? */ + '?' + `?` -- ?\n + 2"
        );
        assert_eq!(bind_markers(sql, &p[..1]), None);
    }
}
