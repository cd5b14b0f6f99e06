//! The registry as the product shows it: events read with `artifact-store events list --json`
//! on the server's data folder (beside the running server, or after it stopped) and, where a
//! test waits for records written after a response, from the `/_registry/events` feed. Both
//! print an event as the JSON every consumer of the log reads, so the suite decodes nothing
//! with the code it tests.

use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use crate::Server;
use crate::raw::{self, Payload, ROOT};

/// How long [`Server::wait_for_events`] waits for records the server writes after answering.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`Server::wait_for_events`] asks the feed again.
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// Header of a feed page: where the next page starts.
const NEXT_SINCE_HEADER: &str = "x-artifact-store-next-since";
/// The most events one feed page may hold.
const FEED_PAGE: usize = 10_000;

/// An event as the CLI and the registry API print it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// Position in the log, from 1.
    pub sequence: u64,
    /// Commit time in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Versioned type name such as `v1.object.put`.
    pub event_type: String,
    /// `bucket`, `object` or `package`.
    pub subject_kind: String,
    /// `bucket` or `bucket/key`.
    pub subject_id: String,
    /// Who did it.
    pub actor: String,
    /// The request that caused it.
    pub context: Context,
    /// The payload, whose fields depend on `event_type`.
    pub payload: Value,
    /// BLAKE3 of the canonical payload bytes, hex.
    pub payload_digest: String,
    /// The previous event's `hash`, hex.
    pub prev_hash: String,
    /// The chain hash, hex.
    pub hash: String,
}

/// The request behind an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Context {
    /// The access key that signed the request.
    pub access_key: Option<String>,
    /// The `x-amz-request-id` the client got.
    pub request_id: Option<String>,
    /// Where the request came from: `ip:port`, or `ip` for a client behind a trusted balancer.
    pub source_addr: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

impl Server {
    /// Every event in the log, in sequence order.
    ///
    /// # Panics
    /// When `events list` fails or prints something other than events.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        let listed = self.cli(&["events", "list", "--json"]);
        let stdout = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.status.success(),
            "events list --json: {}\n{}",
            listed.status,
            String::from_utf8_lossy(&listed.stderr)
        );
        parse_lines(&stdout, "events list --json")
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

    /// The BLAKE3 the registry recorded for the latest multipart completion of `bucket/key`.
    ///
    /// # Panics
    /// When there is none.
    #[must_use]
    pub fn completed_blake3(&self, bucket: &str, key: &str) -> String {
        let events = self.object_events(bucket, key);
        let completed = of_type(&events, "v1.multipart.completed");
        let event = completed.last().expect("a completion event");
        event.payload["version"]["content"]["blake3"].as_str().expect("blake3").to_owned()
    }

    /// The events about a bucket and everything in it.
    #[must_use]
    pub fn bucket_events(&self, bucket: &str) -> Vec<Event> {
        let inside = format!("{bucket}/");
        self.events().into_iter().filter(|e| e.subject_id == bucket || e.subject_id.starts_with(&inside)).collect()
    }

    /// Waits until the object's events satisfy `done`, for records written after the response
    /// (retrievals are recorded once the body has been sent). Polls the running server's
    /// `/_registry/events` feed rather than starting a process per look.
    ///
    /// # Panics
    /// When they do not within 30 seconds; the message lists the events seen.
    pub async fn wait_for_events(&self, bucket: &str, key: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let subject = format!("{bucket}/{key}");
        loop {
            let mut events = self.feed(bucket).await;
            events.retain(|e| e.subject_id == subject);
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "events of {bucket}/{key} never reached the expected state: {:?}",
                types(&events)
            );
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// The bucket's events from `/_registry/events?bucket=`, page after page.
    async fn feed(&self, bucket: &str) -> Vec<Event> {
        let mut events = Vec::new();
        let mut since = 0;
        loop {
            let target =
                format!("/_registry/events?bucket={}&since={since}&limit={FEED_PAGE}", raw::encode(bucket, false));
            let response =
                self.send(&self.request("GET", &target).sign(ROOT, SystemTime::now(), Payload::Signed)).await;
            assert_eq!(response.status, 200, "GET {target}: {}", response.text());
            let next: u64 = response
                .header(NEXT_SINCE_HEADER)
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("GET {target}: no {NEXT_SINCE_HEADER} header"));
            let page = parse_lines(&response.text(), &target);
            // An empty page that moved on only ran out of its scan budget; one that did not is the head.
            if page.is_empty() && next == since {
                return events;
            }
            events.extend(page);
            since = next;
        }
    }
}

fn parse_lines(text: &str, source: &str) -> Vec<Event> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{source}: not an event ({err}): {line}")))
        .collect()
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

/// The new version an event created: the payload of a `v1.object.put`, or the `version`
/// inside a `v1.multipart.completed` (`bucket`, `key`, `version_id`, `content`, `origin`, ...).
///
/// # Panics
/// For any other event.
#[must_use]
pub fn version(event: &Event) -> &Value {
    match event.event_type.as_str() {
        "v1.object.put" => &event.payload,
        "v1.multipart.completed" => &event.payload["version"],
        other => panic!("event {} ({other}) is not a new version: {}", event.sequence, event.payload),
    }
}
