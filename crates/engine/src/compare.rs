//! Ordering rows the way MySQL does: by the column's type for numbers, decimals and temporals, and
//! by collation weights for text ([`Weight`]). The proxy weighs the collations it knows itself
//! when the catalog names the column's collation (general_ci, `_bin`), comparing as PAD SPACE
//! does. For any other text the planner adds a hidden `WEIGHT_STRING(RTRIM(expr))` column next
//! to the key, so every collation the backend knows sorts here as it sorts there (RTRIM for PAD
//! SPACE; a character below the space after a common prefix still sorts as if NO PAD).

use std::cmp::Ordering;

use mysql_common::constants::{ColumnFlags, ColumnType};

use crate::collation::Collation;
use crate::decimal::Decimal;
use crate::{Column, EngineError, Value};

/// How values of a result column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Decimal,
    Float,
    /// DATE, DATETIME, TIMESTAMP: fixed-width text that sorts as it reads.
    DateTime,
    /// TIME: signed, hours may exceed 99.
    Time,
    /// Collated text: compared by its weight column.
    Text,
    /// Binary strings: compared bytewise.
    Binary,
}

impl ColumnKind {
    pub fn of(column: &Column) -> Result<Self, EngineError> {
        use ColumnType::*;
        let unsupported = |what: &str| {
            Err(EngineError::Unsupported(format!(
                "ordering or grouping a {what} column across shards"
            )))
        };
        let flags = column.flags();
        Ok(match column.column_type() {
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => ColumnKind::Int,
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => ColumnKind::Decimal,
            MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => ColumnKind::Float,
            MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2 => ColumnKind::DateTime,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => ColumnKind::Time,
            MYSQL_TYPE_NULL => ColumnKind::Binary,
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => {
                if flags.intersects(ColumnFlags::ENUM_FLAG | ColumnFlags::SET_FLAG) {
                    return unsupported("ENUM or SET");
                }
                match column.character_set() {
                    63 => ColumnKind::Binary,
                    // MySQL 8's 0900 collations and MariaDB's _nopad_ ones do not ignore
                    // trailing spaces; the RTRIM'd weights would be wrong for them.
                    id if id >= 255 => return unsupported(&format!("NO PAD collation (id {id})")),
                    _ => ColumnKind::Text,
                }
            }
            MYSQL_TYPE_BIT => return unsupported("BIT"),
            MYSQL_TYPE_JSON => return unsupported("JSON"),
            MYSQL_TYPE_GEOMETRY => return unsupported("geometry"),
            MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => return unsupported("ENUM or SET"),
            other => return unsupported(&format!("{other:?}")),
        })
    }
}

/// Where one value of a text row lies in its payload; `None` for NULL.
pub(crate) type Span = Option<(u32, u32)>;

/// The spans of a text-protocol row's `columns` values (length-encoded strings, 0xfb for NULL).
pub(crate) fn text_spans(
    payload: &[u8],
    columns: usize,
    out: &mut Vec<Span>,
) -> Result<(), EngineError> {
    if leading_spans(payload, columns, out)? != payload.len() {
        return Err(malformed_row());
    }
    Ok(())
}

/// The spans of a text row's first `columns` values, into `out` (cleared first); the row may
/// hold more. Returns where those values end.
pub(crate) fn leading_spans(
    payload: &[u8],
    columns: usize,
    out: &mut Vec<Span>,
) -> Result<usize, EngineError> {
    out.clear();
    let mut at = 0usize;
    for _ in 0..columns {
        let (span, end) = text_value(payload, at)?;
        out.push(span);
        at = end;
    }
    Ok(at)
}

/// The first `columns` values of a text-protocol row: itself a text row, of those columns.
pub(crate) fn text_prefix(payload: &[u8], columns: usize) -> Result<&[u8], EngineError> {
    let mut at = 0usize;
    for _ in 0..columns {
        at = text_value(payload, at)?.1;
    }
    Ok(&payload[..at])
}

fn malformed_row() -> EngineError {
    EngineError::Bug("a shard sent a malformed row".into())
}

/// The value of a text row starting at `at`: its span, and where the next one starts.
#[inline]
fn text_value(payload: &[u8], at: usize) -> Result<(Span, usize), EngineError> {
    let first = *payload.get(at).ok_or_else(malformed_row)?;
    let (len, header) = match first {
        0xfb => return Ok((None, at + 1)),
        0xfc..=0xfe => {
            let n = match first {
                0xfc => 2,
                0xfd => 3,
                _ => 8,
            };
            let bytes = payload.get(at + 1..at + 1 + n).ok_or_else(malformed_row)?;
            let mut le = [0u8; 8];
            le[..n].copy_from_slice(bytes);
            (u64::from_le_bytes(le) as usize, 1 + n)
        }
        0xff => return Err(malformed_row()),
        short => (usize::from(short), 1),
    };
    let start = at + header;
    let end = start.checked_add(len).filter(|e| *e <= payload.len());
    let end = end.ok_or_else(malformed_row)?;
    Ok((Some((start as u32, end as u32)), end))
}

/// A row to compare: values, or a text row's payload with the spans of its values.
#[derive(Clone, Copy)]
pub(crate) enum RowView<'a> {
    Values(&'a [Value]),
    Text {
        payload: &'a [u8],
        spans: &'a [Span],
    },
}

impl<'a> RowView<'a> {
    /// Value `c` as bytes; `None` for NULL.
    #[inline]
    fn cell(self, c: usize) -> Option<std::borrow::Cow<'a, [u8]>> {
        match self {
            RowView::Values(values) => bytes(&values[c]),
            RowView::Text { payload, spans } => {
                spans[c].map(|(s, e)| std::borrow::Cow::Borrowed(&payload[s as usize..e as usize]))
            }
        }
    }
}

fn bytes(v: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(std::borrow::Cow::Borrowed(b)),
        other => Some(std::borrow::Cow::Owned(
            other.as_sql(true).trim_matches('\'').as_bytes().to_vec(),
        )),
    }
}

/// An integer's text (as a shard sends it, or with spaces around): read directly, this is the
/// sort key of most merges.
#[inline]
fn int_of(v: &[u8]) -> Option<i128> {
    let v = v.trim_ascii();
    let (negative, digits) = match v {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        // Fits a u64 whatever the digits: no 128-bit arithmetic, no overflow checks.
        let mut n: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(d - b'0');
        }
        let n = i128::from(n);
        return Some(if negative { -n } else { n });
    }
    let mut n: i128 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i128::from(d - b'0');
        // Accumulated negative so that i128::MIN itself reads.
        n = n.checked_mul(10)?.checked_sub(d)?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

fn float_of(v: &[u8]) -> Option<f64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// TIME text (`-838:59:59.000000`) as signed microseconds.
fn time_of(v: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, s) = s.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, s));
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = hms.split(':').map(|p| p.parse::<i128>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    let micros: i128 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
    Some(if neg { -total } else { total })
}

/// One ORDER BY / GROUP BY key: the value's column, where a text value's collation weight comes
/// from, and the direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub column: usize,
    pub weight: Weight,
    pub desc: bool,
}

/// Where a text sort key's collation weight comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Nowhere: the key is not text (text without a weight is refused).
    None,
    /// A column the shards fill with `WEIGHT_STRING(RTRIM(key))`.
    Column(usize),
    /// Computed here from the value, by a collation the catalog names.
    Collation(Collation),
}

impl From<Option<usize>> for Weight {
    fn from(column: Option<usize>) -> Self {
        column.map_or(Weight::None, Weight::Column)
    }
}

impl Weight {
    /// The weight column, if the shards send one.
    pub fn column(self) -> Option<usize> {
        match self {
            Weight::Column(c) => Some(c),
            _ => None,
        }
    }

    /// The same weight with its column (if any) moved by `f`.
    pub fn map_column(self, f: impl FnOnce(usize) -> usize) -> Weight {
        match self {
            Weight::Column(c) => Weight::Column(f(c)),
            other => other,
        }
    }
}

/// Compares rows by a list of keys, resolved against the result's columns.
#[derive(Debug, Clone)]
pub(crate) struct Comparator {
    keys: Vec<(SortKey, ColumnKind)>,
}

impl Comparator {
    pub fn new(keys: &[SortKey], columns: &[Column]) -> Result<Self, EngineError> {
        let mut resolved = Vec::with_capacity(keys.len());
        for key in keys {
            let column = columns.get(key.column).ok_or_else(|| {
                EngineError::Bug(format!(
                    "sort key column {} of {}",
                    key.column,
                    columns.len()
                ))
            })?;
            let kind = ColumnKind::of(column)?;
            if kind == ColumnKind::Text {
                match key.weight {
                    Weight::Column(w) if w < columns.len() => {}
                    Weight::Collation(c)
                        if c.binary_flag() == column.flags().contains(ColumnFlags::BINARY_FLAG) => {
                    }
                    Weight::Collation(_) => {
                        return Err(EngineError::Unsupported(format!(
                            "sorting or grouping the text column {}: its collation is not the \
                             one the proxy read from the shard's catalog (changed since?)",
                            key.column + 1
                        )))
                    }
                    // A key the planner could not ask the shards to weigh (a derived table's
                    // column from a UNION, say): refused rather than sorted by bytes.
                    _ => {
                        return Err(EngineError::Unsupported(format!(
                            "sorting or grouping the text column {} without its collation weights",
                            key.column + 1
                        )))
                    }
                }
            }
            resolved.push((key.clone(), kind));
        }
        Ok(Comparator { keys: resolved })
    }

    pub fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        self.keys
            .iter()
            .map(|(key, kind)| {
                let (a, b) = (RowView::Values(a), RowView::Values(b));
                let ord = match (kind, key.weight) {
                    // Weighed as they are compared, nothing stored.
                    (ColumnKind::Text, Weight::Collation(c)) => {
                        match (a.cell(key.column), b.cell(key.column)) {
                            (None, None) => Ordering::Equal,
                            (None, Some(_)) => Ordering::Less,
                            (Some(_), None) => Ordering::Greater,
                            (Some(x), Some(y)) => c.compare(&x, &y),
                        }
                    }
                    _ => compare_one(
                        decode(*kind, key, a),
                        decode(*kind, key, b),
                        || compared(key, *kind, a),
                        || compared(key, *kind, b),
                    ),
                };
                if key.desc {
                    ord.reverse()
                } else {
                    ord
                }
            })
            .find(|ord| *ord != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    }

    /// How many leading columns of a row the keys read.
    pub fn columns_read(&self) -> usize {
        let last =
            |(key, kind): &(SortKey, ColumnKind)| compared_column(key, *kind).max(key.column);
        self.keys.iter().map(last).max().map_or(0, |c| c + 1)
    }

    /// Refuses a row whose text keys the shards weigh (the collation is not known here) and
    /// that holds a character some collations sort below the space: PAD SPACE orders `a\t`
    /// before `a`, the shards' weights compared here would not (see [`below_space`]).
    pub fn check(&self, row: &[Value]) -> Result<(), EngineError> {
        self.check_view(RowView::Values(row))
    }

    fn check_view(&self, row: RowView<'_>) -> Result<(), EngineError> {
        for (key, kind) in &self.keys {
            if let (ColumnKind::Text, Weight::Column(_)) = (kind, key.weight) {
                if let Some(value) = row.cell(key.column).filter(|v| below_space(v)) {
                    return Err(EngineError::Unsupported(format!(
                        "ordering text holding a control character ('{}') across shards by a \
                         collation the proxy does not know (the column's collation is not \
                         utf8mb4/utf8mb3 general_ci or _bin, or the key is an expression)",
                        String::from_utf8_lossy(&value).escape_debug()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Decodes `row`'s sort keys into `out`, which owns them: a row compared many times (the
    /// head of a shard's stream in a merge) is parsed once, and comparing needs the row no more.
    /// Refuses the rows [`Comparator::check`] refuses.
    pub fn decode_keys(&self, row: RowView<'_>, out: &mut SortKeys) -> Result<(), EngineError> {
        self.check_view(row)?;
        out.keys.clear();
        out.bytes.clear();
        for (key, kind) in &self.keys {
            let value = row.cell(key.column);
            let decoded = parse_key(*kind, key, value.as_deref());
            let start = out.bytes.len() as u32;
            match (kind, key.weight) {
                (ColumnKind::Text, Weight::Collation(c)) => {
                    c.weigh(value.as_deref().unwrap_or_default(), &mut out.bytes)
                }
                _ => {
                    let compared = match compared_column(key, *kind) {
                        c if c == key.column => value,
                        weight => row.cell(weight),
                    };
                    out.bytes
                        .extend_from_slice(compared.as_deref().unwrap_or_default());
                }
            }
            out.keys.push((decoded, start, out.bytes.len() as u32));
        }
        Ok(())
    }

    /// [`Comparator::compare`] over keys decoded by [`Comparator::decode_keys`].
    pub fn compare_keys(&self, a: &SortKeys, b: &SortKeys) -> Ordering {
        for ((key, _), (ka, kb)) in self.keys.iter().zip(a.keys.iter().zip(&b.keys)) {
            let ord = compare_one(ka.0, kb.0, || a.bytes_of(ka), || b.bytes_of(kb));
            let ord = if key.desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// A row's sort keys, parsed, with the bytes each compares by when it compares as bytes. Reused
/// from row to row.
#[derive(Debug, Default)]
pub(crate) struct SortKeys {
    /// Each key and where its bytes lie in `bytes`.
    keys: Vec<(Decoded, u32, u32)>,
    bytes: Vec<u8>,
}

impl SortKeys {
    fn bytes_of(&self, &(_, start, end): &(Decoded, u32, u32)) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }
}

/// One sort key of a row, parsed as its column's kind.
#[derive(Debug, Clone, Copy)]
enum Decoded {
    Null,
    Int(i128),
    Decimal(Decimal),
    Float(f64),
    /// TIME as signed microseconds.
    Time(i128),
    /// Compared as bytes (see [`compared`]).
    Bytes,
    /// Weights of this collation, compared as MySQL compares PAD SPACE text: the shorter as if
    /// padded with spaces' weights, so `a\t` sorts before `a`.
    Padded(Collation),
}

fn decode(kind: ColumnKind, key: &SortKey, row: RowView<'_>) -> Decoded {
    parse_key(kind, key, row.cell(key.column).as_deref())
}

/// A key's value parsed as its column's kind, and text the proxy weighs marked as padded.
fn parse_key(kind: ColumnKind, key: &SortKey, value: Option<&[u8]>) -> Decoded {
    match (kind, key.weight, value) {
        (ColumnKind::Text, Weight::Collation(c), Some(_)) => Decoded::Padded(c),
        _ => parse(kind, value),
    }
}

/// A key's value (`None` for NULL) parsed as its column's kind.
fn parse(kind: ColumnKind, value: Option<&[u8]>) -> Decoded {
    let Some(v) = value else {
        return Decoded::Null;
    };
    let parsed = match kind {
        ColumnKind::Int => int_of(v).map(Decoded::Int),
        ColumnKind::Decimal => Decimal::parse(v).map(Decoded::Decimal),
        ColumnKind::Float => float_of(v).map(Decoded::Float),
        ColumnKind::Time => time_of(v).map(Decoded::Time),
        ColumnKind::DateTime | ColumnKind::Binary | ColumnKind::Text => None,
    };
    parsed.unwrap_or(Decoded::Bytes)
}

/// The bytes a key compares by when it compares as bytes: a text value's collation weight (an
/// absent weight counts as empty), any other value itself.
fn compared<'a>(key: &SortKey, kind: ColumnKind, row: RowView<'a>) -> std::borrow::Cow<'a, [u8]> {
    row.cell(compared_column(key, kind)).unwrap_or_default()
}

/// The column whose bytes a key compares by: a text value's weight column, any other value's own
/// (and a text value's own when the proxy weighs it).
fn compared_column(key: &SortKey, kind: ColumnKind) -> usize {
    match (kind, key.weight) {
        (ColumnKind::Text, Weight::Column(weight)) => weight,
        _ => key.column,
    }
}

/// Whether text holds a character that some collation orders below the space: the C0
/// controls (tab, newline, ...) everywhere, and NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR in
/// the Unicode Collation Algorithm's.
fn below_space(text: &[u8]) -> bool {
    text.iter().any(|b| *b < b' ')
        || text
            .windows(3)
            .any(|w| w[..2] == [0xC2, 0x85] || w == [0xE2, 0x80, 0xA8] || w == [0xE2, 0x80, 0xA9])
        || text.ends_with(&[0xC2, 0x85])
}

/// Compares one key of two rows. NULL sorts first; a value that did not parse as its column's
/// kind (which a well-typed column cannot hold) makes both compare as bytes. Text keys always
/// decode as bytes, so a weight is never compared with a value.
fn compare_one<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    ka: Decoded,
    kb: Decoded,
    a: impl FnOnce() -> A,
    b: impl FnOnce() -> B,
) -> Ordering {
    use Decoded::*;
    match (ka, kb) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Int(x), Int(y)) | (Time(x), Time(y)) => x.cmp(&y),
        (Decimal(x), Decimal(y)) => x.cmp_value(&y),
        (Float(x), Float(y)) => x.total_cmp(&y),
        (Padded(c), Padded(_)) => c.cmp_weights(a().as_ref(), b().as_ref()),
        _ => a().as_ref().cmp(b().as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: ColumnType, charset: u16) -> Column {
        Column::new(t).with_character_set(charset)
    }

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    fn cmp(t: ColumnType, x: &str, y: &str) -> Ordering {
        let c = Comparator::new(
            &[SortKey {
                column: 0,
                weight: Weight::None,
                desc: false,
            }],
            &[col(t, 63)],
        )
        .unwrap();
        c.compare(&[b(x)], &[b(y)])
    }

    #[test]
    fn weighed_text_compares_as_pad_space() {
        for (collation, flags) in [
            (Collation::GeneralCi, ColumnFlags::empty()),
            (Collation::Bin, ColumnFlags::BINARY_FLAG),
        ] {
            let column = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
                .with_character_set(45)
                .with_flags(flags);
            let c = Comparator::new(
                &[SortKey {
                    column: 0,
                    weight: Weight::Collation(collation),
                    desc: false,
                }],
                &[column],
            )
            .unwrap();
            let cmp = |x: &str, y: &str| {
                let keys = |v: &str| {
                    let mut k = SortKeys::default();
                    c.decode_keys(RowView::Values(&[b(v)]), &mut k).unwrap();
                    k
                };
                let by_keys = c.compare_keys(&keys(x), &keys(y));
                assert_eq!(by_keys, c.compare(&[b(x)], &[b(y)]), "{x:?} {y:?}");
                by_keys
            };
            // As MariaDB orders them: what follows a common prefix is compared with spaces.
            assert_eq!(cmp("a\t", "a"), Ordering::Less, "{collation:?}");
            assert_eq!(cmp("a", "a\u{1}b"), Ordering::Greater, "{collation:?}");
            assert_eq!(cmp("a", "a "), Ordering::Equal, "{collation:?}");
            assert_eq!(cmp("a", "a  b"), Ordering::Less, "{collation:?}");
            assert_eq!(cmp("a b", "a"), Ordering::Greater, "{collation:?}");
            assert_eq!(cmp("", " "), Ordering::Equal, "{collation:?}");
            // Accents: general_ci weighs é as E; _bin by code point, after z.
            let accent = match collation {
                Collation::GeneralCi => Ordering::Less,
                Collation::Bin => Ordering::Greater,
            };
            assert_eq!(cmp("é", "z"), accent);
        }
        // A collation the result's flags contradict is refused.
        let plain = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_character_set(45);
        let key = SortKey {
            column: 0,
            weight: Weight::Collation(Collation::Bin),
            desc: false,
        };
        assert!(Comparator::new(&[key], &[plain]).is_err());
    }

    #[test]
    fn text_the_shards_weigh_with_a_control_character_is_refused() {
        assert!(below_space(b"a\tb") && below_space(b"\n"));
        assert!(below_space("a\u{85}".as_bytes()) && below_space("\u{2028}x".as_bytes()));
        assert!(!below_space("a b é 中 😀".as_bytes()));
        let column = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_character_set(45);
        let weight = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_character_set(63);
        let c = Comparator::new(
            &[SortKey {
                column: 0,
                weight: Weight::Column(1),
                desc: false,
            }],
            &[column, weight],
        )
        .unwrap();
        assert!(c.check(&[b("a b"), b("w")]).is_ok());
        assert!(c.check(&[b("a\t"), b("w")]).is_err());
        let mut keys = SortKeys::default();
        assert!(c
            .decode_keys(RowView::Values(&[b("x\ny"), b("w")]), &mut keys)
            .is_err());
    }

    #[test]
    fn integers_read_as_mysql_writes_them() {
        assert_eq!(int_of(b"0"), Some(0));
        assert_eq!(int_of(b"-42"), Some(-42));
        assert_eq!(int_of(b" +7 "), Some(7));
        assert_eq!(int_of(i128::MIN.to_string().as_bytes()), Some(i128::MIN));
        assert_eq!(int_of(i128::MAX.to_string().as_bytes()), Some(i128::MAX));
        assert_eq!(int_of(b"170141183460469231731687303715884105728"), None);
        assert_eq!(int_of(b"18446744073709551615"), Some(u64::MAX.into()));
        // Either side of the 18 digits read without 128-bit arithmetic.
        assert_eq!(
            int_of(b"-999999999999999999"),
            Some(-999_999_999_999_999_999)
        );
        assert_eq!(
            int_of(b"1000000000000000000"),
            Some(1_000_000_000_000_000_000)
        );
        assert_eq!(
            int_of(i64::MIN.to_string().as_bytes()),
            Some(i64::MIN.into())
        );
        assert_eq!(int_of(b"000000000000000007"), Some(7));
        for bad in [&b""[..], b"-", b"+", b"1a", b"1 2", b"--1", b"1.0"] {
            assert_eq!(int_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_compare_by_value_not_text() {
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_LONGLONG, "9", "10"),
            Ordering::Less
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_LONGLONG, "-10", "-9"),
            Ordering::Less
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_LONGLONG, "18446744073709551615", "1"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_NEWDECIMAL, "10.50", "9.999"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_NEWDECIMAL, "1.10", "1.1"),
            Ordering::Equal
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_DOUBLE, "1e3", "999.5"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_TIME, "-01:00:00", "00:59:59"),
            Ordering::Less
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_TIME, "100:00:00", "99:59:59.5"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(
                ColumnType::MYSQL_TYPE_DATETIME,
                "2024-01-02 00:00:00",
                "2023-12-31 23:59:59"
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn nulls_first_ascending_last_descending() {
        let asc = Comparator::new(
            &[SortKey {
                column: 0,
                weight: Weight::None,
                desc: false,
            }],
            &[col(ColumnType::MYSQL_TYPE_LONG, 63)],
        )
        .unwrap();
        assert_eq!(asc.compare(&[Value::NULL], &[b("-5")]), Ordering::Less);
        let desc = Comparator::new(
            &[SortKey {
                column: 0,
                weight: Weight::None,
                desc: true,
            }],
            &[col(ColumnType::MYSQL_TYPE_LONG, 63)],
        )
        .unwrap();
        assert_eq!(desc.compare(&[Value::NULL], &[b("-5")]), Ordering::Greater);
    }

    #[test]
    fn text_compares_by_weight_and_ties_fall_through() {
        let columns = [
            col(ColumnType::MYSQL_TYPE_VAR_STRING, 45),
            col(ColumnType::MYSQL_TYPE_LONG, 63),
            col(ColumnType::MYSQL_TYPE_VAR_STRING, 63),
        ];
        let keys = [
            SortKey {
                column: 0,
                weight: Weight::Column(2),
                desc: false,
            },
            SortKey {
                column: 1,
                weight: Weight::None,
                desc: false,
            },
        ];
        let c = Comparator::new(&keys, &columns).unwrap();
        // 'a' and 'A' have the same weight: the second key decides.
        assert_eq!(
            c.compare(&[b("a"), b("2"), b("\x00A")], &[b("A"), b("1"), b("\x00A")]),
            Ordering::Greater
        );
        assert_eq!(
            c.compare(&[b("b"), b("1"), b("\x00B")], &[b("A"), b("9"), b("\x00A")]),
            Ordering::Greater
        );
        // A text key without a weight column is refused, never sorted by bytes.
        assert!(Comparator::new(
            &keys[..1]
                .iter()
                .map(|k| SortKey {
                    weight: Weight::None,
                    ..k.clone()
                })
                .collect::<Vec<_>>(),
            &columns
        )
        .is_err());
    }

    #[test]
    fn decoded_keys_order_rows_as_the_values_do() {
        let columns = [
            col(ColumnType::MYSQL_TYPE_LONGLONG, 63),
            col(ColumnType::MYSQL_TYPE_NEWDECIMAL, 63),
            col(ColumnType::MYSQL_TYPE_TIME, 63),
            col(ColumnType::MYSQL_TYPE_VAR_STRING, 45),
            col(ColumnType::MYSQL_TYPE_VAR_STRING, 63),
        ];
        let key = |column, weight, desc| SortKey {
            column,
            weight,
            desc,
        };
        let c = Comparator::new(
            &[
                key(0, Weight::None, false),
                key(1, Weight::None, true),
                key(2, Weight::None, false),
                key(3, Weight::Column(4), false),
            ],
            &columns,
        )
        .unwrap();
        let ints = [Value::NULL, b("-3"), b("10"), b("9"), b("not a number")];
        let decimals = [Value::NULL, b("1.50"), b("1.5"), b("-0.25")];
        let times = [b("-01:00:00"), b("00:59:59.5")];
        let texts = [
            (Value::NULL, Value::NULL),
            (b("a"), b("\x00A")),
            (b("B"), b("\x00B")),
            (b("b"), Value::NULL),
        ];
        let mut rows = Vec::new();
        for i in &ints {
            for d in &decimals {
                for t in &times {
                    for (text, weight) in &texts {
                        rows.push(vec![
                            i.clone(),
                            d.clone(),
                            t.clone(),
                            text.clone(),
                            weight.clone(),
                        ]);
                    }
                }
            }
        }
        let decode = |row: RowView<'_>| {
            let mut keys = SortKeys::default();
            c.decode_keys(row, &mut keys).unwrap();
            keys
        };
        let decoded: Vec<SortKeys> = rows.iter().map(|r| decode(RowView::Values(r))).collect();
        // The same rows as the shards send them: text payloads, read through their spans.
        let payloads: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| {
                let mut p = Vec::new();
                for v in r {
                    match v {
                        Value::Bytes(b) => {
                            p.push(b.len() as u8);
                            p.extend_from_slice(b);
                        }
                        _ => p.push(0xfb),
                    }
                }
                p
            })
            .collect();
        let spans: Vec<Vec<Span>> = payloads
            .iter()
            .map(|p| {
                let mut spans = Vec::new();
                text_spans(p, columns.len(), &mut spans).unwrap();
                spans
            })
            .collect();
        let text = |i: usize| RowView::Text {
            payload: &payloads[i],
            spans: &spans[i],
        };
        let text_keys: Vec<SortKeys> = (0..rows.len()).map(|i| decode(text(i))).collect();
        let mut orders = [0; 3];
        for (i, (a, ka)) in rows.iter().zip(&decoded).enumerate() {
            for (j, (b, kb)) in rows.iter().zip(&decoded).enumerate() {
                let ord = c.compare(a, b);
                assert_eq!(c.compare_keys(ka, kb), ord, "{a:?} vs {b:?}");
                let (ta, tb) = (&text_keys[i], &text_keys[j]);
                assert_eq!(c.compare_keys(ta, tb), ord, "{a:?} vs {b:?} as text");
                orders[(ord as i8 + 1) as usize] += 1;
            }
        }
        // A payload that does not hold its columns is an error, not a misread.
        let mut spans = Vec::new();
        assert!(text_spans(b"\x05ab", 1, &mut spans).is_err());
        assert!(text_spans(b"\x01a\x01b", 1, &mut spans).is_err());
        assert!(text_spans(b"\x01a", 2, &mut spans).is_err());
        text_spans(b"\xfc\x03\x00abc\xfb", 2, &mut spans).unwrap();
        assert_eq!(spans, [Some((3, 6)), None]);
        // The helper columns after the kept ones are cut off.
        assert_eq!(text_prefix(b"\x01a\xfb\x02wt", 2).unwrap(), b"\x01a\xfb");
        assert!(text_prefix(b"\x01a", 2).is_err());
        // Every outcome occurs, so the agreement above is not vacuous.
        assert!(orders.iter().all(|n| *n > 0), "{orders:?}");
        assert_eq!(
            c.compare(&rows[32 + 8], &rows[32 + 16]),
            Ordering::Equal,
            "1.50 and 1.5 are one decimal"
        );
    }

    #[test]
    fn enum_and_nopad_collations_are_refused() {
        let e = Column::new(ColumnType::MYSQL_TYPE_STRING)
            .with_flags(ColumnFlags::ENUM_FLAG)
            .with_character_set(45);
        assert!(ColumnKind::of(&e).is_err());
        assert!(ColumnKind::of(&col(ColumnType::MYSQL_TYPE_VAR_STRING, 255)).is_err());
    }
}
