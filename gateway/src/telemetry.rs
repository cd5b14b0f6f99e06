//! Logging: `tracing` to stderr as text or JSON lines.
//!
//! s3s logs whole requests (with `Authorization`) and signatures at debug level, so its
//! events above info are dropped whatever `log.level` asks for: secrets never reach logs.
//! s3s also logs every client error (`NoSuchKey`, `AccessDenied`, ...) at error level from
//! `s3s::ops`; those are dropped too: the access log line carries the status, and internal
//! errors are logged where they arise (`s3::error`) and by `s3s::service` for 5xx responses.

use std::io::IsTerminal as _;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber.
///
/// # Errors
///
/// An invalid `log.level` filter, or a subscriber already installed.
pub fn init(log: &LogConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let level = EnvFilter::try_new(&log.level)?;
    let filter = level.and(filter_fn(|meta| allowed(meta.target(), *meta.level())));
    let ansi = std::io::stderr().is_terminal();
    let layer = match log.format {
        LogFormat::Text => fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    tracing_subscriber::registry().with(layer.with_filter(filter)).try_init()?;
    Ok(())
}

/// Events that may be logged whatever the configured filter says (see the module doc).
fn allowed(target: &str, level: Level) -> bool {
    if !target.starts_with("s3s") {
        return true;
    }
    level <= Level::INFO && !(target == "s3s::ops" && level == Level::ERROR)
}

/// `outer: inner: innermost`, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3s_debug_events_and_client_error_noise_are_dropped() {
        assert!(!allowed("s3s::service", Level::DEBUG));
        assert!(!allowed("s3s::ops::signature", Level::TRACE));
        assert!(!allowed("s3s::ops", Level::ERROR));
        assert!(allowed("s3s::service", Level::ERROR));
        assert!(allowed("s3s::ops", Level::WARN));
        assert!(allowed("artifact_store_gateway::server", Level::DEBUG));
    }
}
