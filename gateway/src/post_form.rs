//! POST object (HTML form uploads): what s3s 0.14 does not take from the form, read here
//! before s3s parses it.
//!
//! s3s parses the form, checks its policy and signature, and hands the rest on as a
//! PutObject. It stores `${filename}` in the key literally, and reads neither the `acl` nor
//! the `tagging` field (only `x-amz-acl` and `x-amz-tagging`, headers' names rather than
//! AWS's form fields). The router reads the form's fields here, up to the file's part: AWS
//! requires the file to be the form's last field, so the head before it holds every other
//! field, and is bounded (s3s refuses larger field sets). Then:
//! - `${filename}` in the `key` field is replaced with the uploaded file's name in the bytes
//!   s3s reads, so that the policy's conditions, the access decision, the event and the answer
//!   all see the key that is stored;
//! - the `acl` and `tagging` fields are handed on as a [`PostForm`] request extension, which
//!   the PutObject handler applies.
//!
//! Two parsers reading one form must read the same fields, or a field s3s never checked
//! against the policy could be applied (one hidden in an exempt `x-ignore-` field behind a
//! delimiter only this parser takes). So the fields are read only in a grammar both agree on:
//! every line that starts with the delimiter is a delimiter, each part's headers are a
//! `Content-Disposition: form-data; name="…"` (with a `filename` for the file) and at most a
//! `Content-Type`, and no field is given twice. A form outside it, or one that ends before its
//! file, is refused with 400 `MalformedPOSTRequest` before s3s reads it.
//!
//! s3s holds every field to a condition of the form's policy but the server-side encryption
//! ones; they are held to it here (403 `AccessDenied`, "Extra input fields", as AWS answers).

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::{HeaderMap, Method, Request};
use s3s::Body;
use s3s::post_policy::PostPolicyCondition;

/// The fields of a POST form s3s does not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostForm {
    /// The `acl` field: a canned ACL.
    pub acl: Option<String>,
    /// The `tagging` field: a `<Tagging>` document.
    pub tagging: Option<String>,
    /// Whether the form asks for a redirect (`success_action_redirect`), whose `Location`
    /// s3s writes.
    pub redirects: bool,
}

/// The most bytes a form's fields may take, together: s3s refuses a form past it
/// (`server::s3_service` sets its limit), and the read-ahead stops there. Both hold the
/// fields in memory until the file arrives, so this bounds what a form costs before its
/// signature is checked (s3s's default is 20 MB).
pub const MAX_FIELDS_BYTES: usize = 1024 * 1024;

/// The most bytes read ahead of the file's part: the fields, and their parts' headers.
const MAX_HEAD: usize = MAX_FIELDS_BYTES + 64 * 1024;

/// The most a form whose file is at most `max_file` bytes holds in memory: its file, its
/// fields and their headers.
#[must_use]
pub const fn max_held(max_file: u64) -> u64 {
    max_file.saturating_add(MAX_HEAD as u64)
}

/// The form's boundary, when `method` and `headers` make the request a POST form.
#[must_use]
pub fn boundary(method: &Method, headers: &HeaderMap) -> Option<String> {
    crate::auth::request_checks::form_type(method, headers)?.get_param(mime::BOUNDARY).map(|b| b.to_string())
}

/// Why a form is refused before s3s reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormRefused {
    /// A form outside the grammar this module reads (see the module's comment).
    Malformed,
    /// A server-side encryption field no condition of the form's policy names. AWS holds
    /// every field but a few (`x-amz-signature`, `file`, `policy`, `x-ignore-*`) to a condition;
    /// s3s 0.14 lets `x-amz-server-side-encryption*` through without one (an exception MinIO
    /// makes), which would let anyone holding a form choose the key its objects are stored
    /// under, or encrypt them with a key of their own that its owner does not have.
    FieldNotInPolicy(String),
}

/// Reads the form's fields ahead of s3s: returns the request with the same body (its key
/// field's `${filename}` replaced) and the fields s3s does not read.
///
/// # Errors
/// [`FormRefused`].
pub async fn read(req: Request<Body>, boundary: &str) -> Result<Request<Body>, FormRefused> {
    let (mut parts, mut body) = req.into_parts();
    let mut head = BytesMut::new();
    let mut failed = None;
    let mut parsed_at = 0;
    let form = loop {
        let ended = match body.next().await {
            Some(Ok(chunk)) => {
                head.extend_from_slice(&chunk);
                false
            }
            Some(Err(err)) => {
                failed = Some(err);
                break None;
            }
            None => true,
        };
        // Parsed again only once the head has doubled (or ended, or passed the bound), so a
        // body sent a byte at a time costs time linear in its head, not quadratic.
        if !ended && head.len() < parsed_at * 2 && head.len() <= MAX_HEAD {
            continue;
        }
        parsed_at = head.len();
        match parse(head.clone().freeze(), boundary).await {
            Parsed::Complete(form) => break Some(form),
            Parsed::Incomplete if !ended && head.len() <= MAX_HEAD => {}
            Parsed::Incomplete | Parsed::Malformed => return Err(FormRefused::Malformed),
        }
    };
    if let Some(name) = form.as_ref().and_then(|form| encryption_field_outside_policy(&form.fields)) {
        return Err(FormRefused::FieldNotInPolicy(name));
    }
    let mut head = head.freeze();
    if let Some(form) = form {
        if let Some(rewritten) = form.filename.as_deref().and_then(|name| with_filename(&head, boundary, &form, name)) {
            // The body keeps its length but for the key: what follows the head is unchanged.
            let rest = content_length(&parts.headers).and_then(|length| length.checked_sub(head.len() as u64));
            if let Some(rest) = rest {
                parts.headers.insert(http::header::CONTENT_LENGTH, (rest + rewritten.len() as u64).into());
            }
            head = rewritten;
        }
        let field = |name: &str| form.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        parts.extensions.insert(PostForm {
            acl: field("acl"),
            tagging: field("tagging"),
            redirects: field("success_action_redirect").or_else(|| field("redirect")).is_some(),
        });
    }
    let prefix = futures::stream::iter([Ok(head)].into_iter().chain(failed.map(Err)));
    let frames = prefix.chain(body).map(|chunk| chunk.map(http_body::Frame::data));
    Ok(Request::from_parts(parts, Body::http_body_unsync(http_body_util::StreamBody::new(frames))))
}

/// s3s 0.14 answers a form whose policy does not allow it (a condition unmet) with 400
/// `InvalidPolicyDocument`; AWS with 403 `AccessDenied`, "Invalid according to Policy: Policy
/// Condition failed": the form is well formed, and its signer did not allow it. Browsers'
/// upload code and SDKs tell the two apart, so s3s's answer is given AWS's code and status;
/// any other answer passes unchanged.
#[must_use]
pub fn as_aws_policy_refusal(response: http::Response<Body>, request_id: &str) -> http::Response<Body> {
    if response.status() != http::StatusCode::BAD_REQUEST {
        return response;
    }
    let Some(body) = response.body().bytes() else { return response };
    let text = String::from_utf8_lossy(&body);
    let Some(detail) = text
        .split_once("<Code>InvalidPolicyDocument</Code><Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(message, _)| message)
        .filter(|message| message.starts_with("Policy condition"))
    else {
        return response;
    };
    let detail = quick_xml::escape::unescape(detail).map_or_else(|_| detail.to_owned(), |d| d.into_owned());
    let refusal = crate::auth::request_checks::Refusal {
        code: s3s::S3ErrorCode::AccessDenied,
        message: format!("Invalid according to Policy: Policy Condition failed: {detail}"),
        details: Vec::new(),
    };
    tracing::info!(code = "AccessDenied", status = 403, "form upload refused by its policy");
    let (mut parts, _) = response.into_parts();
    parts.status = http::StatusCode::FORBIDDEN;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, Body::from(refusal.to_xml(request_id)))
}

/// The first `x-amz-server-side-encryption*` field that no condition of the form's policy names
/// ([`FormRefused::FieldNotInPolicy`]). A form without a policy, or with one that does not
/// parse, is left to s3s, which checks that.
fn encryption_field_outside_policy(fields: &[(String, String)]) -> Option<String> {
    let (_, policy) = fields.iter().find(|(name, _)| name == "policy")?;
    let policy = s3s::post_policy::PostPolicy::from_base64(policy).ok()?;
    let named = |name: &str| {
        policy.conditions.iter().any(|condition| match condition {
            PostPolicyCondition::Eq { field, .. } | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        })
    };
    fields
        .iter()
        .map(|(name, _)| name)
        .find(|name| name.starts_with("x-amz-server-side-encryption") && !named(name))
        .cloned()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The fields before the file's part, in order (names in lower case, as AWS compares them),
/// and the file's name.
struct Head {
    fields: Vec<(String, String)>,
    filename: Option<String>,
}

enum Parsed {
    Complete(Head),
    /// The bytes so far end before the file's part.
    Incomplete,
    Malformed,
}

/// The form's fields up to its file, when the strict reading ([`scan`]) and multer's agree on
/// their names and no name repeats.
async fn parse(head: Bytes, boundary: &str) -> Parsed {
    let names = match scan(&head, boundary) {
        Scanned::Names(names) => names,
        Scanned::Incomplete => return Parsed::Incomplete,
        Scanned::Malformed => return Parsed::Malformed,
    };
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != names.len() {
        return Parsed::Malformed;
    }
    match parse_fields(head, boundary).await {
        Parsed::Complete(form) if form.fields.iter().map(|(name, _)| name).eq(names.iter()) => Parsed::Complete(form),
        Parsed::Complete(_) => Parsed::Malformed,
        other => other,
    }
}

enum Scanned {
    /// The names of the fields before the file (in lower case), in order.
    Names(Vec<String>),
    Incomplete,
    Malformed,
}

/// The longest part headers read: a browser's are a few hundred bytes.
const MAX_PART_HEADERS: usize = 16 * 1024;

/// Reads the parts' names up to the file's in the strict grammar (see the module's comment).
fn scan(head: &[u8], boundary: &str) -> Scanned {
    let delimiter = format!("--{boundary}");
    let separator = format!("\r\n{delimiter}");
    if head.len() < delimiter.len() + 2 {
        return Scanned::Incomplete;
    }
    if !head.starts_with(delimiter.as_bytes()) {
        return Scanned::Malformed;
    }
    let mut names = Vec::new();
    let mut at = 0;
    loop {
        let after = at + delimiter.len();
        match head.get(after..after + 2) {
            None => return Scanned::Incomplete,
            Some(b"\r\n") => {}
            // The form's end, before any file: s3s refuses it.
            Some(b"--") => return Scanned::Names(names),
            Some(_) => return Scanned::Malformed,
        }
        let start = after + 2;
        let Some(length) = memchr::memmem::find(&head[start..], b"\r\n\r\n") else {
            return if head.len() - start > MAX_PART_HEADERS { Scanned::Malformed } else { Scanned::Incomplete };
        };
        let Some((name, is_file)) = part_name(&head[start..start + length]) else {
            return Scanned::Malformed;
        };
        if is_file {
            return Scanned::Names(names);
        }
        names.push(name);
        let value = start + length + 4;
        let Some(next) = memchr::memmem::find(&head[value..], separator.as_bytes()) else {
            return Scanned::Incomplete;
        };
        at = value + next + 2;
    }
}

/// A part's name (in lower case) and whether it is the file, when its headers are a
/// `Content-Disposition: form-data; name="…"[; filename="…"]` and at most a `Content-Type`.
fn part_name(headers: &[u8]) -> Option<(String, bool)> {
    let headers = std::str::from_utf8(headers).ok()?;
    let (mut disposition, mut content_type) = (None, false);
    for line in headers.split("\r\n") {
        let (header, value) = line.split_once(':')?;
        match header.to_ascii_lowercase().as_str() {
            "content-disposition" if disposition.is_none() => disposition = Some(value.trim()),
            "content-type" if !content_type => content_type = true,
            _ => return None,
        }
    }
    let params = disposition?.strip_prefix("form-data")?;
    let (mut name, mut filename) = (None, None);
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=')?;
        let value = value.strip_prefix('"')?.strip_suffix('"')?;
        if value.contains(['"', '\\']) {
            return None;
        }
        match key {
            "name" if name.is_none() => name = Some(value.to_ascii_lowercase()),
            "filename" if filename.is_none() => filename = Some(value),
            _ => return None,
        }
    }
    let name = name?;
    let is_file = filename.is_some() || name == "file";
    Some((name, is_file))
}

async fn parse_fields(head: Bytes, boundary: &str) -> Parsed {
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(head) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            // A form without a file: s3s refuses it.
            Ok(None) => return Parsed::Complete(Head { fields, filename: None }),
            Err(err) => return incomplete_or_malformed(&err),
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" || field.file_name().is_some() {
            let filename = field.file_name().filter(|f| !f.is_empty()).map(str::to_owned);
            return Parsed::Complete(Head { fields, filename });
        }
        match field.text().await {
            Ok(value) => fields.push((name, value)),
            Err(err) => return incomplete_or_malformed(&err),
        }
    }
}

fn incomplete_or_malformed(err: &multer::Error) -> Parsed {
    match err {
        multer::Error::IncompleteStream
        | multer::Error::IncompleteFieldData { .. }
        | multer::Error::IncompleteHeaders => Parsed::Incomplete,
        _ => Parsed::Malformed,
    }
}

/// The head with `${filename}` in the key field's value replaced by `filename`, when the
/// key holds it. The key's part is found by its place among the parts, and its raw bytes
/// must be the value the parser read (no transfer encoding), or nothing is rewritten.
fn with_filename(head: &[u8], boundary: &str, form: &Head, filename: &str) -> Option<Bytes> {
    const VARIABLE: &str = "${filename}";
    let index = form.fields.iter().position(|(name, _)| name == "key")?;
    let key = &form.fields[index].1;
    if !key.contains(VARIABLE) {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let starts: Vec<usize> = memchr::memmem::find_iter(head, delimiter.as_bytes())
        .filter(|&at| at == 0 || head[..at].ends_with(b"\r\n"))
        .collect();
    let (part, next) = (*starts.get(index)?, *starts.get(index + 1)?);
    let value_start = part + memchr::memmem::find(&head[part..next], b"\r\n\r\n")? + 4;
    let value_end = next.checked_sub(2)?;
    if head.get(value_start..value_end)? != key.as_bytes() {
        return None;
    }
    let mut rewritten = BytesMut::with_capacity(head.len() + filename.len());
    rewritten.extend_from_slice(&head[..value_start]);
    rewritten.extend_from_slice(key.replace(VARIABLE, filename).as_bytes());
    rewritten.extend_from_slice(&head[value_end..]);
    Some(rewritten.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)], filename: &str, content: &str) -> String {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
        }
        body.push_str(&format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n{content}\r\n--XyZ--\r\n"
        ));
        body
    }

    #[tokio::test]
    async fn the_key_takes_the_files_name_and_nothing_else_moves() {
        let original = form(&[("key", "uploads/${filename}"), ("acl", "private")], "report.pdf", "PDF");
        let Parsed::Complete(head) = parse(Bytes::from(original.clone()), "XyZ").await else {
            panic!("a whole form parses");
        };
        assert_eq!(head.filename.as_deref(), Some("report.pdf"));
        let rewritten = with_filename(original.as_bytes(), "XyZ", &head, "report.pdf").expect("rewritten");
        assert_eq!(rewritten, form(&[("key", "uploads/report.pdf"), ("acl", "private")], "report.pdf", "PDF"));
    }

    #[tokio::test]
    async fn a_head_cut_before_the_files_part_is_incomplete() {
        let original = form(&[("key", "a"), ("policy", "eyJ9")], "f", "x");
        let cut = original.find("name=\"policy\"").expect("policy part");
        assert!(matches!(parse(Bytes::from(original[..cut].to_owned()), "XyZ").await, Parsed::Incomplete));
        let in_file_data = original.find("\r\n\r\nx").expect("file data") + 4;
        assert!(matches!(parse(Bytes::from(original[..in_file_data].to_owned()), "XyZ").await, Parsed::Complete(_)));
    }
}
