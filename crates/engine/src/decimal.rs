//! Exact decimal arithmetic for merging DECIMAL results (sums, averages) without floats.

use std::cmp::Ordering;
use std::fmt;

/// MySQL's `div_precision_increment`: AVG and `/` add this many decimals.
pub(crate) const DIV_PRECISION: u32 = 4;

/// The most decimals a DECIMAL result shows.
pub(crate) const MAX_SCALE: u32 = 38;

/// `mantissa × 10^-scale`. 38 significant digits; results beyond that are an error rather than a
/// rounded answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

impl Decimal {
    pub fn new(mantissa: i128, scale: u32) -> Self {
        Decimal { mantissa, scale }
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// Parses MySQL's text form: `-12.340`, `7`, `.5`.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(text).ok()?.trim();
        let (neg, digits) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        Some(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            scale: frac.len() as u32,
        })
    }

    fn rescale(self, scale: u32) -> Option<Self> {
        let factor = 10i128.checked_pow(scale.checked_sub(self.scale)?)?;
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(factor)?,
            scale,
        })
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescale(scale)?, other.rescale(scale)?);
        Some(Decimal {
            mantissa: a.mantissa.checked_add(b.mantissa)?,
            scale,
        })
    }

    /// `self / divisor` rounded half away from zero to `scale` digits, as MySQL divides decimals.
    pub fn div_round(self, divisor: i128, scale: u32) -> Option<Self> {
        if divisor == 0 {
            return None;
        }
        // mantissa × 10^(scale - self.scale + 1) / divisor, then round the extra digit.
        let shift = (scale + 1).checked_sub(self.scale)?;
        let scaled = self.mantissa.checked_mul(10i128.checked_pow(shift)?)?;
        let q = scaled / divisor;
        let rounded = if q % 10 >= 5 {
            q / 10 + 1
        } else if q % 10 <= -5 {
            q / 10 - 1
        } else {
            q / 10
        };
        Some(Decimal {
            mantissa: rounded,
            scale,
        })
    }

    /// `self / divisor` as the server carries it on to further arithmetic: cut (not rounded)
    /// after the decimals of both operands and `div_precision_increment`, rounded up to whole
    /// 9-digit words, so 2/3 is 0.666666666 and 2.000000/3 has 18 decimals.
    pub fn quotient(self, divisor: Self) -> Option<Self> {
        if divisor.mantissa == 0 {
            return None;
        }
        let scale = (self.scale + divisor.scale + DIV_PRECISION).div_ceil(9) * 9;
        // (a.m / 10^a.s) / (b.m / 10^b.s) at `scale` = a.m × 10^(scale - a.s + b.s) / b.m.
        let shift = scale - self.scale + divisor.scale;
        let n = self.mantissa.checked_mul(10i128.checked_pow(shift)?)?;
        Some(Decimal {
            mantissa: n / divisor.mantissa,
            scale,
        })
    }

    /// Rounded half away from zero to `digits` decimals (negative: to tens, hundreds, ...), as
    /// MySQL's ROUND() of an exact value; the scale becomes `max(digits, 0)`.
    pub fn round(self, digits: i32) -> Option<Self> {
        let scale = digits.max(0) as u32;
        if digits >= 0 && scale >= self.scale {
            return self.rescale(scale);
        }
        let dropped = u32::try_from(i64::from(self.scale) - i64::from(digits)).ok()?;
        let unit = 10i128.checked_pow(dropped)?;
        let (q, r) = (self.mantissa / unit, self.mantissa % unit);
        let q = if r.abs().checked_mul(2)? >= unit {
            q + r.signum()
        } else {
            q
        };
        let back = 10i128.checked_pow(u32::try_from(-i64::from(digits.min(0))).ok()?)?;
        Some(Decimal {
            mantissa: q.checked_mul(back)?,
            scale,
        })
    }

    pub fn cmp_value(&self, other: &Self) -> Ordering {
        let scale = self.scale.max(other.scale);
        match (self.rescale(scale), other.rescale(scale)) {
            (Some(a), Some(b)) => a.mantissa.cmp(&b.mantissa),
            // Too many digits to align: compare as floats (only for values beyond 38 digits).
            _ => self.to_f64().total_cmp(&other.to_f64()),
        }
    }

    pub fn to_f64(&self) -> f64 {
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn parse_and_print() {
        for s in [
            "0",
            "-12.340",
            "7",
            "0.05",
            "-0.50",
            "12345678901234567890.123456789",
        ] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d(".5").to_string(), "0.5");
        assert!(Decimal::parse(b"1e3").is_none());
        assert!(Decimal::parse(b"abc").is_none());
        assert!(Decimal::parse(b"-").is_none());
    }

    #[test]
    fn add_aligns_scales() {
        assert_eq!(d("1.25").checked_add(d("2.5")).unwrap().to_string(), "3.75");
        assert_eq!(d("-1.25").checked_add(d("1")).unwrap().to_string(), "-0.25");
        assert_eq!(d("0.1").checked_add(d("0.2")).unwrap().to_string(), "0.3");
    }

    #[test]
    fn divide_rounds_half_away_from_zero() {
        assert_eq!(d("5").div_round(3, 4).unwrap().to_string(), "1.6667");
        assert_eq!(d("3.76").div_round(3, 6).unwrap().to_string(), "1.253333");
        assert_eq!(d("-5").div_round(3, 4).unwrap().to_string(), "-1.6667");
        assert_eq!(d("1").div_round(8, 2).unwrap().to_string(), "0.13");
        assert_eq!(d("7").div_round(2, 0).unwrap().to_string(), "4");
        assert!(d("1").div_round(0, 4).is_none());
    }

    #[test]
    fn quotient_keeps_whole_words_of_digits() {
        // Figures from MariaDB 10.11: 2/3*1e9, 2.000000/3*1e18, (1/3)/7*1e27, -2/3*1e9.
        let q = |a: &str, b: &str| d(a).quotient(d(b)).unwrap().to_string();
        assert_eq!(q("2", "3"), "0.666666666");
        assert_eq!(q("2.000000", "3"), "0.666666666666666666");
        assert_eq!(q("2", "3.000"), "0.666666666");
        assert_eq!(q("0.333333333", "7"), "0.047619047571428571");
        assert_eq!(q("-2", "3"), "-0.666666666");
        assert_eq!(q("4", "2"), "2.000000000");
        assert!(d("1").quotient(d("0.00")).is_none());
    }

    #[test]
    fn round_half_away_from_zero() {
        let r = |s: &str, digits| d(s).round(digits).unwrap().to_string();
        assert_eq!(r("1.25", 1), "1.3");
        assert_eq!(r("-1.25", 1), "-1.3");
        assert_eq!(r("1.24999", 1), "1.2");
        assert_eq!(r("2.5", 0), "3");
        assert_eq!(r("1.5", 3), "1.500");
        assert_eq!(r("155", -1), "160");
        assert_eq!(r("-149.9", -2), "-100");
    }

    #[test]
    fn compare_exactly() {
        assert_eq!(d("1.10").cmp_value(&d("1.1")), Ordering::Equal);
        assert_eq!(d("-2").cmp_value(&d("1.5")), Ordering::Less);
        assert_eq!(
            d("0.30000000000000000001").cmp_value(&d("0.3")),
            Ordering::Greater
        );
    }
}
