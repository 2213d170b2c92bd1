//! Progress bars on stderr (one per blob) when stderr is a terminal; silent otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A set of progress bars, or nothing.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

/// One blob's bar (a no-op when progress is off).
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Bars only when `wanted` and stderr is a terminal.
    pub(crate) fn new(wanted: bool) -> Progress {
        let on = wanted && std::io::stderr().is_terminal();
        Progress {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A bar for `total` bytes labelled `label` (`pull 1a2b3c4d5e6f`).
    pub(crate) fn bar(&self, label: String, total: u64) -> Bar {
        let Some(m) = &self.multi else {
            return Bar { bar: None };
        };
        let style = ProgressStyle::with_template(
            "{prefix:>20} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let pb = m.add(ProgressBar::new(total).with_style(style).with_prefix(label));
        Bar { bar: Some(pb) }
    }
}

impl Bar {
    /// Sets the position.
    pub(crate) fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    /// Adds to the position.
    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Finishes with a message (`done`, `exists`, `mounted`).
    pub(crate) fn finish(&self, msg: &'static str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(msg);
        }
    }
}
