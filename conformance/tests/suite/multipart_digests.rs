//! A multipart object's BLAKE3 comes from its parts' subtrees, hashed as each part streamed in
//! at the offset it was expected at; completion reads back only the parts that turned out to
//! be somewhere else (uneven sizes), and the whole object only when a part but the last is not
//! a whole number of 1 KiB chunks. Each case checks the recorded BLAKE3 against the bytes, the
//! bytes read back, and the store's reads during completion (`store_read_bytes_total`).

use std::os::unix::fs::FileExt as _;

use artifact_store_conformance::events::of_type;
use artifact_store_conformance::metrics::sample;
use artifact_store_conformance::sdk::{create_bucket, failure, get, upload_part, upload_parts};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, blake3_hex, bytes, skip};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

const BUCKET: &str = "digests";
const MIB: usize = 1 << 20;

/// Bytes the gateway has read from its blob store so far.
async fn store_reads(server: &Server) -> u64 {
    let reads = sample(&server.scrape().await, "artifact_store_store_read_bytes_total", &[]).unwrap_or(0.0);
    // A counter of bytes: a whole number, exact in an f64 far past this suite's sizes.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a whole, non-negative count")]
    let reads = reads as u64;
    reads
}

/// Completes `key` with `parts` and returns how many bytes the store read meanwhile.
async fn complete(server: &Server, s3: &Client, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> u64 {
    let before = store_reads(server).await;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|err| panic!("complete {key}: {err:?}"));
    store_reads(server).await - before
}

#[tokio::test]
async fn completion_reads_back_only_parts_that_were_hashed_at_another_offset() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;

    // (key, part sizes, bytes completion reads back)
    let cases: [(&str, Vec<usize>, usize); 7] = [
        // The SDKs' and rclone's default: no byte read back.
        ("five-mib", vec![5 * MIB, 5 * MIB, 5 * MIB, 1234], 0),
        ("whole-chunks", vec![5 * MIB + 1024, 5 * MIB + 1024, 3 * MIB + 5], 0),
        ("power-of-two", vec![8 * MIB, 8 * MIB, 1], 0),
        ("one-part", vec![5 * MIB], 0),
        ("empty-last-part", vec![5 * MIB, 0], 0),
        // Parts 2 to 4 were hashed where parts of their own sizes would have started.
        ("uneven", vec![5 * MIB, 6 * MIB, 5 * MIB, MIB], 12 * MIB),
        // No part after the first starts on a chunk boundary: the object is read once.
        ("not-whole-chunks", vec![5 * MIB + 1, 5 * MIB], 10 * MIB + 1),
    ];
    for (seed, (key, sizes, read_back)) in (100..).step_by(100).zip(cases) {
        let (upload_id, parts) = upload_parts(&s3, BUCKET, key, &sizes, seed).await;
        let whole: Vec<u8> = parts.iter().flat_map(|(data, _)| data.iter().copied()).collect();
        let completed = parts.into_iter().map(|(_, part)| part).collect();
        let read = complete(&server, &s3, key, &upload_id, completed).await;
        assert_eq!(read, read_back as u64, "{key}: bytes read back at completion");
        assert_eq!(server.completed_blake3(BUCKET, key), blake3_hex(&whole), "{key}: the recorded BLAKE3");
        assert!(get(&s3, BUCKET, key).await == whole, "{key}: not the bytes uploaded");
    }

    // The smaller last part uploaded first: it was hashed where a part of its size would
    // start, and only it is read back.
    let key = "last-part-first";
    let upload_id = s3.create_multipart_upload().bucket(BUCKET).key(key).send().await.expect("create").upload_id;
    let upload_id = upload_id.expect("upload id");
    let datas: Vec<Vec<u8>> = (1..=4).map(|n| bytes(if n == 4 { 2 * MIB } else { 5 * MIB }, 900 + n)).collect();
    let last = upload_part(&s3, BUCKET, key, &upload_id, 4, datas[3].clone()).await;
    let mut completed = Vec::new();
    for (number, data) in (1..=3).zip(&datas) {
        completed.push(upload_part(&s3, BUCKET, key, &upload_id, number, data.clone()).await);
    }
    completed.push(last);
    let read = complete(&server, &s3, key, &upload_id, completed).await;
    assert_eq!(read, 2 * MIB as u64, "{key}: only the last part is read back");
    let whole = datas.concat();
    assert_eq!(server.completed_blake3(BUCKET, key), blake3_hex(&whole), "{key}: the recorded BLAKE3");
    assert!(get(&s3, BUCKET, key).await == whole, "{key}: not the bytes uploaded");

    let verify = server.cli(&["verify"]);
    assert!(verify.status.success(), "verify: {verify:#?}");
}

/// A part is hashed once, at its offset in its object, and those subtrees name its blob on the
/// local store: `verify` hashes such a blob at the offset its upload recorded, accepts it
/// intact, and names it when a byte of it changed.
#[tokio::test]
async fn verify_hashes_a_part_blob_at_its_offset_and_names_it_when_damaged() {
    if !upstream_env().is_empty() {
        skip("an upstream names its blobs at random: upstream_verify checks them");
        return;
    }
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let key = "named-by-subtrees";
    let (upload_id, parts) = upload_parts(&s3, BUCKET, key, &[5 * MIB, 5 * MIB, 1234], 4242).await;
    let second = parts[1].0.clone();
    let completed = parts.into_iter().map(|(_, part)| part).collect();
    assert_eq!(complete(&server, &s3, key, &upload_id, completed).await, 0, "bytes read back at completion");

    let events = server.object_events(BUCKET, key);
    let uploaded = of_type(&events, "v1.multipart.part.uploaded");
    let part = &uploaded[1].payload["part"];
    let blob = part["blob"].as_str().expect("a part's blob id").to_owned();
    assert_eq!(part["subtrees"]["offset"], 5 * MIB, "hashed where it lands");
    assert_ne!(blob, blake3_hex(&second), "not named by a second pass of BLAKE3 from its first byte");
    let verify = server.cli(&["verify"]);
    assert!(verify.status.success(), "verify accepts the intact parts: {verify:#?}");

    let path = server.data_dir().join("blobs").join(&blob[..2]).join(&blob);
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the part's blob");
    file.write_all_at(&[second[3 * MIB] ^ 0x01], 3 * MIB as u64).expect("flip a byte");
    let failed = server.cli(&["verify"]);
    assert!(!failed.status.success(), "verify fails on a damaged part's blob");
    assert!(String::from_utf8_lossy(&failed.stdout).contains(&blob), "and names the blob: {failed:#?}");
}

/// The case: 1 GiB in 5 MiB parts completes without reading a byte, and a ranged read
/// afterwards reads only the 1 MiB group it touches (the outboard was merged from the parts').
#[tokio::test]
async fn a_gib_of_five_mib_parts_completes_without_reading_it_back() {
    if !upstream_env().is_empty() {
        skip("1 GiB through an upstream S3 server is left to the local store's tier");
        return;
    }
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let key = "one-gib";
    let upload_id = s3.create_multipart_upload().bucket(BUCKET).key(key).send().await.expect("create").upload_id;
    let upload_id = upload_id.expect("upload id");

    // 204 parts of 5 MiB and one of 4 MiB: one buffer, its first bytes made unique per part.
    let (total, part_size) = (1024 * MIB, 5 * MIB);
    let template = bytes(part_size, 7);
    let mut hasher = blake3::Hasher::new();
    let mut completed = Vec::new();
    for (number, start) in (1i32..).zip((0..total).step_by(part_size)) {
        let mut data = template[..part_size.min(total - start)].to_vec();
        data[..4].copy_from_slice(&number.to_be_bytes());
        hasher.update(&data);
        completed.push(upload_part(&s3, BUCKET, key, &upload_id, number, data).await);
    }
    assert_eq!(completed.len(), 205);
    let read = complete(&server, &s3, key, &upload_id, completed).await;
    assert_eq!(read, 0, "bytes read back at completion");
    assert_eq!(server.completed_blake3(BUCKET, key), hasher.finalize().to_hex().to_string());

    // Part 121 starts at 600 MiB: its first 4 bytes are its number.
    let before = store_reads(&server).await;
    let range = s3.get_object().bucket(BUCKET).key(key).range(format!("bytes={}-{}", 600 * MIB, 601 * MIB - 1));
    let body = range.send().await.expect("ranged get").body.collect().await.expect("body").into_bytes();
    let mut expected = template[..MIB].to_vec();
    expected[..4].copy_from_slice(&121i32.to_be_bytes());
    assert!(body[..] == expected[..], "the range's bytes");
    assert_eq!(store_reads(&server).await - before, MIB as u64, "a ranged read reads the group it touches");
}

/// A FULL_OBJECT CRC upload: the object's CRC is combined from the parts' CRCs, so completion
/// reads nothing back for it either, and the claim in the completion is checked against it.
#[tokio::test]
async fn a_full_object_crc_is_combined_from_the_parts() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};

    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    for (algorithm, key) in [
        (ChecksumAlgorithm::Crc32, "full-crc32"),
        (ChecksumAlgorithm::Crc32C, "full-crc32c"),
        (ChecksumAlgorithm::Crc64Nvme, "full-crc64nvme"),
    ] {
        let created = s3.create_multipart_upload().bucket(BUCKET).key(key);
        let created = created.checksum_algorithm(algorithm.clone()).checksum_type(ChecksumType::FullObject);
        let upload_id = created.send().await.expect("create").upload_id.expect("upload id");
        let datas: Vec<Vec<u8>> = [5 * MIB, 5 * MIB, 777_777].iter().zip(40..).map(|(&n, s)| bytes(n, s)).collect();
        let mut completed = Vec::new();
        for (number, data) in (1..).zip(&datas) {
            let part = s3.upload_part().bucket(BUCKET).key(key).upload_id(&upload_id).part_number(number);
            let sent = part.checksum_algorithm(algorithm.clone()).body(ByteStream::from(data.clone())).send().await;
            let sent = sent.unwrap_or_else(|err| panic!("{key}: part {number}: {err:?}"));
            completed.push(CompletedPart::builder().part_number(number).e_tag(sent.e_tag().expect("ETag")).build());
        }
        let read = complete(&server, &s3, key, &upload_id, completed).await;
        assert_eq!(read, 0, "{key}: bytes read back at completion");

        let whole = datas.concat();
        let head = s3.head_object().bucket(BUCKET).key(key).checksum_mode(ChecksumMode::Enabled).send().await;
        let head = head.expect("head");
        assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject), "{key}");
        let expected = full_object_crc(&algorithm, &whole);
        let stored = match algorithm {
            ChecksumAlgorithm::Crc32 => head.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => head.checksum_crc32_c(),
            _ => head.checksum_crc64_nvme(),
        };
        assert_eq!(stored, Some(expected.as_str()), "{key}: the CRC of the whole object");
        assert_eq!(server.completed_blake3(BUCKET, key), blake3_hex(&whole), "{key}: the recorded BLAKE3");
    }
}

/// The base64 CRC of `data` by `algorithm`, as `x-amz-checksum-*` carries it.
fn full_object_crc(algorithm: &aws_sdk_s3::types::ChecksumAlgorithm, data: &[u8]) -> String {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    use base64::Engine as _;
    let digest = match algorithm {
        ChecksumAlgorithm::Crc32 => crc32fast::hash(data).to_be_bytes().to_vec(),
        ChecksumAlgorithm::Crc32C => crc32c::crc32c(data).to_be_bytes().to_vec(),
        _ => {
            let mut crc = crc64fast_nvme::Digest::new();
            crc.write(data);
            crc.sum64().to_be_bytes().to_vec()
        }
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Found by a review: a completion's checksums for its parts were never compared with the
/// parts'; a part took a checksum of another algorithm than its upload's; a copied part had
/// none, so the object lost its composite checksum; and uploads took checksum types their
/// algorithms do not have (CRC-64/NVME is full-object only, SHA-1 and SHA-256 composite only).
#[tokio::test]
async fn multipart_checksums_hold_to_the_uploads_algorithm_and_type() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    use base64::Engine as _;
    use sha1::Digest as _;

    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let data = bytes(1000, 77);
    let crc = full_object_crc(&ChecksumAlgorithm::Crc32, &data);
    let sha1 = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&data));
    s3.put_object().bucket(BUCKET).key("src").body(ByteStream::from(data.clone())).send().await.expect("source");
    let create = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let created =
                s3.create_multipart_upload().bucket(BUCKET).key(key).checksum_algorithm(ChecksumAlgorithm::Crc32);
            created.send().await.expect("create").upload_id.expect("upload id")
        }
    };

    let upload_id = create("named").await;
    let part = || s3.upload_part().bucket(BUCKET).key("named").upload_id(&upload_id).part_number(1);
    let other = part().checksum_sha1(&sha1).body(ByteStream::from(data.clone())).send().await;
    assert_eq!(failure(other), (400, "InvalidRequest".to_owned()), "a SHA-1 part of a CRC-32 upload");
    let sent = part().checksum_crc32(&crc).body(ByteStream::from(data.clone())).send().await.expect("the part");
    let etag = sent.e_tag().expect("ETag").to_owned();
    let named = |checksum: &str| {
        let part = CompletedPart::builder().part_number(1).e_tag(&etag).checksum_crc32(checksum).build();
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("named")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
    };
    let refused = named("AAAAAA==").send().await;
    assert_eq!(failure(refused), (400, "InvalidPart".to_owned()), "a completion naming another CRC for the part");
    named(&crc).send().await.expect("the completion naming the part's own CRC");

    let upload_id = create("copied").await;
    let copy = s3.upload_part_copy().bucket(BUCKET).key("copied").upload_id(&upload_id).part_number(1);
    let copied = copy.copy_source(format!("{BUCKET}/src")).send().await.expect("the part copy");
    let result = copied.copy_part_result().expect("CopyPartResult");
    assert_eq!(result.checksum_crc32(), Some(crc.as_str()), "a copied part carries the upload's checksum");
    let part = CompletedPart::builder().part_number(1).e_tag(result.e_tag().expect("ETag")).build();
    let completion = s3.complete_multipart_upload().bucket(BUCKET).key("copied").upload_id(&upload_id);
    completion
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .expect("complete");
    let head = s3.head_object().bucket(BUCKET).key("copied").checksum_mode(ChecksumMode::Enabled).send().await;
    let head = head.expect("head");
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
    assert!(head.checksum_crc32().is_some_and(|c| c.ends_with("-1")), "{:?}", head.checksum_crc32());

    let created =
        s3.create_multipart_upload().bucket(BUCKET).key("nvme").checksum_algorithm(ChecksumAlgorithm::Crc64Nvme);
    let created = created.send().await.expect("a CRC-64/NVME upload");
    assert_eq!(created.checksum_type(), Some(&ChecksumType::FullObject), "CRC-64/NVME is a full-object checksum");
    for (algorithm, checksum_type) in [
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha1, ChecksumType::FullObject),
        (ChecksumAlgorithm::Sha256, ChecksumType::FullObject),
    ] {
        let refused = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("pair")
            .checksum_algorithm(algorithm.clone())
            .checksum_type(checksum_type.clone())
            .send()
            .await;
        assert_eq!(failure(refused), (400, "InvalidRequest".to_owned()), "{algorithm:?} with {checksum_type:?}");
    }
}

/// Found by a review: a completion naming another checksum type than its upload's was taken
/// (AWS answers `BadDigest`), and ListParts and ListMultipartUploads named the upload's
/// checksum algorithm but not its type.
#[tokio::test]
async fn an_uploads_checksum_type_is_listed_and_a_completion_naming_another_is_a_bad_digest() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};

    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let data = bytes(1000, 78);
    let crc = full_object_crc(&ChecksumAlgorithm::Crc32, &data);
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("typed")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_type(ChecksumType::FullObject);
    let upload_id = created.send().await.expect("create").upload_id.expect("upload id");
    let part = s3.upload_part().bucket(BUCKET).key("typed").upload_id(&upload_id).part_number(1);
    let sent = part.checksum_crc32(&crc).body(ByteStream::from(data.clone())).send().await.expect("the part");

    let listed = s3.list_parts().bucket(BUCKET).key("typed").upload_id(&upload_id).send().await.expect("ListParts");
    assert_eq!(listed.checksum_type(), Some(&ChecksumType::FullObject), "ListParts");
    let uploads = s3.list_multipart_uploads().bucket(BUCKET).send().await.expect("ListMultipartUploads");
    let upload = uploads.uploads().iter().find(|u| u.upload_id() == Some(upload_id.as_str())).expect("listed");
    assert_eq!(upload.checksum_type(), Some(&ChecksumType::FullObject), "ListMultipartUploads");

    let completion = |checksum_type: ChecksumType| {
        let part = CompletedPart::builder().part_number(1).e_tag(sent.e_tag().expect("ETag")).checksum_crc32(&crc);
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("typed")
            .upload_id(&upload_id)
            .checksum_type(checksum_type)
            .multipart_upload(CompletedMultipartUpload::builder().parts(part.build()).build())
    };
    let refused = completion(ChecksumType::Composite).send().await;
    assert_eq!(failure(refused), (400, "BadDigest".to_owned()), "a completion naming another checksum type");
    let completed = completion(ChecksumType::FullObject).send().await.expect("the completion naming the upload's type");
    assert_eq!(completed.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(completed.checksum_crc32(), Some(crc.as_str()), "one part: the object's CRC is the part's");

    // An upload created without a checksum has no type to contradict: AWS gives it its
    // default, CRC-64/NVME FULL_OBJECT, so a completion naming FULL_OBJECT succeeds there too.
    let plain = s3.create_multipart_upload().bucket(BUCKET).key("plain").send().await.expect("create");
    let plain_id = plain.upload_id().expect("upload id");
    let part = s3.upload_part().bucket(BUCKET).key("plain").upload_id(plain_id).part_number(1);
    let sent = part.body(ByteStream::from(data)).send().await.expect("the part");
    let part = CompletedPart::builder().part_number(1).e_tag(sent.e_tag().expect("ETag")).build();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("plain")
        .upload_id(plain_id)
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .expect("a completion naming FULL_OBJECT of an upload created without a checksum");
}
