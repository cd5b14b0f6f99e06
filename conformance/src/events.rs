//! The registry as the server wrote it: events read from `<data-dir>/registry.db` through a
//! read-only connection beside the running server (WAL lets both work at once).

use std::time::{Duration, Instant};

use registry::Event;
use registry::event::v1::{ObjectPut, Payload};

use crate::Server;

/// How long [`Server::wait_for_events`] waits for records the server writes after answering.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    /// Every event in the log, in sequence order.
    ///
    /// # Panics
    /// When the registry cannot be read.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        let conn = registry::sqlite::open_read_only(self.registry_path()).expect("open the registry read-only");
        registry::log::fetch_since(&conn, 0, usize::MAX).expect("read the event log")
    }

    /// Asserts that no event was appended since there were `before`: a refused request
    /// leaves no record.
    ///
    /// # Panics
    /// When one was.
    pub fn assert_no_new_events(&self, before: usize, what: &str) {
        let new: Vec<_> = self.events().into_iter().skip(before).map(|e| (e.event_type, e.subject_id)).collect();
        assert!(new.is_empty(), "{what}: no event may be recorded, got {new:?}");
    }

    /// The events about one object (its versions, tags, uploads, reads).
    #[must_use]
    pub fn object_events(&self, bucket: &str, key: &str) -> Vec<Event> {
        let subject = format!("{bucket}/{key}");
        self.events().into_iter().filter(|e| e.subject_id == subject).collect()
    }

    /// The events about a bucket and everything in it.
    #[must_use]
    pub fn bucket_events(&self, bucket: &str) -> Vec<Event> {
        let inside = format!("{bucket}/");
        self.events().into_iter().filter(|e| e.subject_id == bucket || e.subject_id.starts_with(&inside)).collect()
    }

    /// Waits until the object's events satisfy `done`, for records written after the response
    /// (retrievals are recorded once the body has been sent).
    ///
    /// # Panics
    /// When they do not within 30 seconds; the message lists the events seen.
    pub async fn wait_for_events(&self, bucket: &str, key: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let events = self.object_events(bucket, key);
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "events of {bucket}/{key} never reached the expected state: {:?}",
                types(&events)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The event types, in order.
#[must_use]
pub fn types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// The events of one type.
#[must_use]
pub fn of_type<'a>(events: &'a [Event], event_type: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.event_type == event_type).collect()
}

/// The decoded payload.
///
/// # Panics
/// When the payload does not decode.
#[must_use]
pub fn payload(event: &Event) -> Payload {
    event.decode().expect("event payload decodes")
}

/// The new version an event created: a `v1.object.put`, or the version inside a
/// `v1.multipart.completed`.
///
/// # Panics
/// For any other event.
#[must_use]
pub fn version(event: &Event) -> ObjectPut {
    match payload(event) {
        Payload::ObjectPut(put) => put,
        Payload::MultipartCompleted(completed) => completed.version,
        other => panic!("event {} is not a new version: {other:?}", event.sequence),
    }
}
