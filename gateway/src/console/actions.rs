//! Changes made from the console: a legal hold, retention, tags, deleting a version, and
//! uploads (one PUT, or a multipart upload of [`PART_SIZE`] parts for a larger file). Each is
//! an S3 request that the console prepares and signs with the visitor's key, and that the
//! browser then sends to the gateway's S3 API: it runs the same handler, is decided by the
//! same policies and Object Lock, and is recorded as the same event as from any S3 client.
//! The console decides nothing about it and writes nothing itself.
//!
//! `POST /_console/actions` (a form with the session's token) answers the prepared request as
//! JSON: `{"method", "url", "headers", "body"}`, the URL presigned for [`LINK_LIFETIME`].

use std::time::Duration;

use base64::Engine as _;
use http::{HeaderValue, Response, header};
use quick_xml::escape::escape;
use s3s::Body;
use serde_json::json;

use super::{Refusal, Visit, presign};
use crate::url_encode;

/// How long a prepared request may wait before the browser sends it.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);

/// The part size of the console's multipart uploads (the script cuts files at it; larger
/// files than one part are uploaded in parts).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// The S3 namespace of request documents.
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A request for the browser to send: method, path and query, headers to sign and send, body.
pub(super) struct Prepared {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Prepared {
    /// A request on one version of an object, `query` the operation's parameter (`tagging`,
    /// `legal-hold`, ...) or empty.
    fn on_version(method: &'static str, bucket: &str, key: &str, version_id: &str, query: &str) -> Self {
        let operation = if query.is_empty() { String::new() } else { format!("{query}&") };
        let version = format!("{operation}versionId={}", url_encode::component(version_id));
        Self::on_key(method, bucket, key, &version)
    }

    /// A request on a key, with `query` (already encoded) if not empty.
    fn on_key(method: &'static str, bucket: &str, key: &str, query: &str) -> Self {
        let query = if query.is_empty() { String::new() } else { format!("?{query}") };
        let target = format!("/{}/{}{query}", url_encode::component(bucket), url_encode::path(key));
        Self { method, target, headers: Vec::new(), body: String::new() }
    }

    /// With the object's `Content-Type`, which the browser sends as given.
    fn with_content_type(mut self, content_type: &str) -> Self {
        if !content_type.is_empty() {
            self.headers.push(("content-type", content_type.to_owned()));
        }
        self
    }

    /// With `document` as its body and its `Content-MD5`, which AWS requires of these.
    fn with_document(mut self, document: String) -> Self {
        let md5 = crate::digest::md5(document.as_bytes());
        self.headers.push(("content-md5", base64::engine::general_purpose::STANDARD.encode(md5)));
        self.headers.push(("content-type", "application/xml".to_owned()));
        self.body = document;
        self
    }

    /// With `x-amz-bypass-governance-retention: true` when `bypass`.
    fn bypassing_governance(mut self, bypass: bool) -> Self {
        if bypass {
            self.headers.push(("x-amz-bypass-governance-retention", "true".to_owned()));
        }
        self
    }
}

/// The request the form asks for, from its fields.
///
/// # Errors
/// [`Refusal::Bad`] for a form no console page sends.
pub(super) fn prepare(form: &std::collections::HashMap<String, String>) -> Result<Prepared, Refusal> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let bad = |what: &str| Refusal::Bad(format!("The form's {what} is missing or malformed."));
    let (bucket, key) = (field("bucket"), field("key"));
    if bucket.is_empty() || key.is_empty() {
        return Err(bad("object"));
    }
    let action = field("action");
    if let Some(upload) = prepare_upload(action, bucket, key, &field)? {
        return Ok(upload);
    }
    let version_id = field("version");
    if version_id.is_empty() {
        return Err(bad("version"));
    }
    let bypass = field("bypass") == "on";
    Ok(match action {
        "legal-hold" => {
            let status = match field("status") {
                status @ ("ON" | "OFF") => status,
                _ => return Err(bad("status")),
            };
            Prepared::on_version("PUT", bucket, key, version_id, "legal-hold")
                .with_document(format!(r#"<LegalHold xmlns="{XMLNS}"><Status>{status}</Status></LegalHold>"#))
        }
        "retention" => {
            let mode = match field("mode") {
                mode @ ("GOVERNANCE" | "COMPLIANCE") => mode,
                _ => return Err(bad("mode")),
            };
            let date = time::Date::parse(field("until"), time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| bad("date"))?;
            let until = date.midnight().assume_utc().format(&time::format_description::well_known::Rfc3339);
            let until = until.map_err(|_| bad("date"))?;
            Prepared::on_version("PUT", bucket, key, version_id, "retention")
                .with_document(format!(
                    r#"<Retention xmlns="{XMLNS}"><Mode>{mode}</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>"#
                ))
                .bypassing_governance(bypass)
        }
        "tags" => {
            let mut tags = String::new();
            for line in field("tags").lines().map(str::trim).filter(|line| !line.is_empty()) {
                let (name, value) = line.split_once('=').ok_or_else(|| bad("tags (one name=value a line)"))?;
                tags.push_str(&format!(
                    "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
                    escape(name.trim()),
                    escape(value.trim())
                ));
            }
            Prepared::on_version("PUT", bucket, key, version_id, "tagging")
                .with_document(format!(r#"<Tagging xmlns="{XMLNS}"><TagSet>{tags}</TagSet></Tagging>"#))
        }
        "delete" => Prepared::on_version("DELETE", bucket, key, version_id, "").bypassing_governance(bypass),
        _ => return Err(bad("action")),
    })
}

/// The request of an upload step (`upload`, `upload-create`, `upload-part`, `upload-complete`,
/// `upload-abort`), or `None` for another action.
fn prepare_upload<'f>(
    action: &str,
    bucket: &str,
    key: &str,
    field: &impl Fn(&str) -> &'f str,
) -> Result<Option<Prepared>, Refusal> {
    let bad = |what: &str| Refusal::Bad(format!("The form's {what} is missing or malformed."));
    let upload_id = || match field("upload") {
        "" => Err(bad("upload id")),
        id => Ok(format!("uploadId={}", url_encode::component(id))),
    };
    Ok(Some(match action {
        "upload" => Prepared::on_key("PUT", bucket, key, "").with_content_type(field("type")),
        "upload-create" => Prepared::on_key("POST", bucket, key, "uploads").with_content_type(field("type")),
        "upload-part" => {
            let number: u32 = field("part").parse().map_err(|_| bad("part number"))?;
            Prepared::on_key("PUT", bucket, key, &format!("partNumber={number}&{}", upload_id()?))
        }
        "upload-complete" => {
            let mut parts = String::new();
            for line in field("parts").lines().filter(|line| !line.trim().is_empty()) {
                let (number, etag) = line.trim().split_once(' ').ok_or_else(|| bad("parts"))?;
                let number: u32 = number.parse().map_err(|_| bad("parts"))?;
                parts.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>", escape(etag)));
            }
            Prepared::on_key("POST", bucket, key, &upload_id()?)
                .with_document(format!(r#"<CompleteMultipartUpload xmlns="{XMLNS}">{parts}</CompleteMultipartUpload>"#))
        }
        "upload-abort" => Prepared::on_key("DELETE", bucket, key, &upload_id()?),
        _ => return Ok(None),
    }))
}

/// `prepared`, presigned with the visitor's key for the host the browser used, as JSON.
pub(super) fn signed(prepared: &Prepared, visit: &Visit, region: &str) -> Result<Response<Body>, Refusal> {
    let headers: Vec<(&str, &str)> = prepared.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let url = presign::url(visit, region, prepared.method, &prepared.target, &headers, LINK_LIFETIME)
        .ok_or_else(|| Refusal::Bad("The request could not be signed for this host.".to_owned()))?;
    let headers: serde_json::Map<String, serde_json::Value> =
        prepared.headers.iter().map(|(name, value)| ((*name).to_owned(), json!(value))).collect();
    let answer = json!({ "method": prepared.method, "url": url, "headers": headers, "body": prepared.body });
    let mut response = Response::new(Body::from(answer.to_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn each_form_prepares_the_s3_request_it_names() {
        let object = [("bucket", "b"), ("key", "a dir/k&1"), ("version", "v 1")];
        let hold = prepare(&form(&[&object[..], &[("action", "legal-hold"), ("status", "ON")]].concat())).unwrap();
        assert_eq!((hold.method, hold.target.as_str()), ("PUT", "/b/a%20dir/k%261?legal-hold&versionId=v%201"));
        assert!(hold.body.contains("<Status>ON</Status>"), "{}", hold.body);
        assert!(hold.headers.iter().any(|(name, _)| *name == "content-md5"));

        let tags =
            prepare(&form(&[&object[..], &[("action", "tags"), ("tags", "a=<b>\n\n c = d \n")]].concat())).unwrap();
        assert!(tags.body.contains("<Key>a</Key><Value>&lt;b&gt;</Value>"), "{}", tags.body);
        assert!(tags.body.contains("<Key>c</Key><Value>d</Value>"), "{}", tags.body);

        let until = [("action", "retention"), ("mode", "GOVERNANCE"), ("until", "2030-01-02"), ("bypass", "on")];
        let retention = prepare(&form(&[&object[..], &until[..]].concat())).unwrap();
        assert!(
            retention.body.contains("<RetainUntilDate>2030-01-02T00:00:00Z</RetainUntilDate>"),
            "{}",
            retention.body
        );
        assert!(retention.headers.contains(&("x-amz-bypass-governance-retention", "true".to_owned())));

        let delete = prepare(&form(&[&object[..], &[("action", "delete")]].concat())).unwrap();
        assert_eq!((delete.method, delete.body.as_str()), ("DELETE", ""));

        for bad in [vec![("action", "legal-hold"), ("status", "MAYBE")], vec![("action", "format-disk")]] {
            assert!(prepare(&form(&[&object[..], &bad[..]].concat())).is_err(), "{bad:?}");
        }
        assert!(prepare(&form(&[("action", "delete")])).is_err(), "no object");
    }

    #[test]
    fn each_step_of_an_upload_is_the_s3_request_of_that_step() {
        let object = [("bucket", "b"), ("key", "in/f 1.bin")];
        let step = |extra: &[(&str, &str)]| prepare(&form(&[&object[..], extra].concat()));
        let put = step(&[("action", "upload"), ("type", "text/plain")]).unwrap();
        assert_eq!((put.method, put.target.as_str()), ("PUT", "/b/in/f%201.bin"));
        assert_eq!(put.headers, [("content-type", "text/plain".to_owned())]);
        let create = step(&[("action", "upload-create"), ("type", "")]).unwrap();
        assert_eq!(
            (create.method, create.target.as_str(), create.headers.len()),
            ("POST", "/b/in/f%201.bin?uploads", 0)
        );
        let part = step(&[("action", "upload-part"), ("part", "2"), ("upload", "u/1")]).unwrap();
        assert_eq!(part.target, "/b/in/f%201.bin?partNumber=2&uploadId=u%2F1");
        let parts = "1 \"aa\"\n2 \"bb\"\n";
        let complete = step(&[("action", "upload-complete"), ("upload", "u1"), ("parts", parts)]).unwrap();
        assert!(
            complete.body.contains("<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag></Part>"),
            "{}",
            complete.body
        );
        assert_eq!(step(&[("action", "upload-abort"), ("upload", "u1")]).unwrap().method, "DELETE");
        assert!(step(&[("action", "upload-part"), ("part", "x"), ("upload", "u1")]).is_err());
        assert!(step(&[("action", "upload-abort")]).is_err(), "no upload id");
    }
}
