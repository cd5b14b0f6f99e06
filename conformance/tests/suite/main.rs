//! The end-to-end suite: the real `artifact-store` binary driven over HTTP(S), one module per
//! area. One test binary rather than one per file: each file linked the SDK, hyper and rustls
//! on its own, and building twenty such binaries was most of the workspace's build time.
//!
//! Run one area with `cargo test --release -p artifact-store-conformance --test suite gc::`.

mod abuse;
mod access_control;
mod bad_input;
mod console;
mod cors;
mod crash_loop;
mod disk_full;
mod encryption;
mod first_start;
mod gc;
mod identities;
mod inline;
mod integrity;
mod latest_cache;
mod multipart_digests;
mod multipart_subsets;
mod operations;
mod packages;
mod post_form;
mod registry_api;
mod s3_api_doc;
mod sdk_rust;
mod shared_registry;
mod signing;
mod streaming;
mod tamper_evidence;
mod upstream_faults;
mod upstream_lock;
mod upstream_multipart;
mod upstream_profile;
mod upstream_verify;
