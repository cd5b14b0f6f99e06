//! CORS: which of a bucket's rules answers a browser's request, and which rules S3 refuses to
//! record. Pure, like [`crate::policy`]: the gateway reads the rules and the request's
//! headers, asks here, and writes the answer's `Access-Control-*` headers.
//!
//! The rules are matched in order and the first that matches answers, as in S3. Origins are
//! compared as written (an origin is case-sensitive); methods exactly; request header names
//! without regard to case. An `*` in an origin or header pattern stands for any run of
//! characters, and a pattern holds at most one.

use crate::event::v1::CorsRule;

/// The methods a rule may allow: S3 refuses any other.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// S3's limit on a configuration's rules.
pub const MAX_RULES: usize = 100;

/// S3's limit on a rule id's length.
const MAX_ID_LEN: usize = 255;

/// Why a configuration cannot be recorded, in S3's words (an `InvalidRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCors(pub String);

/// Checks a configuration as S3 does before it records one.
///
/// # Errors
/// [`InvalidCors`] naming the first thing S3 would refuse.
pub fn check(rules: &[CorsRule]) -> Result<(), InvalidCors> {
    if rules.is_empty() {
        return Err(InvalidCors("The CORS configuration must have at least one CORSRule.".into()));
    }
    if rules.len() > MAX_RULES {
        return Err(InvalidCors(format!("The CORS configuration may have at most {MAX_RULES} CORSRules.")));
    }
    for rule in rules {
        if rule.id.as_ref().is_some_and(|id| id.len() > MAX_ID_LEN) {
            return Err(InvalidCors(format!("The ID of a CORSRule may have at most {MAX_ID_LEN} characters.")));
        }
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(InvalidCors("Each CORSRule must have an AllowedMethod and an AllowedOrigin.".into()));
        }
        if let Some(method) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(InvalidCors(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )));
        }
        if let Some(origin) = rule.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(InvalidCors(format!("AllowedOrigin \"{origin}\" can not have more than one wildcard.")));
        }
        if let Some(header) = rule.allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
            return Err(InvalidCors(format!("AllowedHeader \"{header}\" can not have more than one wildcard.")));
        }
        if rule.max_age_seconds.is_some_and(|age| age < 0) {
            return Err(InvalidCors("MaxAgeSeconds must not be negative.".into()));
        }
    }
    Ok(())
}

/// The first rule that allows a preflight: a request from `origin` that will use `method`
/// and send the `headers` named in `Access-Control-Request-Headers`.
#[must_use]
pub fn preflight<'r>(rules: &'r [CorsRule], origin: &str, method: &str, headers: &[&str]) -> Option<&'r CorsRule> {
    rules.iter().find(|rule| {
        allows(rule, origin, method)
            && headers.iter().all(|header| {
                rule.allowed_headers.iter().any(|pattern| wildcard_match(pattern, header, Case::Insensitive))
            })
    })
}

/// The first rule that allows an actual request from `origin` with `method`. Its headers are
/// not checked: the browser checked them in its preflight.
#[must_use]
pub fn actual<'r>(rules: &'r [CorsRule], origin: &str, method: &str) -> Option<&'r CorsRule> {
    rules.iter().find(|rule| allows(rule, origin, method))
}

/// Whether the rule lets any origin in (`*`), so that answers name `*` rather than the
/// request's origin and do not allow credentials.
#[must_use]
pub fn allows_any_origin(rule: &CorsRule, origin: &str) -> bool {
    !rule.allowed_origins.iter().any(|pattern| pattern != "*" && wildcard_match(pattern, origin, Case::Sensitive))
}

fn allows(rule: &CorsRule, origin: &str, method: &str) -> bool {
    rule.allowed_methods.iter().any(|m| m == method)
        && rule.allowed_origins.iter().any(|pattern| wildcard_match(pattern, origin, Case::Sensitive))
}

#[derive(Clone, Copy)]
enum Case {
    Sensitive,
    Insensitive,
}

/// Whether `value` matches `pattern`, where one `*` stands for any run of characters.
fn wildcard_match(pattern: &str, value: &str, case: Case) -> bool {
    let eq = |a: &str, b: &str| match case {
        Case::Sensitive => a == b,
        Case::Insensitive => a.eq_ignore_ascii_case(b),
    };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.get(..prefix.len()).is_some_and(|head| eq(head, prefix))
                && value.get(value.len() - suffix.len()..).is_some_and(|tail| eq(tail, suffix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_methods: methods.iter().map(|&m| m.into()).collect(),
            allowed_origins: origins.iter().map(|&o| o.into()).collect(),
            allowed_headers: headers.iter().map(|&h| h.into()).collect(),
            expose_headers: Vec::new(),
            max_age_seconds: None,
        }
    }

    #[test]
    fn one_wildcard_stands_for_any_run() {
        assert!(wildcard_match("https://*.example.com", "https://app.example.com", Case::Sensitive));
        assert!(wildcard_match("*", "", Case::Sensitive));
        assert!(!wildcard_match("https://*.example.com", "https://example.com", Case::Sensitive));
        assert!(!wildcard_match("https://*.example.com", "https://APP.EXAMPLE.COM", Case::Sensitive));
        assert!(wildcard_match("x-amz-*", "X-Amz-Date", Case::Insensitive));
        // The prefix and suffix may not overlap.
        assert!(!wildcard_match("ab*ba", "aba", Case::Sensitive));
    }

    #[test]
    fn the_first_matching_rule_answers() {
        let rules = [rule(&["https://a.example"], &["PUT"], &["content-type"]), rule(&["*"], &["GET", "HEAD"], &[])];
        assert_eq!(preflight(&rules, "https://a.example", "PUT", &["Content-Type"]), Some(&rules[0]));
        assert_eq!(preflight(&rules, "https://a.example", "PUT", &["x-amz-date"]), None);
        assert_eq!(preflight(&rules, "https://b.example", "GET", &[]), Some(&rules[1]));
        assert_eq!(preflight(&rules, "https://b.example", "GET", &["range"]), None);
        assert_eq!(actual(&rules, "https://b.example", "PUT"), None);
        assert!(allows_any_origin(&rules[1], "https://b.example"));
        assert!(!allows_any_origin(&rules[0], "https://a.example"));
    }

    #[test]
    fn what_s3_refuses() {
        assert!(check(&[rule(&["*"], &["GET"], &["*"])]).is_ok());
        assert!(check(&[]).is_err());
        assert_eq!(
            check(&[rule(&["*"], &["PATCH"], &[])]),
            Err(InvalidCors("Found unsupported HTTP method in CORS config. Unsupported method is PATCH".into()))
        );
        assert!(check(&[rule(&["https://*.*.example"], &["GET"], &[])]).is_err());
        assert!(check(&[rule(&["*"], &["GET"], &["x-*-*"])]).is_err());
        assert!(check(&vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1]).is_err());
    }
}
