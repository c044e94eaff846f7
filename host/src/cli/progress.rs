//! Saying that a long step is under way: a spinner on a terminal, a line otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::ProgressBar;

/// A step under way; [`Progress::finish`] clears its spinner.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A spinner with `message` on a terminal; elsewhere `message` as one line on stderr.
    pub fn start(message: String) -> Progress {
        if !std::io::stderr().is_terminal() {
            eprintln!("{message}…");
            return Progress(None);
        }
        Progress::spinner(message)
    }

    /// A spinner with `message` on a terminal, nothing elsewhere.
    pub fn spinner(message: String) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner().with_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
