//! Following a run live: its events as they are committed and, between them, the progress of
//! its running operations (a model's reply streaming in, a command's output), in one
//! subscription. Events come from the run's feed (see `feeds`); progress from the operations'
//! progress files (see `progress`), read as the engine's watch on the locks directory says they
//! changed, whichever process writes them. Nothing polls. An operation's progress ends with
//! the event that answers it: what is left in its file is read first, then the event.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::operation::OperationRequest;
use tokio::sync::{Notify, mpsc};

use crate::context::Context;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::feeds::{RecordedEvent, RunEvents};
use crate::locks_dir_watch::Following;
use crate::progress::{PROGRESS_LIMIT, progress_path};

/// What following a run yields.
#[derive(Debug, Clone, PartialEq)]
pub enum RunUpdate {
    /// An event, as recorded.
    Event(Box<RecordedEvent>),
    /// More of a running operation's progress: never recorded (the operation's result is).
    Progress {
        /// The operation (the seq of its `OperationStarted`).
        op: EventSeq,
        /// Its step.
        step: StepId,
        /// The text that arrived since the last piece.
        text: String,
    },
}

/// A run's events after a given seq and its operations' progress (see the module's doc). Ends
/// after the event that ends the run.
pub struct RunFeed {
    ctx: Arc<Context>,
    /// The run as named, and the seq subscribed after.
    run: String,
    after: EventSeq,
    /// The run's events, read ahead by a task of their own (`pump`), so that waiting for them
    /// is never cut short by progress (a read of the database cannot be called back).
    events: mpsc::Receiver<Result<RecordedEvent, EngineError>>,
    _pump: AbortOnDrop,
    /// Operations whose progress is followed, by their seq.
    progress: BTreeMap<EventSeq, ProgressReader>,
    /// Raised when a followed progress file changes.
    wake: Arc<Notify>,
    ready: VecDeque<RunUpdate>,
    /// Operations in flight before the seq subscribed after are looked up once, first.
    seeded: bool,
    /// The event that ends the run was handed out.
    saw_end: bool,
    ended: bool,
}

/// How many events the pump reads ahead of the follower.
const EVENTS_AHEAD: usize = 256;

/// Stops the pump when the feed goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Follows a run (by id or unique prefix): its events with seq greater than `after_seq`
    /// (0 for all of them) and the progress of its operations as they run.
    pub fn follow_run(&self, run: &str, after_seq: EventSeq) -> RunFeed {
        let mut events: RunEvents = self.subscribe_run(run, after_seq);
        let (tx, rx) = mpsc::channel(EVENTS_AHEAD);
        let pump = self.ctx.exec.spawn(async move {
            while let Some(item) = events.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        RunFeed {
            ctx: Arc::clone(&self.ctx),
            run: run.to_string(),
            after: after_seq,
            events: rx,
            _pump: AbortOnDrop(pump),
            progress: BTreeMap::new(),
            wake: Arc::new(Notify::new()),
            ready: VecDeque::new(),
            seeded: after_seq == EventSeq::ZERO,
            saw_end: false,
            ended: false,
        }
    }
}

impl RunFeed {
    /// The next update, waiting for it; `None` once the run has ended and its last event was
    /// handed out. An error ends the feed.
    pub async fn next(&mut self) -> Option<Result<RunUpdate, EngineError>> {
        loop {
            if let Some(update) = self.ready.pop_front() {
                return Some(Ok(update));
            }
            if self.ended {
                return None;
            }
            if !self.seeded {
                if let Err(error) = self.seed().await {
                    self.ended = true;
                    return Some(Err(error));
                }
                self.seeded = true;
            }
            for (op, reader) in &mut self.progress {
                if !reader.may_have_changed() {
                    continue;
                }
                if let Some(text) = reader.read_new() {
                    self.ready.push_back(RunUpdate::Progress {
                        op: *op,
                        step: reader.step.clone(),
                        text,
                    });
                }
            }
            if !self.ready.is_empty() {
                continue;
            }
            let wake = Arc::clone(&self.wake);
            let following = !self.progress.is_empty();
            tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Some(Ok(recorded)) => self.take(recorded),
                    Some(Err(error)) => {
                        self.ended = true;
                        return Some(Err(error));
                    }
                    None => {
                        self.ended = true;
                        self.progress.clear();
                        // The pump stopped before the run ended: the engine is shutting down.
                        if !self.saw_end {
                            return Some(Err(EngineError::ShutDown));
                        }
                    }
                },
                () = wake.notified(), if following => {}
            }
        }
    }

    /// Operations in flight at the seq subscribed after: their progress is followed too.
    async fn seed(&mut self) -> Result<(), EngineError> {
        let loaded = self.ctx.load_run(&self.run).await?;
        for (op, step, request) in loaded.state.unanswered_operations() {
            if op <= self.after && shows_progress(request) && !self.progress.contains_key(&op) {
                self.follow(op, step.clone(), &loaded.row.run_id);
            }
        }
        Ok(())
    }

    fn take(&mut self, recorded: RecordedEvent) {
        self.saw_end |= recorded.ends_run();
        match &recorded.event {
            Event::OperationStarted { step, request, .. } if shows_progress(request) => {
                self.follow(recorded.seq(), step.clone(), &recorded.run_id);
            }
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op } => {
                if let Some(mut reader) = self.progress.remove(op)
                    && let Some(text) = reader.read_new()
                {
                    self.ready.push_back(RunUpdate::Progress {
                        op: *op,
                        step: reader.step,
                        text,
                    });
                }
            }
            _ => {}
        }
        self.ready.push_back(RunUpdate::Event(Box::new(recorded)));
    }

    fn follow(&mut self, op: EventSeq, step: StepId, run_id: &stepwise_core::ids::RunId) {
        let path = progress_path(&self.ctx.db.lock_dir, run_id, op);
        let following = path.file_name().map(|name| {
            self.ctx
                .locks_dir_watch()
                .follow(name, Arc::clone(&self.wake))
        });
        self.progress.insert(
            op,
            ProgressReader {
                step,
                path,
                file: None,
                taken: 0,
                partial: Vec::new(),
                following,
            },
        );
    }
}

/// Whether an operation writes progress: model calls and commands.
fn shows_progress(request: &OperationRequest) -> bool {
    matches!(
        request,
        OperationRequest::LlmCall(_) | OperationRequest::RunCommand(_)
    )
}

/// One operation's progress file, read as it grows. Kept open once found, so that what was
/// written before the file is removed (its operation ended) is still read.
struct ProgressReader {
    step: StepId,
    path: PathBuf,
    file: Option<File>,
    /// Bytes read so far: never more than the file may hold.
    taken: usize,
    /// The start of a character cut in half by the last read.
    partial: Vec<u8>,
    following: Option<Following>,
}

impl ProgressReader {
    /// Whether the watch saw its file change since the last look (always, without a watch).
    fn may_have_changed(&self) -> bool {
        self.following.as_ref().is_none_or(Following::take_changed)
    }

    /// What was added since the last read, if anything.
    fn read_new(&mut self) -> Option<String> {
        if self.file.is_none() {
            self.file = crate::lock::open_path_to_read(&self.path);
        }
        if self
            .file
            .as_ref()
            .is_some_and(|file| replaced(file, &self.path))
        {
            // The operation was performed again (after a crash): its progress starts anew.
            self.file = crate::lock::open_path_to_read(&self.path);
            self.taken = 0;
            self.partial.clear();
        }
        let file = self.file.as_mut()?;
        let room = PROGRESS_LIMIT.saturating_sub(self.taken);
        let mut bytes = std::mem::take(&mut self.partial);
        let before = bytes.len();
        // A regular file in the engine's own directory: a read returns at once.
        let _ = file.take(room as u64).read_to_end(&mut bytes);
        self.taken += bytes.len() - before;
        let whole = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        self.partial = bytes.split_off(whole);
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Whether another file than `file` is at `path` now (not when either cannot be looked at:
/// a progress file removed at its operation's end is read to its end).
fn replaced(file: &File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(open), Ok(there)) => open.dev() != there.dev() || open.ino() != there.ino(),
        _ => false,
    }
}
