//! `artifact-store serve`: resolve root credentials, bind, print the first-start banner, serve
//! until SIGTERM or Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::root::{self, Origin};
use crate::config::Config;
use crate::{server, tls};

/// Flags of `serve`; each overrides the configuration key in its doc.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, `host:port` (server.listen) [default: 127.0.0.1:9000].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Region clients sign for (server.region) [default: us-east-1].
    #[arg(long)]
    pub region: Option<String>,

    /// Domain for virtual-host style requests, `bucket.<domain>` (server.base_domain).
    #[arg(long, value_name = "DOMAIN")]
    pub base_domain: Option<String>,

    /// PEM certificate chain for HTTPS (server.tls_cert).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for HTTPS (server.tls_key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a generated certificate for localhost, written to
    /// `<data-dir>/tls/self-signed.pem` (server.tls_self_signed).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,

    /// A second address serving only /_health, /_ready and /_metrics over plain HTTP
    /// (server.admin_listen); /_metrics then leaves the main address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<String>,

    /// Where object bytes live: `fs` (the data directory) or `s3` (an upstream S3 service)
    /// (storage.backend) [default: fs].
    #[arg(long, value_name = "fs|s3")]
    pub backend: Option<String>,

    /// Keep PutObject bodies of at most this many bytes in the registry instead of the backend
    /// (storage.inline_max_bytes) [default: 4096 with fs, 0 with s3].
    #[arg(long, value_name = "BYTES")]
    pub inline_max_bytes: Option<u64>,

    /// Endpoint URL of the upstream S3 service; AWS when unset (upstream.endpoint).
    #[arg(long, value_name = "URL")]
    pub upstream_endpoint: Option<String>,

    /// Upstream bucket that holds the blobs (upstream.bucket).
    #[arg(long, value_name = "NAME")]
    pub upstream_bucket: Option<String>,

    /// Region the upstream requests are signed for (upstream.region) [default: us-east-1].
    #[arg(long, value_name = "REGION")]
    pub upstream_region: Option<String>,

    /// `mirror`: also set versions' Object Lock retention and legal holds on their upstream
    /// objects; the upstream bucket must have Object Lock (upstream.object_lock) [default: off].
    #[arg(long, value_name = "off|mirror")]
    pub upstream_object_lock: Option<String>,

    /// Profile of the shared AWS config/credentials files to sign upstream requests with
    /// (upstream.profile).
    #[arg(long, value_name = "NAME")]
    pub upstream_profile: Option<String>,
}

impl ServeArgs {
    pub(super) fn push_flags(&self, flags: &mut Vec<(&'static str, String)>) {
        let paths = [
            ("server.listen", self.listen.clone()),
            ("server.region", self.region.clone()),
            ("server.base_domain", self.base_domain.clone()),
            ("server.tls_cert", self.tls_cert.as_ref().map(|p| p.display().to_string())),
            ("server.tls_key", self.tls_key.as_ref().map(|p| p.display().to_string())),
            ("server.tls_self_signed", self.tls_self_signed.then(|| "true".to_owned())),
            ("server.admin_listen", self.admin_listen.clone()),
            ("storage.backend", self.backend.clone()),
            ("storage.inline_max_bytes", self.inline_max_bytes.map(|n| n.to_string())),
            ("upstream.endpoint", self.upstream_endpoint.clone()),
            ("upstream.bucket", self.upstream_bucket.clone()),
            ("upstream.region", self.upstream_region.clone()),
            ("upstream.object_lock", self.upstream_object_lock.clone()),
            ("upstream.profile", self.upstream_profile.clone()),
        ];
        flags.extend(paths.into_iter().filter_map(|(key, value)| value.map(|v| (key, v))));
    }
}

/// Runs the server until a shutdown signal.
///
/// # Errors
///
/// Unusable data directory, address, TLS files or credentials file.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let origin = root::resolve(&mut config).context("cannot resolve root credentials")?;
    // Fail on unusable TLS files before announcing anything, and make sure the self-signed
    // certificate named in the banner exists. `server::serve` loads the same files again.
    tls::acceptor(&config.server, &config.storage.data_dir)?;
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local = listener.local_addr()?;
    let endpoint = endpoint(local, config.server.tls_enabled());
    tracing::info!(%endpoint, region = %config.server.region, data_dir = %config.storage.data_dir.display(), "listening");

    if let Origin::Generated(file) = &origin {
        let ca = config.server.tls_self_signed.then(|| tls::self_signed_cert_path(&config.storage.data_dir));
        eprintln!("{}", root::banner(&config, &endpoint, file, ca.as_deref()));
    }

    server::serve(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The URL clients should use: a wildcard bind address is reached through loopback, which the
/// self-signed certificate also names.
fn endpoint(local: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let ip = match local.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, local.port()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_advertise_loopback() {
        assert_eq!(endpoint("0.0.0.0:9000".parse().unwrap(), false), "http://127.0.0.1:9000");
        assert_eq!(endpoint("[::]:9000".parse().unwrap(), true), "https://127.0.0.1:9000");
        assert_eq!(endpoint("10.0.0.5:80".parse().unwrap(), false), "http://10.0.0.5:80");
    }
}
