//! Progress bars on stderr, or none (tests, `--quiet`, not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug)]
pub struct Progress {
    visible: bool,
}

impl Progress {
    /// Bars shown when `visible` and stderr is a terminal.
    pub fn new(visible: bool) -> Progress {
        Progress { visible }
    }

    pub fn hidden() -> Progress {
        Progress { visible: false }
    }

    /// A bar with a length set later (`set_length`).
    pub fn bar(&self, prefix: &str) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>15} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar
    }
}
