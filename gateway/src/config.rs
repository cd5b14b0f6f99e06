//! One typed configuration, read from a TOML file, then the environment, then flags; each
//! later source beats the earlier ones.
//!
//! Every key `section.key` has an environment twin `ARTIFACT_STORE_<SECTION>_<KEY>` (listed in
//! [`KEYS`], documented in `docs/configuration.md`). Secrets also accept `<NAME>_FILE`, naming
//! a file that holds the value. Empty environment variables count as unset.
//!
//! `AWS_*` variables are never read here: they belong to upstream S3 clients.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::{Deserialize, de};

use crate::client_addr::TrustedProxies;

/// The whole configuration. `Debug` redacts secrets.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network endpoint.
    pub server: ServerConfig,
    /// Where data lives.
    pub storage: StorageConfig,
    /// The S3 service object bytes go to when `storage.backend = "s3"`.
    pub upstream: UpstreamConfig,
    /// Who may call the API.
    pub auth: AuthConfig,
    /// What the registry records.
    pub registry: RegistryConfig,
    /// The lifecycle sweeper.
    pub lifecycle: LifecycleConfig,
    /// Garbage collection in the background of `serve`.
    pub gc: GcConfig,
    /// Logging.
    pub log: LogConfig,
    /// Server-side encryption.
    pub encryption: EncryptionConfig,
}

/// `[encryption]`
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The master key that wraps the data keys of encrypted objects (64 hex digits). Created
    /// on first start when missing [default: `<data_dir>/keys/master.key`]. Gateways that
    /// share a registry must share this file.
    pub master_key_file: Option<PathBuf>,
    /// Accept SSE-C keys over plain HTTP, which AWS refuses (400 `InvalidRequest`): for tests,
    /// and for a balancer on the same host that ended the client's TLS without saying so.
    pub allow_sse_c_over_http: bool,
}

impl Config {
    /// Where the master key is: `encryption.master_key_file` or its default.
    #[must_use]
    pub fn master_key_path(&self) -> PathBuf {
        self.encryption.master_key_file.clone().unwrap_or_else(|| self.storage.data_dir.join("keys").join("master.key"))
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// The region clients sign for and `GetBucketLocation` reports.
    pub region: String,
    /// Enables virtual-host style (`bucket.<base_domain>`) next to path style.
    pub base_domain: Option<String>,
    /// PEM certificate chain for HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a generated certificate for localhost (written to
    /// `<data_dir>/tls/self-signed.pem`).
    pub tls_self_signed: bool,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_timeout: u64,
    /// A second `host:port` serving only `/_health`, `/_ready` and `/_metrics` (plain HTTP),
    /// for operators who firewall them; `/_metrics` then leaves the main listener.
    pub admin_listen: Option<String>,
    /// Seconds a connection (HTTP/1 or HTTP/2) may stay open with no request in progress,
    /// including before its first request: then it is closed.
    pub idle_timeout: u64,
    /// Seconds an HTTP/1 client has to send a request's headers.
    pub header_read_timeout: u64,
    /// Seconds a request body may go without a byte arriving: then the request fails with
    /// 400 `RequestTimeout`.
    pub body_idle_timeout: u64,
    /// Open connections at most; connections accepted past it are closed at once.
    pub max_connections: usize,
    /// Of those, how many one client may hold open at once (by address: an IPv6 client by its
    /// /64); its connections past it are closed at once. A client that opens connections and
    /// sends nothing then holds a share of them, never all. A trusted proxy's connections are
    /// not counted per client: every client behind it comes from its address.
    pub max_connections_per_client: usize,
    /// Object and part uploads in progress at most; more are refused with 503 `SlowDown`.
    pub max_concurrent_uploads: usize,
    /// Of those, how many one client may hold at once (by address: an IPv6 client by its
    /// /64); more are refused with 503 `SlowDown`. A client that sends slowly then holds a
    /// share of the slots, never all of them.
    pub max_concurrent_uploads_per_client: usize,
    /// The largest file a POST form upload may carry; larger ones are refused with 400
    /// `EntityTooLarge`. s3s holds a form's file in memory before it is stored, so this bounds
    /// the memory each form upload takes. PUT and multipart uploads stream and are not bound
    /// by it.
    pub max_post_object_bytes: u64,
    /// The memory that form uploads in progress may take together: each reserves its length
    /// before its file is read (s3s holds the file in memory, and checks the form's signature
    /// only then), and past it a form is refused with 503 `SlowDown`. One client holds the
    /// share of it that it may hold of the upload slots, or one largest form.
    pub max_post_object_memory: u64,
    /// Load balancers whose `X-Forwarded-For` names the client (addresses or CIDR blocks);
    /// requests on other connections are recorded and authorized by their peer's address.
    pub trusted_proxies: TrustedProxies,
    /// Whether a trusted proxy's `X-Forwarded-Proto` decides `aws:SecureTransport` on its
    /// connections: for balancers that end TLS and set the header, replacing the client's.
    pub trust_forwarded_proto: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9000".to_owned(),
            region: "us-east-1".to_owned(),
            base_domain: None,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            shutdown_timeout: 30,
            admin_listen: None,
            idle_timeout: 60,
            header_read_timeout: 30,
            body_idle_timeout: 20,
            max_connections: 4096,
            max_connections_per_client: 256,
            max_concurrent_uploads: 256,
            max_concurrent_uploads_per_client: 64,
            max_post_object_bytes: 64 * 1024 * 1024,
            max_post_object_memory: 256 * 1024 * 1024,
            trusted_proxies: TrustedProxies::default(),
            trust_forwarded_proto: false,
        }
    }
}

impl ServerConfig {
    /// Whether the server speaks HTTPS.
    #[must_use]
    pub fn tls_enabled(&self) -> bool {
        self.tls_self_signed || self.tls_cert.is_some()
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for blobs, the registry and generated credentials.
    pub data_dir: PathBuf,
    /// Where object bytes live.
    pub backend: Backend,
    /// PutObject bodies of at most this many bytes are kept in the registry instead of the
    /// backend; `None` takes the backend's default ([`StorageConfig::inline_limit`]).
    pub inline_max_bytes: Option<u64>,
    /// The local store writes large bodies with `O_DIRECT`, past the page cache.
    pub direct_io: bool,
    /// The local store refuses a body (503) that would leave less than this many bytes free
    /// on the data folder's disk: the reserve lets the registry go on committing deletes and
    /// retrieval records when blobs have filled the disk [default: 64 MiB].
    pub min_free_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./artifact-store-data"),
            backend: Backend::Fs,
            inline_max_bytes: None,
            direct_io: true,
            min_free_bytes: 64 << 20,
        }
    }
}

/// Most bytes `storage.inline_max_bytes` may be: a body up to this size is received into
/// memory anyway, and larger rows would make the registry file the blob store.
pub const INLINE_MAX_BYTES_LIMIT: u64 = 256 << 10;

impl StorageConfig {
    /// The largest PutObject body kept inline in the registry: `inline_max_bytes`, or by
    /// default 4096 on the local store (a small write then costs the group commit's fsync
    /// only) and 0 on an S3 upstream (whose users expect every object's bytes upstream).
    #[must_use]
    pub fn inline_limit(&self) -> u64 {
        self.inline_max_bytes.unwrap_or(match self.backend {
            Backend::Fs => 4096,
            Backend::S3 => 0,
        })
    }
}

/// `storage.backend`
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `<data_dir>/blobs`, content-addressed.
    #[default]
    Fs,
    /// An S3 upstream (`[upstream]`).
    S3,
}

/// `[upstream]`: the S3 service (AWS, Ceph RGW, MinIO, ...) behind the gateway.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Endpoint URL; unset means AWS's endpoint for `region`.
    pub endpoint: Option<String>,
    /// Region requests are signed for.
    pub region: String,
    /// Bucket holding the blobs. It must exist.
    pub bucket: String,
    /// Prefix of every blob key, so that one bucket can serve several gateways.
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-host style.
    pub path_style: bool,
    /// Access key id; with `secret_key` and `profile` unset too, `AWS_ACCESS_KEY_ID` and
    /// friends are used.
    pub access_key: Option<String>,
    /// Secret access key.
    pub secret_key: Option<Secret>,
    /// Session token for temporary credentials.
    pub session_token: Option<Secret>,
    /// Profile of the shared AWS config and credentials files (`~/.aws/config`,
    /// `~/.aws/credentials`, or `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE`) to take the
    /// credentials from, instead of static keys.
    pub profile: Option<String>,
    /// PEM file of extra certificate authorities to trust for an `https` endpoint.
    pub ca_bundle: Option<PathBuf>,
    /// Seconds to establish a connection.
    pub connect_timeout: u64,
    /// Seconds an upstream may take to answer once a request is sent, and may stall a
    /// transfer for.
    pub timeout: u64,
    /// Attempts per idempotent request (reads, deletes, listings); uploads are never
    /// retried, the client retries them.
    pub max_attempts: u32,
    /// Whether versions' Object Lock retention and legal holds are also set on their
    /// upstream objects.
    pub object_lock: UpstreamObjectLock,
}

/// `upstream.object_lock`
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamObjectLock {
    /// The gateway alone enforces retention; upstream objects carry none.
    #[default]
    Off,
    /// Retention and legal holds are set on the upstream objects too, so that deleting them
    /// behind the gateway's back fails; the upstream bucket must have Object Lock.
    Mirror,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            bucket: String::new(),
            prefix: "artifact-store/".to_owned(),
            path_style: true,
            access_key: None,
            secret_key: None,
            session_token: None,
            profile: None,
            ca_bundle: None,
            connect_timeout: 5,
            timeout: 30,
            max_attempts: 3,
            object_lock: UpstreamObjectLock::Off,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Root access key. With `secret_key` unset too, credentials are generated on first start.
    pub access_key: Option<String>,
    /// Root secret key.
    pub secret_key: Option<Secret>,
    /// A file holding the root secret key (file only; the environment uses `..._FILE`).
    pub secret_key_file: Option<PathBuf>,
    /// Further users, `[[auth.users]]`.
    pub users: Vec<UserConfig>,
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: Option<Secret>,
    /// A file holding the secret key instead.
    pub secret_key_file: Option<PathBuf>,
    /// May send `x-amz-bypass-governance-retention` (the root user always may).
    pub bypass_governance: bool,
}

/// `[registry]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Where the registry's log lives: unset for the embedded SQLite registry in the data
    /// folder, or `postgres://USER[:PASSWORD]@HOST:PORT/DB` for a log shared by several
    /// gateways (each then keeps a replica in `replica_dir`).
    pub url: Option<Secret>,
    /// This gateway's replica of a shared log (default: `<data_dir>/replicas/<host>-<port>`,
    /// one per gateway even when gateways share the data folder).
    pub replica_dir: Option<PathBuf>,
    /// Whether object reads are recorded as retrieval events.
    pub retrievals: Retrievals,
    /// The ed25519 key that signs checkpoints (default: `<data_dir>/checkpoint.key`).
    pub checkpoint_key: Option<PathBuf>,
    /// Seconds between two checks of the views against the log by a serving gateway (a
    /// replay of a snapshot, as `verify` does); 0 turns them off [default: 86400, daily].
    pub views_check_interval_seconds: u64,
    /// A serving gateway signs a checkpoint once this many events were appended since the
    /// last one; 0: not by count [default: 10000].
    pub checkpoint_every_events: u64,
    /// ... or once this many seconds have passed and the log has grown; 0: not by time
    /// [default: 3600]. Both 0 turn automatic checkpoints off.
    pub checkpoint_interval_seconds: u64,
    /// A folder outside the data folder that also receives every automatic checkpoint.
    pub checkpoint_copy_dir: Option<PathBuf>,
    /// An `s3://bucket/prefix/` that also receives every automatic checkpoint (credentials
    /// from the standard `AWS_*` variables); best a bucket under Object Lock.
    pub checkpoint_copy_s3: Option<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: None,
            replica_dir: None,
            retrievals: Retrievals::default(),
            checkpoint_key: None,
            views_check_interval_seconds: 86_400,
            checkpoint_every_events: 10_000,
            checkpoint_interval_seconds: 3_600,
            checkpoint_copy_dir: None,
            checkpoint_copy_s3: None,
        }
    }
}

/// `registry.retrievals`: whether reads (GetObject, HeadObject) are recorded, and what a read
/// does while its record cannot be committed.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Retrievals {
    /// Record every read; while the registry cannot commit, reads are refused (503) rather
    /// than served unrecorded. `all` is accepted for it too.
    #[default]
    #[serde(alias = "all")]
    Required,
    /// Record every read; while the registry cannot commit, reads are served and each record
    /// lost is counted (`artifact_store_retrieval_records_dropped_total`).
    BestEffort,
    /// Record none.
    Off,
}

/// `[lifecycle]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Seconds in a lifecycle "day": 86400, or a few seconds to test rules (as Ceph's
    /// `rgw_lc_debug_interval`).
    pub day_seconds: u64,
    /// Seconds between two sweeps.
    pub sweep_interval_seconds: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self { day_seconds: 86_400, sweep_interval_seconds: 3_600 }
    }
}

impl LifecycleConfig {
    /// The length of a lifecycle day in milliseconds.
    #[must_use]
    pub fn day_ms(&self) -> i64 {
        i64::try_from(self.day_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// `[gc]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Whether `serve` collects garbage by itself.
    pub enabled: bool,
    /// Seconds between two passes.
    pub interval_seconds: u64,
    /// Blobs modified more recently than this many seconds are left for a later pass. Not
    /// what keeps a write's blob safe (that is agreed in the registry); it spares work on
    /// blobs that writes are still placing.
    pub min_age_seconds: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self { enabled: true, interval_seconds: 3_600, min_age_seconds: 3_600 }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `artifact_store_gateway=debug,info`, ...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".to_owned() }
    }
}

/// `log.format`
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret string. `Debug` and `Display` never show it; use [`Secret::expose`].
///
/// Not `#[serde(transparent)]`: as a newtype it names itself (`SECRET`) to the key walk,
/// which gives secrets their `_FILE` variant. TOML reads it as the bare string either way.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct Secret(String);

/// The name serde gives [`Secret`]'s newtype.
const SECRET: &str = "Secret";

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value from the environment or a flag is invalid.
    #[error("invalid value for {origin}: {reason}")]
    Value {
        /// The variable or flag.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The values are valid alone but not together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A configuration key settable from the environment and flags: a scalar field of [`Config`]
/// (lists such as `auth.users` are file-only).
#[derive(Debug)]
pub struct Key {
    /// `section.key`, as in the TOML file.
    pub path: String,
    /// A shorter environment name accepted too (the sectioned name wins if both are set).
    pub alias: Option<&'static str>,
    /// Accepts a `..._FILE` environment variant: [`Secret`]s and the access keys beside them.
    pub secret: bool,
    kind: Kind,
}

/// What a key holds, which decides how a string from the environment or a flag is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Integer,
    /// Strings, paths, and the names of enum variants (which serde checks).
    Text,
}

/// Shorter environment names for keys set often by hand (the first two are also the names in
/// `<data_dir>/root-credentials`).
const ENV_ALIASES: &[(&str, &str)] = &[
    ("auth.access_key", "ARTIFACT_STORE_ACCESS_KEY"),
    ("auth.secret_key", "ARTIFACT_STORE_SECRET_KEY"),
    ("encryption.master_key_file", "ARTIFACT_STORE_MASTER_KEY_FILE"),
];

/// Every key with an environment twin, in the order of [`Config`]'s fields.
pub static KEYS: LazyLock<Vec<Key>> = LazyLock::new(|| {
    let mut found = Vec::new();
    Config::deserialize(Walk { path: String::new(), secret: false, found: &mut found })
        .expect("every configuration field has a type the key walk knows");
    // Secrets, and the access keys that go with them, may come from files.
    let file_variant = |path: &str, secret: bool| secret || path.ends_with(".access_key");
    let with_file_variant: Vec<&str> =
        found.iter().filter(|(path, _, secret)| file_variant(path, *secret)).map(|(path, ..)| path.as_str()).collect();
    // `auth.secret_key_file` is the file's spelling of `ARTIFACT_STORE_AUTH_SECRET_KEY_FILE`.
    let spelled_in_file = |path: &str| path.strip_suffix("_file").is_some_and(|base| with_file_variant.contains(&base));
    found
        .iter()
        .filter(|(path, ..)| !spelled_in_file(path))
        .map(|(path, kind, secret)| Key {
            path: path.clone(),
            alias: ENV_ALIASES.iter().find(|(p, _)| p == path).map(|(_, alias)| *alias),
            secret: file_variant(path, *secret),
            kind: *kind,
        })
        .collect()
});

impl Key {
    /// The environment variable: `server.listen` → `ARTIFACT_STORE_SERVER_LISTEN`.
    #[must_use]
    pub fn env_name(&self) -> String {
        format!("ARTIFACT_STORE_{}", self.path.replace('.', "_").to_uppercase())
    }

    /// The TOML value a string from the environment or a flag stands for. Enum variants stay
    /// strings: deserializing checks them.
    fn value(&self, text: String) -> Result<toml::Value, String> {
        match self.kind {
            Kind::Bool => parse_bool(&text).map(toml::Value::Boolean),
            Kind::Integer => text.parse().map(toml::Value::Integer).map_err(|e| format!("{e}")),
            Kind::Text => Ok(toml::Value::String(text)),
        }
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// A value from the environment or a flag, laid over the file's.
struct Overlay {
    /// The variable or flag it came from.
    origin: String,
    path: String,
    value: toml::Value,
}

impl Config {
    /// Loads the configuration: defaults < `file` < environment (read through `env`) < `flags`.
    ///
    /// `flags` are `(key path, value)` pairs for the flags given on the command line.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an unreadable or invalid file, an invalid value, or a contradictory
    /// combination (see [`Config::validate`]).
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let text = file
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
            })
            .transpose()?;
        let mut table = match (file, &text) {
            (Some(path), Some(text)) => toml::from_str(text)
                .map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })?,
            _ => toml::Table::new(),
        };
        let mut overlays = env_overlays(env)?;
        for (path, value) in flags {
            let key = KEYS.iter().find(|k| k.path == *path).ok_or_else(|| ConfigError::Value {
                origin: (*path).to_owned(),
                reason: "no such configuration key".to_owned(),
            })?;
            let origin = flag_name(path);
            let value =
                key.value(value.clone()).map_err(|reason| ConfigError::Value { origin: origin.clone(), reason })?;
            overlays.push(Overlay { origin, path: key.path.clone(), value });
        }
        for overlay in &overlays {
            set(&mut table, &overlay.path, overlay.value.clone());
        }
        let mut config = Self::deserialize(table).map_err(|err| blame(&err, &overlays, file.zip(text.as_deref())))?;
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    /// Replaces the file's `secret_key_file` keys by the secrets they name.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(file) = self.auth.secret_key_file.take() {
            if self.auth.secret_key.is_some() {
                return Err(ConfigError::Invalid("auth.secret_key and auth.secret_key_file are both set".to_owned()));
            }
            self.auth.secret_key = Some(Secret(read_secret_file(&file)?));
        }
        for user in &mut self.auth.users {
            if let Some(file) = user.secret_key_file.take() {
                if user.secret_key.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "user {}: secret_key and secret_key_file are both set",
                        user.access_key
                    )));
                }
                user.secret_key = Some(Secret(read_secret_file(&file)?));
            }
        }
        Ok(())
    }

    /// Checks combinations that are valid key by key but not together.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the conflict.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        let server = &self.server;
        if server.tls_cert.is_some() != server.tls_key.is_some() {
            return invalid("server.tls_cert and server.tls_key must be set together");
        }
        if server.tls_self_signed && server.tls_cert.is_some() {
            return invalid("server.tls_self_signed cannot be combined with server.tls_cert/tls_key");
        }
        if server.region.is_empty() {
            return invalid("server.region must not be empty");
        }
        let limits = [server.idle_timeout, server.header_read_timeout, server.body_idle_timeout];
        if limits.contains(&0)
            || server.max_connections == 0
            || server.max_connections_per_client == 0
            || server.max_concurrent_uploads == 0
            || server.max_concurrent_uploads_per_client == 0
            || server.max_post_object_bytes == 0
            || server.max_post_object_memory == 0
        {
            return invalid(
                "server.idle_timeout, header_read_timeout, body_idle_timeout, max_connections, \
                 max_connections_per_client, max_concurrent_uploads, max_concurrent_uploads_per_client, \
                 max_post_object_bytes and max_post_object_memory must be positive",
            );
        }
        if self.lifecycle.day_seconds == 0 || self.lifecycle.sweep_interval_seconds == 0 {
            return invalid("lifecycle.day_seconds and lifecycle.sweep_interval_seconds must be positive");
        }
        if self.gc.interval_seconds == 0 {
            return invalid("gc.interval_seconds must be positive");
        }
        if let Some(url) = &self.registry.checkpoint_copy_s3
            && url.strip_prefix("s3://").is_none_or(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            return Err(ConfigError::Invalid(format!(
                "registry.checkpoint_copy_s3 must be an s3://bucket/prefix/, not {url:?}"
            )));
        }
        if self.storage.inline_max_bytes.is_some_and(|n| n > INLINE_MAX_BYTES_LIMIT) {
            return Err(ConfigError::Invalid(format!(
                "storage.inline_max_bytes must be at most {INLINE_MAX_BYTES_LIMIT}"
            )));
        }
        if self.storage.backend == Backend::S3 {
            let upstream = &self.upstream;
            if upstream.bucket.is_empty() {
                return invalid("storage.backend = s3 needs upstream.bucket");
            }
            if upstream.access_key.is_some() != upstream.secret_key.is_some() {
                return invalid("upstream.access_key and upstream.secret_key must be set together");
            }
            if upstream.access_key.is_some() && upstream.profile.is_some() {
                return invalid("upstream.profile and upstream.access_key/secret_key exclude each other");
            }
            if upstream.max_attempts == 0 || upstream.timeout == 0 || upstream.connect_timeout == 0 {
                return invalid("upstream.max_attempts, timeout and connect_timeout must be at least 1");
            }
        }
        if self.auth.access_key.is_some() != self.auth.secret_key.is_some() {
            return invalid("auth.access_key and auth.secret_key must be set together");
        }
        let mut keys: Vec<&str> = self.auth.access_key.iter().map(String::as_str).collect();
        for user in &self.auth.users {
            if user.secret_key.is_none() {
                return Err(ConfigError::Invalid(format!("user {}: secret_key is required", user.access_key)));
            }
            keys.push(&user.access_key);
        }
        for key in &keys {
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
                return Err(ConfigError::Invalid(format!("invalid access key {key:?}")));
            }
        }
        keys.sort_unstable();
        if let Some(pair) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid(format!("access key {} is configured twice", pair[0])));
        }
        Ok(())
    }
}

/// The values set in the environment, with `_FILE` variants read.
fn env_overlays(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Overlay>, ConfigError> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut overlays = Vec::new();
    for key in KEYS.iter() {
        let mut names = vec![key.env_name()];
        names.extend(key.alias.map(str::to_owned));
        let mut found = None;
        for name in names {
            let direct = get(&name);
            let file_name = format!("{name}_FILE");
            let from_file = if key.secret { get(&file_name) } else { None };
            found = match (direct, from_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid(format!("{name} and {file_name} are both set")));
                }
                (Some(v), None) => Some((name, v)),
                (None, Some(path)) => Some((file_name, read_secret_file(Path::new(&path))?)),
                (None, None) => continue,
            };
            break;
        }
        if let Some((origin, text)) = found {
            let value = key.value(text).map_err(|reason| ConfigError::Value { origin: origin.clone(), reason })?;
            overlays.push(Overlay { origin, path: key.path.clone(), value });
        }
    }
    Ok(overlays)
}

/// Sets the key at a dotted `path`. A `<key>_file` beside it is dropped: it came from an
/// earlier source, which the value beats.
fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let (sections, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut table = table;
    for section in sections.split('.').filter(|s| !s.is_empty()) {
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // A section that is not a table is the file's error, which deserializing reports.
        let Some(inner) = entry.as_table_mut() else { return };
        table = inner;
    }
    table.remove(&format!("{key}_file"));
    table.insert(key.to_owned(), value);
}

/// The error of a merged configuration that did not deserialize, blamed on its source: the
/// first environment variable or flag whose value is invalid on its own, else the file (read
/// again for an error that points at its line).
fn blame(err: &toml::de::Error, overlays: &[Overlay], file: Option<(&Path, &str)>) -> ConfigError {
    for overlay in overlays {
        let mut alone = toml::Table::new();
        set(&mut alone, &overlay.path, overlay.value.clone());
        if let Err(err) = Config::deserialize(alone) {
            return ConfigError::Value { origin: overlay.origin.clone(), reason: err.message().to_owned() };
        }
    }
    match file {
        Some((path, text)) => {
            let source = toml::from_str::<Config>(text).err().unwrap_or_else(|| err.clone());
            ConfigError::Parse { path: path.to_owned(), source: Box::new(source) }
        }
        None => ConfigError::Invalid(err.message().to_owned()),
    }
}

/// The flag that sets `path`: `--listen` for `server.listen`, but `--upstream-region` for
/// `upstream.region`, whose flags keep their section to stay apart from the server's.
fn flag_name(path: &str) -> String {
    let name = if path.starts_with("upstream.") { path } else { path.rsplit('.').next().unwrap_or(path) };
    format!("--{}", name.replace(['.', '_'], "-"))
}

/// Reads a secret from a file, without the trailing newline editors and `echo` add.
fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Lists [`Config`]'s keys: a stand-in deserializer that answers each field with a placeholder
/// value and notes the field's path and kind on the way, so that a new field needs no entry
/// elsewhere to get its environment twin and flag.
struct Walk<'a> {
    path: String,
    /// Inside a [`Secret`].
    secret: bool,
    found: &'a mut Vec<(String, Kind, bool)>,
}

impl Walk<'_> {
    fn leaf(self, kind: Kind) {
        self.found.push((self.path, kind, self.secret));
    }
}

impl<'de> de::Deserializer<'de> for Walk<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom(format_args!("{}: a type the key walk does not know", self.path)))
    }

    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.leaf(Kind::Bool);
        visitor.visit_bool(false)
    }

    fn deserialize_u32<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.leaf(Kind::Integer);
        visitor.visit_u64(0)
    }

    fn deserialize_str<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.leaf(Kind::Text);
        visitor.visit_str("")
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(Walk { secret: self.secret || name == SECRET, ..self })
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<()>()))
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.leaf(Kind::Text);
        visitor.visit_enum(de::value::StrDeserializer::new(variants[0]))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Fields { section: self.path, fields: fields.iter(), field: "", found: self.found })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 u8 u16 f32 f64 char bytes byte_buf unit unit_struct tuple tuple_struct map
        identifier ignored_any
    }
}

/// The fields of one struct of the walk, each with its placeholder value.
struct Fields<'a> {
    section: String,
    fields: std::slice::Iter<'static, &'static str>,
    field: &'static str,
    found: &'a mut Vec<(String, Kind, bool)>,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some(&field) = self.fields.next() else { return Ok(None) };
        self.field = field;
        seed.deserialize(de::value::StrDeserializer::new(field)).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let path =
            if self.section.is_empty() { self.field.to_owned() } else { format!("{}.{}", self.section, self.field) };
        seed.deserialize(Walk { path, secret: false, found: &mut *self.found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_follow_the_documented_conventions() {
        let config = Config::load(None, &env(&[]), &[]).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:9000");
        assert_eq!(config.server.region, "us-east-1");
        assert_eq!(config.storage.data_dir, PathBuf::from("./artifact-store-data"));
        assert_eq!(config.registry.retrievals, Retrievals::Required);
        assert_eq!(config.log.format, LogFormat::Text);
        assert!(config.auth.access_key.is_none());
        assert!(config.storage.direct_io);
    }

    #[test]
    fn direct_io_can_be_turned_off() {
        let env = env(&[("ARTIFACT_STORE_STORAGE_DIRECT_IO", "false")]);
        assert!(!Config::load(None, &env, &[]).unwrap().storage.direct_io);
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "c.toml", "[storage]\ndirect_io = false\n");
        assert!(!Config::load(Some(&file), &super::tests::env(&[]), &[]).unwrap().storage.direct_io);
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            "c.toml",
            "[server]\nlisten = \"0.0.0.0:1\"\nregion = \"eu-west-1\"\n[storage]\ndata_dir = \"/from/file\"\n[log]\nformat = \"json\"\n",
        );
        let env =
            env(&[("ARTIFACT_STORE_SERVER_LISTEN", "0.0.0.0:2"), ("ARTIFACT_STORE_STORAGE_DATA_DIR", "/from/env")]);
        let config = Config::load(Some(&file), &env, &[("server.listen", "0.0.0.0:3".to_owned())]).unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:3");
        assert_eq!(config.storage.data_dir, PathBuf::from("/from/env"));
        assert_eq!(config.server.region, "eu-west-1");
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn users_and_sections_parse_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let secret = write(&dir, "secret", "from-a-file\n");
        let file = write(
            &dir,
            "c.toml",
            &format!(
                r#"
[auth]
access_key = "ROOT"
secret_key = "rootsecret"

[[auth.users]]
access_key = "CI"
secret_key = "cisecret"

[[auth.users]]
access_key = "OFFICER"
secret_key_file = "{}"
bypass_governance = true

[registry]
retrievals = "off"
"#,
                secret.display()
            ),
        );
        let config = Config::load(Some(&file), &env(&[]), &[]).unwrap();
        assert_eq!(config.auth.users.len(), 2);
        assert!(!config.auth.users[0].bypass_governance);
        assert!(config.auth.users[1].bypass_governance);
        assert_eq!(config.auth.users[1].secret_key.as_ref().unwrap().expose(), "from-a-file");
        assert_eq!(config.registry.retrievals, Retrievals::Off);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "c.toml", "[server]\nlisten_addr = \"x\"\n");
        assert!(matches!(Config::load(Some(&file), &env(&[]), &[]), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn root_credentials_come_from_short_or_sectioned_env_names() {
        let short = env(&[("ARTIFACT_STORE_ACCESS_KEY", "AK"), ("ARTIFACT_STORE_SECRET_KEY", "SK")]);
        let config = Config::load(None, &short, &[]).unwrap();
        assert_eq!(config.auth.access_key.as_deref(), Some("AK"));
        assert_eq!(config.auth.secret_key.as_ref().unwrap().expose(), "SK");

        let both = env(&[
            ("ARTIFACT_STORE_ACCESS_KEY", "SHORT"),
            ("ARTIFACT_STORE_AUTH_ACCESS_KEY", "LONG"),
            ("ARTIFACT_STORE_SECRET_KEY", "SK"),
        ]);
        assert_eq!(Config::load(None, &both, &[]).unwrap().auth.access_key.as_deref(), Some("LONG"));
    }

    #[test]
    fn secrets_accept_a_file_variant() {
        let dir = tempfile::tempdir().unwrap();
        let secret = write(&dir, "sk", "s3cr3t\r\n");
        let path = secret.to_str().unwrap();
        let config = Config::load(
            None,
            &env(&[("ARTIFACT_STORE_ACCESS_KEY", "AK"), ("ARTIFACT_STORE_SECRET_KEY_FILE", path)]),
            &[],
        )
        .unwrap();
        assert_eq!(config.auth.secret_key.unwrap().expose(), "s3cr3t");

        let clash = env(&[
            ("ARTIFACT_STORE_ACCESS_KEY", "AK"),
            ("ARTIFACT_STORE_SECRET_KEY", "x"),
            ("ARTIFACT_STORE_SECRET_KEY_FILE", path),
        ]);
        assert!(matches!(Config::load(None, &clash, &[]), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let env = env(&[("ARTIFACT_STORE_ACCESS_KEY", "AK"), ("ARTIFACT_STORE_SECRET_KEY", "very-secret-value")]);
        let config = Config::load(None, &env, &[]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn contradictions_are_refused() {
        let cases: &[&[(&str, &str)]] = &[
            &[("ARTIFACT_STORE_SERVER_TLS_CERT", "/c.pem")],
            &[
                ("ARTIFACT_STORE_SERVER_TLS_CERT", "/c.pem"),
                ("ARTIFACT_STORE_SERVER_TLS_KEY", "/k.pem"),
                ("ARTIFACT_STORE_SERVER_TLS_SELF_SIGNED", "true"),
            ],
            &[("ARTIFACT_STORE_ACCESS_KEY", "AK")],
        ];
        for vars in cases {
            assert!(matches!(Config::load(None, &env(vars), &[]), Err(ConfigError::Invalid(_))), "{vars:?}");
        }
        let bad_bool = env(&[("ARTIFACT_STORE_SERVER_TLS_SELF_SIGNED", "maybe")]);
        assert!(matches!(Config::load(None, &bad_bool, &[]), Err(ConfigError::Value { .. })));
    }

    #[test]
    fn duplicate_access_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            "c.toml",
            "[auth]\naccess_key = \"A\"\nsecret_key = \"x\"\n[[auth.users]]\naccess_key = \"A\"\nsecret_key = \"y\"\n",
        );
        assert!(matches!(Config::load(Some(&file), &env(&[]), &[]), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn the_s3_backend_reads_the_upstream_section() {
        let vars = env(&[
            ("ARTIFACT_STORE_STORAGE_BACKEND", "s3"),
            ("ARTIFACT_STORE_UPSTREAM_ENDPOINT", "http://127.0.0.1:7480"),
            ("ARTIFACT_STORE_UPSTREAM_BUCKET", "blobs"),
            ("ARTIFACT_STORE_UPSTREAM_ACCESS_KEY", "UPAK"),
            ("ARTIFACT_STORE_UPSTREAM_SECRET_KEY", "upstream-secret"),
            ("ARTIFACT_STORE_UPSTREAM_OBJECT_LOCK", "mirror"),
        ]);
        let flags = [("upstream.region", "eu-west-3".to_owned())];
        let config = Config::load(None, &vars, &flags).unwrap();
        assert_eq!(config.storage.backend, Backend::S3);
        assert_eq!(config.upstream.endpoint.as_deref(), Some("http://127.0.0.1:7480"));
        assert_eq!(config.upstream.bucket, "blobs");
        assert_eq!(config.upstream.region, "eu-west-3");
        assert_eq!(config.upstream.object_lock, UpstreamObjectLock::Mirror);
        assert_eq!(config.upstream.secret_key.as_ref().unwrap().expose(), "upstream-secret");
        assert!(!format!("{config:?}").contains("upstream-secret"));

        let no_bucket = env(&[("ARTIFACT_STORE_STORAGE_BACKEND", "s3")]);
        assert!(matches!(Config::load(None, &no_bucket, &[]), Err(ConfigError::Invalid(_))));

        let profile = [("upstream.profile", "ci".to_owned())];
        assert!(matches!(Config::load(None, &vars, &profile), Err(ConfigError::Invalid(_))), "profile or keys");
    }

    #[test]
    fn every_key_has_a_distinct_env_name() {
        let mut names: Vec<_> = KEYS.iter().map(Key::env_name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
        assert!(names.contains(&"ARTIFACT_STORE_SERVER_TLS_SELF_SIGNED".to_owned()));
    }

    #[test]
    fn keys_come_from_the_struct_with_secrets_marked() {
        let key = |path: &str| KEYS.iter().find(|k| k.path == path);
        assert_eq!(KEYS.len(), 58);
        let with_file_variant: Vec<&str> = KEYS.iter().filter(|k| k.secret).map(|k| k.path.as_str()).collect();
        assert_eq!(
            with_file_variant,
            [
                "upstream.access_key",
                "upstream.secret_key",
                "upstream.session_token",
                "auth.access_key",
                "auth.secret_key",
                "registry.url"
            ]
        );
        assert!(key("auth.users").is_none() && key("auth.secret_key_file").is_none(), "file-only keys");
        assert_eq!(key("auth.secret_key").unwrap().alias, Some("ARTIFACT_STORE_SECRET_KEY"));
        assert_eq!(key("storage.inline_max_bytes").unwrap().kind, Kind::Integer);
        assert_eq!(key("gc.enabled").unwrap().kind, Kind::Bool);
        assert_eq!(key("log.format").unwrap().kind, Kind::Text);
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        for key in KEYS.iter() {
            assert!(doc.contains(&format!("`{}`", key.env_name())), "{} is not in docs/configuration.md", key.path);
        }
    }

    #[test]
    fn environment_and_flag_values_are_read_as_their_key_types() {
        let vars = env(&[
            ("ARTIFACT_STORE_SERVER_MAX_CONNECTIONS", "10"),
            ("ARTIFACT_STORE_SERVER_MAX_CONNECTIONS_PER_CLIENT", "3"),
            ("ARTIFACT_STORE_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
            ("ARTIFACT_STORE_GC_ENABLED", "no"),
            ("ARTIFACT_STORE_REGISTRY_RETRIEVALS", "best_effort"),
            ("ARTIFACT_STORE_UPSTREAM_MAX_ATTEMPTS", "7"),
        ]);
        let flags = [("storage.inline_max_bytes", "0".to_owned()), ("server.tls_self_signed", "true".to_owned())];
        let config = Config::load(None, &vars, &flags).unwrap();
        assert_eq!(config.server.max_connections, 10);
        assert_eq!(config.server.max_connections_per_client, 3);
        assert_eq!(config.server.trusted_proxies, "10.0.0.0/8,192.0.2.1".parse().unwrap());
        assert!(!config.gc.enabled);
        assert_eq!(config.registry.retrievals, Retrievals::BestEffort);
        assert_eq!(config.upstream.max_attempts, 7);
        assert_eq!(config.storage.inline_max_bytes, Some(0));
        assert!(config.server.tls_self_signed);
    }

    #[test]
    fn invalid_values_name_their_source() {
        let origin = |result: Result<Config, ConfigError>| match result {
            Err(ConfigError::Value { origin, .. }) => origin,
            other => panic!("{other:?}"),
        };
        let bad_backend = env(&[("ARTIFACT_STORE_STORAGE_BACKEND", "tape")]);
        assert_eq!(origin(Config::load(None, &bad_backend, &[])), "ARTIFACT_STORE_STORAGE_BACKEND");
        let negative = env(&[("ARTIFACT_STORE_GC_INTERVAL_SECONDS", "-1")]);
        assert_eq!(origin(Config::load(None, &negative, &[])), "ARTIFACT_STORE_GC_INTERVAL_SECONDS");
        let not_a_number = env(&[("ARTIFACT_STORE_SERVER_IDLE_TIMEOUT", "soon")]);
        assert_eq!(origin(Config::load(None, &not_a_number, &[])), "ARTIFACT_STORE_SERVER_IDLE_TIMEOUT");
        let flag = [("upstream.object_lock", "always".to_owned())];
        assert_eq!(origin(Config::load(None, &env(&[]), &flag)), "--upstream-object-lock");
        let unknown = [("server.nope", "1".to_owned())];
        assert_eq!(origin(Config::load(None, &env(&[]), &unknown)), "server.nope");

        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "c.toml", "[storage]\nbackend = \"tape\"\n");
        let fixed = env(&[("ARTIFACT_STORE_STORAGE_BACKEND", "fs")]);
        assert_eq!(Config::load(Some(&file), &fixed, &[]).unwrap().storage.backend, Backend::Fs);
        match Config::load(Some(&file), &env(&[]), &[]) {
            Err(ConfigError::Parse { source, .. }) => assert!(source.to_string().contains("line 2"), "{source}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_environment_secret_beats_the_files_secret_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "c.toml", "[auth]\naccess_key = \"AK\"\nsecret_key_file = \"/nonexistent\"\n");
        let vars = env(&[("ARTIFACT_STORE_SECRET_KEY", "from-env")]);
        let config = Config::load(Some(&file), &vars, &[]).unwrap();
        assert_eq!(config.auth.secret_key.unwrap().expose(), "from-env");
        assert!(matches!(Config::load(Some(&file), &env(&[]), &[]), Err(ConfigError::Read { .. })));
    }
}
