//! Progress bars for the long maintenance commands: drawn on stderr when it is a terminal,
//! and not at all otherwise, so pipes, logs and `--json` output stay clean.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a bar counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unit {
    /// Events, by sequence.
    Events,
    /// Bytes.
    Bytes,
}

/// A bar of `len` units labelled `label`, or a hidden one when stderr is not a terminal.
pub(super) fn bar(label: &'static str, len: u64, unit: Unit) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match unit {
        Unit::Events => "{msg:>8} [{bar:40}] {human_pos}/{human_len} events ({eta})",
        Unit::Bytes => "{msg:>8} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    };
    let style = ProgressStyle::with_template(template).expect("the templates are valid").progress_chars("=> ");
    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style).with_message(label)
}

/// A spinner counting items of unknown total, or a hidden one when stderr is not a terminal.
pub(super) fn spinner(label: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg} {human_pos}").expect("the template is valid");
    let spinner =
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style).with_message(label);
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
