//! The registry's records as people and tools read them: provenance and retrieval records as
//! JSON, and retrieval records as S3 server-access-log lines and CloudTrail-style records.
//! Shared by the registry API and the CLI, so both print the same documents.

use registry::queries::{RetrievalRecord, VersionProvenance};
use serde_json::{Value, json};

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
#[must_use]
pub fn rfc3339(ms: i64) -> String {
    time_of(ms).map_or_else(
        || ms.to_string(),
        |t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        },
    )
}

fn time_of(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Every version of `bucket/key` with its provenance, as one JSON document.
#[must_use]
pub fn provenance(bucket: &str, key: &str, versions: &[VersionProvenance]) -> Value {
    json!({
        "bucket": bucket,
        "key": key,
        "versions": versions.iter().map(version).collect::<Vec<_>>(),
    })
}

fn version(record: &VersionProvenance) -> Value {
    let (v, e) = (&record.version, &record.event);
    let content = &v.content;
    let retention = v.retention.map(|r| {
        json!({
            "mode": if r.mode == registry::event::v1::LockMode::Compliance { "COMPLIANCE" } else { "GOVERNANCE" },
            "retain_until": rfc3339(r.retain_until),
        })
    });
    json!({
        "version_id": v.version_id,
        "is_latest": v.is_latest,
        "is_delete_marker": v.is_delete_marker,
        "created_at": rfc3339(v.created_at),
        "size": content.size,
        "etag": content.etag,
        "blake3": content.blake3,
        "sha256": content.checksums.get("SHA256"),
        "checksums": content.checksums,
        "content_type": content.content_type,
        "uploader": e.context.access_key,
        "principal": record.signer.as_ref().map(|signer| json!({
            "account": signer.account,
            "account_id": signer.account_id,
            "user": signer.user,
            "access_key": e.context.access_key,
            "arn": principal_arn(signer),
        })),
        "actor": v.actor,
        "source_address": e.context.source_addr,
        "user_agent": e.context.user_agent,
        "request_id": e.context.request_id,
        "metadata": content.user_metadata,
        "tags": content.tags,
        "origin": v.origin,
        "retention": retention,
        "legal_hold": v.legal_hold,
        "event": {
            "sequence": e.sequence,
            "hash": hex::encode(e.hash),
            "type": e.event_type,
        },
    })
}

/// The ARN of the user that signed an event.
#[must_use]
pub fn principal_arn(signer: &registry::queries::Signer) -> String {
    registry::policy::User::named(&signer.account_id, &signer.user).arn().to_owned()
}

/// A retrieval record as JSON.
#[must_use]
pub fn retrieval(record: &RetrievalRecord) -> Value {
    json!({
        "sequence": record.sequence,
        "hash": hex::encode(record.hash),
        "time": rfc3339(record.created_at),
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "method": record.method,
        "bytes": record.bytes,
        "range": record.range,
        "actor": record.actor,
        "source_address": record.context.source_addr,
        "user_agent": record.context.user_agent,
        "request_id": record.context.request_id,
    })
}

/// A retrieval record as an S3 server access log line (the documented field order; fields
/// the registry does not know are `-`).
#[must_use]
pub fn access_log_line(record: &RetrievalRecord) -> String {
    let time = time_of(record.created_at).map_or_else(
        || "-".to_owned(),
        |t| {
            let month = t.month().to_string();
            format!(
                "[{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000]",
                t.day(),
                &month[..3],
                t.year(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    );
    let key = encode(&record.key);
    let read = Read::of(&record.method);
    let status = if record.range.is_some() && read.http_method.is_some() { 206 } else { 200 };
    let version = if record.version_id == "null" { "-" } else { record.version_id.as_str() };
    // A copy's request named its destination, which the record of its source's read does not
    // keep: its Request-URI is left out.
    let request = match read.http_method {
        Some(method) => format!("\"{method} /{}/{key} HTTP/1.1\"", record.bucket),
        None => "-".to_owned(),
    };
    format!(
        "- {bucket} {time} {ip} {requester} {request_id} {operation} {key} {request} \
         {status} - {bytes} - - - \"-\" \"{agent}\" {version} - SigV4 - AuthHeader - - - -",
        bucket = record.bucket,
        ip = record.context.source_addr.as_deref().map_or("-", strip_port),
        requester = record.actor,
        request_id = record.context.request_id.as_deref().unwrap_or("-"),
        operation = read.access_log,
        bytes = if record.bytes == 0 { "-".to_owned() } else { record.bytes.to_string() },
        agent = record.context.user_agent.as_deref().unwrap_or("-").replace('"', "\\\""),
    )
}

/// How each kind of read a retrieval record names (its `method`) is told in AWS's logs.
struct Read {
    /// The server access log's operation.
    access_log: &'static str,
    /// CloudTrail's event name.
    cloudtrail: &'static str,
    /// The HTTP method of the request that read, for a read of the object itself.
    http_method: Option<&'static str>,
}

impl Read {
    fn of(method: &str) -> Self {
        let (access_log, cloudtrail, http_method) = match method {
            "HEAD" => ("REST.HEAD.OBJECT", "HeadObject", Some("HEAD")),
            "COPY" => ("REST.COPY.OBJECT_GET", "CopyObject", None),
            "COPY_PART" => ("REST.COPY.PART_GET", "UploadPartCopy", None),
            _ => ("REST.GET.OBJECT", "GetObject", Some("GET")),
        };
        Self { access_log, cloudtrail, http_method }
    }
}

/// A retrieval record as a CloudTrail data event record (`GetObject`, `HeadObject`, or the
/// `CopyObject` / `UploadPartCopy` that read the object as a copy's source).
/// `eventID` is derived from the recording event's hash, so it is stable across exports.
#[must_use]
pub fn cloudtrail_record(record: &RetrievalRecord, region: &str) -> Value {
    let hash = hex::encode(record.hash);
    let event_id = format!("{}-{}-{}-{}-{}", &hash[..8], &hash[8..12], &hash[12..16], &hash[16..20], &hash[20..32]);
    json!({
        "eventVersion": "1.09",
        "userIdentity": { "type": "IAMUser", "accessKeyId": record.actor, "userName": record.actor },
        // CloudTrail's times have whole seconds.
        "eventTime": rfc3339(record.created_at - record.created_at.rem_euclid(1000)).replace(".000Z", "Z"),
        "eventSource": "s3.amazonaws.com",
        "eventName": Read::of(&record.method).cloudtrail,
        "awsRegion": region,
        "sourceIPAddress": record.context.source_addr.as_deref().map(strip_port),
        "userAgent": record.context.user_agent,
        "requestParameters": {
            "bucketName": record.bucket,
            "key": record.key,
            "versionId": record.version_id,
            "Range": record.range,
        },
        "responseElements": null,
        "additionalEventData": {
            "bytesTransferredOut": record.bytes,
            "artifactStoreEvent": format!("{};{hash}", record.sequence),
        },
        "requestID": record.context.request_id,
        "eventID": event_id,
        "readOnly": true,
        "resources": [
            { "type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{}/{}", record.bucket, record.key) },
            { "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{}", record.bucket) },
        ],
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "eventCategory": "Data",
    })
}

/// CloudTrail's file shape: `{"Records": [...]}`.
#[must_use]
pub fn cloudtrail(records: &[RetrievalRecord], region: &str) -> Value {
    json!({ "Records": records.iter().map(|r| cloudtrail_record(r, region)).collect::<Vec<_>>() })
}

/// `1.2.3.4:5678` → `1.2.3.4`, `[::1]:5678` → `::1`.
fn strip_port(addr: &str) -> &str {
    // A forwarded client is recorded without a port, and a bare IPv6 address has colons.
    if addr.parse::<std::net::IpAddr>().is_ok() {
        return addr;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => addr,
    }
}

/// Keys in access logs are URL-encoded, `/` kept.
fn encode(key: &str) -> String {
    crate::url_encode::path(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(range: Option<&str>) -> RetrievalRecord {
        RetrievalRecord {
            sequence: 7,
            hash: [0xab; 32],
            created_at: 1_700_000_000_123,
            bucket: "b".to_owned(),
            key: "dir/a b.txt".to_owned(),
            version_id: "null".to_owned(),
            method: "GET".to_owned(),
            bytes: 5,
            range: range.map(str::to_owned),
            actor: "AK".to_owned(),
            context: registry::RequestContext {
                access_key: Some("AK".to_owned()),
                request_id: Some("RID".to_owned()),
                source_addr: Some("127.0.0.1:5000".to_owned()),
                user_agent: Some("curl/8".to_owned()),
            },
        }
    }

    #[test]
    fn access_log_lines_follow_the_s3_field_order() {
        assert_eq!(
            access_log_line(&record(None)),
            "- b [14/Nov/2023:22:13:20 +0000] 127.0.0.1 AK RID REST.GET.OBJECT dir/a%20b.txt \
             \"GET /b/dir/a%20b.txt HTTP/1.1\" 200 - 5 - - - \"-\" \"curl/8\" - - SigV4 - AuthHeader - - - -"
        );
        assert!(access_log_line(&record(Some("bytes 0-4/10"))).contains("\" 206 - 5 "));
    }

    #[test]
    fn a_copys_read_of_its_source_is_logged_as_aws_logs_it() {
        let copied = RetrievalRecord { method: "COPY_PART".to_owned(), ..record(Some("bytes=0-4")) };
        let line = access_log_line(&copied);
        assert!(line.contains(" REST.COPY.PART_GET dir/a%20b.txt - 200 - 5 "), "{line}");
        assert_eq!(cloudtrail_record(&copied, "us-east-1")["eventName"], "UploadPartCopy");
        let whole = RetrievalRecord { method: "COPY".to_owned(), ..record(None) };
        assert!(access_log_line(&whole).contains(" REST.COPY.OBJECT_GET "));
        assert_eq!(cloudtrail_record(&whole, "us-east-1")["eventName"], "CopyObject");
    }

    #[test]
    fn cloudtrail_records_name_the_object_and_the_event() {
        let value = cloudtrail_record(&record(None), "us-east-1");
        assert_eq!(value["eventName"], "GetObject");
        assert_eq!(value["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(value["sourceIPAddress"], "127.0.0.1");
        for (recorded, shown) in [("[::1]:5000", "::1"), ("::1", "::1"), ("203.0.113.9", "203.0.113.9")] {
            assert_eq!(strip_port(recorded), shown, "a client behind a balancer has no port");
        }
        assert_eq!(value["resources"][0]["ARN"], "arn:aws:s3:::b/dir/a b.txt");
        assert_eq!(value["additionalEventData"]["artifactStoreEvent"], format!("7;{}", "ab".repeat(32)));
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
