//! The binary protocol's values: parameters of COM_STMT_EXECUTE in, result rows out.
//!
//! Rows reach the writer mostly as text (`Value::Bytes` from the shards' text results); each value
//! is encoded in the form its column type demands, parsing the text where needed.

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::value::Value;

use crate::writer::{put_lenenc_int, value_text as text_of};
use crate::Param;

/// Why a parameter block or a value could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BinaryError(pub String);

fn err(m: impl Into<String>) -> BinaryError {
    BinaryError(m.into())
}

/// A parameter's declared type, as sent with `new_params_bound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParamType {
    pub kind: ColumnType,
    pub unsigned: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BinaryError> {
        if self.buf.len() < n {
            return Err(err("parameter data is truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BinaryError> {
        Ok(self.take(1)?[0])
    }

    fn lenenc_int(&mut self) -> Result<u64, BinaryError> {
        let first = self.u8()?;
        let n = match first {
            0..=0xfa => return Ok(u64::from(first)),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            _ => return Err(err("bad length-encoded integer in parameter data")),
        };
        let mut bytes = [0u8; 8];
        bytes[..n].copy_from_slice(self.take(n)?);
        Ok(u64::from_le_bytes(bytes))
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

/// The parameter block of COM_STMT_EXECUTE after the statement id, flags and iteration count:
/// NULL bitmap, `new_params_bound`, types, values. `types` holds the types bound by an earlier
/// execution and is updated when new ones are sent. `long_data` holds COM_STMT_SEND_LONG_DATA
/// values, which are not repeated in the packet.
pub(crate) fn decode_params(
    data: &[u8],
    count: usize,
    types: &mut Vec<ParamType>,
    long_data: &[Option<Vec<u8>>],
) -> Result<Vec<Param>, BinaryError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut r = Reader { buf: data };
    let nulls = r.take(count.div_ceil(8))?;
    if r.u8()? == 1 {
        let mut new = Vec::with_capacity(count);
        for _ in 0..count {
            let [kind, flags] = r.le::<2>()?;
            let kind = ColumnType::try_from(kind)
                .map_err(|_| err(format!("unknown parameter type {kind}")))?;
            new.push(ParamType {
                kind,
                unsigned: flags & 0x80 != 0,
            });
        }
        *types = new;
    }
    if types.len() != count {
        return Err(err("parameter types were never sent"));
    }
    let mut values = Vec::with_capacity(count);
    for (i, t) in types.iter().enumerate() {
        let value = if nulls[i / 8] & (1 << (i % 8)) != 0 {
            Value::NULL
        } else if let Some(Some(data)) = long_data.get(i) {
            Value::Bytes(data.clone())
        } else {
            decode_value(&mut r, *t)?
        };
        values.push(Param {
            value,
            column_type: t.kind,
        });
    }
    Ok(values)
}

fn decode_value(r: &mut Reader<'_>, t: ParamType) -> Result<Value, BinaryError> {
    use ColumnType::*;
    let int = |v: i64, u: u64| {
        if t.unsigned {
            Value::UInt(u)
        } else {
            Value::Int(v)
        }
    };
    Ok(match t.kind {
        MYSQL_TYPE_NULL => Value::NULL,
        MYSQL_TYPE_TINY => {
            let b = r.u8()?;
            int(i64::from(b as i8), u64::from(b))
        }
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => {
            let b = r.le::<2>()?;
            int(
                i64::from(i16::from_le_bytes(b)),
                u64::from(u16::from_le_bytes(b)),
            )
        }
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => {
            let b = r.le::<4>()?;
            int(
                i64::from(i32::from_le_bytes(b)),
                u64::from(u32::from_le_bytes(b)),
            )
        }
        MYSQL_TYPE_LONGLONG => {
            let b = r.le::<8>()?;
            int(i64::from_le_bytes(b), u64::from_le_bytes(b))
        }
        MYSQL_TYPE_FLOAT => Value::Float(f32::from_le_bytes(r.le::<4>()?)),
        MYSQL_TYPE_DOUBLE => Value::Double(f64::from_le_bytes(r.le::<8>()?)),
        MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_NEWDATE => {
            let len = r.u8()?;
            let d = r.take(usize::from(len))?;
            match len {
                0 => Value::Date(0, 0, 0, 0, 0, 0, 0),
                4 | 7 | 11 => {
                    let year = u16::from_le_bytes([d[0], d[1]]);
                    let (h, mi, s) = if len >= 7 {
                        (d[4], d[5], d[6])
                    } else {
                        (0, 0, 0)
                    };
                    let us = if len == 11 {
                        u32::from_le_bytes([d[7], d[8], d[9], d[10]])
                    } else {
                        0
                    };
                    Value::Date(year, d[2], d[3], h, mi, s, us)
                }
                _ => return Err(err(format!("bad DATETIME parameter length {len}"))),
            }
        }
        MYSQL_TYPE_TIME => {
            let len = r.u8()?;
            let d = r.take(usize::from(len))?;
            match len {
                0 => Value::Time(false, 0, 0, 0, 0, 0),
                8 | 12 => {
                    let days = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
                    let us = if len == 12 {
                        u32::from_le_bytes([d[8], d[9], d[10], d[11]])
                    } else {
                        0
                    };
                    Value::Time(d[0] == 1, days, d[5], d[6], d[7], us)
                }
                _ => return Err(err(format!("bad TIME parameter length {len}"))),
            }
        }
        // Everything else (strings, blobs, DECIMAL, JSON, ENUM, SET, BIT, GEOMETRY) is a
        // length-encoded byte string.
        _ => {
            let len = r.lenenc_int()?;
            let len = usize::try_from(len).map_err(|_| err("parameter too long"))?;
            Value::Bytes(r.take(len)?.to_vec())
        }
    })
}

/// One result row in the binary protocol: header, NULL bitmap (offset 2), values.
pub(crate) fn encode_row(
    buf: &mut Vec<u8>,
    types: &[(ColumnType, ColumnFlags)],
    values: &[Value],
) -> Result<(), BinaryError> {
    buf.push(0x00);
    let bitmap_at = buf.len();
    buf.resize(bitmap_at + (values.len() + 7 + 2) / 8, 0);
    for (i, v) in values.iter().enumerate() {
        if matches!(v, Value::NULL) {
            let bit = i + 2;
            buf[bitmap_at + bit / 8] |= 1 << (bit % 8);
            continue;
        }
        let (kind, flags) = types
            .get(i)
            .copied()
            .unwrap_or((ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty()));
        encode_value(buf, kind, flags.contains(ColumnFlags::UNSIGNED_FLAG), v)?;
    }
    Ok(())
}

fn parse<T: std::str::FromStr>(v: &Value) -> Result<T, BinaryError> {
    let text = text_of(v);
    std::str::from_utf8(&text)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            err(format!(
                "value {:?} does not fit its column type",
                String::from_utf8_lossy(&text)
            ))
        })
}

/// An integer value in `width` bytes, two's complement (the unsigned flag only changes how the
/// client reads it).
fn put_int(buf: &mut Vec<u8>, v: &Value, unsigned: bool, width: usize) -> Result<(), BinaryError> {
    let bits: u64 = match v {
        Value::Int(i) => *i as u64,
        Value::UInt(u) => *u,
        _ if unsigned => parse::<u64>(v)?,
        _ => parse::<i64>(v)? as u64,
    };
    buf.extend_from_slice(&bits.to_le_bytes()[..width]);
    Ok(())
}

fn encode_value(
    buf: &mut Vec<u8>,
    kind: ColumnType,
    unsigned: bool,
    v: &Value,
) -> Result<(), BinaryError> {
    use ColumnType::*;
    match kind {
        MYSQL_TYPE_TINY => put_int(buf, v, unsigned, 1),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => put_int(buf, v, unsigned, 2),
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => put_int(buf, v, unsigned, 4),
        MYSQL_TYPE_LONGLONG => put_int(buf, v, unsigned, 8),
        MYSQL_TYPE_FLOAT => {
            let f = match v {
                Value::Float(f) => *f,
                Value::Double(d) => *d as f32,
                _ => parse::<f32>(v)?,
            };
            buf.extend_from_slice(&f.to_le_bytes());
            Ok(())
        }
        MYSQL_TYPE_DOUBLE => {
            let f = match v {
                Value::Double(d) => *d,
                Value::Float(f) => f64::from(*f),
                _ => parse::<f64>(v)?,
            };
            buf.extend_from_slice(&f.to_le_bytes());
            Ok(())
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_NEWDATE => {
            let (y, mo, d, h, mi, s, us) = match v {
                Value::Date(y, mo, d, h, mi, s, us) => (*y, *mo, *d, *h, *mi, *s, *us),
                _ => parse_datetime(&text_of(v))?,
            };
            if us != 0 {
                buf.push(11);
            } else if h != 0 || mi != 0 || s != 0 {
                buf.push(7);
            } else if y != 0 || mo != 0 || d != 0 {
                buf.push(4);
            } else {
                buf.push(0);
                return Ok(());
            }
            buf.extend_from_slice(&y.to_le_bytes());
            buf.extend_from_slice(&[mo, d]);
            if h != 0 || mi != 0 || s != 0 || us != 0 {
                buf.extend_from_slice(&[h, mi, s]);
            }
            if us != 0 {
                buf.extend_from_slice(&us.to_le_bytes());
            }
            Ok(())
        }
        MYSQL_TYPE_TIME => {
            let (neg, days, h, mi, s, us) = match v {
                Value::Time(neg, days, h, mi, s, us) => (*neg, *days, *h, *mi, *s, *us),
                _ => parse_time(&text_of(v))?,
            };
            if days == 0 && h == 0 && mi == 0 && s == 0 && us == 0 {
                buf.push(0);
                return Ok(());
            }
            buf.push(if us != 0 { 12 } else { 8 });
            buf.push(u8::from(neg));
            buf.extend_from_slice(&days.to_le_bytes());
            buf.extend_from_slice(&[h, mi, s]);
            if us != 0 {
                buf.extend_from_slice(&us.to_le_bytes());
            }
            Ok(())
        }
        _ => {
            let text = text_of(v);
            put_lenenc_int(buf, text.len() as u64);
            buf.extend_from_slice(&text);
            Ok(())
        }
    }
}

type DateParts = (u16, u8, u8, u8, u8, u8, u32);

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`, as MySQL prints DATE, DATETIME and TIMESTAMP.
fn parse_datetime(text: &[u8]) -> Result<DateParts, BinaryError> {
    let bad = || {
        err(format!(
            "bad date value {:?}",
            String::from_utf8_lossy(text)
        ))
    };
    let s = std::str::from_utf8(text).map_err(|_| bad())?;
    let (date, time) = s.split_once(' ').unwrap_or((s, ""));
    let mut d = date.split('-').map(|p| p.parse::<u32>().map_err(|_| bad()));
    let (y, mo, day) = (
        d.next().ok_or_else(bad)??,
        d.next().ok_or_else(bad)??,
        d.next().ok_or_else(bad)??,
    );
    let (h, mi, sec, us) = if time.is_empty() {
        (0, 0, 0, 0)
    } else {
        let (_, h, mi, sec, us) = parse_clock(time).ok_or_else(bad)?;
        (h, mi, sec, us)
    };
    Ok((
        u16::try_from(y).map_err(|_| bad())?,
        mo as u8,
        day as u8,
        h as u8,
        mi,
        sec,
        us,
    ))
}

/// `[-]H:MM:SS[.ffffff]` with any number of hour digits → (negative, hours, minutes, seconds, µs).
fn parse_clock(s: &str) -> Option<(bool, u32, u8, u8, u32)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = hms.split(':');
    let h = parts.next()?.parse().ok()?;
    let mi = parts.next()?.parse().ok()?;
    let sec = parts.next()?.parse().ok()?;
    let us = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        digits.parse().ok()?
    };
    Some((neg, h, mi, sec, us))
}

fn parse_time(text: &[u8]) -> Result<(bool, u32, u8, u8, u8, u32), BinaryError> {
    let bad = || {
        err(format!(
            "bad time value {:?}",
            String::from_utf8_lossy(text)
        ))
    };
    let s = std::str::from_utf8(text).map_err(|_| bad())?;
    let (neg, h, mi, sec, us) = parse_clock(s).ok_or_else(bad)?;
    Ok((neg, h / 24, (h % 24) as u8, mi, sec, us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values_of(params: Vec<Param>) -> Vec<Value> {
        params.into_iter().map(|p| p.value).collect()
    }

    fn t(kind: ColumnType) -> ParamType {
        ParamType {
            kind,
            unsigned: false,
        }
    }

    #[test]
    fn params_with_types_nulls_and_long_data() {
        // 3 params: LONGLONG 7, NULL, VAR_STRING from long data.
        let mut data = vec![0b010, 1];
        data.extend_from_slice(&[8, 0, 6, 0, 253, 0]);
        data.extend_from_slice(&7i64.to_le_bytes());
        let mut types = Vec::new();
        let long = vec![None, None, Some(b"big".to_vec())];
        let values = values_of(decode_params(&data, 3, &mut types, &long).unwrap());
        assert_eq!(
            values,
            vec![Value::Int(7), Value::NULL, Value::Bytes(b"big".to_vec())]
        );
        // A second execution without types reuses them.
        let mut again = vec![0b010, 0];
        again.extend_from_slice(&9i64.to_le_bytes());
        again.extend_from_slice(&[1, b'x']);
        let values = values_of(decode_params(&again, 3, &mut types, &[]).unwrap());
        assert_eq!(
            values,
            vec![Value::Int(9), Value::NULL, Value::Bytes(b"x".to_vec())]
        );
    }

    #[test]
    fn params_truncated_or_untyped_are_errors() {
        let mut types = Vec::new();
        assert!(decode_params(&[0, 0], 1, &mut types, &[]).is_err());
        assert!(decode_params(&[0, 1, 3, 0, 1], 1, &mut types, &[]).is_err());
        assert!(decode_params(&[0, 1, 0xee, 0], 1, &mut types, &[]).is_err());
        let mut types = vec![t(ColumnType::MYSQL_TYPE_VAR_STRING)];
        assert!(decode_params(&[0, 0, 0xfc, 0xff], 1, &mut types, &[]).is_err());
    }

    #[test]
    fn dates_and_times_round_trip() {
        let mut types = Vec::new();
        let mut data = vec![0, 1, 12, 0, 11, 0];
        data.extend_from_slice(&[11, 0xe8, 0x07, 2, 29, 13, 14, 15, 0x40, 0xe2, 0x01, 0]);
        data.extend_from_slice(&[8, 1, 1, 0, 0, 0, 2, 3, 4]);
        let values = values_of(decode_params(&data, 2, &mut types, &[]).unwrap());
        assert_eq!(
            values,
            vec![
                Value::Date(2024, 2, 29, 13, 14, 15, 123456),
                Value::Time(true, 1, 2, 3, 4, 0)
            ]
        );
    }

    #[test]
    fn rows_from_text_values() {
        let types = [
            (ColumnType::MYSQL_TYPE_LONG, ColumnFlags::empty()),
            (ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty()),
            (ColumnType::MYSQL_TYPE_DATETIME, ColumnFlags::empty()),
            (ColumnType::MYSQL_TYPE_TIME, ColumnFlags::empty()),
            (ColumnType::MYSQL_TYPE_DOUBLE, ColumnFlags::empty()),
            (ColumnType::MYSQL_TYPE_TINY, ColumnFlags::UNSIGNED_FLAG),
        ];
        let values = [
            Value::Bytes(b"-2".to_vec()),
            Value::NULL,
            Value::Bytes(b"2024-01-02 03:04:05.5".to_vec()),
            Value::Bytes(b"-26:03:04".to_vec()),
            Value::Bytes(b"1.5".to_vec()),
            Value::Bytes(b"255".to_vec()),
        ];
        let mut buf = Vec::new();
        encode_row(&mut buf, &types, &values).unwrap();
        // Six columns: a one-byte bitmap; the NULL in column 1 is bit 1 + 2.
        let mut want = vec![0x00, 0b0000_1000];
        want.extend_from_slice(&(-2i32).to_le_bytes());
        want.extend_from_slice(&[11, 0xe8, 0x07, 1, 2, 3, 4, 5]);
        want.extend_from_slice(&500000u32.to_le_bytes());
        want.extend_from_slice(&[8, 1, 1, 0, 0, 0, 2, 3, 4]);
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.push(255);
        assert_eq!(buf, want);
    }

    #[test]
    fn unparsable_numbers_are_errors_not_zeros() {
        let mut buf = Vec::new();
        let types = [(ColumnType::MYSQL_TYPE_LONG, ColumnFlags::empty())];
        assert!(encode_row(&mut buf, &types, &[Value::Bytes(b"x".to_vec())]).is_err());
    }
}
