//! Condition operators: one block of a statement's `Condition`, checked against a request.
//!
//! A block is true when every operator in it is; an operator when every key under it is;
//! a key when any of the policy's values matches (for a negated operator, when none does).
//! A key the request lacks makes its operator false, except for negated operators (true),
//! `...IfExists` forms (true) and `Null`, which asks exactly that.

use std::net::IpAddr;

use super::pattern::{arn_match, substitute, wildcard_match};
use super::request::Request;

/// One operator over one key with the policy's values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) operator: Operator,
    /// The condition key, as written.
    pub(crate) key: String,
    /// The policy's values, as text (IAM accepts numbers and booleans and compares them as
    /// their text).
    pub(crate) values: Vec<String>,
}

/// A parsed operator name: `[ForAnyValue:|ForAllValues:]<base>[IfExists]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) base: Base,
    pub(crate) set: SetQualifier,
    pub(crate) if_exists: bool,
}

/// How a multi-valued key's values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetQualifier {
    /// No qualifier: a single-valued key (any of several values matching suffices).
    Single,
    /// `ForAnyValue:`: at least one of the request's values matches.
    AnyValue,
    /// `ForAllValues:`: every one of the request's values matches (none at all included).
    AllValues,
}

/// The comparison itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Base {
    fn parse(name: &str) -> Option<Base> {
        use Base::*;
        Some(match name {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "BinaryEquals" => BinaryEquals,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "Null" => Null,
            _ => return None,
        })
    }

    /// Negated operators hold when no policy value matches, and when the key is absent.
    fn negated(self) -> bool {
        use Base::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }

    /// Whether one request value matches one policy value, for the positive form of the
    /// operator (a negated operator inverts the result over all policy values).
    fn matches(self, policy: &str, request: &str) -> bool {
        use Base::*;
        match self {
            StringEquals | StringNotEquals => policy == request,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => policy.eq_ignore_ascii_case(request),
            StringLike | StringNotLike => wildcard_match(policy, request),
            NumericEquals | NumericNotEquals => number(policy, request, |a, b| a == b),
            NumericLessThan => number(policy, request, |p, r| r < p),
            NumericLessThanEquals => number(policy, request, |p, r| r <= p),
            NumericGreaterThan => number(policy, request, |p, r| r > p),
            NumericGreaterThanEquals => number(policy, request, |p, r| r >= p),
            DateEquals | DateNotEquals => date(policy, request, |a, b| a == b),
            DateLessThan => date(policy, request, |p, r| r < p),
            DateLessThanEquals => date(policy, request, |p, r| r <= p),
            DateGreaterThan => date(policy, request, |p, r| r > p),
            DateGreaterThanEquals => date(policy, request, |p, r| r >= p),
            Bool => policy.eq_ignore_ascii_case(request),
            BinaryEquals => policy == request,
            IpAddress | NotIpAddress => ip_in(policy, request),
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => arn_match(policy, request),
            // Handled before any value is compared.
            Null => false,
        }
    }

    /// Whether `value` is a value this operator can compare (checked when a policy is put).
    pub(crate) fn accepts(self, value: &str) -> bool {
        use Base::*;
        match self {
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => value.parse::<f64>().is_ok(),
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => parse_date(value).is_some(),
            Bool | Null => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
            IpAddress | NotIpAddress => parse_cidr(value).is_some(),
            _ => true,
        }
    }
}

impl Operator {
    /// Parses an operator name as IAM spells it (case-sensitive).
    pub(crate) fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::AnyValue, rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::AllValues, rest)
        } else {
            (SetQualifier::Single, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let base = Base::parse(base)?;
        // `Null` takes neither a set qualifier nor `IfExists`.
        if base == Base::Null && (if_exists || set != SetQualifier::Single) {
            return None;
        }
        Some(Operator { base, set, if_exists })
    }

    pub(crate) fn base(self) -> Base {
        self.base
    }
}

impl Condition {
    /// Whether the request satisfies this condition; `variables`: whether its values' `${...}`
    /// are policy variables ([`Statement::variables`](super::document::Statement)).
    pub(crate) fn holds(&self, request: &Request<'_>, variables: bool) -> bool {
        let Operator { base, set, if_exists } = self.operator;
        let present = request.values(&self.key);
        if base == Base::Null {
            let absent = present.as_ref().is_none_or(Vec::is_empty);
            return self.values.iter().any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let Some(request_values) = present else {
            return match set {
                // No values at all: every one of them matches, vacuously.
                SetQualifier::AllValues => true,
                _ => if_exists || base.negated(),
            };
        };
        // Policy variables in the values take the request's values; one the request lacks
        // leaves that value matching nothing.
        let policy_values: Vec<_> = if variables {
            self.values.iter().filter_map(|v| substitute(v, request)).collect()
        } else {
            self.values.iter().map(|v| std::borrow::Cow::Borrowed(v.as_str())).collect()
        };
        let one = |value: &str| {
            let any = policy_values.iter().any(|p| base.matches(p, value));
            if base.negated() { !any } else { any }
        };
        match set {
            SetQualifier::AllValues => request_values.iter().all(|v| one(v)),
            SetQualifier::AnyValue => request_values.iter().any(|v| one(v)),
            // A single-valued key with several values (which a well-formed request does not
            // send): a positive operator needs one of them to match, a negated one all.
            SetQualifier::Single if base.negated() => request_values.iter().all(|v| one(v)),
            SetQualifier::Single => request_values.iter().any(|v| one(v)),
        }
    }
}

fn number(policy: &str, request: &str, compare: impl Fn(f64, f64) -> bool) -> bool {
    match (policy.parse::<f64>(), request.parse::<f64>()) {
        (Ok(p), Ok(r)) => compare(p, r),
        _ => false,
    }
}

fn date(policy: &str, request: &str, compare: impl Fn(i64, i64) -> bool) -> bool {
    match (parse_date(policy), parse_date(request)) {
        (Some(p), Some(r)) => compare(p, r),
        _ => false,
    }
}

/// Milliseconds since the epoch of an ISO 8601 date or date-time in UTC (`2026-01-31`,
/// `2026-01-31T12:00:00Z`, with optional fractional seconds), or of epoch seconds, the
/// forms IAM's date operators accept.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1000);
    }
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    if let Some(time) = time {
        let time = time.strip_suffix('Z').unwrap_or(time);
        let (clock, fraction) = match time.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (time, None),
        };
        let mut fields = clock.splitn(3, ':');
        let hours: i64 = fields.next()?.parse().ok()?;
        let minutes: i64 = fields.next()?.parse().ok()?;
        let seconds: i64 = fields.next().map_or(Some(0), |s| s.parse().ok())?;
        if hours > 23 || minutes > 59 || seconds > 60 {
            return None;
        }
        millis += ((hours * 60 + minutes) * 60 + seconds) * 1000;
        if let Some(fraction) = fraction {
            let digits: String = fraction.chars().take(3).collect();
            if !fraction.chars().all(|c| c.is_ascii_digit()) || digits.is_empty() {
                return None;
            }
            millis += digits.parse::<i64>().ok()? * 10_i64.pow(3 - u32::try_from(digits.len()).ok()?);
        }
    }
    Some(millis)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A CIDR block (`192.0.2.0/24`, `2001:db8::/32`), or one address.
pub(crate) fn parse_cidr(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

fn ip_in(block: &str, address: &str) -> bool {
    match (parse_cidr(block), address.parse::<IpAddr>()) {
        (Some(block), Ok(address)) => block.contains(&address),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_iso_8601_or_epoch_seconds() {
        for (text, millis) in [
            ("1970-01-01", Some(0)),
            ("2000-02-29", Some(951_782_400_000)),
            ("2026-12-03T15:04:05.250Z", Some(1_796_310_245_250)),
            ("2026-12-03T15:04:05.25Z", Some(1_796_310_245_250)),
            ("1969-12-31T23:59:59Z", Some(-1000)),
            ("2400-03-01", Some(13_574_649_600_000)),
            ("1796310245", Some(1_796_310_245_000)),
            ("2026-13-01", None),
            ("2026-12-03T25:00:00Z", None),
            ("yesterday", None),
        ] {
            assert_eq!(parse_date(text), millis, "{text}");
        }
    }

    #[test]
    fn operator_names_parse_with_their_qualifiers() {
        let parsed = Operator::parse("ForAllValues:StringLikeIfExists").expect("a valid operator");
        assert_eq!(parsed, Operator { base: Base::StringLike, set: SetQualifier::AllValues, if_exists: true });
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAnyValue:Null").is_none());
        assert!(Operator::parse("stringequals").is_none(), "operator names are case-sensitive");
        assert!(!Base::NumericEquals.accepts("ten"));
        assert!(!Base::IpAddress.accepts("192.0.2.0/33"));
        assert!(Base::IpAddress.accepts("192.0.2.1"));
    }
}
