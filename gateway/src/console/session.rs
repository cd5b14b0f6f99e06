//! Who is signed in to the console: a cookie the gateway checks without keeping anything, and
//! the token each of its forms carries.
//!
//! A session cookie holds the access key, when it was issued, a random nonce, and an
//! HMAC-SHA256 of those three under the key's secret. Any gateway that knows the key can check
//! it, so a session works behind a load balancer of several gateways; and it ends for good
//! when its key is deleted or given another secret, since the secret is looked up on every
//! request (a disabled key's sessions are refused while it stays disabled, as its signatures
//! are). It also ends [`LIFETIME`] after sign-in. Signing out removes the cookie
//! from the browser; a copy of it taken before then stays valid until one of the above.
//!
//! The token against cross-site request forgery is an HMAC of the session's nonce under the
//! same secret with another label: every form of a page carries it, and every state change
//! must send it back. The cookie is `SameSite=Strict` as well, so another site's form does not
//! even send it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};

/// The cookie's name over plain HTTP.
pub const COOKIE: &str = "console_session";
/// Its name over HTTPS: browsers keep a `__Host-` cookie only when it is `Secure`, has
/// `Path=/` and no `Domain`, so a page of a sibling host (a bucket's virtual host,
/// `bucket.example.com`) cannot plant one to sign a victim in as someone else.
pub const SECURE_COOKIE: &str = "__Host-console_session";

/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// Labels that keep a session's MAC and its form token from standing in for each other.
const SESSION_LABEL: &[u8] = b"artifact-store console session v1\n";
const FORM_LABEL: &[u8] = b"artifact-store console form v1\n";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A session cookie's claims, parsed but not yet checked against the key's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Who signed in.
    pub access_key: String,
    issued_s: u64,
    nonce: String,
    mac: Vec<u8>,
}

/// A checked session: the signed-in access key and the token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who signed in.
    pub access_key: String,
    /// The token a state change must send back (`csrf` form field).
    pub form_token: String,
}

impl Claims {
    /// The claims of a new session for `access_key`, signed with `secret`: the cookie's value.
    #[must_use]
    pub fn issue(access_key: &str, secret: &str, now: SystemTime) -> String {
        let issued_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let mac = session_mac(secret, access_key, issued_s, &nonce);
        format!("{}.{issued_s}.{nonce}.{}", URL_SAFE_NO_PAD.encode(access_key), hex::encode(mac))
    }

    /// The claims of a cookie value; `None` when it is not one this module issued.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.split('.');
        let access_key = String::from_utf8(URL_SAFE_NO_PAD.decode(fields.next()?).ok()?).ok()?;
        let issued_s = fields.next()?.parse().ok()?;
        let nonce = fields.next()?.to_owned();
        let mac = hex::decode(fields.next()?).ok()?;
        if fields.next().is_some() || nonce.len() != 32 || access_key.is_empty() {
            return None;
        }
        Some(Self { access_key, issued_s, nonce, mac })
    }

    /// The session these claims prove when `secret` is the key's secret and they have not
    /// expired at `now`.
    #[must_use]
    pub fn check(self, secret: &str, now: SystemTime) -> Option<Session> {
        let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let fresh = self.issued_s <= now_s + 60 && now_s - self.issued_s.min(now_s) < LIFETIME.as_secs();
        let mut mac = keyed(secret);
        mac.update(&session_message(&self.access_key, self.issued_s, &self.nonce));
        let genuine = mac.verify_slice(&self.mac).is_ok();
        (fresh && genuine).then(|| Session { form_token: form_token(secret, &self.nonce), access_key: self.access_key })
    }
}

/// Whether `sent` is the session's form token, compared in constant time.
#[must_use]
pub fn form_token_matches(session: &Session, sent: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(session.form_token.as_bytes().ct_eq(sent.as_bytes()))
}

fn keyed(secret: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length")
}

fn session_message(access_key: &str, issued_s: u64, nonce: &str) -> Vec<u8> {
    [SESSION_LABEL, access_key.as_bytes(), b"\n", issued_s.to_string().as_bytes(), b"\n", nonce.as_bytes()].concat()
}

fn session_mac(secret: &str, access_key: &str, issued_s: u64, nonce: &str) -> Vec<u8> {
    let mut mac = keyed(secret);
    mac.update(&session_message(access_key, issued_s, nonce));
    mac.finalize().into_bytes().to_vec()
}

fn form_token(secret: &str, nonce: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(&[FORM_LABEL, nonce.as_bytes()].concat());
    hex::encode(mac.finalize().into_bytes())
}

/// The cookie's name and path: over HTTPS a `__Host-` cookie for the whole host, which
/// the prefix requires; over HTTP the console's paths only.
fn name_and_path(secure: bool) -> (&'static str, &'static str) {
    if secure { (SECURE_COOKIE, "/") } else { (COOKIE, "/_console") }
}

/// The `Set-Cookie` value that stores `value`; `secure` over HTTPS.
#[must_use]
pub fn set_cookie(value: &str, secure: bool) -> String {
    let (name, path) = name_and_path(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that removes the session cookie.
#[must_use]
pub fn clear_cookie(secure: bool) -> String {
    let (name, path) = name_and_path(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session cookie's value among a request's `Cookie` headers: over HTTPS only the
/// `__Host-` one counts.
pub fn cookie_value<'h>(headers: impl IntoIterator<Item = &'h http::HeaderValue>, secure: bool) -> Option<&'h str> {
    let (wanted, _) = name_and_path(secure);
    headers
        .into_iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "the-secret-of-the-key";

    #[test]
    fn a_session_is_checked_by_its_keys_secret_until_it_expires() {
        let now = SystemTime::now();
        let cookie = Claims::issue("AKIA TEST.KEY", SECRET, now);
        let session = Claims::parse(&cookie).unwrap().check(SECRET, now).unwrap();
        assert_eq!(session.access_key, "AKIA TEST.KEY");
        assert!(form_token_matches(&session, &session.form_token.clone()));
        assert!(!form_token_matches(&session, "0"));
        assert_eq!(Claims::parse(&cookie).unwrap().check("another-secret", now), None, "a rotated secret");
        let later = now + LIFETIME + Duration::from_secs(1);
        assert_eq!(Claims::parse(&cookie).unwrap().check(SECRET, later), None, "an expired session");
    }

    #[test]
    fn a_changed_claim_breaks_the_mac() {
        let now = SystemTime::now();
        let cookie = Claims::issue("ALICE", SECRET, now);
        let (_, rest) = cookie.split_once('.').unwrap();
        let as_bob = format!("{}.{rest}", URL_SAFE_NO_PAD.encode("BOB"));
        assert_eq!(Claims::parse(&as_bob).unwrap().check(SECRET, now), None);
        let mut fields: Vec<&str> = cookie.split('.').collect();
        let later = (now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600).to_string();
        fields[1] = &later;
        assert_eq!(Claims::parse(&fields.join(".")).unwrap().check(SECRET, now), None);
        assert_eq!(Claims::parse("garbage"), None);
        assert_eq!(Claims::parse(&format!("{cookie}.extra")), None);
    }

    #[test]
    fn two_sessions_of_one_key_have_their_own_form_tokens() {
        let now = SystemTime::now();
        let one = Claims::parse(&Claims::issue("K", SECRET, now)).unwrap().check(SECRET, now).unwrap();
        let two = Claims::parse(&Claims::issue("K", SECRET, now)).unwrap().check(SECRET, now).unwrap();
        assert_ne!(one.form_token, two.form_token);
    }

    #[test]
    fn the_cookie_is_found_among_others_and_carries_its_flags() {
        let headers = [http::HeaderValue::from_static("a=1; console_session=abc.def; b=2")];
        assert_eq!(cookie_value(&headers, false), Some("abc.def"));
        assert_eq!(cookie_value(&headers, true), None, "over HTTPS a cookie without the prefix is planted");
        let secure = [http::HeaderValue::from_static("console_session=planted; __Host-console_session=mine")];
        assert_eq!(cookie_value(&secure, true), Some("mine"));
        assert_eq!(cookie_value(&[http::HeaderValue::from_static("other=1")], false), None);
        let set = set_cookie("v", true);
        for flag in ["__Host-console_session=v;", "HttpOnly", "SameSite=Strict", "Secure", "Path=/;"] {
            assert!(set.contains(flag), "{set}");
        }
        let plain = set_cookie("v", false);
        assert!(!plain.contains("Secure") && plain.contains("Path=/_console"), "{plain}");
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert!(clear_cookie(true).starts_with("__Host-console_session=;"));
    }
}
