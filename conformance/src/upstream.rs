//! An S3 upstream for the gateway's S3 backend, and faults between the two.
//!
//! - [`Moto`]: a real moto server (the AWS stand-in) on a free port, killed on drop. It comes
//!   from the test venv (`ARTIFACT_STORE_TEST_VENV`, default `~/.cache/artifact-store/venv`,
//!   made by `scripts/install-test-deps.sh`); a missing one fails the test loudly.
//! - [`RunUpstream`]: the upstream the run was given (moto or Ceph RGW), reached directly.
//! - [`FaultProxy`]: a TCP proxy in front of it that forwards faithfully, or cuts connections
//!   in the middle of a request body (what the gateway sees when its upstream dies mid-PUT),
//!   answers every request with a 5xx itself, or accepts requests and never answers. The
//!   faults are injected by the proxy; every byte that gets through reaches the real moto.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Credentials the gateway signs upstream requests with (moto accepts any).
pub const UPSTREAM_ACCESS_KEY: &str = "upstreamaccesskey001";
/// See [`UPSTREAM_ACCESS_KEY`].
pub const UPSTREAM_SECRET_KEY: &str = "upstreamsecretkey0000000000000000000001";

/// The S3 upstream of the run (`CONFORMANCE_UPSTREAM_ENDPOINT`, `_REGION`, `_ACCESS_KEY`,
/// `_SECRET_KEY`, as `scripts/test.sh` sets them), for tests that need an upstream bucket of
/// their own (one with Object Lock, say) or to reach the upstream behind the gateway's back.
#[derive(Debug, Clone)]
pub struct RunUpstream {
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
}

impl RunUpstream {
    /// The run's upstream, for the tests that need one: they are `#[ignore]`d, and the
    /// upstream tier runs them with `--include-ignored`.
    ///
    /// # Panics
    /// When the run has none: a test that was asked to run and could not has failed.
    #[must_use]
    pub fn required() -> Self {
        Self::from_env().expect("no CONFORMANCE_UPSTREAM_ENDPOINT: this test needs the run's S3 upstream")
    }

    /// The run's upstream; `None` when the run has none (the test then has nothing to test).
    #[must_use]
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(format!("CONFORMANCE_UPSTREAM_{name}")).ok().filter(|v| !v.is_empty());
        Some(Self {
            endpoint: var("ENDPOINT")?,
            region: var("REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            access_key: var("ACCESS_KEY").unwrap_or_else(|| UPSTREAM_ACCESS_KEY.to_owned()),
            secret_key: var("SECRET_KEY").unwrap_or_else(|| UPSTREAM_SECRET_KEY.to_owned()),
        })
    }

    /// The access key and secret key.
    #[must_use]
    pub fn keys(&self) -> (&str, &str) {
        (&self.access_key, &self.secret_key)
    }

    /// A client talking to the upstream directly.
    #[must_use]
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(&self.access_key, &self.secret_key, None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The gateway's settings for keeping its blobs under `prefix` in `bucket`, without
    /// credentials (see [`RunUpstream::keys`]).
    #[must_use]
    pub fn gateway_env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        [
            ("ARTIFACT_STORE_STORAGE_BACKEND", "s3"),
            ("ARTIFACT_STORE_UPSTREAM_ENDPOINT", self.endpoint.as_str()),
            ("ARTIFACT_STORE_UPSTREAM_REGION", self.region.as_str()),
            ("ARTIFACT_STORE_UPSTREAM_BUCKET", bucket),
            ("ARTIFACT_STORE_UPSTREAM_PREFIX", prefix),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// A moto server on loopback.
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    ///
    /// # Panics
    /// When moto is not installed or does not answer within 30 s.
    pub async fn start() -> Self {
        let venv = std::env::var_os("ARTIFACT_STORE_TEST_VENV").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/artifact-store/venv"),
            PathBuf::from,
        );
        let bin = venv.join("bin/moto_server");
        assert!(bin.is_file(), "{} missing: run scripts/install-test-deps.sh", bin.display());
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("free port").local_addr().unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
        let moto = Self { child, addr: port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while moto.client().list_buckets().send().await.is_err() {
            assert!(Instant::now() < deadline, "moto did not answer on {}", moto.addr);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Where moto listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client talking to moto directly, past any proxy.
    #[must_use]
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://{}", self.addr))
            .force_path_style(true)
            .credentials_provider(Credentials::new(UPSTREAM_ACCESS_KEY, UPSTREAM_SECRET_KEY, None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Every key in `bucket` under `prefix`.
    ///
    /// # Panics
    /// When the listing fails.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listed = self.client().list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list upstream");
        let mut keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        keys.sort();
        keys
    }

    /// The key of every multipart upload in progress in `bucket` under `prefix`.
    ///
    /// # Panics
    /// When the listing fails.
    pub async fn uploads(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listed =
            self.client().list_multipart_uploads().bucket(bucket).prefix(prefix).send().await.expect("list uploads");
        listed.uploads().iter().filter_map(|u| u.key().map(str::to_owned)).collect()
    }

    /// The bytes of one object.
    ///
    /// # Panics
    /// When the read fails.
    pub async fn read(&self, bucket: &str, key: &str) -> Vec<u8> {
        let object = self.client().get_object().bucket(bucket).key(key).send().await.expect("read upstream");
        object.body.collect().await.expect("upstream body").into_bytes().to_vec()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does with the connections it accepts from now on. Changing it drops every
/// open connection, so no pooled connection carries the old behaviour over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    None,
    /// Forward this many request bytes, then cut both connections.
    CutAfter(usize),
    /// Answer every request with this status and S3 error code, forwarding nothing.
    Answer(u16, &'static str),
    /// Read requests and never answer.
    Stall,
}

/// A TCP proxy to an upstream, with a switchable [`Fault`].
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding to `upstream`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (fault, watcher) = watch::channel(Fault::None);
        let watcher = Arc::new(watcher);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watcher = (*watcher).clone();
                let fault = *watcher.borrow_and_update();
                tokio::spawn(async move {
                    tokio::select! {
                        () = serve(client, upstream, fault) => {}
                        _ = watcher.changed() => {} // dropping both sockets cuts them
                    }
                });
            }
        });
        Self { addr, fault, task }
    }

    /// The proxy's endpoint URL.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the fault for new connections and cuts the open ones.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    match fault {
        Fault::None => {
            if let Ok(mut upstream) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
        Fault::CutAfter(limit) => {
            let Ok(upstream) = TcpStream::connect(upstream).await else { return };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = upstream.into_split();
            let answers = tokio::io::copy(&mut upstream_read, &mut client_write);
            let requests = async {
                let mut forwarded = 0;
                let mut buf = vec![0; 64 * 1024];
                while forwarded < limit {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n.min(limit - forwarded),
                    };
                    if upstream_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    forwarded += n;
                }
            };
            // Whichever ends first, both sockets are dropped: the upstream is gone.
            tokio::select! {
                () = requests => {}
                _ = answers => {}
            }
        }
        Fault::Answer(status, code) => {
            let mut buf = vec![0; 64 * 1024];
            // Answer once the request head is in; the body, if any, is never read.
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            let response = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(response.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Fault::Stall => {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = client.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}
