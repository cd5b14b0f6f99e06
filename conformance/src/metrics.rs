//! The server's `/_metrics`, read with a Prometheus text-format parser.

use std::collections::HashMap;

use prometheus_parse::{Scrape, Value};

use crate::Server;

impl Server {
    /// GETs `/_metrics` and parses it.
    ///
    /// # Panics
    /// When the answer is not 200 Prometheus text.
    pub async fn scrape(&self) -> Scrape {
        let response = self.send(&self.request("GET", "/_metrics")).await;
        assert_eq!(response.status, 200);
        assert!(response.header("content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
        let text = response.text();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"))
    }
}

/// The value of `name` with exactly `labels` (a histogram's count), `None` when the scrape has
/// no such series.
///
/// # Panics
/// On a summary sample.
#[must_use]
pub fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: HashMap<&str, &str> = labels.iter().copied().collect();
    let found = scrape.samples.iter().find(|s| {
        s.metric == name
            && s.labels.iter().count() == wanted.len()
            && wanted.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })?;
    match &found.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        Value::Histogram(buckets) => Some(buckets.last().map_or(0.0, |b| b.count)),
        other => panic!("{name}: unexpected sample {other:?}"),
    }
}
