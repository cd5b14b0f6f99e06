//! The HTTP(S) server: accepts connections, routes `/_` paths to [`crate::admin`] and
//! everything else to the s3s service, and shuts down gracefully.
//!
//! Each request gets an id, returned as `x-amz-request-id`, recorded in a tracing span and
//! stored as a [`RequestId`] request extension (s3s passes extensions on to `S3Request`).
//! Only method, path and status are logged: never the query string (presigned URLs carry
//! signatures there) nor headers (`Authorization`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, HttpError, S3Result};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use registry::Registry;
use registry::clock::SystemClock;

use crate::admin::registry_api::{RegistryApi, RegistryRequest};
use crate::admin::{self, Admin};
use crate::auth::access::{Access, BucketGrants, SecureTransport};
use crate::auth::request_checks::{RequestChecks, is_iam_request, sig_v2_bucket_uri};
use crate::auth::{MissingRootCredentials, Users};
use crate::backend::BlobStore;
use crate::backend::fs::FsBlobStore;
use crate::backend::s3::{self, OpenError, S3BlobStore};
use crate::chunk_limit::{ChunkLimitBody, Chunking};
use crate::client_addr::{ClientAddr, TrustedProxies};
use crate::config::{Backend, Config, UpstreamObjectLock};
use crate::console::{self, Console};
use crate::cors::{BrowserRequest, Cors};
use crate::crypto::{KeyProvider, KeyRing};
use crate::iam::IamApi;
use crate::limits::{
    ConnectionActivity, ConnectionSlots, EndTrackingBody, FormMemory, IdleTimeoutBody, Refused, RequestInProgress,
    TrackedBody, UploadSlots,
};
use crate::metrics;
use crate::request::RequestId;
use crate::s3::Gateway;
use crate::s3::document::{DigestingBody, DocumentDigests, is_document_request};
use crate::tls::{self, TlsError};
use crate::worker::Findings;

/// A TLS handshake that takes longer than this is dropped, so slow clients cannot pin
/// connection tasks.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be prepared.
    #[error("cannot open the blob store in {path}: {source}")]
    Storage {
        /// The data directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The S3 upstream client could not be built.
    #[error(transparent)]
    Upstream(#[from] OpenError),
    /// The registry could not be opened.
    #[error("cannot open the registry {path}: {source}")]
    Registry {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: registry::Error,
    },
    /// HTTPS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `server.base_domain` is not a usable domain.
    #[error("invalid server.base_domain {0:?}")]
    BaseDomain(String),
    /// Root credentials were not resolved.
    #[error(transparent)]
    Auth(#[from] MissingRootCredentials),
    /// The master key of server-side encryption could not be read or created.
    #[error(transparent)]
    Keys(#[from] crate::crypto::KeyRingError),
    /// The master key file is missing while the registry holds data keys only it unwraps.
    #[error(
        "the master key file {path} is missing, but the registry holds objects encrypted under it (SSE-S3 or \
         SSE-KMS): restore the file, or point encryption.master_key_file at it; a new key would leave them unreadable"
    )]
    MasterKeyMissing {
        /// Where the key was looked for.
        path: PathBuf,
    },
    /// `server.admin_listen` could not be bound.
    #[error("cannot listen on {addr} (server.admin_listen): {source}")]
    AdminListen {
        /// The address.
        addr: String,
        /// Why.
        source: io::Error,
    },
}

/// Serves the S3 API on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight connections finish for up to `server.shutdown_timeout` seconds.
///
/// Root credentials must already be resolved (see [`crate::auth::root::resolve`]).
///
/// # Errors
///
/// [`ServeError`] when the data directory, TLS or configuration is unusable; nothing is served
/// then.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let data_dir = config.storage.data_dir.clone();
    // Before anything opens a file there, so SQLite's WAL files take the database's new mode.
    let tightened = crate::layout::make_private(&data_dir)
        .map_err(|source| ServeError::Storage { path: data_dir.clone(), source })?;
    if tightened > 0 {
        tracing::info!(files = tightened, "made the data folder private to its owner (0600 files, 0700 folders)");
    }
    if config.storage.backend == Backend::Fs {
        // Alone on the data folder, every temp file is an upload that died with an earlier
        // process; on a shared registry, other gateways may be receiving theirs.
        let removed = FsBlobStore::remove_temp_files(&data_dir, config.registry.url.is_some())
            .map_err(|source| ServeError::Storage { path: data_dir.clone(), source })?;
        if removed.files > 0 {
            tracing::info!(files = removed.files, bytes = removed.bytes, "removed temp files of uploads that died");
        }
    }
    let blobs = open_blobs(&config)?;
    crate::served_backend::remember(&config)
        .map_err(|source| ServeError::Storage { path: data_dir.join(crate::served_backend::FILE_NAME), source })?;
    if config.storage.backend == Backend::S3 {
        if let (None, Some(profile)) = (&config.upstream.access_key, &config.upstream.profile) {
            s3::require_profile(&config.upstream, profile).await?;
        }
        // Mirrored locks that the upstream would silently not hold are worse than none.
        if config.upstream.object_lock == UpstreamObjectLock::Mirror {
            S3BlobStore::open(&config.upstream)?.require_object_lock().await?;
        }
    }
    serve_with_blobs(listener, config, blobs, shutdown).await
}

/// Opens the registry `config` names: the data folder's own, or a replica at `path` of the log
/// shared on PostgreSQL (`registry.url`).
///
/// # Errors
/// The registry's, for example PostgreSQL out of reach or a replica of another log.
pub fn open_registry(config: &Config, path: &std::path::Path) -> Result<Registry, registry::Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| registry::Error::CommitFailed(format!("{}: {e}", parent.display())))?;
    }
    match &config.registry.url {
        Some(url) => Registry::open_shared(path, url.expose(), Arc::new(SystemClock)),
        None => Registry::open(path, Arc::new(SystemClock)),
    }
}

/// Opens the master key, creating it only where no data key needs an older one. On a registry
/// of its own that holds SSE-S3 or SSE-KMS objects, a missing key file (moved away, or a
/// mistyped `encryption.master_key_file`) would otherwise get a new key: every such object
/// unreadable, and new ones wrapped under a key that the old file's return would not unwrap.
/// A shared registry agrees on its key instead ([`agree_on_master_key`]).
async fn open_master_key(config: &Config, registry: &Registry, registry_path: &Path) -> Result<KeyRing, ServeError> {
    let path = config.master_key_path();
    if let Some(keys) = KeyRing::open(&path)? {
        return Ok(keys);
    }
    if config.registry.url.is_none()
        && registry
            .read(|conn| conn.holds_gateway_wrapped_keys())
            .await
            .map_err(|source| ServeError::Registry { path: registry_path.to_owned(), source })?
    {
        return Err(ServeError::MasterKeyMissing { path });
    }
    Ok(KeyRing::open_or_create(&path)?)
}

/// On a registry shared on PostgreSQL, makes sure that what this gateway encrypts the others
/// can read: records its master key as the shared one when none is recorded yet, or when the
/// recorded one is among its retired keys (it was rotated); when it holds neither, the ring
/// refuses to wrap data keys or name KMS keys (SSE-S3 and SSE-KMS writes answer 500), and the
/// log says why.
/// A registry of its own is not shared: nothing to agree on.
async fn agree_on_master_key(config: &Config, registry: &Registry, keys: KeyRing) -> Result<KeyRing, registry::Error> {
    if config.registry.url.is_none() {
        return Ok(keys);
    }
    let own = keys.current_id().to_owned();
    let mut recorded = registry.read(|conn| conn.master_key()).await?;
    // Each try either decides or finds that another gateway recorded a key meanwhile.
    for _ in 0..5 {
        match &recorded {
            Some(shared) if *shared == own => return Ok(keys),
            Some(shared) if !keys.holds_master(shared).unwrap_or(false) => return Ok(refuse(keys, shared.clone())),
            _ => {}
        }
        let caller = registry::Caller::system("gateway");
        let now = registry.record_master_key(caller, own.clone(), recorded.clone()).await?;
        if now == own {
            return Ok(keys);
        }
        recorded = Some(now);
    }
    Ok(refuse(keys, recorded.unwrap_or_default()))
}

fn refuse(keys: KeyRing, shared: String) -> KeyRing {
    tracing::error!(
        own = keys.current_id(),
        shared = %shared,
        "the gateways sharing this registry wrap data keys with a master key this gateway does not hold: \
         SSE-S3 and SSE-KMS writes are refused until encryption.master_key_file names their key file"
    );
    keys.refusing_master(shared)
}

/// Serves as [`serve`] does, keeping object bytes in `blobs` rather than in the store that
/// `config` names: for a store that wraps another, such as one that injects faults. The
/// registry still lives in `storage.data_dir`, which the caller has prepared (private, and
/// for the local store without temp files of earlier processes).
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with_blobs(
    listener: TcpListener,
    config: Config,
    blobs: Arc<dyn BlobStore>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let data_dir = config.storage.data_dir.clone();
    let registry_path = crate::layout::local_registry_path(&config);
    let registry = open_registry(&config, &registry_path)
        .map_err(|source| ServeError::Registry { path: registry_path.clone(), source })?;
    // Counts what this gateway appends from here on, the first start's accounts included.
    let admin = Admin::new(registry.clone(), Arc::clone(&blobs));
    // The root account and its root user hold the configured root key, from the first start
    // on; its id is derived from that key once and recorded.
    let root_key = config.auth.access_key.clone().ok_or(MissingRootCredentials)?;
    let root_account = registry
        .ensure_root_account(&root_key, &crate::auth::keys::root_account_id(&root_key))
        .await
        .map_err(|source| ServeError::Registry { path: registry_path.clone(), source })?;
    let tls = tls::acceptor(&config.server, &data_dir)?;
    let _sweeper = crate::worker::sweeper::spawn(registry.clone(), &config.lifecycle);
    let checkpoint_findings = Arc::new(Findings::default());
    let checkpointer = crate::worker::checkpointer::spawn(registry.clone(), &config, Arc::clone(&checkpoint_findings));
    let views_findings = Arc::new(Findings::default());
    let _views_check = crate::worker::views_check::spawn(
        registry_path.clone(),
        config.registry.views_check_interval_seconds,
        Arc::clone(&views_findings),
    );
    let _collector = crate::worker::gc::spawn(
        registry.clone(),
        Arc::clone(&blobs),
        crate::outboard::OutboardFiles::new(&data_dir),
        &config.gc,
    );
    let shutdown_timeout = Duration::from_secs(config.server.shutdown_timeout);
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let api = RegistryApi::new(registry.clone(), config.server.region.clone(), stopping_rx.clone());
    let admin_listener = match &config.server.admin_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::AdminListen { addr: addr.clone(), source })?;
            // Announced here, before the S3 port accepts anything, so whoever waits for the
            // gateway to answer finds the admin address already logged.
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "admin listening");
            }
            Some(listener)
        }
        None => None,
    };
    let control = AccessControl::new(&config, &registry, root_account.id.clone())?;
    let keys =
        open_master_key(&config, &registry, &registry_path).await?.with_arns(&config.server.region, &root_account.id);
    let keys: Arc<dyn KeyProvider> = Arc::new(
        agree_on_master_key(&config, &registry, keys)
            .await
            .map_err(|source| ServeError::Registry { path: registry_path.clone(), source })?,
    );
    let uploads =
        UploadSlots::new(config.server.max_concurrent_uploads, config.server.max_concurrent_uploads_per_client);
    let limits = ConnectionLimits::of(&config.server);
    let trusted_proxies = Arc::new(config.server.trusted_proxies.clone());
    let admin = Arc::new(
        admin
            .with_findings(views_findings)
            .with_findings(checkpoint_findings)
            .with_upload_slots(uploads.clone())
            .with_disk_reserve(config.storage.data_dir.clone(), config.storage.min_free_bytes),
    );
    let router = Router {
        forms: FormMemory::new(
            config.server.max_post_object_memory,
            crate::post_form::max_held(config.server.max_post_object_bytes),
            config.server.max_concurrent_uploads,
            config.server.max_concurrent_uploads_per_client,
        ),
        base_domain: config.server.base_domain.clone(),
        admin: Arc::clone(&admin),
        metrics_here: admin_listener.is_none(),
        body_idle_timeout: limits.body_idle,
        checks: Arc::new(RequestChecks::new(config.server.region.clone())),
        iam: Arc::new(IamApi::new(
            registry.clone(),
            Users::from_config(&config.auth)?.with_registry(registry.clone()),
            root_account.id.clone(),
            secure_transport(&config),
        )),
        console: Arc::new(
            Console::new(
                registry.clone(),
                crate::rehash::Stored { store: Arc::clone(&blobs), keys: Some(Arc::clone(&keys)) },
                control.users.clone().with_registry(registry.clone()),
                control.access.clone(),
                config.server.region.clone(),
                secure_transport(&config),
                stopping_rx.clone(),
            )
            .with_operations(console::operations::Operations::start(
                Arc::clone(&admin),
                config.storage.data_dir.clone(),
                crate::checkpoints::folders(&config),
                crate::checkpoints::key_path(&config),
                stopping_rx.clone(),
            )),
        ),
        s3: s3_service(Arc::new(config), registry.clone(), &control, blobs, keys, Some(api), uploads)?,
        peer: None,
        trusted_proxies,
        activity: Arc::default(),
        cors: Cors::new(registry.clone()),
    };

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    // Pings find peers that vanished; the idle timer (`serve_connection`) closes those that
    // stay but send nothing.
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(limits.idle).keep_alive_timeout(limits.ping_timeout);
    let connection_slots = ConnectionSlots::new(limits.max_connections, limits.max_connections_per_client);

    let graceful = GracefulShutdown::new();
    if let Some(listener) = admin_listener {
        let serving = serve_admin(listener, Arc::clone(&router.admin), builder.clone(), stopping_rx);
        tokio::spawn(serving.instrument(tracing::info_span!("admin")));
    }
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small responses (errors, HEAD, XML) must not wait for Nagle.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        // Past either cap, the connection is closed before a byte is read: a flood of idle
        // connections cannot take every file descriptor, nor one client every slot. A trusted
        // proxy's connections carry every client behind it, so they count only in the pool.
        let client = peer.ip().to_canonical();
        let counted = (!router.trusted_proxies.contains(client)).then_some(client);
        let slot = match connection_slots.try_take(counted) {
            Ok(slot) => slot,
            Err(refused) => {
                let limit = match refused {
                    Refused::Full => "max_connections",
                    Refused::ClientShare => "max_connections_per_client",
                };
                metrics::connection_refused(limit);
                tracing::debug!(%peer, "connection refused: server.{limit} reached");
                drop(stream);
                continue;
            }
        };
        let router = Router { peer: Some(peer), activity: Arc::default(), ..router.clone() };
        let connection =
            serve_connection(stream, tls.clone(), builder.clone(), router, graceful.watcher(), limits.idle);
        tokio::spawn(
            async move {
                connection.await;
                drop(slot);
            }
            .instrument(tracing::debug_span!("connection", %peer)),
        );
    }

    drop(listener);
    // Long polls answer and event streams end, so their connections can close.
    stopping.send_replace(true);
    tracing::info!(connections = graceful.count(), "shutting down");
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?shutdown_timeout, "in-flight connections did not finish in time");
    }
    // Commit what is queued (retrieval records) before the process ends, then sign it.
    registry.close().await;
    checkpointer.finish().await;
    Ok(())
}

/// Serves `/_health`, `/_ready` and `/_metrics` on the admin listener until `stopping`.
/// Its requests are short and read-only, so the shutdown does not wait for them.
async fn serve_admin(
    listener: TcpListener,
    admin: Arc<Admin>,
    builder: auto::Builder<TokioExecutor>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stopping| *stopping) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let admin = Arc::clone(&admin);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let admin = Arc::clone(&admin);
            async move {
                let response = admin.handle(req.method(), req.uri().path(), true).await;
                metrics::http_response(response.status().as_u16());
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "admin connection ended with an error");
            }
        });
    }
}

/// The configured blob store. An S3 upstream that does not answer yet is reported, not fatal:
/// the gateway serves what needs no bytes (listings, metadata, the registry) meanwhile, and
/// writes fail with 503 until the upstream is back.
///
/// # Errors
///
/// [`ServeError::Storage`] or [`ServeError::Upstream`] when the store cannot be set up at all.
pub fn open_blobs(config: &Config) -> Result<Arc<dyn BlobStore>, ServeError> {
    let data_dir = &config.storage.data_dir;
    Ok(match config.storage.backend {
        Backend::Fs => Arc::new(
            FsBlobStore::open(data_dir)
                .map_err(|source| ServeError::Storage { path: data_dir.clone(), source })?
                .with_direct_io(config.storage.direct_io)
                .with_min_free(config.storage.min_free_bytes),
        ),
        Backend::S3 => {
            // The registry still lives in the data directory.
            std::fs::create_dir_all(data_dir)
                .map_err(|source| ServeError::Storage { path: data_dir.clone(), source })?;
            let store = Arc::new(S3BlobStore::open(&config.upstream)?);
            let probe = Arc::clone(&store);
            let bucket = config.upstream.bucket.clone();
            tokio::spawn(async move {
                match probe.probe().await {
                    Ok(()) => tracing::info!(%bucket, "upstream bucket answers"),
                    Err(err) => tracing::warn!(%bucket, error = %err, "upstream not available; serving anyway"),
                }
            });
            store
        }
    })
}

/// How `aws:SecureTransport` is decided for this configuration.
fn secure_transport(config: &Config) -> SecureTransport {
    SecureTransport::of(&config.server)
}

/// Who may call the gateway and what they may do: one set for the S3 service and the console,
/// so that both decide with the same cached bucket grants.
#[derive(Clone)]
pub struct AccessControl {
    /// The configured users (the registry's keys are looked up beside them).
    pub users: Users,
    /// The buckets' grants, cached until a change is committed.
    pub grants: BucketGrants,
    /// The access hook.
    pub access: Access,
}

impl AccessControl {
    /// The users of `config` and the grants of `registry`'s buckets; `root_account` is the
    /// root account's id.
    ///
    /// # Errors
    /// [`ServeError::Auth`] without root credentials.
    pub fn new(config: &Config, registry: &Registry, root_account: String) -> Result<Self, ServeError> {
        let users = Users::from_config(&config.auth)?;
        let grants = BucketGrants::new(registry.clone(), root_account.clone());
        let access =
            Access::new(users.clone(), grants.clone(), registry.clone(), root_account, secure_transport(config));
        Ok(Self { users, grants, access })
    }
}

/// The s3s service for `config`, storing bytes in `blobs` (encrypted under `keys` where asked): authentication over the configured
/// users, virtual-host style when `server.base_domain` is set, and the registry API (signed
/// like S3 requests) when `api` is given.
///
/// # Errors
///
/// [`ServeError::Auth`] without root credentials, [`ServeError::BaseDomain`] for an invalid
/// domain.
pub fn s3_service(
    config: Arc<Config>,
    registry: Registry,
    control: &AccessControl,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<dyn KeyProvider>,
    api: Option<RegistryApi>,
    uploads: UploadSlots,
) -> Result<S3Service, ServeError> {
    let AccessControl { users, grants, access } = control.clone();
    let base_domain = config.server.base_domain.clone();
    // s3s holds a form upload's fields and file in memory (20 MB and 5 GB by default):
    // bounded here. It also reads a request's XML document whole before anyone is asked
    // whether the request may run (20 MB by default): bounded as the request checks bound a
    // declared length, for one that declares none.
    let mut s3s_config = s3s::config::S3Config::default();
    s3s_config.xml_max_body_size = crate::auth::request_checks::MAX_DOCUMENT_BODY;
    s3s_config.post_object_max_file_size = config.server.max_post_object_bytes;
    s3s_config.form_max_fields_size = crate::post_form::MAX_FIELDS_BYTES;
    let s3s_config = s3s::config::StaticConfigProvider::new(Arc::new(s3s_config));
    let mut builder =
        S3ServiceBuilder::new(Gateway::new(registry.clone(), blobs, config, users.clone(), uploads, grants, keys));
    builder.set_config(Arc::new(s3s_config));
    builder.set_auth(users.with_registry(registry));
    builder.set_access(access.clone());
    if let Some(api) = api {
        builder.set_route(api.with_access(access.clone()));
        builder.set_validation(RegistryPath);
    }
    if let Some(domain) = base_domain {
        // s3s checks the domain's syntax; routing is ours (see `BaseDomain`).
        if s3s::host::SingleDomain::new(&domain).is_err() {
            return Err(ServeError::BaseDomain(domain));
        }
        builder.set_host(BaseDomain(domain));
    }
    Ok(builder.build())
}

/// The connection limits of `[server]`.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    idle: Duration,
    header_read: Duration,
    body_idle: Duration,
    /// How long an HTTP/2 peer has to answer a keep-alive ping.
    ping_timeout: Duration,
    max_connections: usize,
    max_connections_per_client: usize,
}

impl ConnectionLimits {
    fn of(server: &crate::config::ServerConfig) -> Self {
        let idle = Duration::from_secs(server.idle_timeout);
        Self {
            idle,
            header_read: Duration::from_secs(server.header_read_timeout),
            body_idle: Duration::from_secs(server.body_idle_timeout),
            ping_timeout: idle.min(Duration::from_secs(20)),
            max_connections: server.max_connections,
            max_connections_per_client: server.max_connections_per_client,
        }
    }
}

/// Serves one connection until it ends, the server shuts down, or it has had no request in
/// progress for `idle_timeout`. HTTP/1 keep-alive connections and HTTP/2 connections (which
/// hyper never closes for idleness, and which a client can hold open with pings and no
/// credentials) are closed alike; nothing is in flight on them then.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
    idle_timeout: Duration,
) {
    let activity = Arc::clone(&router.activity);
    tokio::select! {
        () = serve_until_done(stream, tls, builder, router, watcher) => {}
        () = activity.idle_for(idle_timeout) => tracing::debug!("idle connection closed"),
    }
}

async fn serve_until_done(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let result = match tls {
        None => {
            let conn = builder.serve_connection(TokioIo::new(stream), router);
            watcher.watch(conn.into_owned()).await
        }
        Some(acceptor) => {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection(TokioIo::new(stream), router);
            watcher.watch(conn.into_owned()).await
        }
    };
    if let Err(err) = result {
        // Resets and half-sent requests are normal on the internet.
        tracing::debug!(%err, "connection ended with an error");
    }
}

/// AWS bucket name rules, plus `_registry`: s3s parses every path into a bucket before it
/// checks the signature and hands the request to the registry API route. AWS rules refuse
/// `_` as a first character, so no real bucket can take the name; a `PUT /_registry` is
/// routed to the API (and refused there), never to CreateBucket.
struct RegistryPath;

impl s3s::validation::NameValidation for RegistryPath {
    fn validate_bucket_name(&self, name: &str) -> bool {
        name == &admin::REGISTRY_PREFIX[1..] || s3s::validation::AwsNameValidation::new().validate_bucket_name(name)
    }
}

/// Sends `/_` paths to [`admin`] and everything else to s3s; stamps every response with its
/// request id.
#[derive(Clone)]
struct Router {
    s3: S3Service,
    /// The IAM query API, answered beside s3s (which verifies no `iam` signature).
    iam: Arc<IamApi>,
    admin: Arc<Admin>,
    /// The web console under `/_console/`.
    console: Arc<Console>,
    /// `/_metrics` is served here unless a separate admin listener serves it.
    metrics_here: bool,
    /// What a signature must hold that s3s does not check, for S3 and registry API requests.
    checks: Arc<RequestChecks>,
    base_domain: Option<String>,
    /// The connection's peer.
    peer: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` names the client recorded with every event a request
    /// causes, and compared with `aws:SourceIp`.
    trusted_proxies: Arc<TrustedProxies>,
    /// A request body that sends nothing for this long fails with `RequestTimeout`.
    body_idle_timeout: Duration,
    /// The connection's requests in progress, for its idle timer.
    activity: Arc<ConnectionActivity>,
    /// Answers browsers' preflights and their requests' `Access-Control-*` headers.
    cors: Cors,
    /// What form uploads, which s3s reads into memory whole, may hold.
    forms: FormMemory,
}

impl Router {
    /// `/_...` is an admin path unless the host names a bucket (virtual-host style), where it
    /// is an object key.
    fn is_admin(&self, req: &Request<Incoming>) -> bool {
        admin::is_admin_path(req.uri().path()) && self.host_bucket(req).is_none()
    }

    /// The bucket a request names by its host (virtual-host style).
    fn host_bucket<'r>(&self, req: &'r Request<Incoming>) -> Option<&'r str> {
        let domain = self.base_domain.as_deref()?;
        bucket_of_host(crate::request::authority(req.uri(), req.headers()).unwrap_or_default(), domain)
    }

    /// The bucket a request names: by its host (virtual-host style), else by its path's first
    /// segment.
    fn bucket_of<'r>(&self, req: &'r Request<Incoming>) -> Option<&'r str> {
        if let Some(bucket) = self.host_bucket(req) {
            return Some(bucket);
        }
        req.uri().path().strip_prefix('/')?.split('/').next().filter(|bucket| !bucket.is_empty())
    }
}

/// Virtual-host style for `<bucket>.<base_domain>[:port]`; every other host (the base domain
/// itself, IP addresses, `localhost`) is path style. s3s's `SingleDomain` keeps the port in the
/// name it compares and takes any other domain for a bucket (CNAME style), which breaks
/// `bucket.domain:9000` and path-style clients that connect by another name.
#[derive(Debug)]
struct BaseDomain(String);

impl S3Host for BaseDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let vh = VirtualHost::new(self.0.as_str());
        Ok(match bucket_of_host(host, &self.0) {
            // The name validation lets `_registry` through for the registry API's paths; as a
            // host it would name a bucket, which AWS's rules (no leading `_`) refuse.
            Some(bucket) if bucket.starts_with('_') => {
                return Err(s3s::s3_error!(InvalidBucketName, "The specified bucket is not valid."));
            }
            Some(bucket) => vh.with_bucket(bucket),
            None => vh,
        })
    }
}

/// The bucket named by `host` (`bucket.domain` or `bucket.domain:port`), if any.
fn bucket_of_host<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let split = name.len().checked_sub(domain.len() + 1)?;
    let (bucket, rest) = name.split_at_checked(split)?;
    let suffix = rest.strip_prefix('.')?;
    (!bucket.is_empty() && suffix.eq_ignore_ascii_case(domain)).then_some(bucket)
}

impl hyper::service::Service<Request<Incoming>> for Router {
    type Response = Response<Body>;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let id = RequestId::new();
        let client = self.peer.map(|peer| ClientAddr::of(peer, req.headers(), &self.trusted_proxies));
        let span = tracing::info_span!(
            "request",
            id = %id.0,
            method = %req.method(),
            path = %req.uri().path(),
            client = tracing::field::Empty
        );
        if let Some(client) = client {
            span.record("client", tracing::field::display(client));
        }
        let header = HeaderValue::from_str(&id.0).expect("hex digits are a valid header value");
        let in_progress = self.activity.start();
        let head = req.method() == http::Method::HEAD;
        let http1 = req.version() < http::Version::HTTP_2;

        let admin = self.is_admin(&req);
        if admin && console::is_console_path(req.uri().path()) {
            let console = Arc::clone(&self.console);
            return Box::pin(
                async move {
                    // Its pages see what any gateway acknowledged before the request began.
                    let start = Instant::now();
                    let mut response = registry::freshness::as_of(start, console.handle(req, client)).await;
                    response.headers_mut().insert("x-amz-request-id", header);
                    let status = response.status().as_u16();
                    metrics::http_response(status);
                    tracing::info!(status, "console request");
                    Ok(finish(response, head, in_progress))
                }
                .instrument(span),
            );
        }
        if admin && !admin::is_registry_path(req.uri().path()) {
            let admin = Arc::clone(&self.admin);
            let with_metrics = self.metrics_here;
            return Box::pin(async move {
                let mut response = admin.handle(req.method(), req.uri().path(), with_metrics).await;
                response.headers_mut().insert("x-amz-request-id", header);
                metrics::http_response(response.status().as_u16());
                Ok(finish(response, head, in_progress))
            });
        }

        // Browsers send preflights unsigned: they are answered from the bucket's CORS rules
        // alone, and run nothing.
        if !admin && req.method() == http::Method::OPTIONS {
            let cors = self.cors.clone();
            let bucket = self.bucket_of(&req).map(str::to_owned);
            return Box::pin(
                async move {
                    let mut response = cors.preflight(bucket.as_deref(), req.headers(), &id.0).await;
                    response.headers_mut().insert("x-amz-request-id", header);
                    metrics::http_response(response.status().as_u16());
                    tracing::info!(status = response.status().as_u16(), "CORS preflight");
                    Ok(finish(response, head, in_progress))
                }
                .instrument(span),
            );
        }
        let browser = if admin { None } else { BrowserRequest::of(self.bucket_of(&req), req.method(), req.headers()) };
        let cors = self.cors.clone();

        // Past the console and the other admin paths, `admin` is the registry API.
        if let Err(refusal) =
            self.checks.check(req.method(), req.uri(), req.headers(), admin, OffsetDateTime::now_utc())
        {
            let has_body = !req.body().is_end_stream();
            return Box::pin(
                async move {
                    tracing::info!(
                        code = refusal.code.as_str(),
                        status = refusal.status().as_u16(),
                        reason = %refusal.message,
                        details = ?refusal.details,
                        "request refused"
                    );
                    let mut response = Response::new(Body::from(refusal.to_xml(&id.0)));
                    *response.status_mut() = refusal.status();
                    let headers = response.headers_mut();
                    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                    headers.insert("x-amz-request-id", header);
                    if http1 && has_body {
                        close_after(headers);
                    }
                    if let Some(browser) = &browser {
                        cors.answer(browser, headers).await;
                    }
                    metrics::http_response(response.status().as_u16());
                    Ok(finish(response, head, in_progress))
                }
                .instrument(span),
            );
        }

        if is_iam_request(req.method(), req.uri(), req.headers()) {
            let iam = Arc::clone(&self.iam);
            return Box::pin(
                async move {
                    let mut response = iam.handle(req, &id, client).await;
                    response.headers_mut().insert("x-amz-request-id", header);
                    metrics::http_response(response.status().as_u16());
                    let status = response.status().as_u16();
                    match crate::error_body::of(&response) {
                        Some(error) => {
                            tracing::info!(status, code = %error.code, reason = %error.reason, "IAM request")
                        }
                        None => tracing::info!(status, "IAM request"),
                    }
                    Ok(finish(response, head, in_progress))
                }
                .instrument(span),
            );
        }

        // s3s 0.14 expects a path-style SigV2 request for a bucket to be signed as sent,
        // `/bucket`; clients sign `/bucket/` (see `sig_v2_bucket_uri`).
        let mut req = req;
        if !admin
            && self.host_bucket(&req).is_none()
            && let Some(uri) = sig_v2_bucket_uri(req.method(), req.uri(), req.headers())
        {
            *req.uri_mut() = uri;
        }

        let s3 = self.s3.clone();
        let form_boundary = crate::post_form::boundary(req.method(), req.headers());
        // A form's memory is reserved before anything of it is read, or it is refused.
        let form_memory = form_boundary.as_ref().map(|_| {
            let length = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
            self.forms.try_reserve(client.map(|c| c.ip), length)
        });
        let (mut req, body_read, chunk_refused) = self.s3_request(req);
        if admin {
            req.extensions_mut().insert(RegistryRequest);
        }
        let request_id = id.0.clone();
        req.extensions_mut().insert(id);
        if let Some(client) = client {
            req.extensions_mut().insert(client);
        }
        Box::pin(
            async move {
                let start = Instant::now();
                let is_form = form_boundary.is_some();
                let refused = match (&form_memory, form_boundary) {
                    (Some(None), _) => Err((
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        s3s::S3ErrorCode::SlowDown,
                        "Please reduce your request rate: too many form uploads in progress.".to_owned(),
                    )),
                    (_, Some(boundary)) => {
                        crate::post_form::read(req, &boundary).await.map_err(|refused| match refused {
                            crate::post_form::FormRefused::Malformed => (
                                http::StatusCode::BAD_REQUEST,
                                s3s::S3ErrorCode::MalformedPOSTRequest,
                                "The body of your POST request is not well-formed multipart/form-data.".to_owned(),
                            ),
                            crate::post_form::FormRefused::FieldNotInPolicy(field) => (
                                http::StatusCode::FORBIDDEN,
                                s3s::S3ErrorCode::AccessDenied,
                                format!("Invalid according to Policy: Extra input fields: {field}"),
                            ),
                        })
                    }
                    (_, None) => Ok(req),
                };
                let req = match refused {
                    Ok(req) => req,
                    Err((status, code, message)) => {
                        let refusal = crate::auth::request_checks::Refusal { code, message, details: Vec::new() };
                        tracing::info!(
                            code = refusal.code.as_str(),
                            reason = %refusal.message,
                            status = status.as_u16(),
                            "form upload refused"
                        );
                        let mut response = Response::new(Body::from(refusal.to_xml(&request_id)));
                        *response.status_mut() = status;
                        let headers = response.headers_mut();
                        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                        headers.insert("x-amz-request-id", header);
                        if http1 && !body_read.load(std::sync::atomic::Ordering::Acquire) {
                            close_after(headers);
                        }
                        if let Some(browser) = &browser {
                            cors.answer(browser, headers).await;
                        }
                        metrics::http_response(status.as_u16());
                        return Ok(finish(response, head, in_progress));
                    }
                };
                // Its reads see what any gateway acknowledged before it began: read-after-write.
                let mut result = registry::freshness::as_of(start, s3.call(req)).await;
                // Held until s3s is done with the form, whose file it keeps in memory until then.
                drop(form_memory);
                if is_form {
                    result = result.map(|response| crate::post_form::as_aws_policy_refusal(response, &request_id));
                }
                if let Ok(response) = &mut result
                    && !response.status().is_success()
                    && chunk_refused.load(std::sync::atomic::Ordering::Acquire)
                {
                    // The body was failed for a chunk too large, which is what went wrong, however
                    // the operation reports it: s3s answers a document body that failed while it
                    // read it (PutObjectTagging, DeleteObjects) with 500 InternalError, and a
                    // document's digest check may find its trailer missing first.
                    *response = crate::chunk_limit::refusal(&request_id);
                }
                if let Ok(response) = &mut result {
                    response.headers_mut().insert("x-amz-request-id", header);
                    // An object opened in a browser runs in a sandbox, an origin of its own:
                    // uploaded HTML must not run as the console, on the same host and port.
                    response.headers_mut().insert(
                        http::header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static(console::OBJECT_SANDBOX),
                    );
                    let details = response.headers_mut().remove(crate::error_body::DETAILS_HEADER);
                    if !response.status().is_success()
                        && let Some(xml) = response.body().bytes()
                        && let Some(stamped) = crate::error_body::with_error_ids(
                            &xml,
                            &request_id,
                            details.as_ref().map(HeaderValue::as_bytes),
                        )
                    {
                        response.headers_mut().remove(http::header::CONTENT_LENGTH);
                        *response.body_mut() = Body::from(stamped);
                    }
                    if http1 && !body_read.load(std::sync::atomic::Ordering::Acquire) {
                        close_after(response.headers_mut());
                    }
                    if let Some(browser) = &browser {
                        cors.answer(browser, response.headers_mut()).await;
                    }
                    metrics::http_response(response.status().as_u16());
                    let status = response.status().as_u16();
                    let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    match crate::error_body::of(response) {
                        Some(error) => {
                            tracing::info!(status, code = %error.code, reason = %error.reason, elapsed_ms, "request");
                        }
                        None => tracing::info!(status, elapsed_ms, "request"),
                    }
                }
                result.map(|response| finish(response, head, in_progress))
            }
            .instrument(span),
        )
    }
}

impl Router {
    /// The request as s3s takes it: its body fails with `RequestTimeout` when it stops
    /// arriving, and at a chunk larger than s3s should gather when it is aws-chunked (whatever
    /// the operation: a document too); a document body (DeleteObjects, configurations) has its
    /// digests computed as s3s reads it, for `s3_api::document::verify`. The flag turns true
    /// once the body was read to its end.
    fn s3_request(&self, req: Request<Incoming>) -> (Request<Body>, Arc<AtomicBool>, Arc<AtomicBool>) {
        let document =
            is_document_request(req.method(), req.uri().query()).then(|| DocumentDigests::for_headers(req.headers()));
        let (mut parts, body) = req.into_parts();
        let (body, read) = EndTrackingBody::new(body);
        let body = IdleTimeoutBody::new(body, self.body_idle_timeout);
        let (body, chunk_refused) = ChunkLimitBody::new(body, Chunking::of(&parts.method, &parts.uri, &parts.headers));
        let body = match document {
            Some(digests) => {
                parts.extensions.insert(digests.clone());
                Body::http_body(DigestingBody::new(body, digests))
            }
            None => Body::http_body(body),
        };
        (Request::from_parts(parts, body), read, chunk_refused)
    }
}

/// Asks hyper to close an HTTP/1 connection once this response is sent, for a response given
/// before its request's body was read: the client may not send that body at all (it asked
/// `Expect: 100-continue` and got a final answer instead), or send it late, and either way
/// the bytes that follow on the connection cannot be told apart from the next request's.
/// AWS S3 closes the connection in the same case.
fn close_after(headers: &mut http::HeaderMap) {
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

/// The response as sent: stamped with the gateway's `x-amz-id-2`; 206 for a HEAD of a range; no body for HEAD (hyper sends whatever body it is given over HTTP/2,
/// which clients take for a protocol error; `Content-Length` stays, as it describes the GET),
/// and the request counted in progress until the body is done.
fn finish(response: Response<Body>, head: bool, in_progress: RequestInProgress) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    static HOST_ID: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        HeaderValue::from_str(crate::request::host_id()).expect("base64 is a valid header value")
    });
    parts.headers.insert("x-amz-id-2", HOST_ID.clone());
    // s3s 0.14 answers HeadObject with 200 whatever status its handler set: a HEAD of a range
    // or of a part is 206, as on AWS, as the GET it describes.
    if head && parts.status == http::StatusCode::OK && parts.headers.contains_key(http::header::CONTENT_RANGE) {
        parts.status = http::StatusCode::PARTIAL_CONTENT;
    }
    let body = if head { Body::empty() } else { body };
    Response::from_parts(parts, Body::http_body(TrackedBody::new(body, in_progress)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_cannot_name_the_registry_api_as_a_bucket() {
        let host = BaseDomain("s3.example.com".to_owned());
        let err = host.parse_host_header("_registry.s3.example.com").unwrap_err();
        assert_eq!(err.code().as_str(), "InvalidBucketName");
        assert!(host.parse_host_header("logs.s3.example.com").is_ok());
    }

    #[test]
    fn only_subdomains_of_the_base_domain_name_buckets() {
        let domain = "s3.example.com";
        assert_eq!(bucket_of_host("logs.s3.example.com", domain), Some("logs"));
        assert_eq!(bucket_of_host("logs.s3.example.com:9000", domain), Some("logs"));
        assert_eq!(bucket_of_host("a.b.S3.Example.com", domain), Some("a.b"));
        assert_eq!(bucket_of_host("s3.example.com:9000", domain), None);
        assert_eq!(bucket_of_host(".s3.example.com", domain), None);
        assert_eq!(bucket_of_host("logss3.example.com", domain), None);
        assert_eq!(bucket_of_host("localhost:9000", domain), None);
        assert_eq!(bucket_of_host("127.0.0.1:9000", domain), None);
        assert_eq!(bucket_of_host("[::1]:9000", domain), None);
    }
}
