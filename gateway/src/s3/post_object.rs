//! PutObject from an HTML form (POST object). s3s hands a form upload on as a PutObject whose
//! headers are the form request's own; here the form's fields become what a PUT's headers
//! would say (ACL, grants, checksums, Content-MD5, tags), so that the one PutObject path checks
//! and records them, and the answer gets what AWS's has.

use s3s::dto::{ETag, PutObjectInput, PutObjectOutput, Tagging};
use s3s::{S3Request, S3Response, s3_error};

use crate::post_form::PostForm;

use super::error::Result;

/// Whether the request is a form upload: a PutObject that came as a POST.
pub(super) fn is_form(req: &S3Request<PutObjectInput>) -> bool {
    req.method == http::Method::POST
}

/// Makes the form's fields the request's object headers, and its `tagging` document the
/// input's tags. A form request's own `x-amz-*` headers (and `Content-MD5`) describe the
/// form, not the object, and no signature covers them: they are removed first. The access
/// hook calls this before it decides a form upload, so that its condition keys are the
/// form's; applying it again changes nothing.
///
/// # Errors
/// `MalformedXML` for a `tagging` field that is no `<Tagging>` document; `InvalidArgument`
/// for a field that is no header value.
pub fn apply_fields(req: &mut S3Request<PutObjectInput>) -> Result<()> {
    let form = req.extensions.get::<PostForm>().cloned().unwrap_or_default();
    if let Some(document) = &form.tagging {
        let mut de = s3s::xml::Deserializer::new(document.as_bytes());
        let tagging: Tagging = s3s::xml::Deserialize::deserialize(&mut de).map_err(|_| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for tag in &tagging.tag_set {
            encoded.append_pair(tag.key.as_deref().unwrap_or_default(), tag.value.as_deref().unwrap_or_default());
        }
        req.input.tagging = Some(encoded.finish());
    }
    let input = &req.input;
    let retain_until = input.object_lock_retain_until_date.as_ref().and_then(|date| {
        let mut text = Vec::new();
        date.format(s3s::dto::TimestampFormat::DateTime, &mut text).ok()?;
        String::from_utf8(text).ok()
    });
    let fields = [
        ("content-md5", input.content_md5.clone()),
        ("x-amz-acl", form.acl.clone().or_else(|| input.acl.as_ref().map(|acl| acl.as_str().to_owned()))),
        ("x-amz-grant-read", input.grant_read.clone()),
        ("x-amz-grant-read-acp", input.grant_read_acp.clone()),
        ("x-amz-grant-write-acp", input.grant_write_acp.clone()),
        ("x-amz-grant-full-control", input.grant_full_control.clone()),
        ("x-amz-checksum-crc32", input.checksum_crc32.clone()),
        ("x-amz-checksum-crc32c", input.checksum_crc32c.clone()),
        ("x-amz-checksum-crc64nvme", input.checksum_crc64nvme.clone()),
        ("x-amz-checksum-sha1", input.checksum_sha1.clone()),
        ("x-amz-checksum-sha256", input.checksum_sha256.clone()),
        ("x-amz-tagging", input.tagging.clone()),
        ("x-amz-storage-class", input.storage_class.as_ref().map(|c| c.as_str().to_owned())),
        ("x-amz-server-side-encryption", input.server_side_encryption.as_ref().map(|s| s.as_str().to_owned())),
        // Kept as headers so that encryption is asked for (and checked) as on a PUT.
        ("x-amz-server-side-encryption-aws-kms-key-id", input.ssekms_key_id.clone()),
        ("x-amz-server-side-encryption-context", input.ssekms_encryption_context.clone()),
        ("x-amz-server-side-encryption-customer-algorithm", input.sse_customer_algorithm.clone()),
        ("x-amz-server-side-encryption-customer-key", input.sse_customer_key.clone()),
        ("x-amz-server-side-encryption-customer-key-md5", input.sse_customer_key_md5.clone()),
        ("x-amz-server-side-encryption-bucket-key-enabled", input.bucket_key_enabled.map(|b| b.to_string())),
        ("x-amz-object-lock-mode", input.object_lock_mode.as_ref().map(|m| m.as_str().to_owned())),
        ("x-amz-object-lock-retain-until-date", retain_until),
        ("x-amz-object-lock-legal-hold", input.object_lock_legal_hold_status.as_ref().map(|h| h.as_str().to_owned())),
    ];
    let own: Vec<_> = req
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-amz-") || *name == "content-md5")
        .cloned()
        .collect();
    for name in own {
        req.headers.remove(name);
    }
    for (name, value) in fields {
        if let Some(value) = value {
            let value = http::HeaderValue::try_from(value)
                .map_err(|_| s3_error!(InvalidArgument, "The form field {name} is not a valid value."))?;
            req.headers.insert(name, value);
        }
    }
    Ok(())
}

/// The answer to a form upload: its ETag quoted as AWS quotes it in the 201 document and the
/// redirect (s3s writes the value it is given), the `ETag` header, the server-side encryption
/// headers a PUT's answer has (s3s writes none of the output's fields as headers for a form),
/// and the `Location` one unless the form redirects (s3s's `Location` is the redirect's).
pub(super) fn answer(
    req: &S3Request<PutObjectInput>,
    mut response: S3Response<PutObjectOutput>,
) -> S3Response<PutObjectOutput> {
    let output = &response.output;
    let encryption = [
        ("x-amz-server-side-encryption", output.server_side_encryption.as_ref().map(|s| s.as_str().to_owned())),
        ("x-amz-server-side-encryption-aws-kms-key-id", output.ssekms_key_id.clone()),
        ("x-amz-server-side-encryption-bucket-key-enabled", output.bucket_key_enabled.map(|b| b.to_string())),
        ("x-amz-server-side-encryption-customer-algorithm", output.sse_customer_algorithm.clone()),
        ("x-amz-server-side-encryption-customer-key-md5", output.sse_customer_key_md5.clone()),
    ];
    for (name, value) in encryption {
        if let Some(value) = value.and_then(|v| http::HeaderValue::try_from(v).ok()) {
            response.headers.insert(name, value);
        }
    }
    if let Some(etag) = response.output.e_tag.take() {
        let quoted = format!("\"{}\"", etag.value());
        if let Ok(value) = http::HeaderValue::try_from(quoted.as_str()) {
            response.headers.insert(http::header::ETAG, value);
        }
        response.output.e_tag = Some(ETag::Strong(quoted));
    }
    if req.extensions.get::<PostForm>().is_some_and(|form| form.redirects) {
        return response;
    }
    let (bucket, key) = (&req.input.bucket, &req.input.key);
    let location = format!("/{bucket}/{}", crate::url_encode::path(key));
    if let Ok(value) = http::HeaderValue::try_from(location) {
        response.headers.insert(http::header::LOCATION, value);
    }
    response
}
