//! Percent-encoding of object keys and query values as AWS writes them: every byte but the
//! unreserved characters of RFC 3986 (`A-Z a-z 0-9 - _ . ~`), and but `/` in a path. For
//! listings with `encoding-type=url`, access-log lines, redirects and the console's links.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// `text` encoded for a path, its `/` kept.
#[must_use]
pub fn path(text: &str) -> String {
    utf8_percent_encode(text, PATH).to_string()
}

/// `text` encoded for a query value or one path segment, `/` encoded too.
#[must_use]
pub fn component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay_and_the_rest_is_encoded() {
        assert_eq!(path("a b/c~d_e.f-g?h#é"), "a%20b/c~d_e.f-g%3Fh%23%C3%A9");
        assert_eq!(component("a b/c&d=e"), "a%20b%2Fc%26d%3De");
    }
}
