//! Completing a multipart upload with some of its uploaded parts, as S3 allows: the parts
//! left out are dropped. On the S3 backend in front of Ceph RGW the upstream refused such a
//! completion (`InvalidPart`, answered 500): it completes an upload only with every part it
//! holds. The crash loop met it as uploads whose last part reached the upstream while the
//! gateway was killed, unrecorded, and which then could not be completed at all.

use artifact_store_conformance::sdk::{create_bucket, get, upload_parts};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport};
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

const BUCKET: &str = "subsets";
const MIB: usize = 1 << 20;

/// Completes `key` with the parts `keep` (indexes into `parts`) and checks it reads back as
/// exactly their bytes, in order.
async fn complete_with(s3: &Client, key: &str, upload_id: &str, parts: &[(Vec<u8>, CompletedPart)], keep: &[usize]) {
    let entries = keep.iter().map(|&i| parts[i].1.clone()).collect::<Vec<_>>();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(entries)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete {key} with parts {keep:?}: {e:?}"));
    let expected: Vec<u8> = keep.iter().flat_map(|&i| parts[i].0.iter().copied()).collect();
    assert!(get(s3, BUCKET, key).await == expected, "{key}: not the bytes of parts {keep:?}");
}

#[tokio::test]
async fn uploads_complete_with_the_parts_named_and_drop_the_others() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;

    // The last part left out: the crash loop's shape.
    let (upload_id, parts) = upload_parts(&s3, BUCKET, "last-left-out", &[5 * MIB, 100_000], 0).await;
    complete_with(&s3, "last-left-out", &upload_id, &parts, &[0]).await;

    // A middle part left out.
    let (upload_id, parts) = upload_parts(&s3, BUCKET, "middle-left-out", &[5 * MIB, 5 * MIB, 77_777], 0).await;
    complete_with(&s3, "middle-left-out", &upload_id, &parts, &[0, 2]).await;

    let verify = server.cli(&["verify"]);
    assert!(verify.status.success(), "verify: {verify:#?}");
}
