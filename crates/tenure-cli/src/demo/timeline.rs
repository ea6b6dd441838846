//! The demo's timeline: what happened, when, to whom; printed as it happens or as JSON.

use std::time::Instant;

use serde::Serialize;

use crate::output::{OutputFormat, print_line};

/// One event of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the demo started.
    pub t_ms: f64,
    /// The job manager concerned (`-` for the demo itself).
    pub actor: String,
    /// What happened (`granted`, `killed`, `recovered`, ...).
    pub event: String,
    /// Details.
    pub detail: String,
}

/// Collects events and, for table output, prints each one as it happens.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    format: OutputFormat,
    events: Vec<Event>,
}

impl Timeline {
    /// A timeline starting now.
    pub fn new(format: OutputFormat) -> Self {
        if format == OutputFormat::Table {
            // A closed stdout stops the printing, not the demo (its verdict is the exit status).
            let _ = print_line(&format!(
                "{:>10}  {:<6}  {:<16}  detail",
                "time", "who", "event"
            ));
        }
        Self {
            start: Instant::now(),
            format,
            events: Vec::new(),
        }
    }

    /// Records an event.
    pub fn push(&mut self, actor: &str, event: &str, detail: impl Into<String>) {
        let e = Event {
            t_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            actor: actor.to_owned(),
            event: event.to_owned(),
            detail: detail.into(),
        };
        if self.format == OutputFormat::Table {
            let _ = print_line(&format!(
                "{:>8.1}ms  {:<6}  {:<16}  {}",
                e.t_ms, e.actor, e.event, e.detail
            ));
        }
        self.events.push(e);
    }

    /// All events so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}
