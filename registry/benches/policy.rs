//! What deciding one request costs: a 4 KiB GET and PUT by the bucket owner's root user under
//! the 20-statement bucket policy of `bench/policies/twenty-statements.json`, with the
//! condition keys the gateway builds for a request head, and with no policy at all.
//!
//! `cargo bench -p artifact-store-registry --bench policy`

use std::hint::black_box;

use artifact_store_registry::policy::{self, ConditionKeys, Grants, Policy, PolicyKind, Principal, Request, User};
use criterion::{Criterion, criterion_group, criterion_main};

const POLICY: &str = include_str!("../../bench/policies/twenty-statements.json");
const ACCOUNT: &str = "262645294477";

fn keys(action: &str) -> ConditionKeys {
    let mut keys = ConditionKeys::new();
    keys.set("aws:CurrentTime", "2026-12-03T19:30:00Z")
        .set("aws:EpochTime", "1796326200")
        .set("aws:SecureTransport", "false")
        .set("aws:SourceIp", "127.0.0.1")
        .set("aws:UserAgent", "aws-sdk-rust/1.7.0 ua/2.1 api/s3/1.157.0 os/linux lang/rust/1.95.0")
        .set("s3:x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .set("s3:signatureversion", "AWS4-HMAC-SHA256")
        .set("s3:authType", "REST-HEADER");
    if action == "s3:PutObject" {
        keys.set("s3:x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    }
    keys
}

fn decisions(c: &mut Criterion) {
    let bucket_policy = Policy::parse(POLICY, PolicyKind::Bucket).expect("the bench policy parses");
    let root = Principal::User(User::root(ACCOUNT));
    let mut group = c.benchmark_group("decide");
    for (name, action) in [("get_4k", "s3:GetObject"), ("put_4k", "s3:PutObject")] {
        let resource = "arn:aws:s3:::s3bench/small/c1/00000042";
        let request_keys = keys(action);
        let with_policy =
            Grants { bucket_policy: Some(&bucket_policy), resource_owner: Some(ACCOUNT), ..Grants::default() };
        let without = Grants { resource_owner: Some(ACCOUNT), ..Grants::default() };
        group.bench_function(format!("{name}/20_statements"), |b| {
            b.iter(|| {
                let request = Request { principal: &root, action, resource, keys: &request_keys };
                let decision = policy::decide(black_box(&request), black_box(&with_policy));
                assert!(decision.allowed());
                decision
            });
        });
        group.bench_function(format!("{name}/no_policy"), |b| {
            b.iter(|| {
                let request = Request { principal: &root, action, resource, keys: &request_keys };
                policy::decide(black_box(&request), black_box(&without))
            });
        });
        group.bench_function(format!("{name}/condition_keys"), |b| b.iter(|| black_box(keys(action))));
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
