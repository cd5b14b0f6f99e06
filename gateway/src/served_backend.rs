//! Where a data folder's blobs are: the backend it was served with, remembered in
//! `<data-dir>/backend.json` by `serve`, so that the commands run on the folder later (`verify`,
//! `gc`, `package`, another `serve`) read the blobs where they are without the backend's flags
//! repeated. Without it, `verify --data-dir D` on a folder served with the S3 backend looked in
//! `D/blobs`, found nothing, and reported every blob as lost.
//!
//! Only where the bytes are and how to reach them is kept (endpoint, region, bucket, prefix,
//! addressing, profile name, CA file, lock mirroring), never a credential: the folder's files
//! are readable by whoever runs the commands, and the upstream's keys are each caller's.
//!
//! A command that names no backend (the default, the local store with no upstream bucket)
//! takes the remembered one. A command that names another location is refused, saying what
//! the folder was served with: guessing would either miss every blob or write beside them.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Backend, Config, UpstreamObjectLock};

/// File name under the data directory.
pub const FILE_NAME: &str = "backend.json";

/// What `backend.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Served {
    /// `fs` or `s3`.
    backend: String,
    /// The upstream's settings, with the S3 backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream: Option<Upstream>,
}

/// The S3 backend's settings that say where the blobs are and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Upstream {
    endpoint: Option<String>,
    region: String,
    bucket: String,
    prefix: String,
    path_style: bool,
    profile: Option<String>,
    ca_bundle: Option<PathBuf>,
    object_lock: String,
}

impl Served {
    fn of(config: &Config) -> Self {
        match config.storage.backend {
            Backend::Fs => Self { backend: "fs".to_owned(), upstream: None },
            Backend::S3 => {
                let up = &config.upstream;
                Self {
                    backend: "s3".to_owned(),
                    upstream: Some(Upstream {
                        endpoint: up.endpoint.clone(),
                        region: up.region.clone(),
                        bucket: up.bucket.clone(),
                        prefix: up.prefix.clone(),
                        path_style: up.path_style,
                        profile: up.profile.clone(),
                        ca_bundle: up.ca_bundle.clone(),
                        object_lock: match up.object_lock {
                            UpstreamObjectLock::Off => "off",
                            UpstreamObjectLock::Mirror => "mirror",
                        }
                        .to_owned(),
                    }),
                }
            }
        }
    }

    /// Where the blobs are, in words, for messages.
    fn location(&self) -> String {
        match &self.upstream {
            None => "the local store (its blobs/ folder)".to_owned(),
            Some(up) => format!(
                "the S3 backend: --backend s3{} --upstream-bucket {} (upstream.prefix {:?}, --upstream-region {})",
                up.endpoint.as_ref().map(|e| format!(" --upstream-endpoint {e}")).unwrap_or_default(),
                up.bucket,
                up.prefix,
                up.region
            ),
        }
    }

    /// Whether `other` keeps its blobs in the same place.
    fn same_place(&self, other: &Self) -> bool {
        let place = |served: &Self| {
            served.upstream.as_ref().map(|up| (up.endpoint.clone(), up.bucket.clone(), up.prefix.clone()))
        };
        self.backend == other.backend && place(self) == place(other)
    }
}

/// Records the backend `config` serves `config.storage.data_dir` with. Written atomically and
/// durably (synced temp file, rename, synced folder), on every start, so the file follows a deliberate move.
///
/// # Errors
///
/// I/O errors writing the file.
pub fn remember(config: &Config) -> io::Result<()> {
    let path = config.storage.data_dir.join(FILE_NAME);
    let text = serde_json::to_string_pretty(&Served::of(config)).map_err(io::Error::other)? + "\n";
    // Gateways sharing a folder start together: each writes a temp file of its own.
    let temp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    // Synced before the rename and the folder after it: a power cut leaves the old file or
    // the new one, never an empty one that every command would then refuse.
    let mut file = std::fs::File::create(&temp)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    std::fs::File::open(&config.storage.data_dir)?.sync_all()
}

/// Gives `config` the backend its data folder was served with, when it names none; refuses a
/// configuration that keeps the blobs somewhere else.
///
/// # Errors
///
/// An unreadable or malformed `backend.json`, or a configuration naming another place, with
/// what to pass instead.
pub fn apply(config: &mut Config) -> anyhow::Result<()> {
    let path = config.storage.data_dir.join(FILE_NAME);
    let Some(served) = read(&path)? else { return Ok(()) };
    let given = Served::of(config);
    if served.same_place(&given) {
        return Ok(());
    }
    let names_none = config.storage.backend == Backend::Fs && config.upstream.bucket.is_empty();
    match &served.upstream {
        Some(up) if names_none => {
            tracing::info!(
                file = %path.display(),
                bucket = %up.bucket,
                prefix = %up.prefix,
                "using the S3 backend the data folder was served with"
            );
            config.storage.backend = Backend::S3;
            let upstream = &mut config.upstream;
            upstream.endpoint.clone_from(&up.endpoint);
            upstream.region.clone_from(&up.region);
            upstream.bucket.clone_from(&up.bucket);
            upstream.prefix.clone_from(&up.prefix);
            upstream.path_style = up.path_style;
            if upstream.profile.is_none() && upstream.access_key.is_none() {
                upstream.profile.clone_from(&up.profile);
            }
            if upstream.ca_bundle.is_none() {
                upstream.ca_bundle.clone_from(&up.ca_bundle);
            }
            if up.object_lock == "mirror" {
                upstream.object_lock = UpstreamObjectLock::Mirror;
            }
            Ok(())
        }
        _ => anyhow::bail!(
            "{} was served with {}, but this command names {}: pass the same backend settings \
             (flags, ARTIFACT_STORE_* or --config), or, if the blobs were moved, remove {}",
            config.storage.data_dir.display(),
            served.location(),
            given.location(),
            path.display()
        ),
    }
}

fn read(path: &Path) -> anyhow::Result<Option<Served>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let served: Served =
                serde_json::from_str(&text).map_err(|err| anyhow::anyhow!("{} is malformed: {err}", path.display()))?;
            anyhow::ensure!(
                matches!(served.backend.as_str(), "fs" | "s3") && (served.backend == "s3") == served.upstream.is_some(),
                "{} names no backend this build knows: {:?}",
                path.display(),
                served.backend
            );
            Ok(Some(served))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn s3_config(dir: &Path) -> Config {
        let mut config = Config::default();
        config.storage.data_dir = dir.to_owned();
        config.storage.backend = Backend::S3;
        config.upstream.endpoint = Some("http://rgw:7480".to_owned());
        config.upstream.bucket = "blobs".to_owned();
        config.upstream.prefix = "gw1/".to_owned();
        config.upstream.access_key = Some("UPSTREAMKEY".to_owned());
        config.upstream.secret_key = Some(Secret::new("upstream-secret"));
        config
    }

    fn plain(dir: &Path) -> Config {
        let mut config = Config::default();
        config.storage.data_dir = dir.to_owned();
        config
    }

    #[test]
    fn a_command_naming_no_backend_takes_the_served_one_and_no_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        remember(&s3_config(dir.path())).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("upstream-secret") && !text.contains("UPSTREAMKEY"), "{text}");

        let mut config = plain(dir.path());
        apply(&mut config).unwrap();
        assert_eq!(config.storage.backend, Backend::S3);
        assert_eq!(config.upstream.endpoint.as_deref(), Some("http://rgw:7480"));
        assert_eq!((config.upstream.bucket.as_str(), config.upstream.prefix.as_str()), ("blobs", "gw1/"));
        assert_eq!(config.upstream.access_key, None, "the caller's credentials, not the server's");
    }

    #[test]
    fn the_same_place_passes_and_another_is_refused_with_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        remember(&s3_config(dir.path())).unwrap();
        let mut same = s3_config(dir.path());
        apply(&mut same).unwrap();
        assert_eq!(same, s3_config(dir.path()));

        let mut elsewhere = s3_config(dir.path());
        elsewhere.upstream.prefix = "gw2/".to_owned();
        let err = apply(&mut elsewhere).unwrap_err().to_string();
        assert!(err.contains("--upstream-bucket blobs") && err.contains("\"gw1/\""), "{err}");

        let local = tempfile::tempdir().unwrap();
        remember(&plain(local.path())).unwrap();
        let err = apply(&mut s3_config(local.path())).unwrap_err().to_string();
        assert!(err.contains("was served with the local store"), "{err}");
        apply(&mut plain(local.path())).unwrap();
    }

    #[test]
    fn a_folder_without_the_file_is_left_to_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = plain(dir.path());
        apply(&mut config).unwrap();
        assert_eq!(config, plain(dir.path()));
    }
}
