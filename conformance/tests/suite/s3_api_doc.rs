//! `docs/s3-api.md` against the running gateway (issue 20): every S3 operation s3s can route
//! is in the page's tables exactly once, and its status there is what the binary does.
//!
//! How the test knows what the gateway does: it sends each operation's minimal request to the
//! real binary, signed as root, and reads two things.
//!
//! - The gateway's own per-operation counter, `artifact_store_s3_requests_total{api=...}` on
//!   `/_metrics`, which every handler of `Gateway`'s `S3` implementation increments and
//!   nothing else does. A probe that moved it reached a handler of ours: the row must say
//!   `supported` or `partly`. (s3s hands a form upload, `PostObject`, on to `PutObject`, so
//!   that one moves `PutObject`'s counter.) A handler that refuses the minimal request (an
//!   upload id that does not exist, a policy that is not one) counts as well: it is there.
//! - Otherwise the answer, which must be s3s's default for an operation nobody implemented
//!   (501 `NotImplemented`, "<Operation> is not implemented yet": the message names the
//!   operation, so the probe is known to have been routed to it), and the row must say `not`
//!   and name that status and code.
//!
//! Any other outcome (s3s refused the probe before routing it, or while parsing its body)
//! fails the test as a broken probe rather than passing for either status: a body-carrying
//! operation gets a minimal valid document for that reason.
//!
//! This was chosen over reading the `delegate!` list in `gateway/src/s3/mod.rs`: the counter
//! and the answer are what a client meets, they stay right when an operation moves out of
//! that list (a route of its own, a default that hands on to another), and a probe that does
//! not reach its operation cannot go unnoticed.
//!
//! The operations themselves are the `S3` trait's methods, read from the s3s source that
//! `cargo metadata` names, so a new s3s with new operations fails here until each has a probe
//! and a row. One transport (HTTP) is enough: routing does not depend on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use artifact_store_conformance::metrics::sample;
use artifact_store_conformance::raw::{Payload, ROOT, RawRequest, RawResponse};
use artifact_store_conformance::{Server, Transport, md5_base64};

const BUCKET: &str = "ops";

/// One operation's minimal request: method, path and query, headers, body.
struct Probe {
    op: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn probe(op: &'static str, method: &'static str, target: &str) -> Probe {
    Probe { op, method, target: target.to_owned(), headers: Vec::new(), body: Vec::new() }
}

impl Probe {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// An XML (or JSON) document, with the `Content-MD5` AWS requires of some.
    fn document(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self.headers.push(("content-md5", md5_base64(&self.body)));
        self
    }
}

/// A request for each operation, in an order where each finds what it needs: the bucket
/// `ops` and its object `k` exist before the first.
fn probes() -> Vec<Probe> {
    let b = format!("/{BUCKET}");
    let k = format!("/{BUCKET}/k");
    let xml =
        |root: &str, inner: &str| format!("<{root} xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{inner}</{root}>");
    vec![
        // Buckets.
        probe("ListBuckets", "GET", "/"),
        probe("ListDirectoryBuckets", "GET", "/?x-id=ListDirectoryBuckets"),
        probe("CreateBucket", "PUT", "/ops-created"),
        probe("DeleteBucket", "DELETE", "/ops-created"),
        probe("HeadBucket", "HEAD", &b),
        probe("GetBucketLocation", "GET", &format!("{b}?location")),
        probe("CreateSession", "GET", &format!("{b}?session")),
        // Objects.
        probe("PutObject", "PUT", &k).document("data"),
        probe("GetObject", "GET", &k),
        probe("HeadObject", "HEAD", &k),
        probe("CopyObject", "PUT", &format!("{b}/copy")).header("x-amz-copy-source", &format!("{BUCKET}/k")),
        probe("DeleteObject", "DELETE", &format!("{b}/gone")),
        probe("DeleteObjects", "POST", &format!("{b}?delete"))
            .document(&xml("Delete", "<Object><Key>gone</Key></Object>")),
        probe("PostObject", "POST", &b),
        probe("GetObjectAttributes", "GET", &format!("{k}?attributes")).header("x-amz-object-attributes", "ETag"),
        probe("GetObjectTorrent", "GET", &format!("{k}?torrent")),
        probe("RestoreObject", "POST", &format!("{k}?restore")),
        probe("SelectObjectContent", "POST", &format!("{k}?select&select-type=2")).document(&xml(
            "SelectObjectContentRequest",
            "<Expression>SELECT * FROM S3Object</Expression><ExpressionType>SQL</ExpressionType>\
             <InputSerialization><CSV></CSV></InputSerialization>\
             <OutputSerialization><CSV></CSV></OutputSerialization>",
        )),
        probe("WriteGetObjectResponse", "POST", &b)
            .header("x-amz-request-route", "route")
            .header("x-amz-request-token", "token"),
        // Listings.
        probe("ListObjects", "GET", &b),
        probe("ListObjectsV2", "GET", &format!("{b}?list-type=2")),
        probe("ListObjectVersions", "GET", &format!("{b}?versions")),
        // Multipart uploads (an unknown upload id: the handler answers NoSuchUpload).
        probe("CreateMultipartUpload", "POST", &format!("{k}?uploads")),
        probe("UploadPart", "PUT", &format!("{k}?partNumber=1&uploadId=none")).document("part"),
        probe("UploadPartCopy", "PUT", &format!("{k}?partNumber=1&uploadId=none"))
            .header("x-amz-copy-source", &format!("{BUCKET}/k")),
        probe("ListParts", "GET", &format!("{k}?uploadId=none")),
        probe("CompleteMultipartUpload", "POST", &format!("{k}?uploadId=none")).document(&xml(
            "CompleteMultipartUpload",
            "<Part><PartNumber>1</PartNumber><ETag>\"0\"</ETag></Part>",
        )),
        probe("AbortMultipartUpload", "DELETE", &format!("{k}?uploadId=none")),
        probe("ListMultipartUploads", "GET", &format!("{b}?uploads")),
        // Object tags, ACLs, locks.
        probe("PutObjectTagging", "PUT", &format!("{k}?tagging")).document(&xml("Tagging", "<TagSet></TagSet>")),
        probe("GetObjectTagging", "GET", &format!("{k}?tagging")),
        probe("DeleteObjectTagging", "DELETE", &format!("{k}?tagging")),
        probe("PutObjectAcl", "PUT", &format!("{k}?acl")).header("x-amz-acl", "private"),
        probe("GetObjectAcl", "GET", &format!("{k}?acl")),
        // A date in the past: refused, so nothing stays locked.
        probe("PutObjectRetention", "PUT", &format!("{k}?retention")).document(&xml(
            "Retention",
            "<Mode>GOVERNANCE</Mode><RetainUntilDate>2000-01-01T00:00:00Z</RetainUntilDate>",
        )),
        probe("GetObjectRetention", "GET", &format!("{k}?retention")),
        probe("PutObjectLegalHold", "PUT", &format!("{k}?legal-hold")).document(&xml("LegalHold", "<Status>OFF</Status>")),
        probe("GetObjectLegalHold", "GET", &format!("{k}?legal-hold")),
        // Bucket settings the gateway keeps.
        probe("PutBucketVersioning", "PUT", &format!("{b}?versioning"))
            .document(&xml("VersioningConfiguration", "<Status>Suspended</Status>")),
        probe("GetBucketVersioning", "GET", &format!("{b}?versioning")),
        probe("PutObjectLockConfiguration", "PUT", &format!("{b}?object-lock"))
            .document(&xml("ObjectLockConfiguration", "<ObjectLockEnabled>Enabled</ObjectLockEnabled>")),
        probe("GetObjectLockConfiguration", "GET", &format!("{b}?object-lock")),
        probe("PutBucketLifecycleConfiguration", "PUT", &format!("{b}?lifecycle")).document(&xml(
            "LifecycleConfiguration",
            "<Rule><ID>r</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status>\
             <Expiration><Days>1</Days></Expiration></Rule>",
        )),
        probe("GetBucketLifecycleConfiguration", "GET", &format!("{b}?lifecycle")),
        probe("DeleteBucketLifecycle", "DELETE", &format!("{b}?lifecycle")),
        // Not a valid policy: the handler refuses it, and nothing changes who may do what.
        probe("PutBucketPolicy", "PUT", &format!("{b}?policy")).document("{}"),
        probe("GetBucketPolicy", "GET", &format!("{b}?policy")),
        probe("GetBucketPolicyStatus", "GET", &format!("{b}?policyStatus")),
        probe("DeleteBucketPolicy", "DELETE", &format!("{b}?policy")),
        probe("PutBucketCors", "PUT", &format!("{b}?cors")).document(&xml(
            "CORSConfiguration",
            "<CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule>",
        )),
        probe("GetBucketCors", "GET", &format!("{b}?cors")),
        probe("DeleteBucketCors", "DELETE", &format!("{b}?cors")),
        probe("PutPublicAccessBlock", "PUT", &format!("{b}?publicAccessBlock"))
            .document(&xml("PublicAccessBlockConfiguration", "<BlockPublicAcls>false</BlockPublicAcls>")),
        probe("GetPublicAccessBlock", "GET", &format!("{b}?publicAccessBlock")),
        probe("DeletePublicAccessBlock", "DELETE", &format!("{b}?publicAccessBlock")),
        probe("PutBucketOwnershipControls", "PUT", &format!("{b}?ownershipControls")).document(&xml(
            "OwnershipControls",
            "<Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule>",
        )),
        probe("GetBucketOwnershipControls", "GET", &format!("{b}?ownershipControls")),
        probe("DeleteBucketOwnershipControls", "DELETE", &format!("{b}?ownershipControls")),
        probe("PutBucketAcl", "PUT", &format!("{b}?acl")).header("x-amz-acl", "private"),
        probe("GetBucketAcl", "GET", &format!("{b}?acl")),
        probe("PutBucketTagging", "PUT", &format!("{b}?tagging"))
            .document(&xml("Tagging", "<TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet>")),
        probe("GetBucketTagging", "GET", &format!("{b}?tagging")),
        probe("DeleteBucketTagging", "DELETE", &format!("{b}?tagging")),
        // Bucket settings the gateway does not keep.
        probe("PutBucketEncryption", "PUT", &format!("{b}?encryption")).document(&xml(
            "ServerSideEncryptionConfiguration",
            "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>\
             </ApplyServerSideEncryptionByDefault></Rule>",
        )),
        probe("GetBucketEncryption", "GET", &format!("{b}?encryption")),
        probe("DeleteBucketEncryption", "DELETE", &format!("{b}?encryption")),
        probe("PutBucketWebsite", "PUT", &format!("{b}?website")).document(&xml(
            "WebsiteConfiguration",
            "<IndexDocument><Suffix>index.html</Suffix></IndexDocument>",
        )),
        probe("GetBucketWebsite", "GET", &format!("{b}?website")),
        probe("DeleteBucketWebsite", "DELETE", &format!("{b}?website")),
        probe("PutBucketLogging", "PUT", &format!("{b}?logging")).document(&xml("BucketLoggingStatus", "")),
        probe("GetBucketLogging", "GET", &format!("{b}?logging")),
        probe("PutBucketNotificationConfiguration", "PUT", &format!("{b}?notification"))
            .document(&xml("NotificationConfiguration", "")),
        probe("GetBucketNotificationConfiguration", "GET", &format!("{b}?notification")),
        probe("PutBucketReplication", "PUT", &format!("{b}?replication")).document(&xml(
            "ReplicationConfiguration",
            "<Role>arn:aws:iam::123456789012:role/replication</Role><Rule><Status>Enabled</Status>\
             <Destination><Bucket>arn:aws:s3:::elsewhere</Bucket></Destination></Rule>",
        )),
        probe("GetBucketReplication", "GET", &format!("{b}?replication")),
        probe("DeleteBucketReplication", "DELETE", &format!("{b}?replication")),
        probe("PutBucketRequestPayment", "PUT", &format!("{b}?requestPayment"))
            .document(&xml("RequestPaymentConfiguration", "<Payer>BucketOwner</Payer>")),
        probe("GetBucketRequestPayment", "GET", &format!("{b}?requestPayment")),
        probe("PutBucketAccelerateConfiguration", "PUT", &format!("{b}?accelerate"))
            .document(&xml("AccelerateConfiguration", "<Status>Enabled</Status>")),
        probe("GetBucketAccelerateConfiguration", "GET", &format!("{b}?accelerate")),
        probe("PutBucketAnalyticsConfiguration", "PUT", &format!("{b}?analytics&id=a"))
            .document(&xml("AnalyticsConfiguration", "<Id>a</Id><StorageClassAnalysis></StorageClassAnalysis>")),
        probe("GetBucketAnalyticsConfiguration", "GET", &format!("{b}?analytics&id=a")),
        probe("ListBucketAnalyticsConfigurations", "GET", &format!("{b}?analytics")),
        probe("DeleteBucketAnalyticsConfiguration", "DELETE", &format!("{b}?analytics&id=a")),
        probe("PutBucketIntelligentTieringConfiguration", "PUT", &format!("{b}?intelligent-tiering&id=a")).document(
            &xml(
                "IntelligentTieringConfiguration",
                "<Id>a</Id><Status>Enabled</Status><Tiering><Days>90</Days><AccessTier>ARCHIVE_ACCESS</AccessTier></Tiering>",
            ),
        ),
        probe("GetBucketIntelligentTieringConfiguration", "GET", &format!("{b}?intelligent-tiering&id=a")),
        probe("ListBucketIntelligentTieringConfigurations", "GET", &format!("{b}?intelligent-tiering")),
        probe("DeleteBucketIntelligentTieringConfiguration", "DELETE", &format!("{b}?intelligent-tiering&id=a")),
        probe("PutBucketInventoryConfiguration", "PUT", &format!("{b}?inventory&id=a")).document(&xml(
            "InventoryConfiguration",
            "<Destination><S3BucketDestination><Bucket>arn:aws:s3:::elsewhere</Bucket><Format>CSV</Format>\
             </S3BucketDestination></Destination><IsEnabled>true</IsEnabled><Id>a</Id>\
             <IncludedObjectVersions>All</IncludedObjectVersions><Schedule><Frequency>Daily</Frequency></Schedule>",
        )),
        probe("GetBucketInventoryConfiguration", "GET", &format!("{b}?inventory&id=a")),
        probe("ListBucketInventoryConfigurations", "GET", &format!("{b}?inventory")),
        probe("DeleteBucketInventoryConfiguration", "DELETE", &format!("{b}?inventory&id=a")),
        probe("PutBucketMetricsConfiguration", "PUT", &format!("{b}?metrics&id=a"))
            .document(&xml("MetricsConfiguration", "<Id>a</Id>")),
        probe("GetBucketMetricsConfiguration", "GET", &format!("{b}?metrics&id=a")),
        probe("ListBucketMetricsConfigurations", "GET", &format!("{b}?metrics")),
        probe("DeleteBucketMetricsConfiguration", "DELETE", &format!("{b}?metrics&id=a")),
        probe("CreateBucketMetadataTableConfiguration", "POST", &format!("{b}?metadataTable")).document(&xml(
            "MetadataTableConfiguration",
            "<S3TablesDestination><TableBucketArn>arn:aws:s3tables:us-east-1:123456789012:bucket/tables</TableBucketArn>\
             <TableName>ops</TableName></S3TablesDestination>",
        )),
        probe("GetBucketMetadataTableConfiguration", "GET", &format!("{b}?metadataTable")),
        probe("DeleteBucketMetadataTableConfiguration", "DELETE", &format!("{b}?metadataTable")),
    ]
}

/// What one probe showed about its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    /// A handler of the gateway answered.
    Handled,
    /// s3s's default answered: not implemented, with this status and code.
    NotImplemented { status: u16, code: String },
}

/// A row of the page's tables.
#[derive(Debug)]
struct Row {
    status: String,
    notes: String,
    line: usize,
}

/// The operation rows of `docs/s3-api.md`: every table row whose first cell is a back-quoted
/// operation name (`` `GetObject` ``).
fn doc_rows(text: &str) -> Result<BTreeMap<String, Row>, String> {
    let mut rows = BTreeMap::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let Some(inner) = line.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|')) else { continue };
        let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
        let Some(name) = cells[0].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else { continue };
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        if cells.len() != 3 {
            errors.push(format!(
                "line {line_no}: `{name}` has {} cells, not 3 (operation | status | notes)",
                cells.len()
            ));
            continue;
        }
        let row = Row { status: cells[1].to_owned(), notes: cells[2].to_owned(), line: line_no };
        if let Some(first) = rows.insert(name.to_owned(), row) {
            errors.push(format!("line {line_no}: `{name}` is listed again (first on line {})", first.line));
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors.join("\n")) }
}

/// The operations of s3s's `S3` trait, as AWS names them (`list_objects_v2` ->
/// `ListObjectsV2`), read from the s3s source this workspace builds with.
fn s3s_operations() -> BTreeSet<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace folder");
    // Only this machine's dependencies: the others' (another OS's) may not be downloaded.
    let rustc = std::process::Command::new("rustc").arg("-vV").output().expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked", "--filter-platform", &host])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let manifests: Vec<PathBuf> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["name"] == "s3s")
        .filter_map(|p| p["manifest_path"].as_str().map(PathBuf::from))
        .collect();
    assert_eq!(manifests.len(), 1, "one s3s in the build: {manifests:?}");
    let trait_file = manifests[0].parent().expect("s3s's folder").join("src/s3_trait.rs");
    let source = std::fs::read_to_string(&trait_file)
        .unwrap_or_else(|e| panic!("{}: {e} (did s3s move its S3 trait? read it from there)", trait_file.display()));
    let operations: BTreeSet<String> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("async fn "))
        .filter_map(|rest| rest.split('(').next())
        .map(|snake| {
            snake
                .split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
                })
                .collect()
        })
        .collect();
    assert!(operations.len() > 90, "too few operations read from {}: {operations:?}", trait_file.display());
    operations
}

/// The `<Message>` of an error document.
fn message(response: &RawResponse) -> String {
    let text = response.text();
    let Some(start) = text.find("<Message>").map(|i| i + "<Message>".len()) else { return String::new() };
    text[start..].split("</Message>").next().unwrap_or_default().to_owned()
}

async fn requests_of(server: &Server, api: &str) -> f64 {
    sample(&server.scrape().await, "artifact_store_s3_requests_total", &[("api", api)]).unwrap_or(0.0)
}

fn signed(server: &Server, probe: &Probe) -> RawRequest {
    let mut request = server.request(probe.method, &probe.target);
    for (name, value) in &probe.headers {
        request = request.header(name, value);
    }
    request.body(probe.body.clone()).sign(ROOT, SystemTime::now(), Payload::Signed)
}

/// What `probe` showed, or why it showed nothing.
async fn observe(server: &Server, probe: &Probe) -> Result<Observed, String> {
    // s3s hands a form upload on to PutObject.
    let api = if probe.op == "PostObject" { "PutObject" } else { probe.op };
    let before = requests_of(server, api).await;
    let response = if probe.op == "PostObject" {
        super::post_form::post_to(server, BUCKET, "form", b"form data").await
    } else {
        server.send(&signed(server, probe)).await
    };
    if requests_of(server, api).await > before {
        return Ok(Observed::Handled);
    }
    let code = response.code().unwrap_or_default();
    if response.status == 501
        && code == "NotImplemented"
        && message(&response) == format!("{} is not implemented yet", probe.op)
    {
        return Ok(Observed::NotImplemented { status: response.status, code });
    }
    Err(format!(
        "{}: {} {} reached no handler and is not s3s's answer for an operation left out: {} {}",
        probe.op,
        probe.method,
        probe.target,
        response.status,
        response.text()
    ))
}

/// Compares the page's rows with the operations and what the probes showed; each
/// disagreement is one line.
fn disagreements(
    rows: &BTreeMap<String, Row>,
    operations: &BTreeSet<String>,
    observed: &BTreeMap<String, Observed>,
) -> Vec<String> {
    let mut found = Vec::new();
    for op in operations {
        let Some(row) = rows.get(op) else {
            found.push(format!("`{op}` is an s3s operation with no row"));
            continue;
        };
        let line = row.line;
        match (row.status.as_str(), observed.get(op)) {
            (_, None) => found.push(format!("`{op}` has no probe in this test")),
            ("supported" | "partly", Some(Observed::Handled)) => {
                if row.status == "partly" && row.notes.is_empty() {
                    found.push(format!(
                        "line {line}: `{op}` is partly supported but its notes do not say what is missing"
                    ));
                }
            }
            ("not", Some(Observed::NotImplemented { status, code })) => {
                let answer = format!("{status} `{code}`");
                if !row.notes.contains(&answer) {
                    found.push(format!("line {line}: `{op}` is answered {answer}, which its notes do not say"));
                }
            }
            ("supported" | "partly", Some(Observed::NotImplemented { status, code })) => {
                found.push(format!("line {line}: `{op}` says {} but the gateway answers {status} {code}", row.status));
            }
            ("not", Some(Observed::Handled)) => {
                found.push(format!("line {line}: `{op}` says not, but a handler of the gateway answers it"));
            }
            (other, _) => found.push(format!("line {line}: `{op}` has status {other:?}: supported, partly or not")),
        }
    }
    for op in rows.keys().filter(|op| !operations.contains(*op)) {
        found.push(format!("line {}: `{op}` is not an s3s operation", rows[op].line));
    }
    found
}

#[tokio::test]
async fn the_s3_api_page_lists_every_operation_as_the_gateway_answers_it_issue_20() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/s3-api.md");
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let rows = doc_rows(&text).unwrap_or_else(|e| panic!("docs/s3-api.md:\n{e}"));
    let operations = s3s_operations();
    let probes = probes();
    let probed: BTreeSet<String> = probes.iter().map(|p| p.op.to_owned()).collect();
    assert_eq!(probed.len(), probes.len(), "an operation is probed twice");

    let server = Server::start(Transport::Http).await;
    for setup in
        [probe("CreateBucket", "PUT", &format!("/{BUCKET}")), probe("PutObject", "PUT", &format!("/{BUCKET}/k"))]
    {
        let response = server.send(&signed(&server, &setup)).await;
        assert_eq!(response.status, 200, "{}: {}", setup.op, response.text());
    }
    let mut observed = BTreeMap::new();
    let mut broken = Vec::new();
    for probe in &probes {
        match observe(&server, probe).await {
            Ok(seen) => {
                observed.insert(probe.op.to_owned(), seen);
            }
            Err(why) => broken.push(why),
        }
    }
    assert!(broken.is_empty(), "probes that showed nothing:\n{}", broken.join("\n"));
    let extra: Vec<&String> = probed.difference(&operations).collect();
    assert!(extra.is_empty(), "probes of operations s3s does not have: {extra:?}");

    let found = disagreements(&rows, &operations, &observed);
    assert!(found.is_empty(), "docs/s3-api.md disagrees with the gateway:\n{}", found.join("\n"));
}

/// The comparison itself, on a page that gets things wrong: each kind of mistake is named.
#[test]
fn each_kind_of_disagreement_is_reported() {
    let page = "\
| operation | status | notes |
|---|---|---|
| `GetObject` | supported | |
| `PutObject` | not | 501 `NotImplemented` |
| `GetBucketTagging` | supported | |
| `PutBucketTagging` | not | refused |
| `ListParts` | partly | |
| `MadeUpOperation` | supported | |
| `GetObject` | supported | |
";
    let duplicate = doc_rows(page).unwrap_err();
    assert!(duplicate.contains("`GetObject` is listed again"), "{duplicate}");

    let rows = doc_rows(&page.lines().take(8).collect::<Vec<_>>().join("\n")).expect("rows");
    let operations: BTreeSet<String> =
        ["GetObject", "PutObject", "GetBucketTagging", "PutBucketTagging", "ListParts", "DeleteObject"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    let not_implemented = Observed::NotImplemented { status: 501, code: "NotImplemented".to_owned() };
    let observed: BTreeMap<String, Observed> = [
        ("GetObject", Observed::Handled),
        ("PutObject", Observed::Handled),
        ("GetBucketTagging", not_implemented.clone()),
        ("PutBucketTagging", not_implemented),
        ("ListParts", Observed::Handled),
        ("DeleteObject", Observed::Handled),
    ]
    .into_iter()
    .map(|(op, seen)| (op.to_owned(), seen))
    .collect();
    let found = disagreements(&rows, &operations, &observed).join("\n");
    for expected in [
        "`PutObject` says not, but a handler of the gateway answers it",
        "`GetBucketTagging` says supported but the gateway answers 501 NotImplemented",
        "`PutBucketTagging` is answered 501 `NotImplemented`, which its notes do not say",
        "`ListParts` is partly supported but its notes do not say what is missing",
        "`MadeUpOperation` is not an s3s operation",
        "`DeleteObject` is an s3s operation with no row",
    ] {
        assert!(found.contains(expected), "missing {expected:?} in:\n{found}");
    }
    assert!(!found.contains("`GetObject`"), "{found}");
}

/// A write that asks for server-side encryption the gateway does not do (dual-layer
/// `aws:kms:dsse`) is refused (501 `NotImplemented`) and stores nothing: accepting the header
/// would tell the client its bytes are encrypted when they are not. (SSE-S3, SSE-KMS and SSE-C
/// are done: see `encryption.rs`.) A read with an SSE-C key is refused as AWS refuses it for
/// an object not stored under one.
#[tokio::test]
async fn writes_asking_for_server_side_encryption_not_built_are_refused_issue_20() {
    let server = &Server::start(Transport::Http).await;
    let send = |probe: Probe| {
        let request = signed(server, &probe);
        async move { server.send(&request).await }
    };
    let created = send(probe("CreateBucket", "PUT", "/sse")).await;
    assert_eq!(created.status, 200, "{}", created.text());
    let plain = send(probe("PutObject", "PUT", "/sse/plain").document("data")).await;
    assert_eq!(plain.status, 200, "{}", plain.text());

    let customer_key = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let sse_c = |p: Probe| {
        p.header("x-amz-server-side-encryption-customer-algorithm", "AES256")
            .header("x-amz-server-side-encryption-customer-key", customer_key)
            .header("x-amz-server-side-encryption-customer-key-md5", "KYvwGXoFFJ42a2u2GDWhwQ==")
    };
    let refused = [probe("PutObject", "PUT", "/sse/dsse")
        .header("x-amz-server-side-encryption", "aws:kms:dsse")
        .document("data")];
    for probe in refused {
        let (op, target) = (probe.op, probe.target.clone());
        let response = send(probe).await;
        assert_eq!(
            (response.status, response.code().as_deref()),
            (501, Some("NotImplemented")),
            "{op} {target}: {}",
            response.text()
        );
    }
    let listed = send(probe("ListObjectsV2", "GET", "/sse?list-type=2")).await;
    let listed = listed.text();
    let keys: Vec<&str> = listed.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).collect();
    assert_eq!(keys, ["plain"], "only the write without encryption stored an object");
    let uploads = send(probe("ListMultipartUploads", "GET", "/sse?uploads")).await;
    assert!(!uploads.text().contains("<Upload>"), "no upload was created: {}", uploads.text());

    // A multipart upload begun without encryption takes no part asking for it (here refused
    // first as SSE-C over plain HTTP, as AWS does).
    let begun = send(probe("CreateMultipartUpload", "POST", "/sse/parts?uploads")).await;
    let text = begun.text();
    let upload_id = text.split("<UploadId>").nth(1).and_then(|r| r.split("</UploadId>").next()).expect("an upload id");
    let part =
        sse_c(probe("UploadPart", "PUT", &format!("/sse/parts?partNumber=1&uploadId={upload_id}"))).document("part");
    let response = send(part).await;
    assert_eq!((response.status, response.code().as_deref()), (400, Some("InvalidRequest")), "{}", response.text());

    // A read with a customer's key of an object not stored under one is AWS's 400.
    let read = send(sse_c(probe("GetObject", "GET", "/sse/plain"))).await;
    assert_eq!((read.status, read.code().as_deref()), (400, Some("InvalidRequest")), "{}", read.text());
    let read = send(probe("HeadObject", "HEAD", "/sse/plain").header("x-amz-server-side-encryption", "AES256")).await;
    assert_eq!(read.status, 400, "a read naming an encryption mode");
    // An SSE-C header that cannot be used asks for encryption all the same: refused, not
    // stored unencrypted.
    let misspelled = probe("PutObject", "PUT", "/sse/misspelled")
        .header("x-amz-server-side-encryption-customer-algorithmm", "AES256")
        .document("data");
    let response = send(misspelled).await;
    assert_eq!((response.status, response.code().as_deref()), (400, Some("InvalidArgument")), "{}", response.text());
}
