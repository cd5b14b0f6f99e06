//! The master keys that wrap data keys: a file in the data folder, created on first start
//! (mode 0600), or given by `encryption.master_key_file`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng as _;
use registry::event::v1::WrappedKey;
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use zeroize::Zeroizing;

use super::{DataKey, segments};

/// Associated data of a wrapped data key: binds it to its purpose.
const WRAP_AAD: &[u8] = b"artifact-store data key v1";

/// The BLAKE3 key-derivation context of a master key's id.
const KEY_ID_CONTEXT: &str = "artifact-store 2026-12 master key id";

/// What can go wrong with the master key.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The key file could not be read or created.
    #[error("master key file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits.
    #[error("master key file {0} does not hold a key (64 hex digits)")]
    Malformed(PathBuf),
    /// A wrapped key names a master key this ring does not have.
    #[error("data key wrapped by master key {0}, which this gateway does not have")]
    UnknownKey(String),
    /// A wrapped key does not unwrap: it was changed, or wrapped by another key of that id.
    #[error("data key wrapped by master key {0} does not unwrap")]
    Unwrap(String),
}

/// The master keys of this gateway. Several gateways sharing a registry share the file.
pub struct KeyRing {
    id: String,
    cipher: LessSafeKey,
}

impl KeyRing {
    /// Opens the master key at `path`, creating it (random, mode 0600) if there is none.
    /// Concurrent first starts of several gateways agree on one key: it is written to a
    /// temporary file and linked into place, which only one of them can do.
    ///
    /// # Errors
    /// [`KeyRingError::File`], [`KeyRingError::Malformed`].
    pub fn open_or_create(path: &Path) -> Result<Self, KeyRingError> {
        let failed = |source| KeyRingError::File { path: path.to_owned(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_hex(&text, path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(failed(err)),
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        let temp = path.with_extension(format!("new-{}", std::process::id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            file.write_all(format!("{}\n", hex::encode(*key)).as_bytes())?;
            file.sync_all()?;
            std::fs::hard_link(&temp, path)
        })();
        let _ = std::fs::remove_file(&temp);
        match written {
            Ok(()) => Ok(Self::from_key(&key)),
            // Another gateway created it first: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_hex(&std::fs::read_to_string(path).map_err(failed)?, path)
            }
            Err(err) => Err(failed(err)),
        }
    }

    /// Opens the master key at `path`, if there is one: for commands that read encrypted
    /// bytes and must not create a key.
    ///
    /// # Errors
    /// [`KeyRingError::File`], [`KeyRingError::Malformed`].
    pub fn open(path: &Path) -> Result<Option<Self>, KeyRingError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text, path).map(Some),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyRingError::File { path: path.to_owned(), source }),
        }
    }

    fn from_hex(text: &str, path: &Path) -> Result<Self, KeyRingError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| KeyRingError::Malformed(path.to_owned()))?;
        Ok(Self::from_key(&key))
    }

    fn from_key(key: &[u8; 32]) -> Self {
        let id = hex::encode(&blake3::derive_key(KEY_ID_CONTEXT, key)[..8]);
        Self { id, cipher: segments::cipher(key) }
    }

    /// The id of the master key that wraps new data keys.
    #[must_use]
    pub fn current_id(&self) -> &str {
        &self.id
    }

    /// `key` wrapped by the current master key, for the registry.
    #[must_use]
    pub fn wrap(&self, key: &DataKey) -> WrappedKey {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = key.0.to_vec();
        let tag = self
            .cipher
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(WRAP_AAD), &mut sealed)
            .expect("32 bytes are far below AES-GCM's limit");
        let bytes = [&nonce[..], &sealed, tag.as_ref()].concat();
        WrappedKey { key_id: self.id.clone(), wrapped: STANDARD.encode(bytes) }
    }

    /// The data key of a registry record.
    ///
    /// # Errors
    /// [`KeyRingError::UnknownKey`], [`KeyRingError::Unwrap`].
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, KeyRingError> {
        if wrapped.key_id != self.id {
            return Err(KeyRingError::UnknownKey(wrapped.key_id.clone()));
        }
        let fail = || KeyRingError::Unwrap(wrapped.key_id.clone());
        let mut bytes = STANDARD.decode(&wrapped.wrapped).map_err(|_| fail())?;
        if bytes.len() != NONCE_LEN + 32 + 16 {
            return Err(fail());
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).map_err(|_| fail())?;
        let plain =
            self.cipher.open_in_place(nonce, Aad::from(WRAP_AAD), &mut bytes[NONCE_LEN..]).map_err(|_| fail())?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(plain);
        bytes.fill(0);
        Ok(DataKey(key))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_reopens_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let ring = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let key = DataKey::generate();
        let wrapped = ring.wrap(&key);
        assert_eq!(wrapped.key_id, ring.current_id());
        let again = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(*again.unwrap(&wrapped).unwrap().0, *key.0);
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_changed_or_foreign_wrapped_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open_or_create(&dir.path().join("a")).unwrap();
        let other = KeyRing::open_or_create(&dir.path().join("b")).unwrap();
        let wrapped = ring.wrap(&DataKey::generate());
        assert!(matches!(other.unwrap(&wrapped), Err(KeyRingError::UnknownKey(_))));
        let mut bytes = STANDARD.decode(&wrapped.wrapped).unwrap();
        bytes[20] ^= 1;
        let changed = WrappedKey { wrapped: STANDARD.encode(bytes), ..wrapped };
        assert!(matches!(ring.unwrap(&changed), Err(KeyRingError::Unwrap(_))));
    }

    #[test]
    fn a_malformed_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(KeyRing::open_or_create(&path), Err(KeyRingError::Malformed(_))));
    }
}
