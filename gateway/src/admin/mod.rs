//! Endpoints under `/_`, a path no bucket name can take.
//!
//! - `/_health`: the process serves HTTP (no I/O, no auth).
//! - `/_ready`: the registry accepts writes, the backend answers and an upload slot is free;
//!   503 otherwise, or when the checks take longer than [`READY_TIMEOUT`] (no auth).
//! - `/_metrics`: Prometheus text format ([`crate::metrics`]; no auth, as scrapers expect).
//! - `/_registry/...`: the registry's read API ([`registry_api`]), signed like S3 requests.
//!
//! The server routes `/_health`, `/_ready` and `/_metrics` here before s3s sees them (see
//! `server::Router`); `/_registry/` goes through s3s, which checks its signature.

pub mod records;
pub mod registry_api;

use std::path::PathBuf;
use std::sync::Arc;

use http::{Method, Response, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use registry::Registry;
use s3s::Body;

use crate::backend::BlobStore;
use crate::backend::fs::free_bytes;
use crate::limits::UploadSlots;
use crate::metrics;
use crate::worker::Findings;

/// How long `/_ready` waits for its checks. A registry or backend that does not answer (a
/// PostgreSQL server that hangs, a frozen link to it) is not ready: the probe says so in time
/// for the balancer that asked, instead of answering only once the peer does.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The prefix of the registry API.
pub const REGISTRY_PREFIX: &str = "/_registry";

/// Whether `path` is an admin path. The caller must also rule out virtual-host style
/// requests, where `/_health` is an object key in the host's bucket.
#[must_use]
pub fn is_admin_path(path: &str) -> bool {
    path.starts_with("/_")
}

/// Whether `path` belongs to the registry API.
#[must_use]
pub fn is_registry_path(path: &str) -> bool {
    path.strip_prefix(REGISTRY_PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What the unauthenticated admin endpoints look at.
pub struct Admin {
    registry: Registry,
    blobs: Arc<dyn BlobStore>,
    metrics: &'static PrometheusHandle,
    /// The log's sequence when the gateway opened it, for "events appended".
    opened_at: u64,
    /// What the background checks of the registry (the views against the log) last found.
    findings: Vec<Arc<Findings>>,
    /// The S3 service's upload slots: all taken means new uploads are refused.
    uploads: Option<UploadSlots>,
    /// The data folder and the bytes it must keep free (`storage.min_free_bytes`).
    disk_reserve: Option<(PathBuf, u64)>,
}

impl Admin {
    /// The admin endpoints of a gateway over `registry` and `blobs`; installs the metrics
    /// recorder if this is the first gateway of the process.
    #[must_use]
    pub fn new(registry: Registry, blobs: Arc<dyn BlobStore>) -> Self {
        let opened_at = registry.committed_sequence();
        Self {
            registry,
            blobs,
            metrics: metrics::install(),
            opened_at,
            findings: Vec::new(),
            uploads: None,
            disk_reserve: None,
        }
    }

    /// Makes `/_ready` fail while a background check reports problems.
    #[must_use]
    pub fn with_findings(mut self, findings: Arc<Findings>) -> Self {
        self.findings.push(findings);
        self
    }

    /// `/_ready` also fails while the file system of `data_dir` has less than `min_free` bytes
    /// free: whether the registry's next commit still fits there depends on how full its WAL
    /// happens to be, so a probe commit alone can report ready on a disk that refuses writes.
    #[must_use]
    pub fn with_disk_reserve(self, data_dir: PathBuf, min_free: u64) -> Self {
        Self { disk_reserve: (min_free > 0).then_some((data_dir, min_free)), ..self }
    }

    /// `/_ready` also fails while every one of `uploads` is taken.
    #[must_use]
    pub fn with_upload_slots(self, uploads: UploadSlots) -> Self {
        Self { uploads: Some(uploads), ..self }
    }

    /// Answers `/_health`, `/_ready` or, when `with_metrics`, `/_metrics` (404 for other
    /// paths).
    pub async fn handle(&self, method: &Method, path: &str, with_metrics: bool) -> Response<Body> {
        if *method != Method::GET && *method != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".to_owned());
        }
        let response = match path {
            "/_health" => text(StatusCode::OK, "ok".to_owned()),
            "/_ready" => match tokio::time::timeout(READY_TIMEOUT, self.readiness()).await {
                Ok(Ok(())) => text(StatusCode::OK, "ready".to_owned()),
                Ok(Err(reason)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
                Err(_) => {
                    let reason = format!(
                        "the registry's commit probe or the backend's did not answer within {} s",
                        READY_TIMEOUT.as_secs()
                    );
                    tracing::warn!(%reason, "not ready");
                    text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n"))
                }
            },
            "/_metrics" if with_metrics => {
                let mut response = text(StatusCode::OK, self.metrics_text());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
        };
        if *method == Method::HEAD {
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
        response
    }

    /// The metrics in Prometheus's text format, as `/_metrics` serves them.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        metrics::render(self.metrics, &self.registry, self.opened_at)
    }

    /// What `/_ready` answers: ready, or why not. Uploads are not saturated, the registry
    /// commits a transaction that writes a page (an empty one commits on a full disk too) with
    /// its views caught up to the log (reads are refused while they are behind), its background
    /// checks found nothing, and the backend answers its probe (the local store's folder exists;
    /// an S3 upstream answers HeadBucket).
    ///
    /// # Errors
    /// The first reason it is not ready.
    pub async fn readiness(&self) -> Result<(), String> {
        if self.uploads.as_ref().is_some_and(UploadSlots::saturated) {
            return Err("saturated: server.max_concurrent_uploads uploads in progress".to_owned());
        }
        if let Some((data_dir, min_free)) = &self.disk_reserve {
            let free = free_bytes(data_dir)
                .map_err(|err| format!("registry: cannot read the free space of {}: {err}", data_dir.display()))?;
            if free < *min_free {
                return Err(format!(
                    "registry: {free} bytes free in the data folder, less than storage.min_free_bytes ({min_free})"
                ));
            }
        }
        self.registry.probe_commit().await.map_err(|err| format!("registry cannot commit: {err}"))?;
        if self.registry.views_behind() {
            return Err(format!("registry: {}", registry::Error::ViewsBehind));
        }
        let problems: Vec<String> = self.findings.iter().flat_map(|findings| findings.problems()).collect();
        if !problems.is_empty() {
            return Err(format!("registry: {}", problems.join("; ")));
        }
        self.blobs.probe().await.map_err(|err| format!("backend: {err}"))
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::clock::SystemClock;

    #[tokio::test]
    async fn health_and_ready_answer_get_and_head_only() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
        let blobs = crate::backend::fs::FsBlobStore::open(dir.path()).unwrap();
        let admin = Admin::new(registry.clone(), Arc::new(blobs));
        assert_eq!(admin.handle(&Method::GET, "/_health", true).await.status(), StatusCode::OK);
        assert_eq!(admin.handle(&Method::HEAD, "/_health", true).await.status(), StatusCode::OK);
        assert_eq!(admin.handle(&Method::GET, "/_ready", true).await.status(), StatusCode::OK);
        assert_eq!(admin.handle(&Method::PUT, "/_health", true).await.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(admin.handle(&Method::GET, "/_nothing", true).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(admin.handle(&Method::GET, "/_metrics", true).await.status(), StatusCode::OK);
        assert_eq!(admin.handle(&Method::GET, "/_metrics", false).await.status(), StatusCode::NOT_FOUND);
        registry.close().await;
        assert_eq!(admin.handle(&Method::GET, "/_ready", true).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    /// Found beside a serving gateway: with the data folder's disk full, a refused PUT was
    /// followed by a `/_ready` of 200, as the probe commit still found room in the log's WAL.
    #[tokio::test]
    async fn ready_fails_while_the_data_folder_has_less_than_the_reserve_free() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
        let blobs = Arc::new(crate::backend::fs::FsBlobStore::open(dir.path()).unwrap());
        let roomy = Admin::new(registry.clone(), blobs.clone()).with_disk_reserve(dir.path().to_owned(), 1);
        assert_eq!(roomy.handle(&Method::GET, "/_ready", true).await.status(), StatusCode::OK);
        let full = Admin::new(registry.clone(), blobs).with_disk_reserve(dir.path().to_owned(), u64::MAX);
        let response = full.handle(&Method::GET, "/_ready", true).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.starts_with("not ready: registry: ") && body.contains("storage.min_free_bytes"), "{body}");
        registry.close().await;
    }

    #[test]
    fn only_underscore_paths_are_admin() {
        assert!(is_admin_path("/_health"));
        assert!(!is_admin_path("/bucket/_health"));
        assert!(!is_admin_path("/"));
        assert!(is_registry_path("/_registry/events"));
        assert!(is_registry_path("/_registry"));
        assert!(!is_registry_path("/_registryx"));
    }
}
