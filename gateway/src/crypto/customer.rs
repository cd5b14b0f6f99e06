//! SSE-C: keys the client sends with every request and the gateway never stores. A blob's
//! data key is wrapped by the customer's key (so the registry holds nothing that unwraps
//! without it), and a version records a salted HMAC of the key, as AWS does, to tell a wrong
//! key (403) before any byte is read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit as _, Mac as _};
use registry::event::v1::WrappedKey;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::DataKey;
use super::keyring::{unwrap_with, wrap_with};

/// The `key_id` of a data key wrapped by a customer's key.
pub const CUSTOMER_KEY_ID: &str = "customer";

/// Label of the key check's HMAC.
const CHECK_LABEL: &[u8] = b"artifact-store customer key check v1";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A customer's AES-256 key, held while the request that sent it runs.
#[derive(Clone)]
pub struct CustomerKey(Zeroizing<[u8; 32]>);

impl CustomerKey {
    /// The key from its 32 bytes.
    #[must_use]
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A check value to record: a random salt and the HMAC-SHA256 of the key under it, base64.
    #[must_use]
    pub fn new_check(&self) -> String {
        let salt: [u8; 16] = rand::random();
        STANDARD.encode([&salt[..], &self.mac(&salt)].concat())
    }

    /// Whether this is the key `check` (from [`CustomerKey::new_check`]) was made with.
    #[must_use]
    pub fn matches(&self, check: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(check) else { return false };
        let Some((salt, mac)) = bytes.split_at_checked(16) else { return false };
        bool::from(self.mac(salt).ct_eq(mac))
    }

    fn mac(&self, salt: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&*self.0).expect("HMAC takes a key of any length");
        mac.update(CHECK_LABEL);
        mac.update(salt);
        mac.finalize().into_bytes().to_vec()
    }

    /// `key` wrapped by this key, for the registry.
    #[must_use]
    pub fn wrap(&self, key: &DataKey) -> WrappedKey {
        wrap_with(&super::segments::cipher(&self.0), CUSTOMER_KEY_ID, key)
    }

    /// The data key of a registry record wrapped by this key; `None` when it is not this key's.
    #[must_use]
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Option<DataKey> {
        unwrap_with(&super::segments::cipher(&self.0), wrapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_matches_its_check_and_unwraps_its_data_keys() {
        let key = CustomerKey::new([7; 32]);
        let other = CustomerKey::new([8; 32]);
        let check = key.new_check();
        assert_ne!(check, key.new_check(), "salted");
        assert!(key.matches(&check));
        assert!(!other.matches(&check));
        assert!(!key.matches("not base64!"));
        let data = DataKey::generate();
        let wrapped = key.wrap(&data);
        assert_eq!(wrapped.key_id, CUSTOMER_KEY_ID);
        assert_eq!(*key.unwrap(&wrapped).unwrap().0, *data.0);
        assert!(other.unwrap(&wrapped).is_none());
    }
}
