//! The client's statement text and the parser's spans over it.

use sqlparser::tokenizer::{Location, Span};

/// The original SQL with an index from (line, column) locations to byte offsets.
pub struct SourceText<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceText<'a> {
    pub fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        SourceText { sql, line_starts }
    }

    pub fn sql(&self) -> &'a str {
        self.sql
    }

    /// Byte offset of a parser location (1-based line, 1-based column counted in characters).
    fn offset(&self, loc: Location) -> Option<usize> {
        let line_start = *self.line_starts.get(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let line = &self.sql[line_start..];
        let in_line = line.char_indices().map(|(i, _)| i).chain(std::iter::once(line.len())).nth(col)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{SetExpr, Spanned, Statement};
    use sqlparser::dialect::MySqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn slices_values_rows_verbatim() {
        let sql = "INSERT INTO t (a, b)\n VALUES (1, 'x\\\\y'), (-2, 'é''z')";
        let stmt = Parser::parse_sql(&MySqlDialect {}, sql).unwrap().remove(0);
        let Statement::Insert(insert) = stmt else { panic!() };
        let SetExpr::Values(values) = &*insert.source.unwrap().body else { panic!() };
        let src = SourceText::new(sql);
        let texts: Vec<&str> = values.rows.iter().map(|r| src.slice(r[1].span()).unwrap()).collect();
        assert_eq!(texts, ["'x\\\\y'", "'é''z'"]);
        assert_eq!(src.slice(values.rows[1][0].span()), Some("-2"));
    }
}
