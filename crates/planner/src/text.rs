//! The client's statement text and the parser's spans over it.

use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Span, Token, Tokenizer};

/// The original SQL with an index from (line, column) locations to byte offsets.
pub struct SourceText<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
    /// For each line with non-ASCII characters: the byte offset (within the line) of every
    /// `MARK_EVERY`-th character, so that a column is found without walking the whole line
    /// (large multi-row INSERTs are one long line with thousands of spans).
    marks: Vec<Option<Vec<usize>>>,
}

const MARK_EVERY: usize = 64;

impl<'a> SourceText<'a> {
    pub fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        let marks = line_starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = line_starts.get(i + 1).copied().unwrap_or(sql.len());
                let line = &sql[start..end];
                (!line.is_ascii()).then(|| {
                    line.char_indices()
                        .step_by(MARK_EVERY)
                        .map(|(at, _)| at)
                        .collect()
                })
            })
            .collect();
        SourceText {
            sql,
            line_starts,
            marks,
        }
    }

    pub fn sql(&self) -> &'a str {
        self.sql
    }

    /// Byte offset of a parser location (1-based line, 1-based column counted in characters).
    fn offset(&self, loc: Location) -> Option<usize> {
        let line_no = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let line_start = *self.line_starts.get(line_no)?;
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let line = &self.sql[line_start..];
        let in_line = match self.marks.get(line_no)? {
            None => (col <= line.len()).then_some(col)?,
            Some(marks) => {
                let from = *marks.get(col / MARK_EVERY)?;
                let rest = &line[from..];
                from + rest
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(rest.len()))
                    .nth(col % MARK_EVERY)?
            }
        };
        Some(line_start + in_line)
    }

    /// The text a span covers; `None` for the parser's empty spans.
    pub fn slice(&self, span: Span) -> Option<&'a str> {
        if span.start.line == 0 || span.end.line == 0 {
            return None;
        }
        let (start, end) = (self.offset(span.start)?, self.offset(span.end)?);
        (start < end).then(|| &self.sql[start..end])
    }

    /// The byte range of a span.
    pub fn range(&self, span: Span) -> Option<std::ops::Range<usize>> {
        if span.start.line == 0 {
            return None;
        }
        Some(self.offset(span.start)?..self.offset(span.end)?)
    }

    /// The text with each byte range replaced; ranges must not overlap.
    pub fn with_edits(&self, mut edits: Vec<(std::ops::Range<usize>, String)>) -> String {
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(self.sql.len());
        let mut at = 0;
        for (range, replacement) in edits {
            out.push_str(&self.sql[at..range.start]);
            out.push_str(&replacement);
            at = range.end;
        }
        out.push_str(&self.sql[at..]);
        out
    }
}

/// The rows of an `INSERT ... VALUES (...), (...)` as byte ranges of the client's text (each with
/// its parentheses), and the offset where the text after the last row begins. Found from tokens,
/// not from expression spans: the parser's spans leave out a leading unary minus.
pub fn values_rows(source: &SourceText<'_>) -> Option<(Vec<std::ops::Range<usize>>, usize)> {
    let tokens = Tokenizer::new(&MySqlDialect {}, source.sql())
        .tokenize_with_location()
        .ok()?;
    let mut iter = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let mut depth = 0usize;
    // Skip to the VALUES keyword at depth 0 (past the column list).
    loop {
        let t = iter.next()?;
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.checked_sub(1)?,
            Token::Word(w)
                if depth == 0 && matches!(w.keyword, Keyword::VALUES | Keyword::VALUE) =>
            {
                break
            }
            _ => {}
        }
    }
    let mut rows = Vec::new();
    let mut row_start = None;
    for t in iter {
        match &t.token {
            Token::LParen => {
                if depth == 0 {
                    row_start = Some(source.range(t.span)?.start);
                }
                depth += 1;
            }
            Token::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    rows.push(row_start.take()?..source.range(t.span)?.end);
                }
            }
            Token::Comma if depth == 0 => {}
            _ if depth == 0 => return Some((rows, source.range(t.span)?.start)),
            _ => {}
        }
    }
    (depth == 0).then_some((rows, source.sql().len()))
}

/// The values of one INSERT row (the text between its parentheses), split at depth-0 commas.
pub fn split_values(inner: &str) -> Option<Vec<String>> {
    let src = SourceText::new(inner);
    let tokens = Tokenizer::new(&MySqlDialect {}, inner)
        .tokenize_with_location()
        .ok()?;
    let mut values = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for t in tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
    {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                let r = src.range(t.span)?;
                values.push(inner[start..r.start].trim().to_string());
                start = r.end;
            }
            _ => {}
        }
    }
    values.push(inner[start..].trim().to_string());
    Some(values)
}

/// Where the SQL token at byte `i` ends, when it is a quoted string or identifier or a comment
/// (which may hold parentheses); `None` for other bytes.
pub(crate) fn skip_quoted(b: &[u8], mut i: usize) -> Option<usize> {
    match b[i] {
        q @ (b'\'' | b'"' | b'`') => {
            i += 1;
            while i < b.len() && b[i] != q {
                if b[i] == b'\\' && q != b'`' {
                    i += 1;
                }
                i += 1;
            }
            Some(i + 1)
        }
        _ => comment_end(b, i),
    }
}

/// Where the comment at byte `i` ends (`# …`, `-- …` up to the line's end, `/* … */`); `None`
/// when no comment starts there. `--` is a comment only when a space or the end follows.
pub(crate) fn comment_end(b: &[u8], i: usize) -> Option<usize> {
    let line_end = || {
        b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| i + p)
    };
    match b[i] {
        b'#' => Some(line_end()),
        b'-' if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(u8::is_ascii_whitespace) => {
            Some(line_end())
        }
        b'/' if b.get(i + 1) == Some(&b'*') => Some(
            b[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(b.len(), |p| i + 2 + p + 2),
        ),
        _ => None,
    }
}

/// The text from `start` to the parenthesis that closes the one it stands in (the parser's span
/// of a subquery stops before the closing parentheses of its own nested subqueries).
pub(crate) fn up_to_close(sql: &str, start: usize) -> Option<std::ops::Range<usize>> {
    let b = sql.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        if let Some(next) = skip_quoted(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(start..i),
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// `start..end` extended past `end` until its parentheses balance (the parser's span of a function
/// call or nested expression may stop before its closing parentheses).
pub(crate) fn balanced(sql: &str, start: usize, end: usize) -> Option<std::ops::Range<usize>> {
    let b = sql.as_bytes();
    let mut depth = 0i64;
    let mut i = start;
    while i < b.len() && (i < end || depth > 0) {
        if let Some(next) = skip_quoted(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    if depth != 0 || i > b.len() {
        return None;
    }
    // A function call's span may stop at its name: take its argument list too.
    let next = i + b[i..]
        .iter()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    if b.get(next) == Some(&b'(') && i == end {
        return balanced(sql, start, next + 1);
    }
    Some(start..i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_rows_from_tokens() {
        let sql = "INSERT INTO t (a, b)\n VALUES (-1, 'x\\\\y'),(2, f(3, 4)) , ( -2, 'é''z') ON DUPLICATE KEY UPDATE b = VALUES(b)";
        let src = SourceText::new(sql);
        let (rows, rest) = values_rows(&src).unwrap();
        let texts: Vec<&str> = rows.iter().map(|r| &sql[r.clone()]).collect();
        assert_eq!(texts, ["(-1, 'x\\\\y')", "(2, f(3, 4))", "( -2, 'é''z')"]);
        assert_eq!(&sql[rest..], "ON DUPLICATE KEY UPDATE b = VALUES(b)");
        assert_eq!(
            split_values("-1, 'a,b', f(1, 2) ,NULL").unwrap(),
            ["-1", "'a,b'", "f(1, 2)", "NULL"]
        );
        let long: String = (0..300).map(|i| format!("({i}, 'é{i}'),")).collect();
        let long = format!("insert into t (a, b) values {}", long.trim_end_matches(','));
        let (rows, _) = values_rows(&SourceText::new(&long)).unwrap();
        assert_eq!(&long[rows[299].clone()], "(299, 'é299')");
        let plain = SourceText::new("insert into t (a) values (1), (2)");
        assert_eq!(values_rows(&plain).unwrap().0.len(), 2);
    }
}
