//! The progress bar: one bar over every step of the run (a step is one implementation in one
//! scenario), its message saying what runs now. Without a terminal on stderr each step is
//! logged as a line instead.

use std::io::IsTerminal as _;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The run's progress.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    tty: bool,
    started: Instant,
}

impl Progress {
    /// A bar of `steps` steps (more can be added with [`Progress::add_steps`]).
    pub fn new(steps: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            Some(steps),
            if tty {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if tty {
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        Self {
            bar,
            tty,
            started: Instant::now(),
        }
    }

    /// Adds `n` steps to the bar's length.
    pub fn add_steps(&self, n: u64) {
        self.bar.inc_length(n);
    }

    /// Starts a step: shows (or logs) its name.
    pub fn begin(&self, name: &str) {
        self.bar.set_message(name.to_owned());
        if !self.tty {
            eprintln!(
                "[{:>6.1}s] {}/{} {name}",
                self.started.elapsed().as_secs_f64(),
                self.bar.position() + 1,
                self.bar.length().unwrap_or(0)
            );
        }
    }

    /// Shows a detail of the running step (e.g. the trial) without logging it.
    pub fn detail(&self, text: &str) {
        self.bar.set_message(text.to_owned());
    }

    /// Ends the running step.
    pub fn end(&self) {
        self.bar.inc(1);
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        if self.tty {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
