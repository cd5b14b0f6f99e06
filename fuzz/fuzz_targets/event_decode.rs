//! The registry's event decoders: the typed payload of every event type (what replay and
//! the views read from a stored row's `event_type` and `payload`), and the JSON form of a
//! whole event.
//!
//! Input: byte 0 picks the event type (one past the last is an unknown type, and the value
//! after that decodes the input as a whole event's JSON), the rest is the payload.
//!
//! Beyond "does not panic", a payload that decodes must re-encode to canonical bytes that
//! decode to the same value and re-encode to the same bytes: the chain hash covers those
//! bytes, so an encoding that drifted would break verification of a good log.

#![no_main]

use libfuzzer_sys::fuzz_target;
use registry::Event;
use registry::event::v1::Payload;

const TYPES: [&str; 21] = [
    "v1.bucket.created",
    "v1.bucket.deleted",
    "v1.bucket.versioning.set",
    "v1.bucket.object_lock.set",
    "v1.bucket.lifecycle.set",
    "v1.bucket.lifecycle.deleted",
    "v1.lifecycle.applied",
    "v1.object.put",
    "v1.object.deleted",
    "v1.object.delete_marker.created",
    "v1.object.tagging.set",
    "v1.object.retrieved",
    "v1.retention.set",
    "v1.retention.bypassed",
    "v1.legal_hold.set",
    "v1.multipart.created",
    "v1.multipart.part.uploaded",
    "v1.multipart.completed",
    "v1.multipart.aborted",
    "v1.package.finalized",
    "v9.unknown.type",
];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else { return };
    let kind = usize::from(kind) % (TYPES.len() + 1);
    if kind == TYPES.len() {
        let event = serde_json::from_slice::<Event>(payload);
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            eprintln!("{:?}", event.as_ref().map(Event::decode));
        }
        if let Ok(event) = event {
            let _ = event.decode();
            let _ = event.verify_digest();
            let _ = event.compute_hash();
        }
        return;
    }
    let decoded = Payload::decode(TYPES[kind], payload);
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("{decoded:?}");
    }
    let Ok(decoded) = decoded else { return };
    let _ = decoded.subject_id();
    let _ = decoded.subject_kind();
    let encoded = decoded.encode();
    let again = Payload::decode(decoded.event_type(), &encoded).expect("canonical bytes decode");
    assert_eq!(again, decoded, "decode(encode(p)) == p");
    assert_eq!(again.encode(), encoded, "the canonical encoding is stable");
});
