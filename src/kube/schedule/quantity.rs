//! Resource quantities as Kubernetes writes them (`100m`, `1.5`, `512Mi`, `1G`, `1e3`):
//! k8s-openapi's `Quantity` is the API's string; [`parse_quantity`] reads it exactly (no
//! floating point), rounding up below a nano-unit as `resource.Quantity` rounds up.
//!
//! Grammar (`k8s.io/apimachinery/pkg/api/resource`): an optional sign, digits with at most one
//! decimal point, then a suffix: none; a decimal SI one (`n`, `u`, `m`, `k`, `M`, `G`, `T`,
//! `P`, `E`); a binary SI one (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`); or a decimal exponent
//! (`e3`, `E-2`).

/// A parsed quantity, exactly, in billionths of its unit (a CPU core, a byte, a pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Amount {
    nanos: i128,
}

const NANO: i128 = 1_000_000_000;

impl Amount {
    /// Thousandths of the unit, rounded up (CPU in millicores), as `Quantity.MilliValue`.
    pub fn millis(self) -> i64 {
        saturate(ceil_div(self.nanos, 1_000_000))
    }

    /// Whole units, rounded up (memory in bytes, a pod count), as `Quantity.Value`.
    pub fn units(self) -> i64 {
        saturate(ceil_div(self.nanos, NANO))
    }
}

fn saturate(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `n / d` rounded away from zero (`d > 0`).
fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else {
        q + n.signum()
    }
}

/// A string that is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("`{0}` is not a quantity: a number with an optional suffix, such as 100m, 1.5, 512Mi, 1Gi, 1G or 1e3")]
    Syntax(String),
    #[error("`{0}` is too large a quantity")]
    TooLarge(String),
}

/// What the number is multiplied by.
enum Scale {
    /// `10^n`.
    Decimal(i32),
    /// `2^n`.
    Binary(u32),
}

fn suffix_scale(suffix: &str) -> Option<Scale> {
    let d = |n| Some(Scale::Decimal(n));
    let b = |n| Some(Scale::Binary(n));
    match suffix {
        "" => d(0),
        "n" => d(-9),
        "u" => d(-6),
        "m" => d(-3),
        "k" => d(3),
        "M" => d(6),
        "G" => d(9),
        "T" => d(12),
        "P" => d(15),
        "E" => d(18),
        "Ki" => b(10),
        "Mi" => b(20),
        "Gi" => b(30),
        "Ti" => b(40),
        "Pi" => b(50),
        "Ei" => b(60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            exp.parse::<i32>().ok().map(Scale::Decimal)
        }
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Parse a quantity as the API server does (see the module's grammar).
pub fn parse_quantity(text: &str) -> Result<Amount, QuantityError> {
    let syntax = || QuantityError::Syntax(text.to_string());
    let too_large = || QuantityError::TooLarge(text.to_string());
    let s = text.trim();
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(syntax());
    }
    let scale = suffix_scale(suffix).ok_or_else(syntax)?;
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| too_large())?
    };
    let frac_digits = i32::try_from(frac.len()).map_err(|_| too_large())?;
    // nanos = mantissa × scale × 10^(9 − frac_digits)
    let (mantissa, exp10) = match scale {
        Scale::Decimal(e) => (mantissa, e.saturating_add(9).saturating_sub(frac_digits)),
        Scale::Binary(b) => (mantissa.checked_mul(1i128 << b).ok_or_else(too_large)?, 9 - frac_digits),
    };
    let nanos = if mantissa == 0 {
        0
    } else if exp10 >= 0 {
        let f = pow10(exp10 as u32).ok_or_else(too_large)?;
        mantissa.checked_mul(f).ok_or_else(too_large)?
    } else {
        match pow10(exp10.unsigned_abs()) {
            Some(d) => ceil_div(mantissa, d),
            // Smaller than a nano-unit: rounded up to one.
            None => 1,
        }
    };
    Ok(Amount {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// CPU as Kubernetes writes it: whole cores (`2`) or millicores (`250m`).
pub fn cpu_text(millis: i64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Memory as Kubernetes writes it: the largest binary suffix that divides it (`512Mi`,
/// `2Gi`), else bytes.
pub fn memory_text(bytes: i64) -> String {
    for (suffix, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        let unit = 1i64 << shift;
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(s: &str) -> i64 {
        parse_quantity(s).unwrap_or_else(|e| panic!("{e}")).millis()
    }

    fn units(s: &str) -> i64 {
        parse_quantity(s).unwrap_or_else(|e| panic!("{e}")).units()
    }

    #[test]
    fn cpu_quantities_read_in_millicores() {
        assert_eq!(millis("100m"), 100);
        assert_eq!(millis("1"), 1000);
        assert_eq!(millis("1.5"), 1500);
        assert_eq!(millis("0.1"), 100);
        assert_eq!(millis(".5"), 500);
        assert_eq!(millis("2."), 2000);
        assert_eq!(millis("250000u"), 250);
        assert_eq!(millis("1n"), 1, "below a millicore rounds up");
        assert_eq!(millis("0"), 0);
        assert_eq!(millis("+3"), 3000);
        assert_eq!(
            millis("1.1"),
            1100,
            "exact: no floating point error rounds it up to 1101"
        );
    }

    #[test]
    fn memory_quantities_read_in_bytes() {
        assert_eq!(units("512Mi"), 512 << 20);
        assert_eq!(units("1Gi"), 1 << 30);
        assert_eq!(units("1.5Gi"), 3 << 29);
        assert_eq!(units("1G"), 1_000_000_000);
        assert_eq!(units("128974848"), 128_974_848);
        assert_eq!(units("129e6"), 129_000_000);
        assert_eq!(units("1e3"), 1000);
        assert_eq!(units("1E3"), 1000);
        assert_eq!(units("1e-3"), 1, "a fraction of a byte rounds up");
        assert_eq!(units("12880208Ki"), 12_880_208 * 1024);
        assert_eq!(units("1k"), 1000);
        assert_eq!(units("2Ei"), 2 << 60);
        assert_eq!(units("110"), 110);
    }

    #[test]
    fn what_is_not_a_quantity_is_refused_with_examples() {
        for junk in [
            "", "m", ".", "1..5", "1.2.3", "1K", "1KiB", "1 Gi", "one", "1e", "1e+", "--1", "1Mi2",
        ] {
            let err = parse_quantity(junk).expect_err(junk);
            assert!(matches!(err, QuantityError::Syntax(_)), "{junk}: {err}");
            assert!(err.to_string().contains("512Mi"), "{err}");
        }
        assert!(matches!(
            parse_quantity("99999999999999999999999999999999999999999"),
            Err(QuantityError::TooLarge(_))
        ));
        assert!(matches!(parse_quantity("1e40"), Err(QuantityError::TooLarge(_))));
    }

    #[test]
    fn quantities_are_written_back_as_kubernetes_writes_them() {
        assert_eq!(cpu_text(500), "500m");
        assert_eq!(cpu_text(2000), "2");
        assert_eq!(memory_text(512 << 20), "512Mi");
        assert_eq!(memory_text(3 << 30), "3Gi");
        assert_eq!(memory_text(1000), "1000");
        assert_eq!(memory_text(0), "0");
    }
}
