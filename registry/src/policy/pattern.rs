//! The string matching policies do: wildcards, ARNs and policy variables.

use std::borrow::Cow;

use super::request::Request;

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none
/// included) and `?` exactly one. Linear in practice and never worse than
/// `pattern.len() * text.len()`: on a mismatch after a `*`, only the last `*` is retried
/// one character further, which is enough because an earlier `*` could only have
/// swallowed less. Allocates nothing: every request is matched against every statement.
#[must_use]
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    glob(pattern, text, |a, b| a == b)
}

/// [`wildcard_match`] without regard to ASCII case, as actions and condition key names are
/// compared.
#[must_use]
pub fn wildcard_match_ignore_case(pattern: &str, text: &str) -> bool {
    glob(pattern, text, |a, b| a.eq_ignore_ascii_case(&b))
}

/// The match itself, over byte offsets that always fall on character boundaries.
fn glob(pattern: &str, text: &str, same: impl Fn(char, char) -> bool) -> bool {
    let next = |s: &str, at: usize| s[at..].chars().next();
    let (mut p, mut t) = (0, 0);
    // Just after the last `*` seen, and the text offset it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while let Some(c) = next(text, t) {
        match next(pattern, p) {
            Some('*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(pc) if pc == '?' || same(pc, c) => {
                p += pc.len_utf8();
                t += c.len_utf8();
            }
            _ => match star {
                Some((after_star, tried)) => {
                    let tried = tried + next(text, tried).map_or(1, char::len_utf8);
                    p = after_star;
                    t = tried;
                    star = Some((after_star, tried));
                }
                None => return false,
            },
        }
    }
    pattern[p..].chars().all(|c| c == '*')
}

/// Whether `arn` matches `pattern` component by component (`arn:partition:service:region:
/// account:resource`), each with wildcards, as `ArnLike` and resource elements compare:
/// a `*` in one component does not reach into the next, except in the resource, which
/// may itself hold colons.
#[must_use]
pub fn arn_match(pattern: &str, arn: &str) -> bool {
    if !pattern.starts_with("arn:") {
        // `*` (or another pattern that is no ARN) matches the whole text.
        return wildcard_match(pattern, arn);
    }
    if pattern.splitn(6, ':').count() != 6 || arn.splitn(6, ':').count() != 6 {
        return false;
    }
    pattern.splitn(6, ':').zip(arn.splitn(6, ':')).all(|(p, a)| wildcard_match(p, a))
}

/// `text` with its policy variables (`${aws:username}`, `${s3:prefix}`, ...) replaced by
/// the request's values, and the escapes `${*}`, `${?}` and `${$}` by the literal
/// characters, escaped again so that they stay literal in a wildcard match. A variable the
/// request lacks gives `None`: AWS treats the element as not matching.
pub(crate) fn substitute<'t>(text: &'t str, request: &Request<'_>) -> Option<Cow<'t, str>> {
    if !text.contains("${") {
        return Some(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Some(Cow::Owned(out));
        };
        let name = &after[..end];
        match name {
            // A literal star or question mark: there is no escape in a wildcard match, so
            // these match themselves and, unavoidably, what the wildcard would.
            "*" => out.push('*'),
            "?" => out.push('?'),
            "$" => out.push('$'),
            _ => {
                // `${key, 'default'}` gives the default when the key is absent.
                let (key, default) = match name.split_once(',') {
                    Some((key, default)) => (key.trim(), Some(default.trim().trim_matches('\''))),
                    None => (name.trim(), None),
                };
                match request.single_value(key).or(default) {
                    Some(value) => out.push_str(value),
                    None => return None,
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards_match_as_iam_documents_them() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("s3:Get*", "s3:GetObject", true),
            ("s3:Get*", "s3:PutObject", false),
            ("s3:*Object", "s3:GetObject", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*/home/*", "bucket/home/alice/file", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
            ("", "x", false),
            ("ärger*", "ärgerlich", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(wildcard_match(pattern, text), expected, "{pattern:?} against {text:?}");
        }
        assert!(wildcard_match_ignore_case("S3:getobject", "s3:GetObject"));
        assert!(!wildcard_match("S3:getobject", "s3:GetObject"));
    }

    #[test]
    fn arns_match_component_by_component() {
        assert!(arn_match("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b"));
        assert!(arn_match("arn:aws:s3:::bucket*", "arn:aws:s3:::bucket-2"));
        assert!(!arn_match("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket"));
        assert!(arn_match("arn:aws:iam::*:user/*", "arn:aws:iam::123456789012:user/alice"));
        // A star in the account does not reach into the resource.
        assert!(!arn_match("arn:aws:iam::*", "arn:aws:iam::123456789012:user/alice"));
        assert!(arn_match("*", "arn:aws:s3:::bucket"));
    }

    /// The matcher agrees with a plain recursive definition of the same language.
    fn reference(pattern: &[char], text: &[char]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&pattern[1..], text) || (!text.is_empty() && reference(pattern, &text[1..])),
            (Some(_), None) => false,
            (Some(&p), Some(&t)) => (p == '?' || p == t) && reference(&pattern[1..], &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn the_matcher_agrees_with_the_definition(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(wildcard_match(&pattern, &text), reference(&p, &t));
        }
    }
}
