//! Driver failures kept for a window that opens after them: a run the app adopts at start may
//! fail before the window listens, and would otherwise go unseen. A few, for a while.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::view::LiveSignal;

/// How many failures are kept, and for how long.
const KEPT: usize = 16;
const KEPT_FOR: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct RecentFailures {
    kept: Mutex<VecDeque<(Instant, LiveSignal)>>,
}

impl RecentFailures {
    /// Keeps a failure's signal (dropping the oldest beyond [`KEPT`]).
    pub fn keep(&self, signal: LiveSignal) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back((Instant::now(), signal));
    }

    /// The failures of the last [`KEPT_FOR`], oldest first.
    pub fn recent(&self) -> Vec<LiveSignal> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(at, _)| at.elapsed() < KEPT_FOR);
        kept.iter().map(|(_, signal)| signal.clone()).collect()
    }
}
