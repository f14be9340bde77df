//! What people see: one progress bar per file on stderr (upload, conversion, download; hidden
//! when stderr is not a terminal) and one result line per file.

use std::{io::Write, sync::Arc, time::Duration};

use common::states::JobState;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    api::ByteCounter,
    follow::{Transport, Update},
};

const UPLOAD: &str =
    "{prefix:24!} uploading   [{bar:28.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {eta}";
const CONVERT: &str = "{prefix:24!} converting  [{bar:28.green/blue}] {pos:>3}% {msg}";
const WAIT: &str = "{prefix:24!} {spinner} {msg}";
const DOWNLOAD: &str = "{prefix:24!} downloading [{bar:28.cyan/blue}] {bytes}/{total_bytes}";

fn style(template: &'static str) -> ProgressStyle {
    // The templates are constants checked by a unit test.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The terminal output of one command: progress bars on stderr, results on stdout.
#[derive(Clone)]
pub struct Output {
    multi: MultiProgress,
}

impl Output {
    /// Bars on stderr when it is a terminal (indicatif hides them otherwise), none if `!bars`.
    pub fn new(bars: bool) -> Output {
        let target = if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Output {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// A bar for the file `name`, below the others.
    pub fn file_bar(&self, name: &str) -> FileBar {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_prefix(name.to_owned());
        FileBar { bar }
    }

    /// A result line on stdout, printed above the bars.
    pub fn say(&self, line: &str) {
        self.multi.suspend(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        });
    }

    /// An error line on stderr, printed above the bars.
    pub fn complain(&self, line: &str) {
        self.multi.suspend(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        });
    }
}

/// The bar of one file, through its phases.
#[derive(Clone)]
pub struct FileBar {
    bar: ProgressBar,
}

impl FileBar {
    /// Upload phase: bytes of `total`.
    pub fn uploading(&self, total: u64) {
        self.bar.set_style(style(UPLOAD));
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.reset_eta();
    }

    /// Adds each chunk sent or received to the bar.
    pub fn counter(&self) -> ByteCounter {
        let bar = self.bar.clone();
        Arc::new(move |n| bar.inc(n))
    }

    /// Conversion phase: shows the state and percent, or a spinner while polling the original
    /// gateway (which says no percentage).
    pub fn update(&self, update: &Update) {
        match update {
            Update::Transport(Transport::Polling) => {
                self.waiting("converting (checking every 3 s)");
            }
            Update::Transport(Transport::Stream) => {}
            Update::Status(status) => match (status.state, status.progress) {
                (Some(JobState::Queued), _) => match status.eta_secs {
                    Some(secs) => self.waiting(format!("queued, {}", eta_text(secs))),
                    None => self.waiting("queued"),
                },
                (_, Some(progress)) if !status.is_final() => {
                    if self.bar.length() != Some(100) {
                        self.bar.disable_steady_tick();
                        self.bar.set_style(style(CONVERT));
                        self.bar.set_length(100);
                    }
                    self.bar
                        .set_message(status.eta_secs.map(eta_text).unwrap_or_default());
                    self.bar.set_position(progress.clamp(0.0, 100.0) as u64);
                }
                _ if !status.is_final() => self.waiting("converting"),
                _ => {}
            },
        }
    }

    fn waiting(&self, message: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_style(style(WAIT));
        self.bar.set_length(0);
        self.bar.set_message(message);
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    /// Download phase: bytes of `total`.
    pub fn downloading(&self, total: u64) {
        self.bar.disable_steady_tick();
        self.bar.set_style(style(DOWNLOAD));
        self.bar.set_length(total);
        self.bar.set_position(0);
    }

    /// Removes the bar (the result line takes its place).
    pub fn finish(&self) {
        self.bar.disable_steady_tick();
        self.bar.finish_and_clear();
    }
}

/// The gateway's `eta_secs` in words, rounded as the page rounds: "about 40 s left",
/// "about 2 min left", "about 1.5 h left", "less than 5 s left".
pub fn eta_text(secs: u64) -> String {
    let secs = secs as f64;
    if secs < 5.0 {
        return "less than 5 s left".to_owned();
    }
    if secs < 57.5 {
        let shown = if secs < 10.0 {
            secs
        } else {
            (secs / 5.0).round() * 5.0
        };
        return format!("about {shown} s left");
    }
    let minutes = (secs / 60.0).round();
    if minutes < 60.0 {
        return format!("about {minutes} min left");
    }
    format!("about {} h left", (secs / 3600.0 * 2.0).round() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_in_words() {
        assert_eq!(eta_text(0), "less than 5 s left");
        assert_eq!(eta_text(7), "about 7 s left");
        assert_eq!(eta_text(38), "about 40 s left");
        assert_eq!(eta_text(58), "about 1 min left");
        assert_eq!(eta_text(90), "about 2 min left");
        assert_eq!(eta_text(3599), "about 1 h left");
        assert_eq!(eta_text(5400), "about 1.5 h left");
    }

    #[test]
    fn templates_parse() {
        for template in [UPLOAD, CONVERT, WAIT, DOWNLOAD] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
