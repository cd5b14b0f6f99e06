//! Error responses' bodies: stamped with the ids AWS puts in them ([`with_error_ids`]), and
//! their error code and message read back for the request's log line ([`of`]). A status alone does not tell a wrong secret (`SignatureDoesNotMatch`) from a
//! missing permission (`AccessDenied`) or an unknown key (`InvalidAccessKeyId`), and the errors
//! are made in many places (s3s's signature check, the authorization, the handlers, IAM, the
//! registry API); their answers all pass through the router, already serialized. Error bodies
//! are small documents held in memory, so reading them costs nothing; a streamed body is
//! never an error document and is not looked at.

use s3s::Body;

/// What an error response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error code (`AccessDenied`, `NoSuchKey`, ...).
    pub code: String,
    /// The human-readable reason: the document's message, or AWS's for its code; empty when
    /// neither says one.
    pub reason: String,
}

/// The code and message of `response` when it is a 4xx or 5xx with an S3 or IAM XML error
/// document (`<Code>`, `<Message>`) or a registry API JSON error (`code`, `message`).
#[must_use]
pub fn of(response: &http::Response<Body>) -> Option<ErrorBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let body = response.body().bytes()?;
    let text = std::str::from_utf8(&body).ok()?;
    from_xml(text).or_else(|| from_json(text))
}

fn from_xml(text: &str) -> Option<ErrorBody> {
    let element = |name: &str| {
        let (_, rest) = text.split_once(&format!("<{name}>"))?;
        let (value, _) = rest.split_once(&format!("</{name}>"))?;
        Some(quick_xml::escape::unescape(value).map_or_else(|_| value.to_owned(), |v| v.into_owned()))
    };
    let code = element("Code")?;
    let reason = element("Message").filter(|m| !m.is_empty()).unwrap_or_else(|| aws_message(&code).to_owned());
    Some(ErrorBody { code, reason })
}

/// AWS's message for the codes s3s answers with no message of its own (its signature and key
/// checks, above all): the log line still says why in words.
fn aws_message(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "IncompleteBody" => "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        _ => "",
    }
}

fn from_json(text: &str) -> Option<ErrorBody> {
    let document: serde_json::Value = serde_json::from_str(text).ok()?;
    let field = |name: &str| document.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    Some(ErrorBody { code: field("code")?, reason: field("message").unwrap_or_default() })
}

/// A header by which a handler hands the router elements of its error document that s3s does
/// not write (`InvalidRange`'s `<RangeRequested>` and `<ActualObjectSize>`), as
/// `name=value&...`; the router moves them into the document ([`with_error_ids`]) and drops
/// the header.
pub const DETAILS_HEADER: &str = "x-artifact-store-error-details";

/// [`DETAILS_HEADER`]'s value for `details`.
#[must_use]
pub fn details_header(details: &[(&str, &str)]) -> Option<http::HeaderValue> {
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(details).finish();
    http::HeaderValue::try_from(encoded).ok()
}

/// The error body `xml` (an S3 `<Error>` document) with `details` (a [`DETAILS_HEADER`]
/// value), `<RequestId>` and `<HostId>` added before its end, as AWS sends them, and AWS's
/// `<Message>` for the codes s3s sends without one (clients show it: `InvalidBucketName ... :
/// Unknown` otherwise); `None` when it has the ids or is not such a document.
#[must_use]
pub fn with_error_ids(xml: &[u8], request_id: &str, details: Option<&[u8]>) -> Option<Vec<u8>> {
    const END: &[u8] = b"</Error>";
    if memchr::memmem::find(xml, b"<RequestId>").is_some() || !xml.ends_with(END) {
        return None;
    }
    let mut out = Vec::with_capacity(xml.len() + 256);
    out.extend_from_slice(&xml[..xml.len() - END.len()]);
    if memchr::memmem::find(xml, b"<Message>").is_none()
        && let Some(message) = std::str::from_utf8(xml).ok().and_then(from_xml).map(|body| body.reason)
        && !message.is_empty()
    {
        out.extend_from_slice(format!("<Message>{}</Message>", quick_xml::escape::escape(&message)).as_bytes());
    }
    for (name, value) in form_urlencoded::parse(details.unwrap_or_default()) {
        // Element names are the handler's own; only the values need escaping.
        if name.bytes().all(|b| b.is_ascii_alphabetic()) {
            let value = quick_xml::escape::escape(value.as_ref());
            out.extend_from_slice(format!("<{name}>{value}</{name}>").as_bytes());
        }
    }
    for (name, value) in [("RequestId", request_id), ("HostId", crate::request::host_id())] {
        out.extend_from_slice(format!("<{name}>{value}</{name}>").as_bytes());
    }
    out.extend_from_slice(END);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> http::Response<Body> {
        let mut response = http::Response::new(Body::from(body.to_owned()));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response
    }

    #[test]
    fn s3_iam_and_registry_errors_are_read() {
        let s3 = response(
            403,
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no &amp; never</Message></Error>",
        );
        assert_eq!(of(&s3), Some(ErrorBody { code: "AccessDenied".into(), reason: "no & never".into() }));
        let iam = response(
            404,
            "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone</Message></Error></ErrorResponse>",
        );
        assert_eq!(of(&iam).unwrap().code, "NoSuchEntity");
        let bare = response(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>");
        assert!(of(&bare).unwrap().reason.starts_with("The request signature we calculated"));
        let api = response(404, r#"{"code":"NoSuchEvent","message":"past the end"}"#);
        assert_eq!(of(&api), Some(ErrorBody { code: "NoSuchEvent".into(), reason: "past the end".into() }));
    }

    #[test]
    fn a_code_s3s_sends_without_a_message_gets_awss() {
        let stamped = with_error_ids(b"<Error><Code>InvalidBucketName</Code></Error>", "RID", None).unwrap();
        let text = String::from_utf8(stamped).unwrap();
        assert!(text.contains("<Message>The specified bucket is not valid.</Message>"), "{text}");
        assert!(text.contains("<RequestId>RID</RequestId>"), "{text}");
        let kept =
            with_error_ids(b"<Error><Code>AccessDenied</Code><Message>own</Message></Error>", "RID", None).unwrap();
        assert_eq!(String::from_utf8(kept).unwrap().matches("<Message>").count(), 1);
    }

    #[test]
    fn successes_and_bodies_without_a_code_are_not_errors() {
        assert_eq!(of(&response(200, "<Error><Code>AccessDenied</Code></Error>")), None);
        assert_eq!(of(&response(404, "")), None);
        assert_eq!(of(&response(416, "not a document")), None);
    }
}
