//! A SELECT's clauses as the client wrote them, found from tokens at parenthesis depth 0: the
//! text of each select item, of FROM..WHERE, of each GROUP BY and ORDER BY key. Rewrites for the
//! shards reuse these texts, so column names (MySQL names an unaliased column by its text) and
//! literals reach the shards unchanged.

use std::ops::Range;

use engine::{ArithOp, CompareOp, Decimal, EvalExpr, Literal, SortKey, Stage};
use sqlparser::ast::Spanned;
use sqlparser::ast::{
    BinaryOperator, Expr, InTarget, LimitClause, OrderByKind, Query, SelectItem, SetExpr,
    UnaryOperator, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::text::SourceText;
use crate::{unsupported, PlanError};

#[derive(Debug, Default)]
pub(crate) struct Clauses<'a> {
    /// Each select item's text, alias included.
    pub items: Vec<&'a str>,
    /// Words between SELECT and the first item (DISTINCT, SQL_NO_CACHE, ...), upper-cased.
    pub modifiers: Vec<String>,
    /// `FROM ... [WHERE ...]`, or empty.
    pub from: &'a str,
    pub group_by: Vec<&'a str>,
    pub rollup: bool,
    pub having: Option<&'a str>,
    /// Key texts without ASC/DESC, and whether each is descending.
    pub order_by: Vec<(&'a str, bool)>,
    pub limit: Option<&'a str>,
    /// What follows LIMIT: `FOR UPDATE`, ...
    pub tail: &'a str,
    /// Clauses the merge cannot handle (`INTO`, `WINDOW`, set operations), by name.
    pub other: Vec<String>,
}

struct Tok {
    token: Token,
    range: Range<usize>,
}

fn word(t: &Token) -> Option<(Keyword, String)> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => {
            Some((w.keyword, w.value.to_ascii_uppercase()))
        }
        _ => None,
    }
}

/// The statement's tokens (comments and whitespace left out) with their byte ranges.
fn tokens(sql: &str) -> Option<Vec<Tok>> {
    let source = SourceText::new(sql);
    Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| {
            Some(Tok {
                range: source.range(t.span)?,
                token: t.token,
            })
        })
        .collect()
}

/// Splits `toks` at depth-0 commas into the source text of each part.
fn split_commas<'a>(sql: &'a str, toks: &[Tok]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start: Option<usize> = None;
    let mut end = 0;
    for t in toks {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                if let Some(s) = start.take() {
                    parts.push(sql[s..end].trim());
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(t.range.start);
        end = t.range.end;
    }
    if let Some(s) = start {
        parts.push(sql[s..end].trim());
    }
    parts
}

pub(crate) fn select_clauses<'a>(source: &SourceText<'a>) -> Option<Clauses<'a>> {
    let sql = source.sql();
    let toks = tokens(sql)?;
    let mut c = Clauses::default();
    // Depth-0 clause starts: (token index, clause name).
    let mut depth = 0i32;
    let mut marks: Vec<(usize, &'static str)> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            tok if depth == 0 => {
                let Some((kw, upper)) = word(tok) else {
                    continue;
                };
                let name = match kw {
                    Keyword::SELECT if i == 0 => "SELECT",
                    Keyword::FROM => "FROM",
                    Keyword::GROUP => "GROUP",
                    Keyword::HAVING => "HAVING",
                    Keyword::ORDER => "ORDER",
                    Keyword::LIMIT => "LIMIT",
                    Keyword::FOR | Keyword::LOCK => "TAIL",
                    Keyword::INTO
                    | Keyword::WINDOW
                    | Keyword::UNION
                    | Keyword::EXCEPT
                    | Keyword::INTERSECT
                    | Keyword::PROCEDURE => {
                        c.other.push(upper);
                        continue;
                    }
                    _ => continue,
                };
                // WHERE belongs with FROM; a second FROM-like word (DELETE ... FROM) is not ours.
                if marks.iter().any(|(_, n)| *n == name) {
                    if name == "TAIL" {
                        continue;
                    }
                    return None;
                }
                marks.push((i, name));
            }
            _ => {}
        }
    }
    if marks.first().map(|m| m.1) != Some("SELECT") {
        return None;
    }
    let span_of = |idx: usize| -> (usize, usize) {
        let next = marks
            .iter()
            .map(|m| m.0)
            .find(|&j| j > idx)
            .unwrap_or(toks.len());
        (idx, next)
    };
    let text_of = |from: usize, to: usize| -> &'a str {
        if from >= to {
            return "";
        }
        sql[toks[from].range.start..toks[to - 1].range.end].trim()
    };
    for &(idx, name) in &marks {
        let (start, end) = span_of(idx);
        match name {
            "SELECT" => {
                let mut first = start + 1;
                while let Some(t) = toks.get(first).filter(|_| first < end) {
                    let Some((_, upper)) = word(&t.token) else {
                        break;
                    };
                    const MODIFIERS: &[&str] = &[
                        "DISTINCT",
                        "ALL",
                        "DISTINCTROW",
                        "HIGH_PRIORITY",
                        "STRAIGHT_JOIN",
                        "SQL_SMALL_RESULT",
                        "SQL_BIG_RESULT",
                        "SQL_BUFFER_RESULT",
                        "SQL_NO_CACHE",
                        "SQL_CACHE",
                        "SQL_CALC_FOUND_ROWS",
                    ];
                    if !MODIFIERS.contains(&upper.as_str()) {
                        break;
                    }
                    c.modifiers.push(upper);
                    first += 1;
                }
                let item_toks = &toks[first..end];
                c.items = split_commas(sql, item_toks);
            }
            "FROM" => c.from = text_of(start, end),
            "GROUP" => {
                // GROUP BY k1, k2 [WITH ROLLUP]
                let mut stop = end;
                if end >= 2 && word(&toks[end - 1].token).is_some_and(|w| w.1 == "ROLLUP") {
                    c.rollup = true;
                    stop = end - 2;
                }
                c.group_by = split_commas(sql, &toks[(start + 2).min(stop)..stop]);
            }
            "HAVING" => c.having = Some(text_of(start + 1, end)),
            "ORDER" => {
                let keys_start = (start + 2).min(end);
                let mut keys = Vec::new();
                let mut depth = 0i32;
                let mut key_start = keys_start;
                for i in keys_start..=end {
                    let at_end = i == end;
                    if !at_end {
                        match toks[i].token {
                            Token::LParen => depth += 1,
                            Token::RParen => depth -= 1,
                            _ => {}
                        }
                    }
                    if at_end || (depth == 0 && toks[i].token == Token::Comma) {
                        let mut key_end = i;
                        let mut desc = false;
                        if let Some((_, w)) = toks
                            .get(key_end.wrapping_sub(1))
                            .filter(|_| key_end > key_start)
                            .and_then(|t| word(&t.token))
                        {
                            if w == "DESC" || w == "ASC" {
                                desc = w == "DESC";
                                key_end -= 1;
                            }
                        }
                        keys.push((text_of(key_start, key_end), desc));
                        key_start = i + 1;
                    }
                }
                c.order_by = keys;
            }
            "LIMIT" => c.limit = Some(text_of(start + 1, end)),
            "TAIL" => c.tail = text_of(start, toks.len()),
            _ => {}
        }
    }
    Some(c)
}

/// `expr [AS] alias` → `expr`, for an item the parser says has an alias (a tokenizer alone cannot
/// tell `a b` from `a + b`).
pub(crate) fn without_alias(item: &str) -> &str {
    let Ok(toks) = Tokenizer::new(&MySqlDialect {}, item).tokenize_with_location() else {
        return item;
    };
    let toks: Vec<_> = toks
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    if toks.len() < 2 {
        return item;
    }
    let src = SourceText::new(item);
    let last = &toks[toks.len() - 1];
    let is_alias_token = matches!(
        &last.token,
        Token::Word(_) | Token::SingleQuotedString(_) | Token::DoubleQuotedString(_)
    );
    if !is_alias_token {
        return item;
    }
    let before = &toks[toks.len() - 2];
    let cut = if word(&before.token).is_some_and(|w| w.0 == Keyword::AS) {
        before
    } else {
        last
    };
    match src.range(cut.span) {
        Some(r) => item[..r.start].trim_end(),
        None => item,
    }
}

/// For `UPDATE t SET ... [WHERE c]` and `DELETE FROM t [WHERE c]`: the table text (`t`, alias
/// included) and the WHERE clause (`WHERE c`), from depth-0 tokens.
pub(crate) fn write_target(sql: &str) -> Option<(&str, Option<&str>)> {
    let toks = tokens(sql)?;
    let mut depth = 0i32;
    let (mut table_start, mut table_end, mut where_start, mut where_end) = (None, None, None, None);
    for (i, t) in toks.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            tok if depth == 0 => match word(tok).map(|w| w.0) {
                Some(Keyword::UPDATE) if i == 0 => table_start = Some(1),
                Some(Keyword::FROM) if table_start.is_none() => table_start = Some(i + 1),
                Some(Keyword::SET) if table_end.is_none() => table_end = Some(i),
                Some(Keyword::WHERE) => where_start = Some(i),
                Some(Keyword::ORDER | Keyword::LIMIT) if where_end.is_none() => where_end = Some(i),
                _ => {}
            },
            _ => {}
        }
    }
    // Skip UPDATE's modifiers.
    let mut start = table_start?;
    while toks
        .get(start)
        .and_then(|t| word(&t.token))
        .is_some_and(|w| w.1 == "LOW_PRIORITY" || w.1 == "IGNORE")
    {
        start += 1;
    }
    let end = table_end
        .or(where_start)
        .or(where_end)
        .unwrap_or(toks.len());
    if start >= end {
        return None;
    }
    let table = &sql[toks[start].range.start..toks[end - 1].range.end];
    let filter = where_start.map(|w| {
        let last = where_end.unwrap_or(toks.len()) - 1;
        &sql[toks[w].range.start..toks[last].range.end]
    });
    Some((table, filter))
}

/// A valid MySQL statement the parser does not read, named for the client's error (rather than
/// a syntax error): `UPDATE a, b SET ...`.
pub fn unparsed_shape(sql: &str) -> Option<&'static str> {
    let toks = tokens(sql)?;
    if word(&toks.first()?.token)?.1 != "UPDATE" {
        return None;
    }
    let mut depth = 0i32;
    for t in &toks[1..] {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                return Some("UPDATE of several tables listed with commas (join them with JOIN)")
            }
            other if depth == 0 && word(other).is_some_and(|w| w.1 == "SET") => return None,
            _ => {}
        }
    }
    None
}

/// The first words of a statement, upper case, comments left out (`SET SESSION TRANSACTION`
/// and `SET TRANSACTION` parse alike; `START TRANSACTION WITH CONSISTENT SNAPSHOT` not at all).
pub fn leading_words(sql: &str, n: usize) -> Vec<String> {
    tokens(sql)
        .unwrap_or_default()
        .iter()
        .take(n)
        .map(|t| match word(&t.token) {
            Some((_, w)) => w,
            None => t.token.to_string(),
        })
        .collect()
}

/// The statement's last word or quoted identifier, unquoted (`SHOW CREATE DATABASE \`ks\``).
pub(crate) fn last_word(sql: &str) -> Option<String> {
    match &tokens(sql)?.last()?.token {
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

/// `SHOW TABLE STATUS FROM ks LIKE 'x'` → (`SHOW TABLE STATUS  LIKE 'x'`, `Some("ks")`): the
/// statement without the `FROM | IN database` part that may follow its first `at` words (cut
/// at its own tokens), and the database it named.
pub(crate) fn without_from_database(sql: &str, at: usize) -> Option<(String, Option<String>)> {
    let toks = tokens(sql)?;
    if !matches!(
        toks.get(at).and_then(|t| word(&t.token)),
        Some((Keyword::FROM | Keyword::IN, _))
    ) {
        return Some((sql.to_string(), None));
    }
    let Token::Word(name) = &toks.get(at + 1)?.token else {
        return None;
    };
    let (from, to) = (toks[at].range.start, toks[at + 1].range.end);
    Some((
        format!("{}{}", &sql[..from], &sql[to..]),
        Some(name.value.clone()),
    ))
}

/// SQL-level prepared statements (`PREPARE s FROM '…'`, `EXECUTE s USING @a`,
/// `DEALLOCATE PREPARE s`), which the parser does not know in MySQL's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlPrepared {
    /// The statement's text: a string, or the user variable (`@v`) that holds it.
    Prepare {
        name: String,
        text: String,
        from_variable: bool,
    },
    /// The user variables (`@a`) whose values fill the `?`s.
    Execute {
        name: String,
        using: Vec<String>,
    },
    Deallocate {
        name: String,
    },
}

/// `sql` as a [`SqlPrepared`] statement; `None` for other statements.
pub fn sql_prepared(sql: &str) -> Option<SqlPrepared> {
    let toks = tokens(sql)?;
    let kw = |i: usize| toks.get(i).and_then(|t| word(&t.token)).map(|(k, _)| k);
    let name = |i: usize| match &toks.get(i)?.token {
        Token::Word(w) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    match kw(0)? {
        Keyword::PREPARE if kw(2) == Some(Keyword::FROM) && toks.len() == 4 => {
            let (text, from_variable) = match &toks[3].token {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => (s.clone(), false),
                Token::Word(w) if w.value.starts_with('@') && w.quote_style.is_none() => {
                    (w.value.clone(), true)
                }
                _ => return None,
            };
            Some(SqlPrepared::Prepare {
                name: name(1)?,
                text,
                from_variable,
            })
        }
        Keyword::EXECUTE => {
            let mut using = Vec::new();
            if toks.len() > 2 {
                if kw(2) != Some(Keyword::USING) {
                    return None;
                }
                for (i, t) in toks.iter().enumerate().skip(3) {
                    match &t.token {
                        Token::Word(w) if i % 2 == 1 && w.value.starts_with('@') => {
                            using.push(w.value.clone())
                        }
                        Token::Comma if i % 2 == 0 => {}
                        _ => return None,
                    }
                }
            }
            Some(SqlPrepared::Execute {
                name: name(1)?,
                using,
            })
        }
        Keyword::DEALLOCATE | Keyword::DROP
            if kw(1) == Some(Keyword::PREPARE) && toks.len() == 3 =>
        {
            Some(SqlPrepared::Deallocate { name: name(2)? })
        }
        _ => None,
    }
}

/// The statements of a multi-statement query, split at semicolons outside parentheses (quotes
/// and comments are tokens, so their semicolons do not count). Empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let Some(toks) = tokens(sql) else {
        return vec![sql];
    };
    let mut parts = Vec::new();
    let mut start = 0;
    let mut depth = 0i32;
    for t in &toks {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth == 0 => {
                parts.push(sql[start..t.range.start].trim());
                start = t.range.end;
            }
            _ => {}
        }
    }
    parts.push(sql[start..].trim());
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        parts.push("");
    }
    parts
}

/// `SET a = 1, SESSION b := f(x), @c = 'y'` → the name and value text of each assignment, as
/// written (names keep their scope words and `@`s).
pub fn set_assignments(sql: &str) -> Option<Vec<(String, String)>> {
    let toks = tokens(sql)?;
    if toks.first().and_then(|t| word(&t.token)).map(|w| w.0) != Some(Keyword::SET) {
        return None;
    }
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 1;
    let mut eq: Option<usize> = None;
    for i in 1..=toks.len() {
        let at_end = i == toks.len();
        if !at_end {
            match toks[i].token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Eq | Token::Assignment if depth == 0 && eq.is_none() => eq = Some(i),
                _ => {}
            }
        }
        if at_end || (depth == 0 && toks[i].token == Token::Comma) {
            // `NAMES utf8mb4 [COLLATE x]` and `CHARACTER SET x` take no `=`.
            let first = word(&toks[start].token).map(|w| w.0);
            if eq.is_none()
                && matches!(
                    first,
                    Some(Keyword::NAMES | Keyword::CHARACTER | Keyword::CHARSET)
                )
            {
                let value = &sql[toks[(start + 1).min(i - 1)].range.start..toks[i - 1].range.end];
                out.push(("names".to_string(), value.to_string()));
                start = i + 1;
                continue;
            }
            let e = eq.take()?;
            if e <= start || e + 1 >= i {
                return None;
            }
            let name = &sql[toks[start].range.start..toks[e - 1].range.end];
            let value = &sql[toks[e + 1].range.start..toks[i - 1].range.end];
            out.push((name.to_string(), value.to_string()));
            start = i + 1;
        }
    }
    Some(out)
}

/// A subquery's text as the client wrote it, when the parser's spans give all of it.
pub(crate) fn query_text(query: &Query, source: &SourceText<'_>) -> Option<String> {
    let text = source.slice(query.span())?;
    let parsed = Parser::new(&MySqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_query())
        .ok()?;
    (parsed.as_ref() == query).then(|| text.to_string())
}

/// The last stages: ORDER BY, LIMIT, and dropping the hidden columns.
pub(crate) fn sort_limit_drop(
    stages: &mut Vec<Stage>,
    query: &Query,
    keys: Vec<SortKey>,
    hidden: usize,
) -> Result<(), PlanError> {
    if !keys.is_empty() {
        stages.push(Stage::MemorySort { keys });
    }
    if let Some((offset, count)) = limit_of(query)? {
        stages.push(Stage::Limit { offset, count });
    }
    if hidden > 0 {
        stages.push(Stage::DropHidden { count: hidden });
    }
    Ok(())
}

/// The ORDER BY expressions (none without ORDER BY).
pub(crate) fn order_by(query: &Query) -> Result<&[sqlparser::ast::OrderByExpr], PlanError> {
    match &query.order_by {
        None => Ok(&[]),
        Some(order) => match &order.kind {
            OrderByKind::Expressions(exprs) => Ok(exprs),
            OrderByKind::All(_) => Err(unsupported("ORDER BY ALL in a join across shards")),
        },
    }
}

/// An expression's text as the client wrote it (the parser's printer loses escapes), checked to
/// parse back to the same expression.
pub(crate) fn expr_text(expr: &Expr, source: &SourceText<'_>) -> Result<String, PlanError> {
    match expr_range(expr, source) {
        Some(r) => Ok(source.sql()[r].to_string()),
        None => Err(unsupported(format!(
            "rewriting the expression {expr} for a join across shards"
        ))),
    }
}

/// Where an expression's text is in the client's statement (the parser's spans can stop short
/// of closing parentheses), checked to parse back to the same expression.
pub fn expr_range(expr: &Expr, source: &SourceText<'_>) -> Option<std::ops::Range<usize>> {
    let parses_back = |range: &std::ops::Range<usize>| {
        Parser::new(&MySqlDialect {})
            .try_with_sql(&source.sql()[range.clone()])
            .and_then(|mut p| p.parse_expr())
            .is_ok_and(|e| &e == expr)
    };
    // `x IS [NOT] NULL` (TRUE, FALSE, UNKNOWN): the parser's span stops at `x`, so the text is
    // x's and the words after it.
    if let Expr::IsNull(x)
    | Expr::IsNotNull(x)
    | Expr::IsTrue(x)
    | Expr::IsNotTrue(x)
    | Expr::IsFalse(x)
    | Expr::IsNotFalse(x)
    | Expr::IsUnknown(x)
    | Expr::IsNotUnknown(x) = expr
    {
        let inner = expr_range(x, source)?;
        let sql = source.sql();
        let mut at = inner.end;
        for expected in [
            &["IS"][..],
            &["NOT", ""],
            &["NULL", "TRUE", "FALSE", "UNKNOWN"],
        ] {
            let rest = &sql[at..];
            let skipped = rest.len() - rest.trim_start().len();
            let word: String = rest[skipped..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            if expected.iter().any(|e| e.eq_ignore_ascii_case(&word)) {
                at += skipped + word.len();
            } else if !expected.contains(&"") {
                return None;
            }
        }
        let range = inner.start..at;
        return parses_back(&range).then_some(range);
    }
    let range = source
        .range(expr.span())
        .and_then(|r| crate::text::balanced(source.sql(), r.start, r.end))?;
    parses_back(&range).then_some(range)
}

/// Each unaliased select item named as the server names it (a column as the client spelled
/// it, an expression by its text), for a statement that goes to a shard rendered from the AST
/// (which writes expressions its own way) or over derived tables (which would name columns as
/// the derived table does).
pub fn name_items(query: &mut Query, source: &SourceText<'_>) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        let name = match e {
            Expr::Identifier(i) => Some(i.value.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
            _ => expr_range(e, source).map(|r| source.sql()[r].to_string()),
        };
        if let Some(name) = name {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: sqlparser::ast::Ident::with_quote('`', name),
            };
        }
    }
}

pub(crate) fn limit_of(query: &Query) -> Result<Option<(u64, u64)>, PlanError> {
    let number = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let bad = || unsupported("LIMIT with a non-literal value across shards");
    Ok(match &query.limit_clause {
        None => None,
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(bad());
            }
            let off = match offset {
                Some(o) => number(&o.value).ok_or_else(bad)?,
                None => 0,
            };
            match limit {
                Some(l) => Some((off, number(l).ok_or_else(bad)?)),
                None if off > 0 => Some((off, u64::MAX)),
                None => None,
            }
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => Some((
            number(offset).ok_or_else(bad)?,
            number(limit).ok_or_else(bad)?,
        )),
    })
}

pub(crate) fn position_of(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok().filter(|p| *p >= 1),
            _ => None,
        },
        _ => None,
    }
}

/// An expression as an [`EvalExpr`] over merged rows: literals, comparisons, arithmetic, AND, OR,
/// NOT and IS [NOT] NULL here; everything else (columns, aggregates) is `leaf`'s.
pub(crate) fn not_if(negated: bool, e: EvalExpr) -> EvalExpr {
    if negated {
        EvalExpr::Not(Box::new(e))
    } else {
        e
    }
}

pub(crate) fn to_eval(
    expr: &Expr,
    leaf: &mut dyn FnMut(&Expr) -> Result<EvalExpr, PlanError>,
) -> Result<EvalExpr, PlanError> {
    let mut sub = |e: &Expr| to_eval(e, &mut *leaf).map(Box::new);
    Ok(match expr {
        Expr::Nested(e) => return to_eval(e, leaf),
        Expr::Value(v) => EvalExpr::Literal(match &v.value {
            Value::Null => Literal::Null,
            Value::Number(n, _) => match n.parse::<i128>() {
                Ok(i) => Literal::Int(i),
                Err(_) => match Decimal::parse(n.as_bytes()) {
                    Some(d) => Literal::Decimal(d),
                    None => Literal::Float(
                        n.parse()
                            .map_err(|_| unsupported(format!("the number {n} in HAVING")))?,
                    ),
                },
            },
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Literal::Text(s.clone()),
            Value::Boolean(b) => Literal::Int(i128::from(*b)),
            other => return Err(unsupported(format!("{other} in HAVING across shards"))),
        }),
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (sub(left)?, sub(right)?);
            let cmp = |op| EvalExpr::Compare {
                op,
                left: l.clone(),
                right: r.clone(),
            };
            let arith = |op| EvalExpr::Arith {
                op,
                left: l.clone(),
                right: r.clone(),
            };
            match op {
                BinaryOperator::Eq => cmp(CompareOp::Eq),
                BinaryOperator::NotEq => cmp(CompareOp::NotEq),
                BinaryOperator::Lt => cmp(CompareOp::Lt),
                BinaryOperator::LtEq => cmp(CompareOp::LtEq),
                BinaryOperator::Gt => cmp(CompareOp::Gt),
                BinaryOperator::GtEq => cmp(CompareOp::GtEq),
                BinaryOperator::Plus => arith(ArithOp::Add),
                BinaryOperator::Minus => arith(ArithOp::Sub),
                BinaryOperator::Multiply => arith(ArithOp::Mul),
                BinaryOperator::Divide => arith(ArithOp::Div),
                BinaryOperator::And => EvalExpr::And(l, r),
                BinaryOperator::Or => EvalExpr::Or(l, r),
                other => {
                    return Err(unsupported(format!(
                        "the operator {other} in HAVING across shards"
                    )))
                }
            }
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => EvalExpr::Not(sub(expr)?),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => EvalExpr::Neg(sub(expr)?),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("round") => {
            let args = match &f.args {
                sqlparser::ast::FunctionArguments::List(l) if l.clauses.is_empty() => &l.args,
                _ => return leaf(expr),
            };
            fn arg(a: &sqlparser::ast::FunctionArg) -> Option<&Expr> {
                match a {
                    sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(e),
                    ) => Some(e),
                    _ => None,
                }
            }
            let digits = |e: &Expr| match crate::routing::literal(e) {
                Some(vschema::KeyValue::Int(n)) => i32::try_from(n).ok(),
                _ => None,
            };
            match args.as_slice() {
                [x] => EvalExpr::Round {
                    expr: sub(arg(x).ok_or_else(|| unsupported(format!("{expr}")))?)?,
                    digits: 0,
                },
                [x, d] => EvalExpr::Round {
                    expr: sub(arg(x).ok_or_else(|| unsupported(format!("{expr}")))?)?,
                    digits: arg(d).and_then(digits).ok_or_else(|| {
                        unsupported(format!("{expr} without a constant number of digits"))
                    })?,
                },
                _ => return leaf(expr),
            }
        }
        Expr::IsNull(e) => EvalExpr::IsNull {
            expr: sub(e)?,
            negated: false,
        },
        Expr::IsNotNull(e) => EvalExpr::IsNull {
            expr: sub(e)?,
            negated: true,
        },
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let e = sub(expr)?;
            let range = EvalExpr::And(
                Box::new(EvalExpr::Compare {
                    op: CompareOp::GtEq,
                    left: e.clone(),
                    right: sub(low)?,
                }),
                Box::new(EvalExpr::Compare {
                    op: CompareOp::LtEq,
                    left: e,
                    right: sub(high)?,
                }),
            );
            not_if(*negated, range)
        }
        // `x IN (a, b)` is `x = a OR x = b`, NULL when nothing matches and a NULL is listed.
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => {
            let e = sub(expr)?;
            let mut any: Option<EvalExpr> = None;
            for item in list {
                let eq = EvalExpr::Compare {
                    op: CompareOp::Eq,
                    left: e.clone(),
                    right: sub(item)?,
                };
                any = Some(match any {
                    None => eq,
                    Some(a) => EvalExpr::Or(Box::new(a), Box::new(eq)),
                });
            }
            not_if(
                *negated,
                any.ok_or_else(|| unsupported("an empty IN list"))?,
            )
        }
        e => return leaf(e),
    })
}

/// A select item's expression and alias; `None` for `*` and `t.*`.
pub(crate) fn item_expr(item: &SelectItem) -> Option<(&Expr, Option<String>)> {
    match item {
        SelectItem::UnnamedExpr(e) => Some((e, None)),
        SelectItem::ExprWithAlias { expr, alias } => Some((expr, Some(alias.value.clone()))),
        _ => None,
    }
}

/// Whether an expression divides (`/`, AVG): MariaDB carries its value on into arithmetic with
/// more digits than it shows (2/3 is 0.6667 shown, 0.666666666 to `* 3`).
pub(crate) fn carries_quotient(expr: &Expr) -> bool {
    struct Finder;
    impl sqlparser::ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            match expr {
                Expr::BinaryOp {
                    op: sqlparser::ast::BinaryOperator::Divide,
                    ..
                } => std::ops::ControlFlow::Break(()),
                Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("AVG") => {
                    std::ops::ControlFlow::Break(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            }
        }
    }
    sqlparser::ast::Visit::visit(expr, &mut Finder).is_break()
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=`, `<=>`.
pub(crate) fn is_comparison(op: &sqlparser::ast::BinaryOperator) -> bool {
    use sqlparser::ast::BinaryOperator as B;
    matches!(
        op,
        B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::Spaceship
    )
}

/// An expression parsed from text the planner wrote (`MIN(x)`, `WEIGHT_STRING(x)`).
pub(crate) fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&MySqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The operands of comparisons in `expr` (each side of `=`, `<`, ..., IS NULL): where a value
/// counts as it is shown, so a quotient's hidden digits do not matter.
pub(crate) fn compared_operands(expr: &Expr) -> Vec<sqlparser::tokenizer::Span> {
    struct Finder(Vec<sqlparser::tokenizer::Span>);
    impl sqlparser::ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            match expr {
                Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                    self.0.extend([left.span(), right.span()]);
                }
                Expr::IsNull(e) | Expr::IsNotNull(e) => self.0.push(e.span()),
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut finder = Finder(Vec::new());
    let _ = sqlparser::ast::Visit::visit(expr, &mut finder);
    finder.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_select_into_clauses() {
        let sql = "SELECT DISTINCT a, f(b, c) AS x, -d total FROM t WHERE (x, y) IN ((1, 2)) GROUP BY a, 2 WITH ROLLUP HAVING COUNT(*) > 1 ORDER BY x DESC, f(1, 2) LIMIT 5, 10 FOR UPDATE";
        let src = SourceText::new(sql);
        let c = select_clauses(&src).unwrap();
        assert_eq!(c.modifiers, ["DISTINCT"]);
        assert_eq!(c.items, ["a", "f(b, c) AS x", "-d total"]);
        assert_eq!(c.from, "FROM t WHERE (x, y) IN ((1, 2))");
        assert_eq!(c.group_by, ["a", "2"]);
        assert!(c.rollup);
        assert_eq!(c.having, Some("COUNT(*) > 1"));
        assert_eq!(c.order_by, [("x", true), ("f(1, 2)", false)]);
        assert_eq!(c.limit, Some("5, 10"));
        assert_eq!(c.tail, "FOR UPDATE");
    }

    #[test]
    fn statements_split_at_top_level_semicolons() {
        assert_eq!(
            split_statements("SELECT 1; SELECT ';' ; /* ; */ SELECT (2);"),
            ["SELECT 1", "SELECT ';'", "/* ; */ SELECT (2)"]
        );
        assert_eq!(split_statements("SELECT 1"), ["SELECT 1"]);
    }

    #[test]
    fn set_statements() {
        assert_eq!(
            set_assignments(
                "SET SESSION sql_mode = 'ANSI', @@time_zone := '+00:00', @x = CONCAT('a', 'b=c')"
            )
            .unwrap(),
            [
                ("SESSION sql_mode".to_string(), "'ANSI'".to_string()),
                ("@@time_zone".to_string(), "'+00:00'".to_string()),
                ("@x".to_string(), "CONCAT('a', 'b=c')".to_string())
            ]
        );
        // As sqlx sends it.
        assert_eq!(
            set_assignments("SET time_zone='+00:00',NAMES utf8mb4 COLLATE utf8mb4_unicode_ci")
                .unwrap(),
            [
                ("time_zone".to_string(), "'+00:00'".to_string()),
                (
                    "names".to_string(),
                    "utf8mb4 COLLATE utf8mb4_unicode_ci".to_string()
                )
            ]
        );
    }

    #[test]
    fn write_targets() {
        assert_eq!(
            write_target("DELETE FROM users WHERE email = 'a' AND (x = 1)"),
            Some(("users", Some("WHERE email = 'a' AND (x = 1)")))
        );
        assert_eq!(
            write_target("UPDATE LOW_PRIORITY users u SET u.email = 'b' WHERE u.id IN (1, 2)"),
            Some(("users u", Some("WHERE u.id IN (1, 2)")))
        );
        assert_eq!(write_target("DELETE FROM users"), Some(("users", None)));
        assert_eq!(
            write_target("UPDATE t SET a = (SELECT 1 FROM r WHERE z)"),
            Some(("t", None))
        );
    }

    #[test]
    fn alias_stripping() {
        assert_eq!(without_alias("f(b, c) AS x"), "f(b, c)");
        assert_eq!(without_alias("-d total"), "-d");
        assert_eq!(without_alias("a"), "a");
        assert_eq!(without_alias("'lit' AS `weird name`"), "'lit'");
    }

    #[test]
    fn subquery_clauses_stay_inside() {
        let sql = "SELECT (SELECT MAX(x) FROM r ORDER BY 1 LIMIT 1) m FROM t ORDER BY m";
        let c = select_clauses(&SourceText::new(sql)).unwrap();
        assert_eq!(c.items, ["(SELECT MAX(x) FROM r ORDER BY 1 LIMIT 1) m"]);
        assert_eq!(c.order_by, [("m", false)]);
        assert!(c.limit.is_none());
    }
}
