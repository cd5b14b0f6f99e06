//! Events: the unit of the registry's log, their canonical encoding and the chain hash.
//!
//! An event is immutable once appended. Its payload is stored as canonical bytes (see
//! [`v1`] for the encoding rules), and its `hash` covers the previous event's hash and every
//! stored field, so changing any byte of any event breaks the chain from that event on.

pub mod v1;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A 32-byte BLAKE3 digest.
pub type Digest = [u8; 32];

/// The `prev_hash` of the first event in a log.
pub const GENESIS_HASH: Digest = [0; 32];

/// Domain separation for the chain hash, so that no other BLAKE3 use in the product can
/// produce a value that is also a valid event hash.
const CHAIN_HASH_CONTEXT: &str = "artifact-store 2026 event chain v1";

/// Who asked for a change, as seen on the wire. Recorded with every event that has one and
/// covered by the event's hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The access key that signed the request.
    pub access_key: Option<String>,
    /// The request id echoed to the client as `x-amz-request-id`.
    pub request_id: Option<String>,
    /// Where the request came from: the connection's peer (`ip:port`), or the client a trusted
    /// load balancer forwarded (`ip`).
    pub source_addr: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

/// An event that has not been appended yet: everything but the fields the log assigns
/// (sequence, time and chain hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// What happened, as a typed payload.
    pub payload: v1::Payload,
    /// Who did it: an access key, or `lifecycle` / `system` for the gateway's own work.
    pub actor: String,
    /// The request that caused it, when there is one.
    pub context: RequestContext,
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, starting at 1, without gaps.
    pub sequence: u64,
    /// Commit time in milliseconds since the Unix epoch, from the registry's clock.
    pub created_at: i64,
    /// Versioned type name such as `v1.object.put`.
    pub event_type: String,
    /// The kind of thing the event is about (`bucket` or `object`).
    pub subject_kind: String,
    /// Which one: `bucket` or `bucket/key`.
    pub subject_id: String,
    /// Who did it.
    pub actor: String,
    /// The request that caused it.
    pub context: RequestContext,
    /// Canonical payload bytes (UTF-8 JSON, see [`v1`]).
    #[serde(with = "payload_text")]
    pub payload: Vec<u8>,
    /// BLAKE3 of `payload`.
    #[serde(with = "hex_digest")]
    pub payload_digest: Digest,
    /// `hash` of the previous event, or [`GENESIS_HASH`].
    #[serde(with = "hex_digest")]
    pub prev_hash: Digest,
    /// BLAKE3 over `prev_hash` and this event's canonical fields; see [`Event::compute_hash`].
    #[serde(with = "hex_digest")]
    pub hash: Digest,
}

impl Event {
    /// Seals a draft into the event that follows `prev_hash` at `sequence`; hands the typed
    /// payload back for the views, which the direct path applies without decoding.
    pub(crate) fn seal(draft: EventDraft, sequence: u64, created_at: i64, prev_hash: Digest) -> (Self, v1::Payload) {
        let EventDraft { payload: typed, actor, context } = draft;
        let payload = typed.encode();
        let mut event = Event {
            sequence,
            created_at,
            event_type: typed.event_type().to_owned(),
            subject_kind: typed.subject_kind().to_owned(),
            subject_id: typed.subject_id(),
            actor,
            context,
            payload_digest: *blake3::hash(&payload).as_bytes(),
            payload,
            prev_hash,
            hash: [0; 32],
        };
        event.hash = event.compute_hash();
        (event, typed)
    }

    /// The chain hash this event should carry, computed from its stored fields.
    ///
    /// Every field is length-prefixed (or fixed-size) so that no two different events encode
    /// to the same input. The payload enters through `payload_digest`; [`Event::verify_digest`]
    /// ties the digest to the payload.
    #[must_use]
    pub fn compute_hash(&self) -> Digest {
        let context = &self.context;
        chain_hash(&StoredFields {
            prev_hash: &self.prev_hash,
            sequence: self.sequence,
            created_at: self.created_at,
            texts: [&self.event_type, &self.subject_kind, &self.subject_id, &self.actor].map(|t| t.as_bytes()),
            context: [&context.access_key, &context.request_id, &context.source_addr, &context.user_agent]
                .map(|c| c.as_deref().map(str::as_bytes)),
            payload_digest: &self.payload_digest,
        })
    }

    /// Whether `payload_digest` is the BLAKE3 of `payload`.
    #[must_use]
    pub fn verify_digest(&self) -> bool {
        *blake3::hash(&self.payload).as_bytes() == self.payload_digest
    }

    /// Decodes the payload. Unknown event types decode to [`v1::Payload::Unknown`].
    ///
    /// # Errors
    /// [`crate::Error::CorruptPayload`] when a known type's payload does not parse.
    pub fn decode(&self) -> Result<v1::Payload> {
        v1::Payload::decode(&self.event_type, &self.payload)
            .map_err(|source| Error::CorruptPayload { sequence: self.sequence, source })
    }
}

/// The stored fields the chain hash covers, borrowed: [`crate::log::verify`] hashes rows as
/// SQLite hands them over, without building an [`Event`].
pub(crate) struct StoredFields<'a> {
    pub prev_hash: &'a [u8],
    pub sequence: u64,
    pub created_at: i64,
    /// `event_type`, `subject_kind`, `subject_id`, `actor`, in that order.
    pub texts: [&'a [u8]; 4],
    /// `access_key`, `request_id`, `source_addr`, `user_agent`, in that order.
    pub context: [Option<&'a [u8]>; 4],
    pub payload_digest: &'a [u8],
}

/// The chain hash over an event's stored fields (see [`Event::compute_hash`]).
pub(crate) fn chain_hash(fields: &StoredFields<'_>) -> Digest {
    use blake3::hazmat::HasherExt as _;
    // Deriving the key from the context string once, not per event.
    static CONTEXT_KEY: std::sync::LazyLock<blake3::hazmat::ContextKey> =
        std::sync::LazyLock::new(|| blake3::hazmat::hash_derive_key_context(CHAIN_HASH_CONTEXT));
    let mut hasher = blake3::Hasher::new_from_context_key(&CONTEXT_KEY);
    hasher.update(fields.prev_hash);
    hasher.update(&fields.sequence.to_le_bytes());
    hasher.update(&fields.created_at.to_le_bytes());
    for text in fields.texts {
        update_bytes(&mut hasher, text);
    }
    for field in fields.context {
        if let Some(value) = field {
            hasher.update(&[1]);
            update_bytes(&mut hasher, value);
        } else {
            hasher.update(&[0]);
        }
    }
    hasher.update(fields.payload_digest);
    *hasher.finalize().as_bytes()
}

fn update_bytes(hasher: &mut blake3::Hasher, value: &[u8]) {
    hasher.update(&(value.len() as u64).to_le_bytes());
    hasher.update(value);
}

mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(digest: &super::Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Digest, D::Error> {
        let text = String::deserialize(d)?;
        let mut digest = [0; 32];
        hex::decode_to_slice(text, &mut digest).map_err(D::Error::custom)?;
        Ok(digest)
    }
}

/// Payloads are canonical JSON, so the feed shows them as JSON rather than as a byte array.
mod payload_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(payload: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value = serde_json::from_slice(payload).map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&value, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(super::v1::canonical_bytes(&serde_json::Value::deserialize(d)?))
    }
}
