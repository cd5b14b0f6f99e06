//! The keys that wrap data keys: the master key of SSE-S3, a file in the data folder created
//! on first start (mode 0600) or given by `encryption.master_key_file`; the master keys it
//! replaced, kept in a `retired/` folder beside it so that the data keys they wrapped still
//! unwrap (rotation rewrites no object); and the named keys of SSE-KMS, files in a `kms/`
//! folder beside it created by `artifact-store kms create`.
//!
//! Several gateways that share a registry share these files. A KMS key created through one is
//! found by the others the first time a request names it: a key not in memory is looked for on
//! disk before it is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng as _;
use registry::event::v1::WrappedKey;
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use zeroize::Zeroizing;

use super::{DataKey, segments};
use crate::private_file;

/// Associated data of a wrapped data key: binds it to its purpose.
const WRAP_AAD: &[u8] = b"artifact-store data key v1";

/// The BLAKE3 key-derivation context of a master key's id.
const KEY_ID_CONTEXT: &str = "artifact-store 2026-12 master key id";

/// The alias of the KMS key used when `aws:kms` names none, as AWS's managed key for S3.
pub const DEFAULT_KMS_ALIAS: &str = "aws/s3";

/// What can go wrong with the keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A key file could not be read or created.
    #[error("key file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file does not hold 64 hex digits.
    #[error("key file {0} does not hold a key (64 hex digits)")]
    Malformed(PathBuf),
    /// A wrapped key names a key this ring does not have.
    #[error("data key wrapped by key {0}, which this gateway does not have")]
    UnknownKey(String),
    /// A wrapped key does not unwrap: it was changed, or wrapped by another key of that id.
    #[error("data key wrapped by key {0} does not unwrap")]
    Unwrap(String),
    /// A KMS key id, ARN or alias that names no key.
    #[error("no KMS key {0}")]
    NoSuchKmsKey(String),
    /// The gateways sharing the registry wrap data keys with another master key, which this
    /// gateway does not hold: what it wrapped, they could not read.
    #[error(
        "this gateway's master key {own} is not {shared}, the one the gateways sharing its registry use: \
         point encryption.master_key_file at their key file"
    )]
    ForeignMaster {
        /// This gateway's master key id.
        own: String,
        /// The recorded one.
        shared: String,
    },
    /// An alias that is taken, or not a valid alias name.
    #[error("alias {0} is taken or not a valid alias name (letters, digits, '/', '_', '-')")]
    Alias(String),
}

/// The keys of this gateway.
pub struct KeyRing {
    master_id: String,
    master: LessSafeKey,
    /// The master key's file, read again for a key id this ring does not know: another
    /// gateway may have rotated it since this one started.
    master_path: PathBuf,
    /// The folder of the master key, where `retired/` and `kms/` are.
    dir: PathBuf,
    /// Where KMS keys are kept (`<dir>/kms`).
    kms_dir: PathBuf,
    /// KMS keys and retired master keys read so far, by id.
    loaded: RwLock<HashMap<String, Arc<LessSafeKey>>>,
    /// `arn:aws:kms:<region>:<account>:key/`, before a KMS key's id in its ARN.
    arn_prefix: String,
    /// The master key the gateways sharing the registry use, when this ring holds neither it
    /// nor a newer one: the ring then wraps no data key.
    foreign_master: Option<String>,
}

impl KeyRing {
    /// Opens the master key at `path`, creating it (random, mode 0600) if there is none.
    /// Concurrent first starts of several gateways agree on one key: it is written to a
    /// temporary file and linked into place, which only one of them can do.
    ///
    /// # Errors
    /// [`KeyRingError::File`], [`KeyRingError::Malformed`].
    pub fn open_or_create(path: &Path) -> Result<Self, KeyRingError> {
        let key = match read_key(path)? {
            Some(key) => key,
            None => create_key(path)?,
        };
        Ok(Self::with_master(path, &key))
    }

    /// Opens the master key at `path`, if there is one: for commands that read encrypted
    /// bytes and must not create a key.
    ///
    /// # Errors
    /// [`KeyRingError::File`], [`KeyRingError::Malformed`].
    pub fn open(path: &Path) -> Result<Option<Self>, KeyRingError> {
        Ok(read_key(path)?.map(|key| Self::with_master(path, &key)))
    }

    fn with_master(path: &Path, key: &[u8; 32]) -> Self {
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        Self {
            master_id: master_id(key),
            master: segments::cipher(key),
            master_path: path.to_owned(),
            kms_dir: dir.join("kms"),
            dir,
            loaded: RwLock::default(),
            arn_prefix: "arn:aws:kms:us-east-1:000000000000:key/".to_owned(),
            foreign_master: None,
        }
    }

    /// Replaces the master key at `path` by a new one, keeping the old one in `retired/` (first,
    /// so that it is never lost): data keys it wrapped still unwrap, and no object is rewritten.
    /// Gateways wrap new data keys with the new key from their next start. Returns the old and
    /// the new key's ids.
    ///
    /// # Errors
    /// File errors; [`KeyRingError::Malformed`]; no master key at `path`.
    pub fn rotate_master(path: &Path) -> Result<(String, String), KeyRingError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        // Rotations one at a time: two that read the same old key would each make a new one
        // current, and the first one's key, never retired, would be lost with what it wrapped.
        let lock_path = dir.join("rotate.lock");
        let locked = |source| KeyRingError::File { path: lock_path.clone(), source };
        let lock =
            std::fs::File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(locked)?;
        lock.lock().map_err(locked)?;
        let missing = || KeyRingError::File { path: path.to_owned(), source: std::io::ErrorKind::NotFound.into() };
        let old = read_key(path)?.ok_or_else(missing)?;
        let old_id = master_id(&old);
        let retired = dir.join("retired").join(format!("{old_id}.key"));
        match create_file(&retired, format!("{}\n", hex::encode(*old)).as_bytes()) {
            Err(KeyRingError::File { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
        let mut new = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(new.as_mut());
        let staged = path.with_extension(format!("rotated-{}", std::process::id()));
        create_file(&staged, format!("{}\n", hex::encode(*new)).as_bytes())?;
        let failed = |source| KeyRingError::File { path: path.to_owned(), source };
        std::fs::rename(&staged, path).map_err(failed)?;
        private_file::sync_dir(dir).map_err(failed)?;
        Ok((old_id, master_id(&new)))
    }

    /// The ring naming its KMS keys by ARNs of this region and account.
    #[must_use]
    pub fn with_arns(self, region: &str, account: &str) -> Self {
        Self { arn_prefix: format!("arn:aws:kms:{region}:{account}:key/"), ..self }
    }

    /// The ring refusing to wrap data keys, with its master key or the KMS keys beside it,
    /// because the gateways sharing its registry use master key `shared`, which it does not
    /// hold.
    #[must_use]
    pub fn refusing_master(self, shared: String) -> Self {
        Self { foreign_master: Some(shared), ..self }
    }

    /// Whether master key `id` is this ring's current key or one of its retired ones.
    ///
    /// # Errors
    /// The retired key's file cannot be read.
    pub fn holds_master(&self, id: &str) -> Result<bool, KeyRingError> {
        Ok(id == self.master_id || (is_master_key_id(id) && self.retired_key(id)?.is_some()))
    }

    /// The id of the master key that wraps SSE-S3 data keys.
    #[must_use]
    pub fn current_id(&self) -> &str {
        &self.master_id
    }

    /// The ARN of KMS key `id`, as responses name it.
    #[must_use]
    pub fn arn(&self, id: &str) -> String {
        format!("{}{id}", self.arn_prefix)
    }

    /// `key` wrapped by the master key (`kms_key: None`) or by KMS key `kms_key` (an id as
    /// [`KeyRing::resolve`] gives it), for the registry.
    ///
    /// # Errors
    /// [`KeyRingError::NoSuchKmsKey`] and the file errors of reading the KMS key.
    pub fn wrap(&self, key: &DataKey, kms_key: Option<&str>) -> Result<WrappedKey, KeyRingError> {
        // The KMS keys beside a foreign master key are not the others' either.
        if let Some(shared) = &self.foreign_master {
            return Err(KeyRingError::ForeignMaster { own: self.master_id.clone(), shared: shared.clone() });
        }
        let (id, cipher) = match kms_key {
            None => (self.master_id.clone(), None),
            Some(id) => {
                (id.to_owned(), Some(self.kms_key(id)?.ok_or_else(|| KeyRingError::NoSuchKmsKey(id.to_owned()))?))
            }
        };
        Ok(wrap_with(cipher.as_deref().unwrap_or(&self.master), &id, key))
    }

    /// The data key of a registry record.
    ///
    /// # Errors
    /// [`KeyRingError::UnknownKey`], [`KeyRingError::Unwrap`], the file errors of reading a
    /// KMS key.
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, KeyRingError> {
        let other;
        let cipher = if wrapped.key_id == self.master_id {
            &self.master
        } else {
            let id = &wrapped.key_id;
            let found = if is_master_key_id(id) { self.retired_key(id)? } else { self.kms_key(id)? };
            other = found.ok_or_else(|| KeyRingError::UnknownKey(id.clone()))?;
            &*other
        };
        unwrap_with(cipher, wrapped).ok_or_else(|| KeyRingError::Unwrap(wrapped.key_id.clone()))
    }

    /// `wrapped` wrapped anew by the current master key, when a retired master key (one in
    /// `retired/`) wrapped it; `None` for one that this ring's master key, a newer master key
    /// (rotated in since the ring was opened), a KMS key or a customer's key wraps.
    ///
    /// # Errors
    /// [`KeyRingError::UnknownKey`] for a master key that is neither (a retired key already
    /// destroyed); [`KeyRingError::Unwrap`] for a record that does not unwrap.
    pub fn rewrap(&self, wrapped: &WrappedKey) -> Result<Option<WrappedKey>, KeyRingError> {
        let id = &wrapped.key_id;
        if *id == self.master_id || !is_master_key_id(id) {
            return Ok(None);
        }
        let retired = self.dir.join("retired").join(format!("{id}.key"));
        let is_retired = retired.try_exists().map_err(|source| KeyRingError::File { path: retired.clone(), source })?;
        if !is_retired {
            return match read_key(&self.master_path)? {
                Some(newer) if master_id(&newer) == *id => Ok(None),
                _ => Err(KeyRingError::UnknownKey(id.clone())),
            };
        }
        let cipher = self.load(id, &retired)?.ok_or_else(|| KeyRingError::UnknownKey(id.clone()))?;
        let key = unwrap_with(&cipher, wrapped).ok_or_else(|| KeyRingError::Unwrap(id.clone()))?;
        Ok(Some(wrap_with(&self.master, &self.master_id, &key)))
    }

    /// The ids of the master keys rotated out and kept in `retired/`, in order.
    ///
    /// # Errors
    /// The folder cannot be read.
    pub fn retired_ids(&self) -> Result<Vec<String>, KeyRingError> {
        let folder = self.dir.join("retired");
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(KeyRingError::File { path: folder, source }),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| KeyRingError::File { path: folder.clone(), source })?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".key")).filter(|id| is_master_key_id(id)) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The id of the KMS key that `reference` names: a key id, a key ARN, `alias/<name>` or an
    /// alias ARN. The default key ([`DEFAULT_KMS_ALIAS`]) is created the first time it is
    /// named, as AWS creates its managed key.
    ///
    /// # Errors
    /// [`KeyRingError::NoSuchKmsKey`], file errors.
    pub fn resolve(&self, reference: &str) -> Result<String, KeyRingError> {
        // Its KMS keys are not the other gateways': naming one (or making the default one)
        // would leave a bucket default or an object they cannot use.
        if let Some(shared) = &self.foreign_master {
            return Err(KeyRingError::ForeignMaster { own: self.master_id.clone(), shared: shared.clone() });
        }
        let missing = || KeyRingError::NoSuchKmsKey(reference.to_owned());
        let named = reference.rsplit_once(":key/").map_or(reference, |(_, id)| id);
        let alias = named.strip_prefix("alias/").or_else(|| reference.rsplit_once(":alias/").map(|(_, a)| a));
        let id = match alias {
            Some(alias) if !valid_alias(alias) => return Err(missing()),
            Some(alias) => match read_text(&self.alias_path(alias))? {
                Some(id) => id,
                None if alias == DEFAULT_KMS_ALIAS => self.create_kms_key(Some(alias)).or_else(|err| match err {
                    // Another gateway made it first.
                    KeyRingError::Alias(_) => read_text(&self.alias_path(alias))?.ok_or_else(missing),
                    err => Err(err),
                })?,
                None => return Err(missing()),
            },
            None => named.to_owned(),
        };
        self.kms_key(&id)?.map(|_| id).ok_or_else(missing)
    }

    /// Creates a KMS key (and its alias, when given) and returns its id.
    ///
    /// # Errors
    /// [`KeyRingError::Alias`] when the alias is taken or invalid; file errors.
    pub fn create_kms_key(&self, alias: Option<&str>) -> Result<String, KeyRingError> {
        if let Some(alias) = alias
            && (!valid_alias(alias) || self.alias_path(alias).exists())
        {
            return Err(KeyRingError::Alias(alias.to_owned()));
        }
        let id = new_key_id();
        create_key(&self.kms_dir.join(format!("{id}.key")))?;
        if let Some(alias) = alias {
            let path = self.alias_path(alias);
            create_file(&path, id.as_bytes()).map_err(|err| match err {
                KeyRingError::File { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                    KeyRingError::Alias(alias.to_owned())
                }
                err => err,
            })?;
        }
        Ok(id)
    }

    /// Every KMS key, by id, with its aliases.
    ///
    /// # Errors
    /// File errors.
    pub fn kms_keys(&self) -> Result<Vec<(String, Vec<String>)>, KeyRingError> {
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyRingError::File { path, source }
        };
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        let entries = match std::fs::read_dir(&self.kms_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(err) => return Err(failed(&self.kms_dir)(err)),
        };
        for entry in entries {
            let name = entry.map_err(failed(&self.kms_dir))?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".key").filter(|id| valid_key_id(id)) {
                keys.push((id.to_owned(), Vec::new()));
            }
        }
        let aliases = self.kms_dir.join("aliases");
        if let Ok(entries) = std::fs::read_dir(&aliases) {
            for entry in entries {
                let path = entry.map_err(failed(&aliases))?.path();
                let name = path.file_name().and_then(|n| hex::decode(n.to_string_lossy().as_bytes()).ok());
                let (Some(name), Some(id)) = (name.and_then(|n| String::from_utf8(n).ok()), read_text(&path)?) else {
                    continue;
                };
                if let Some((_, names)) = keys.iter_mut().find(|(key, _)| *key == id) {
                    names.push(format!("alias/{name}"));
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// KMS key `id`, read from disk the first time it is asked for; `None` when there is none.
    fn kms_key(&self, id: &str) -> Result<Option<Arc<LessSafeKey>>, KeyRingError> {
        if !valid_key_id(id) {
            return Ok(None);
        }
        self.load(id, &self.kms_dir.join(format!("{id}.key")))
    }

    /// Master key `id` (16 hex digits) other than this ring's current one, read from disk the
    /// first time it is asked for: a retired one, or the one that replaced this ring's current
    /// key in a rotation since this gateway started (another gateway, restarted since, wraps
    /// new data keys with it).
    fn retired_key(&self, id: &str) -> Result<Option<Arc<LessSafeKey>>, KeyRingError> {
        if let Some(key) = self.load(id, &self.dir.join("retired").join(format!("{id}.key")))? {
            return Ok(Some(key));
        }
        match read_key(&self.master_path)? {
            Some(key) if master_id(&key) == id => self.load(id, &self.master_path),
            _ => Ok(None),
        }
    }

    /// The key `id` in the file at `path`, kept in memory once read.
    fn load(&self, id: &str, path: &Path) -> Result<Option<Arc<LessSafeKey>>, KeyRingError> {
        if let Some(key) = self.loaded.read().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Ok(Some(Arc::clone(key)));
        }
        let Some(key) = read_key(path)? else { return Ok(None) };
        let key = Arc::new(segments::cipher(&key));
        self.loaded.write().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned(), Arc::clone(&key));
        Ok(Some(key))
    }

    /// The file naming the key of `alias`: its name in hex, so that `aws/s3` is one file.
    fn alias_path(&self, alias: &str) -> PathBuf {
        self.kms_dir.join("aliases").join(hex::encode(alias))
    }
}

/// `key` wrapped by `cipher` (AES-256-GCM, a random nonce), recorded as wrapped by `id`.
pub(super) fn wrap_with(cipher: &LessSafeKey, id: &str, key: &DataKey) -> WrappedKey {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut sealed = key.0.to_vec();
    let tag = cipher
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(WRAP_AAD), &mut sealed)
        .expect("32 bytes are far below AES-GCM's limit");
    let bytes = [&nonce[..], &sealed, tag.as_ref()].concat();
    WrappedKey { key_id: id.to_owned(), wrapped: STANDARD.encode(bytes) }
}

/// The data key `wrapped` holds, when `cipher` wrapped it; `None` when it did not, or the
/// record was changed.
pub(super) fn unwrap_with(cipher: &LessSafeKey, wrapped: &WrappedKey) -> Option<DataKey> {
    let mut bytes = Zeroizing::new(STANDARD.decode(&wrapped.wrapped).ok()?);
    if bytes.len() != NONCE_LEN + 32 + 16 {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).ok()?;
    let plain = cipher.open_in_place(nonce, Aad::from(WRAP_AAD), &mut bytes[NONCE_LEN..]).ok()?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(plain);
    Some(DataKey(key))
}

/// A master key's id: 16 hex digits derived from it (naming it, revealing nothing of it).
fn master_id(key: &[u8; 32]) -> String {
    hex::encode(&blake3::derive_key(KEY_ID_CONTEXT, key)[..8])
}

/// Whether `id` is shaped as [`master_id`] makes them (and so names no KMS key or customer's
/// key).
pub fn is_master_key_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new KMS key id, shaped as AWS's: 8-4-4-4-12 hex digits.
fn new_key_id() -> String {
    let hex = hex::encode(rand::random::<[u8; 16]>());
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Whether `id` is shaped as [`new_key_id`] makes them (and so names no other path).
fn valid_key_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 256
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
}

/// The key in the file at `path`, `None` when there is no file.
fn read_key(path: &Path) -> Result<Option<Zeroizing<[u8; 32]>>, KeyRingError> {
    let Some(text) = read_text(path)? else { return Ok(None) };
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| KeyRingError::Malformed(path.to_owned()))?;
    Ok(Some(key))
}

/// The text of the file at `path`, trimmed; `None` when there is no file.
fn read_text(path: &Path) -> Result<Option<String>, KeyRingError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyRingError::File { path: path.to_owned(), source }),
    }
}

/// A new random key written to `path`, or the key another process wrote there first.
fn create_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyRingError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    let text = Zeroizing::new(format!("{}\n", hex::encode(*key)));
    match create_file(path, text.as_bytes()) {
        Ok(()) => Ok(key),
        Err(KeyRingError::File { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(path)?.ok_or_else(|| KeyRingError::Malformed(path.to_owned()))
        }
        Err(err) => Err(err),
    }
}

/// [`private_file::create`], its failure named by the path.
fn create_file(path: &Path, bytes: &[u8]) -> Result<(), KeyRingError> {
    private_file::create(path, bytes).map_err(|source| KeyRingError::File { path: path.to_owned(), source })
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
        let wrapped = ring.wrap(&key, None).unwrap();
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
        let wrapped = ring.wrap(&DataKey::generate(), None).unwrap();
        assert!(matches!(other.unwrap(&wrapped), Err(KeyRingError::UnknownKey(_))));
        let mut bytes = STANDARD.decode(&wrapped.wrapped).unwrap();
        bytes[20] ^= 1;
        let changed = WrappedKey { wrapped: STANDARD.encode(bytes), ..wrapped };
        assert!(matches!(ring.unwrap(&changed), Err(KeyRingError::Unwrap(_))));
    }

    #[test]
    fn kms_keys_are_named_by_id_arn_or_alias_and_found_by_another_ring() {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("keys/master.key");
        let ring = KeyRing::open_or_create(&master).unwrap().with_arns("eu-west-1", "123456789012");
        let id = ring.create_kms_key(Some("team/builds")).unwrap();
        assert!(matches!(ring.create_kms_key(Some("team/builds")), Err(KeyRingError::Alias(_))));
        let arn = ring.arn(&id);
        assert_eq!(arn, format!("arn:aws:kms:eu-west-1:123456789012:key/{id}"));
        for reference in
            [id.as_str(), &arn, "alias/team/builds", "arn:aws:kms:eu-west-1:123456789012:alias/team/builds"]
        {
            assert_eq!(ring.resolve(reference).unwrap(), id, "{reference}");
        }
        for unknown in ["alias/nobody", "1234abcd-12ab-34cd-56ef-1234567890ab", "../master", "alias/../../x"] {
            assert!(matches!(ring.resolve(unknown), Err(KeyRingError::NoSuchKmsKey(_))), "{unknown}");
        }
        let key = DataKey::generate();
        let wrapped = ring.wrap(&key, Some(&id)).unwrap();
        assert_eq!(wrapped.key_id, id);
        // Another gateway's ring on the same folder reads the key when it first needs it.
        let other = KeyRing::open_or_create(&master).unwrap();
        assert_eq!(*other.unwrap(&wrapped).unwrap().0, *key.0);
        // The default key is made the first time `aws:kms` names none, once.
        let default = ring.resolve(&format!("alias/{DEFAULT_KMS_ALIAS}")).unwrap();
        assert_eq!(other.resolve(&format!("alias/{DEFAULT_KMS_ALIAS}")).unwrap(), default);
        let listed = ring.kms_keys().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|(key, aliases)| *key == id && aliases == &["alias/team/builds"]));
    }

    #[test]
    fn a_rotated_master_key_wraps_new_keys_and_still_unwraps_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let before = KeyRing::open_or_create(&path).unwrap();
        let key = DataKey::generate();
        let old = before.wrap(&key, None).unwrap();
        let (old_id, new_id) = KeyRing::rotate_master(&path).unwrap();
        assert_eq!(old_id, before.current_id());
        let after = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(after.current_id(), new_id);
        assert_eq!(*after.unwrap(&old).unwrap().0, *key.0, "the retired key still unwraps");
        assert_eq!(after.wrap(&key, None).unwrap().key_id, new_id);
        // A gateway that started before the rotation reads what one started after it wrapped.
        let newer = after.wrap(&key, None).unwrap();
        assert_eq!(*before.unwrap(&newer).unwrap().0, *key.0, "the rotated-in key is read from its file");
        let mode = std::fs::metadata(dir.path().join(format!("keys/retired/{old_id}.key"))).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn keys_wrapped_by_a_retired_master_key_are_wrapped_anew_by_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let before = KeyRing::open_or_create(&path).unwrap();
        let key = DataKey::generate();
        let old = before.wrap(&key, None).unwrap();
        assert!(before.rewrap(&old).unwrap().is_none(), "the current key's records stay");
        let (old_id, new_id) = KeyRing::rotate_master(&path).unwrap();
        let after = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(after.retired_ids().unwrap(), std::slice::from_ref(&old_id));
        let anew = after.rewrap(&old).unwrap().expect("a retired key's record is wrapped anew");
        assert_eq!(anew.key_id, new_id);
        // A ring opened before the rotation does not wrap the newer key's records back.
        assert!(before.rewrap(&anew).unwrap().is_none(), "a newer master key's records stay");
        // Without the retired key, the new record still opens: the old one no longer does.
        std::fs::remove_file(dir.path().join(format!("keys/retired/{old_id}.key"))).unwrap();
        let shredded = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(*shredded.unwrap(&anew).unwrap().0, *key.0);
        assert!(matches!(shredded.unwrap(&old), Err(KeyRingError::UnknownKey(id)) if id == old_id));
        assert!(matches!(shredded.rewrap(&old), Err(KeyRingError::UnknownKey(_))));
        let kms = shredded.create_kms_key(None).unwrap();
        let under_kms = shredded.wrap(&key, Some(&kms)).unwrap();
        assert!(shredded.rewrap(&under_kms).unwrap().is_none(), "KMS keys are not the master key's");
        assert!(shredded.retired_ids().unwrap().is_empty());
    }

    #[test]
    fn rotations_at_the_same_time_lose_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        KeyRing::open_or_create(&path).unwrap();
        let rotations: Vec<(String, String)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..10).map(|_| KeyRing::rotate_master(&path).unwrap()).collect::<Vec<_>>()))
                .collect();
            workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
        });
        let ring = KeyRing::open_or_create(&path).unwrap();
        let retired = ring.retired_ids().unwrap();
        for (old, new) in &rotations {
            assert!(retired.contains(old), "{old} was replaced but not kept");
            assert!(retired.contains(new) || new == ring.current_id(), "{new} was made current, then lost");
        }
        assert_eq!(retired.len(), rotations.len(), "each rotation retires one key");
    }

    #[test]
    fn a_malformed_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(KeyRing::open_or_create(&path), Err(KeyRingError::Malformed(_))));
    }
}
