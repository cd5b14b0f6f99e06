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

use serde::Deserialize;

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
    /// Object and part uploads in progress at most; more are refused with 503 `SlowDown`.
    pub max_concurrent_uploads: usize,
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
            max_concurrent_uploads: 256,
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
    /// Whether object reads are recorded as retrieval events.
    pub retrievals: Retrievals,
    /// The ed25519 key that signs checkpoints [default: `<data_dir>/checkpoint.key`].
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
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            retrievals: Retrievals::default(),
            checkpoint_key: None,
            views_check_interval_seconds: 86_400,
            checkpoint_every_events: 10_000,
            checkpoint_interval_seconds: 3_600,
            checkpoint_copy_dir: None,
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
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

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

/// A configuration key settable from the environment and flags.
pub struct Key {
    /// `section.key`, as in the TOML file.
    pub path: &'static str,
    /// A shorter environment name accepted too (the sectioned name wins if both are set).
    pub alias: Option<&'static str>,
    /// Accepts a `..._FILE` environment variant.
    pub secret: bool,
    set: fn(&mut Config, String) -> Result<(), String>,
}

impl Key {
    /// The environment variable: `server.listen` → `ARTIFACT_STORE_SERVER_LISTEN`.
    #[must_use]
    pub fn env_name(&self) -> String {
        format!("ARTIFACT_STORE_{}", self.path.replace('.', "_").to_uppercase())
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// Every key with an environment twin, in documentation order. `auth.users` is file-only.
pub const KEYS: &[Key] = &[
    Key {
        path: "server.listen",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.listen = v;
            Ok(())
        },
    },
    Key {
        path: "server.region",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.region = v;
            Ok(())
        },
    },
    Key {
        path: "server.base_domain",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.base_domain = Some(v);
            Ok(())
        },
    },
    Key {
        path: "server.tls_cert",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.tls_cert = Some(v.into());
            Ok(())
        },
    },
    Key {
        path: "server.tls_key",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.tls_key = Some(v.into());
            Ok(())
        },
    },
    Key {
        path: "server.tls_self_signed",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.tls_self_signed = parse_bool(&v)?;
            Ok(())
        },
    },
    Key {
        path: "server.shutdown_timeout",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.shutdown_timeout = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "server.admin_listen",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.admin_listen = Some(v);
            Ok(())
        },
    },
    Key {
        path: "server.idle_timeout",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.idle_timeout = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "server.header_read_timeout",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.header_read_timeout = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "server.body_idle_timeout",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.body_idle_timeout = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "server.max_connections",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.max_connections = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "server.max_concurrent_uploads",
        alias: None,
        secret: false,
        set: |c, v| {
            c.server.max_concurrent_uploads = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "storage.data_dir",
        alias: None,
        secret: false,
        set: |c, v| {
            c.storage.data_dir = v.into();
            Ok(())
        },
    },
    Key {
        path: "storage.backend",
        alias: None,
        secret: false,
        set: |c, v| {
            c.storage.backend = match v.as_str() {
                "fs" => Backend::Fs,
                "s3" => Backend::S3,
                _ => return Err(format!("expected fs or s3, got {v:?}")),
            };
            Ok(())
        },
    },
    Key {
        path: "storage.inline_max_bytes",
        alias: None,
        secret: false,
        set: |c, v| {
            c.storage.inline_max_bytes = Some(v.parse().map_err(|e| format!("{e}"))?);
            Ok(())
        },
    },
    Key {
        path: "storage.direct_io",
        alias: None,
        secret: false,
        set: |c, v| {
            c.storage.direct_io = parse_bool(&v)?;
            Ok(())
        },
    },
    Key {
        path: "storage.min_free_bytes",
        alias: None,
        secret: false,
        set: |c, v| {
            c.storage.min_free_bytes = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "upstream.endpoint",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.endpoint = Some(v);
            Ok(())
        },
    },
    Key {
        path: "upstream.region",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.region = v;
            Ok(())
        },
    },
    Key {
        path: "upstream.bucket",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.bucket = v;
            Ok(())
        },
    },
    Key {
        path: "upstream.prefix",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.prefix = v;
            Ok(())
        },
    },
    Key {
        path: "upstream.path_style",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.path_style = parse_bool(&v)?;
            Ok(())
        },
    },
    Key {
        path: "upstream.access_key",
        alias: None,
        secret: true,
        set: |c, v| {
            c.upstream.access_key = Some(v);
            Ok(())
        },
    },
    Key {
        path: "upstream.secret_key",
        alias: None,
        secret: true,
        set: |c, v| {
            c.upstream.secret_key = Some(Secret(v));
            Ok(())
        },
    },
    Key {
        path: "upstream.session_token",
        alias: None,
        secret: true,
        set: |c, v| {
            c.upstream.session_token = Some(Secret(v));
            Ok(())
        },
    },
    Key {
        path: "upstream.profile",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.profile = Some(v);
            Ok(())
        },
    },
    Key {
        path: "upstream.ca_bundle",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.ca_bundle = Some(v.into());
            Ok(())
        },
    },
    Key {
        path: "upstream.connect_timeout",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.connect_timeout = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "upstream.timeout",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.timeout = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "upstream.max_attempts",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.max_attempts = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "upstream.object_lock",
        alias: None,
        secret: false,
        set: |c, v| {
            c.upstream.object_lock = match v.as_str() {
                "off" => UpstreamObjectLock::Off,
                "mirror" => UpstreamObjectLock::Mirror,
                _ => return Err(format!("expected off or mirror, got {v:?}")),
            };
            Ok(())
        },
    },
    Key {
        path: "auth.access_key",
        alias: Some("ARTIFACT_STORE_ACCESS_KEY"),
        secret: true,
        set: |c, v| {
            c.auth.access_key = Some(v);
            Ok(())
        },
    },
    Key {
        path: "auth.secret_key",
        alias: Some("ARTIFACT_STORE_SECRET_KEY"),
        secret: true,
        set: |c, v| {
            c.auth.secret_key = Some(Secret(v));
            c.auth.secret_key_file = None;
            Ok(())
        },
    },
    Key {
        path: "registry.checkpoint_key",
        alias: None,
        secret: false,
        set: |c, v| {
            c.registry.checkpoint_key = Some(v.into());
            Ok(())
        },
    },
    Key {
        path: "registry.checkpoint_every_events",
        alias: None,
        secret: false,
        set: |c, v| {
            c.registry.checkpoint_every_events = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "registry.checkpoint_interval_seconds",
        alias: None,
        secret: false,
        set: |c, v| {
            c.registry.checkpoint_interval_seconds = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "registry.checkpoint_copy_dir",
        alias: None,
        secret: false,
        set: |c, v| {
            c.registry.checkpoint_copy_dir = Some(v.into());
            Ok(())
        },
    },
    Key {
        path: "registry.views_check_interval_seconds",
        alias: None,
        secret: false,
        set: |c, v| {
            c.registry.views_check_interval_seconds = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "registry.retrievals",
        alias: None,
        secret: false,
        set: |c, v| {
            c.registry.retrievals = match v.as_str() {
                "required" | "all" => Retrievals::Required,
                "best_effort" => Retrievals::BestEffort,
                "off" => Retrievals::Off,
                _ => return Err(format!("expected required, best_effort or off, got {v:?}")),
            };
            Ok(())
        },
    },
    Key {
        path: "lifecycle.day_seconds",
        alias: None,
        secret: false,
        set: |c, v| {
            c.lifecycle.day_seconds = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "lifecycle.sweep_interval_seconds",
        alias: None,
        secret: false,
        set: |c, v| {
            c.lifecycle.sweep_interval_seconds = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "gc.enabled",
        alias: None,
        secret: false,
        set: |c, v| {
            c.gc.enabled = parse_bool(&v)?;
            Ok(())
        },
    },
    Key {
        path: "gc.interval_seconds",
        alias: None,
        secret: false,
        set: |c, v| {
            c.gc.interval_seconds = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "gc.min_age_seconds",
        alias: None,
        secret: false,
        set: |c, v| {
            c.gc.min_age_seconds = v.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        },
    },
    Key {
        path: "log.format",
        alias: None,
        secret: false,
        set: |c, v| {
            c.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("expected text or json, got {v:?}")),
            };
            Ok(())
        },
    },
    Key {
        path: "log.level",
        alias: None,
        secret: false,
        set: |c, v| {
            c.log.level = v;
            Ok(())
        },
    },
];

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
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(env)?;
        for (path, value) in flags {
            let key = KEYS.iter().find(|k| k.path == *path).ok_or_else(|| ConfigError::Value {
                origin: (*path).to_owned(),
                reason: "no such configuration key".to_owned(),
            })?;
            (key.set)(&mut config, value.clone())
                .map_err(|reason| ConfigError::Value { origin: flag_name(path), reason })?;
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })?;
        // `*_file` keys are resolved here, at the file's precedence.
        if let Some(file) = config.auth.secret_key_file.take() {
            if config.auth.secret_key.is_some() {
                return Err(ConfigError::Invalid("auth.secret_key and auth.secret_key_file are both set".to_owned()));
            }
            config.auth.secret_key = Some(Secret(read_secret_file(&file)?));
        }
        for user in &mut config.auth.users {
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
        Ok(config)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        for key in KEYS {
            let name = key.env_name();
            let mut names = vec![name];
            names.extend(key.alias.map(str::to_owned));
            let mut found = None;
            for name in &names {
                let direct = get(name);
                let file_name = format!("{name}_FILE");
                let from_file = if key.secret { get(&file_name) } else { None };
                found = match (direct, from_file) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::Invalid(format!("{name} and {file_name} are both set")));
                    }
                    (Some(v), None) => Some((name.clone(), v)),
                    (None, Some(path)) => Some((file_name, read_secret_file(Path::new(&path))?)),
                    (None, None) => continue,
                };
                break;
            }
            if let Some((origin, value)) = found {
                (key.set)(self, value).map_err(|reason| ConfigError::Value { origin, reason })?;
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
        if limits.contains(&0) || server.max_connections == 0 || server.max_concurrent_uploads == 0 {
            return invalid(
                "server.idle_timeout, header_read_timeout, body_idle_timeout, max_connections and \
                 max_concurrent_uploads must be positive",
            );
        }
        if self.lifecycle.day_seconds == 0 || self.lifecycle.sweep_interval_seconds == 0 {
            return invalid("lifecycle.day_seconds and lifecycle.sweep_interval_seconds must be positive");
        }
        if self.gc.interval_seconds == 0 {
            return invalid("gc.interval_seconds must be positive");
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
}
