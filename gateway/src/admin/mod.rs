//! Endpoints under `/_`, a path no bucket name can take: `/_health` (cheap, no I/O, no auth).
//! `/_ready`, `/_metrics` and the registry's read API (`/_registry/`) belong here too.
//!
//! The server routes a request here before s3s sees it (see `server::Router`), so these
//! endpoints skip S3 parsing and signature checks.

use http::{Method, Response, StatusCode, header};
use s3s::Body;

/// Whether `path` is an admin path. The caller must also rule out virtual-host style
/// requests, where `/_health` is an object key in the host's bucket.
#[must_use]
pub fn is_admin_path(path: &str) -> bool {
    path.starts_with("/_")
}

/// Answers an admin request.
#[must_use]
pub fn handle(method: &Method, path: &str) -> Response<Body> {
    match path {
        "/_health" => health(method),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The process is up and serving HTTP. Says nothing about the registry or the backend.
fn health(method: &Method) -> Response<Body> {
    match *method {
        Method::GET => text(StatusCode::OK, "ok"),
        Method::HEAD => text(StatusCode::OK, ""),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_answers_ok_to_get_and_head_only() {
        assert_eq!(handle(&Method::GET, "/_health").status(), StatusCode::OK);
        assert_eq!(handle(&Method::HEAD, "/_health").status(), StatusCode::OK);
        assert_eq!(handle(&Method::PUT, "/_health").status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(handle(&Method::GET, "/_nothing").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_underscore_paths_are_admin() {
        assert!(is_admin_path("/_health"));
        assert!(!is_admin_path("/bucket/_health"));
        assert!(!is_admin_path("/"));
    }
}
