//! New credentials: access keys and secrets as AWS shapes them, and account ids.

use rand::RngExt as _;
use registry::identities::NewAccessKey;

/// A new access key: a 20-character id of upper-case letters and digits, and a
/// 40-character secret, as AWS and the first start's root credentials have them.
#[must_use]
pub fn new_access_key() -> NewAccessKey {
    NewAccessKey {
        access_key: random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 20),
        secret: random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40),
    }
}

/// A new account's 12-digit id.
#[must_use]
pub fn new_account_id() -> String {
    random_string(b"0123456789", 12)
}

/// The root account's 12-digit id, derived from the root access key on the first start, so
/// that data folders from before accounts were recorded keep the id their policies name.
#[must_use]
pub fn root_account_id(root_access_key: &str) -> String {
    let digest = blake3::hash(format!("artifact-store account {root_access_key}").as_bytes());
    let number = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes")) % 1_000_000_000_000;
    format!("{number:012}")
}

/// `len` characters drawn uniformly from `charset` by the thread's CSPRNG.
pub(crate) fn random_string(charset: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(charset[rng.random_range(0..charset.len())])).collect()
}
