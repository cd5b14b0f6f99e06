//! The server guard: the real binary on a free port with its own data folder, killed on drop.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{ACCESS_KEY, REGION, SECRET_KEY};

/// How long a server may take to answer `/_health` before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a port taken between choosing it and binding it is retried with another one.
const PORT_ATTEMPTS: usize = 5;

/// HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP.
    Http,
    /// HTTPS with a self-signed certificate for `127.0.0.1` made for this server.
    Https,
}

/// A running `artifact-store serve`. Dropping it kills the process; its data folder goes
/// with it.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    transport: Transport,
    /// PEM of the self-signed certificate, for HTTPS.
    cert_pem: Option<String>,
    /// The TLS client configuration trusting `cert_pem`, for raw requests.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    dir: TempDir,
    /// Extra `serve` flags, kept for a restart.
    serve_flags: Vec<String>,
    /// Extra environment (configuration), kept for a restart and given to CLI commands.
    env: Vec<(String, String)>,
    /// A data folder shared with other servers, instead of one in `dir`.
    shared_data_dir: Option<PathBuf>,
}

impl Server {
    /// Starts the binary and waits until `/_health` answers 200. With `CONFORMANCE_UPSTREAM_*`
    /// set (see [`upstream_env`]) the server keeps its bytes in that S3 upstream, under a
    /// prefix of its own.
    ///
    /// # Panics
    /// When the binary is missing, does not start, or is not healthy within a minute; the
    /// message carries the server's log.
    pub async fn start(transport: Transport) -> Self {
        Self::start_with(transport, &[], upstream_env()).await
    }

    /// Starts the binary with extra `serve` flags and `ARTIFACT_STORE_*` environment variables
    /// (configuration), as [`Server::start`] does; [`upstream_env`] keeps the S3 upstream of the
    /// run.
    ///
    /// # Panics
    /// As [`Server::start`].
    pub async fn start_with(transport: Transport, serve_flags: &[&str], env: Vec<(String, String)>) -> Self {
        Self::start_in(transport, serve_flags, env, None).await
    }

    /// Starts the binary as [`Server::start_with`] does, on the data folder `data_dir` that
    /// other servers share (gateways on one shared registry and one local store).
    ///
    /// # Panics
    /// As [`Server::start`].
    pub async fn start_sharing(transport: Transport, data_dir: &Path, env: Vec<(String, String)>) -> Self {
        Self::start_in(transport, &[], env, Some(data_dir.to_owned())).await
    }

    async fn start_in(
        transport: Transport,
        serve_flags: &[&str],
        env: Vec<(String, String)>,
        shared_data_dir: Option<PathBuf>,
    ) -> Self {
        let serve_flags: Vec<String> = serve_flags.iter().map(|&flag| flag.to_owned()).collect();
        let bin = binary_path();
        let mut dir = tempfile::Builder::new().prefix("artifact-store-conformance-").tempdir().expect("temp folder");
        let (cert_pem, tls) = match transport {
            Transport::Http => (None, None),
            Transport::Https => {
                let (pem, config) = self_signed(dir.path());
                (Some(pem), Some(config))
            }
        };
        for attempt in 1..=PORT_ATTEMPTS {
            let addr = free_port();
            let data_dir = shared_data_dir.clone().unwrap_or_else(|| dir.path().join("data"));
            let child = spawn(&bin, dir.path(), &data_dir, addr, transport, &serve_flags, &env);
            let mut server = Server {
                child,
                addr,
                transport,
                cert_pem: cert_pem.clone(),
                tls: tls.clone(),
                dir,
                serve_flags: serve_flags.clone(),
                env: env.clone(),
                shared_data_dir: shared_data_dir.clone(),
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                // Another process took the port after we chose it: try another one.
                Err(log) if log.contains("cannot listen") && attempt < PORT_ATTEMPTS => dir = server.stop().dir,
                Err(log) => panic!("artifact-store did not become healthy at {addr}:\n{log}"),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// Polls `/_health` until it answers 200; on failure returns the server's log.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            let health = self.request("GET", "/_health");
            if let Ok(response) = self.try_send(&health, false).await
                && response.is_some_and(|r| r.status == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no 200 from /_health within {READY_TIMEOUT:?}\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM: the server stops accepting, finishes what is in flight and exits.
    /// Returns at once; [`Server::wait_exit`] waits for the exit.
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit and returns its status.
    ///
    /// # Panics
    /// When it has not exited within a minute; the message carries the server's log.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within {READY_TIMEOUT:?}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the binary again on the same address and data folder, after it exited, and
    /// waits until it is healthy.
    ///
    /// # Panics
    /// When it does not become healthy within a minute.
    pub async fn restart(&mut self) {
        self.kill();
        let data_dir = self.data_dir();
        self.child =
            spawn(&binary_path(), self.dir.path(), &data_dir, self.addr, self.transport, &self.serve_flags, &self.env);
        if let Err(log) = self.wait_ready().await {
            panic!("artifact-store did not restart at {}:\n{log}", self.addr);
        }
    }

    /// Runs `artifact-store <args> --data-dir <this server's data folder>` to its end, with
    /// the same clean environment as the server, and returns what it printed.
    ///
    /// # Panics
    /// When the binary cannot be started.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run artifact-store")
    }

    /// The value of the configuration variable `name` (`ARTIFACT_STORE_*`) the server was
    /// started with, if it was given one.
    #[must_use]
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Whether this server keeps its bytes in an S3 upstream rather than its data folder.
    #[must_use]
    pub fn on_s3_backend(&self) -> bool {
        self.env.iter().any(|(name, value)| name == "ARTIFACT_STORE_STORAGE_BACKEND" && value == "s3")
    }

    /// The command [`Server::cli`] runs, for commands that keep running (`events tail`).
    #[must_use]
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary_path());
        command.args(args).arg("--data-dir").arg(self.data_dir()).env_clear().stdin(Stdio::null());
        // As for the server: nothing of the machine's environment but the basics.
        for name in ["PATH", "RUST_LOG", "RUST_BACKTRACE", "TMPDIR"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        // The server's configuration (its S3 upstream, say) applies to its data folder's commands.
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Kills the process and hands back the data folder (for a retry on another port).
    fn stop(mut self) -> StoppedServer {
        self.kill();
        // `Server` implements Drop, so the folder is moved out by swapping in an empty one.
        let empty = tempfile::tempdir().expect("temp folder");
        StoppedServer { dir: std::mem::replace(&mut self.dir, empty) }
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The endpoint URL, `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        let scheme = match self.transport {
            Transport::Http => "http",
            Transport::Https => "https",
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The `Host` header requests carry.
    #[must_use]
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// HTTP or HTTPS.
    #[must_use]
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The PEM certificate clients must trust, for HTTPS.
    #[must_use]
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The server's data folder.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.shared_data_dir.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// The server's registry database.
    #[must_use]
    pub fn registry_path(&self) -> PathBuf {
        self.data_dir().join("registry.db")
    }

    /// Everything the server wrote to stdout and stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // A failing test's server is gone with its folder: show why it refused what it did.
        if std::thread::panicking() {
            let log = self.log();
            let noteworthy: Vec<&str> =
                log.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
            let tail = &noteworthy[noteworthy.len().saturating_sub(LOG_LINES_ON_FAILURE)..];
            eprintln!("--- the last {} warnings and errors of the server's log:\n{}", tail.len(), tail.join("\n"));
        }
    }
}

/// Warnings and errors of the server's log a failing test prints.
const LOG_LINES_ON_FAILURE: usize = 30;

struct StoppedServer {
    dir: TempDir,
}

/// The binary under test: `ARTIFACT_STORE_BIN`, or `artifact-store` beside the test's
/// `deps/` folder.
///
/// # Panics
/// When it is not there.
#[must_use]
pub fn binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ARTIFACT_STORE_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "ARTIFACT_STORE_BIN={} is not a file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    // target/<profile>/deps/<test> -> target/<profile>/artifact-store
    let profile_dir = exe.parent().and_then(Path::parent).expect("test executable inside target/<profile>/deps");
    let path = profile_dir.join(format!("artifact-store{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "artifact-store binary not found at {}: build it first with `cargo build -p artifact-store-gateway` \
         (same CARGO_TARGET_DIR and profile as the tests), or set ARTIFACT_STORE_BIN",
        path.display()
    );
    path
}

/// A port nobody listened on a moment ago. The server may still lose it to another process
/// before it binds; [`Server::start`] retries then.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

/// The S3 backend settings for a test server, from `CONFORMANCE_UPSTREAM_ENDPOINT`,
/// `_BUCKET`, `_REGION`, `_ACCESS_KEY` and `_SECRET_KEY` (set by `conformance/run.sh
/// --backend s3`), with a fresh prefix per server; empty (the local store) when unset.
#[must_use]
pub fn upstream_env() -> Vec<(String, String)> {
    let var = |name: &str| std::env::var(format!("CONFORMANCE_UPSTREAM_{name}")).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("ENDPOINT") else { return Vec::new() };
    let prefix = format!("rust-{:016x}/", rand_u64());
    let mut env = vec![
        ("ARTIFACT_STORE_STORAGE_BACKEND".to_owned(), "s3".to_owned()),
        ("ARTIFACT_STORE_UPSTREAM_ENDPOINT".to_owned(), endpoint),
        ("ARTIFACT_STORE_UPSTREAM_PREFIX".to_owned(), prefix),
    ];
    for name in ["BUCKET", "REGION", "ACCESS_KEY", "SECRET_KEY"] {
        if let Some(value) = var(name) {
            env.push((format!("ARTIFACT_STORE_UPSTREAM_{name}"), value));
        }
    }
    env
}

/// A random number for names, from the standard library's per-process hash keys.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn spawn(
    bin: &Path,
    dir: &Path,
    data_dir: &Path,
    addr: SocketAddr,
    transport: Transport,
    serve_flags: &[String],
    env: &[(String, String)],
) -> Child {
    let log = File::create(dir.join("server.log")).expect("server log file");
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--region")
        .arg(REGION);
    command.args(serve_flags);
    if transport == Transport::Https {
        command.arg("--tls-cert").arg(dir.join("cert.pem")).arg("--tls-key").arg(dir.join("key.pem"));
    }
    // Only what the test sets: no configuration file or upstream credentials of the machine
    // running the tests can change the server.
    command.env_clear();
    for name in ["PATH", "RUST_LOG", "RUST_BACKTRACE"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("ARTIFACT_STORE_ACCESS_KEY", ACCESS_KEY)
        .env("ARTIFACT_STORE_SECRET_KEY", SECRET_KEY)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()))
}

/// Writes a self-signed certificate for `127.0.0.1` and `localhost` to `dir` and returns its
/// PEM and a client configuration that trusts only it.
fn self_signed(dir: &Path) -> (String, Arc<rustls::ClientConfig>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("self-signed certificate");
    let pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &pem).expect("write cert.pem");
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).expect("write key.pem");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("trust the self-signed certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (pem, Arc::new(config))
}
