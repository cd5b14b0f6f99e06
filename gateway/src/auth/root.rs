//! Root credentials: taken from the configuration when set; otherwise read from
//! `<data-dir>/root-credentials`, generating that file (mode 0600) on first start.
//!
//! The file uses `KEY=VALUE` lines with the same names as the environment variables, so a
//! script can `set -a; . <data-dir>/root-credentials` and reach the server.
//! The secret is printed once, in the first-start banner; it is never logged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::keys::random_string;
use crate::config::{Config, Secret};

/// File name under the data directory.
pub const FILE_NAME: &str = "root-credentials";

const ACCESS_KEY_VAR: &str = "ARTIFACT_STORE_ACCESS_KEY";
const SECRET_KEY_VAR: &str = "ARTIFACT_STORE_SECRET_KEY";

/// Where the root credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration (file, environment or flags) set them.
    Configured,
    /// Read from the credentials file of an earlier start.
    Loaded(PathBuf),
    /// Generated now and saved to this file.
    Generated(PathBuf),
}

/// Fills `config.auth.access_key`/`secret_key` if they are unset.
///
/// # Errors
///
/// I/O errors reading or writing the credentials file, or a malformed file.
pub fn resolve(config: &mut Config) -> io::Result<Origin> {
    if config.auth.access_key.is_some() {
        return Ok(Origin::Configured);
    }
    let path = config.storage.data_dir.join(FILE_NAME);
    let (access_key, secret_key, origin) = match read(&path) {
        Ok((access_key, secret_key)) => {
            warn_if_readable_by_others(&path);
            (access_key, secret_key, Origin::Loaded(path))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let access_key = random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 20);
            let secret_key =
                Secret::new(random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40));
            // Name the file: "Permission denied" alone does not say which folder to fix.
            write(&path, &access_key, &secret_key)
                .map_err(|err| io::Error::new(err.kind(), format!("cannot write {}: {err}", path.display())))?;
            (access_key, secret_key, Origin::Generated(path))
        }
        Err(err) => return Err(io::Error::new(err.kind(), format!("{}: {err}", path.display()))),
    };
    config.auth.access_key = Some(access_key);
    config.auth.secret_key = Some(secret_key);
    Ok(origin)
}

/// The first-start banner: where to connect and how, with the new secret. Printed once, to
/// stderr, never logged.
#[must_use]
pub fn banner(config: &Config, endpoint: &str, credentials_file: &Path, ca_bundle: Option<&Path>) -> String {
    let access_key = config.auth.access_key.as_deref().unwrap_or_default();
    let secret_key = config.auth.secret_key.as_ref().map(Secret::expose).unwrap_or_default();
    let region = &config.server.region;
    let ca_env = ca_bundle.map(|p| format!("AWS_CA_BUNDLE={} ", p.display())).unwrap_or_default();
    let ca_flag = ca_bundle.map(|p| format!(" --ca-cert {}", p.display())).unwrap_or_default();
    // rclone's S3 client refuses to start at all when `AWS_CA_BUNDLE` is set, whatever it names
    // and even for an http:// endpoint ("LoadCustomCABundleError"); many shells set it for a
    // company CA, so the line unsets it and passes the gateway's CA, if any, as `--ca-cert`.
    format!(
        "\n\
         artifact-store: generated root credentials, saved to {file} (mode 0600)\n\
         \n\
         \x20 Endpoint:   {endpoint}\n\
         \x20 Region:     {region}\n\
         \x20 Access key: {access_key}\n\
         \x20 Secret key: {secret_key}\n\
         \n\
         \x20 aws cli:\n\
         \x20   {ca_env}AWS_ACCESS_KEY_ID={access_key} AWS_SECRET_ACCESS_KEY={secret_key} AWS_DEFAULT_REGION={region} aws --endpoint-url {endpoint} s3 ls\n\
         \x20 rclone:\n\
         \x20   env -u AWS_CA_BUNDLE rclone lsd :s3:{ca_flag} --s3-provider Other --s3-endpoint {endpoint} --s3-region {region} --s3-access-key-id {access_key} --s3-secret-access-key {secret_key}\n\
         \n\
         This is shown once. Later starts reuse the file.\n",
        file = credentials_file.display(),
    )
}

fn read(path: &Path) -> io::Result<(String, Secret)> {
    let text = fs::read_to_string(path)?;
    let mut access_key = None;
    let mut secret_key = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.split_once('=') {
            Some((ACCESS_KEY_VAR, v)) => access_key = Some(v.trim().to_owned()),
            Some((SECRET_KEY_VAR, v)) => secret_key = Some(Secret::new(v.trim())),
            _ => {}
        }
    }
    match (access_key, secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.expose().is_empty() => Ok((a, s)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected {ACCESS_KEY_VAR}=... and {SECRET_KEY_VAR}=... lines"),
        )),
    }
}

/// Writes the file atomically (temp file, fsync, rename, fsync directory), mode 0600.
fn write(path: &Path, access_key: &str, secret_key: &Secret) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = path.with_extension("tmp");
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
    // `mode` only applies when the file is created; a leftover temp file keeps its mode.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    writeln!(file, "# artifact-store root credentials, generated on first start. Keep this file private.")?;
    writeln!(file, "{ACCESS_KEY_VAR}={access_key}")?;
    writeln!(file, "{SECRET_KEY_VAR}={}", secret_key.expose())?;
    file.sync_all()?;
    fs::rename(&temp, path)?;
    File::open(dir)?.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "root credentials file is accessible to other users; chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut config = Config::default();
        config.storage.data_dir = dir.join("data");
        config
    }

    #[test]
    fn first_start_generates_and_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = config(dir.path());
        let origin = resolve(&mut first).unwrap();
        let path = dir.path().join("data").join(FILE_NAME);
        assert_eq!(origin, Origin::Generated(path.clone()));

        let access_key = first.auth.access_key.clone().unwrap();
        let secret = first.auth.secret_key.clone().unwrap();
        assert_eq!(access_key.len(), 20);
        assert!(access_key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(secret.expose().len(), 40);
        assert!(secret.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let mut second = config(dir.path());
        assert_eq!(resolve(&mut second).unwrap(), Origin::Loaded(path));
        assert_eq!(second.auth.access_key, Some(access_key));
        assert_eq!(second.auth.secret_key, Some(secret));
    }

    #[test]
    fn configured_credentials_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.auth.access_key = Some("AK".to_owned());
        config.auth.secret_key = Some(Secret::new("SK"));
        assert_eq!(resolve(&mut config).unwrap(), Origin::Configured);
        assert!(!dir.path().join("data").join(FILE_NAME).exists());
    }

    #[test]
    fn malformed_file_is_an_error_not_a_new_secret() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        fs::create_dir_all(&config.storage.data_dir).unwrap();
        fs::write(config.storage.data_dir.join(FILE_NAME), "garbage\n").unwrap();
        assert_eq!(resolve(&mut config).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn banner_has_ready_to_paste_client_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        resolve(&mut config).unwrap();
        let text =
            banner(&config, "https://127.0.0.1:9000", Path::new("/d/root-credentials"), Some(Path::new("/d/ca.pem")));
        let secret = config.auth.secret_key.as_ref().unwrap().expose();
        assert!(text.contains(&format!("AWS_SECRET_ACCESS_KEY={secret}")));
        assert!(text.contains("AWS_CA_BUNDLE=/d/ca.pem "));
        assert!(text.contains("aws --endpoint-url https://127.0.0.1:9000 s3 ls"));
        assert!(text.contains("env -u AWS_CA_BUNDLE rclone lsd :s3: --ca-cert /d/ca.pem"));
    }
}
