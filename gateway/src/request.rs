//! What the server and the access hook learn about a request before its handler runs, handed
//! to the S3 layer in the request's extensions (beside them, the request's
//! [`ClientAddr`](crate::client_addr::ClientAddr)).

/// The id of one request, as sent in `x-amz-request-id`. Found in `S3Request::extensions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh id: 16 uppercase hex digits, the shape AWS uses.
    #[must_use]
    pub fn new() -> Self {
        Self(format!("{:016X}", rand::random::<u64>()))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// The gateway process that answered, as sent in `x-amz-id-2` and in error bodies' `<HostId>`
/// (AWS names its host there): random at each start, so a request id from the logs of several
/// gateways behind one address can be traced to the process that served it.
#[must_use]
pub fn host_id() -> &'static str {
    static HOST_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
    });
    &HOST_ID
}

/// The account (its id) that will own the object a write creates, when the access hook found
/// it is not the bucket's owner: another account writing into a bucket whose ownership lets
/// writers own their objects (`registry::acl::writer_owns`). Absent on most writes, whose
/// objects are the bucket owner's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOwns(pub String);

/// Set by the access hook on a CreateBucket of a bucket the requester's account owns, when
/// the requester may also set that bucket's ACL: re-creating it in us-east-1 resets its ACL
/// (AWS's legacy answer), which is a PutBucketAcl.
#[derive(Debug, Clone, Copy)]
pub struct MaySetBucketAcl;

/// Set by the access hook on a read of an object (GetObject, HeadObject,
/// GetObjectAttributes, and of its tags, ACL, retention or legal hold) by a requester who may
/// not list its bucket: were the key missing, the
/// answer is 403 `AccessDenied`, not 404 `NoSuchKey`, as on AWS, so that keys cannot be probed
/// for by someone who could not list them.
#[derive(Debug, Clone, Copy)]
pub struct MissingKeyHidden;

/// The keys of a DeleteObjects that the access hook denied, taken out of the request: the
/// handler answers each with `AccessDenied`, as AWS does, and deletes the others.
#[derive(Debug, Clone, Default)]
pub struct DeniedDeletes(pub Vec<s3s::dto::ObjectIdentifier>);

/// The host (and port) a request was sent to: its URI's authority over HTTP/2, which sends no
/// `Host` header (and in an absolute-form HTTP/1 target), else its `Host` header.
#[must_use]
pub fn authority<'r>(uri: &'r http::Uri, headers: &'r http::HeaderMap) -> Option<&'r str> {
    let header = || headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
    uri.authority().map(http::uri::Authority::as_str).or_else(header)
}
