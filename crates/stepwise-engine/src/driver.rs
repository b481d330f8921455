//! The driver: one task per run that feeds inputs to the core, makes every input and the
//! decisions it leads to durable in one commit, and only then performs the operations decided.
//!
//! Write-ahead holds by construction: an operation is dispatched after the commit that records
//! its `OperationStarted`, and its result reaches the core (and so any dependent step) only as
//! an input that is committed together with the decisions it leads to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stepwise_core::event::Event;
use stepwise_core::operation::{OperationError, OperationRequest, OperationResult};
use stepwise_core::run::{RunState, RunStatus};
use stepwise_store::StoredEvent;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::commands::command_event;
use crate::engine::{Command, DriveOptions, Engine, LoadedRun, Observer};
use crate::error::EngineError;
use crate::exec::{self, WriteRecovery};
use crate::lock::RunLock;
use crate::record::{input_causation, new_event};
use crate::sandbox::Workspace;

/// What wakes a driver.
pub(crate) enum Message {
    OperationDone {
        op: u64,
        outcome: Result<OperationResult, OperationError>,
    },
    RetryDue {
        step: String,
        attempt: u32,
    },
    Command(Command, oneshot::Sender<Result<RunStatus, EngineError>>),
}

/// One input (with the seq of the event it answers) and the decisions it led to.
struct Group {
    input: Option<(Event, Option<u64>)>,
    decisions: Vec<Event>,
}

/// Inputs folded together before one commit, so that completions arriving together share an
/// fsync.
const MAX_BATCH: usize = 256;

pub(crate) struct Driver<'e> {
    engine: &'e Engine,
    run_id: String,
    state: RunState,
    /// When each retry was scheduled, to re-arm timers after a restart.
    retry_scheduled_at: HashMap<String, (i64, u64)>,
    workspace: Arc<Workspace>,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    running: HashMap<u64, watch::Sender<bool>>,
    timers: HashMap<String, JoinHandle<()>>,
    observer: &'e dyn Observer,
    options: DriveOptions,
    _lock: RunLock,
}

impl<'e> Driver<'e> {
    pub(crate) fn new(
        engine: &'e Engine,
        loaded: LoadedRun,
        lock: RunLock,
        observer: &'e dyn Observer,
        options: DriveOptions,
    ) -> Result<Driver<'e>, EngineError> {
        let workspace = Arc::new(Workspace::open(std::path::Path::new(
            &loaded.state.started().workspace,
        ))?);
        let (tx, rx) = mpsc::unbounded_channel();
        let retry_scheduled_at = retry_schedule(&loaded.events);
        Ok(Driver {
            engine,
            run_id: loaded.row.run_id,
            state: loaded.state,
            retry_scheduled_at,
            workspace,
            tx,
            rx,
            running: HashMap::new(),
            timers: HashMap::new(),
            observer,
            options,
            _lock: lock,
        })
    }

    pub(crate) async fn run(&mut self, command: Option<Command>) -> Result<RunStatus, EngineError> {
        let _live = LiveGuard::register(self.engine, &self.run_id, self.tx.clone());
        // Operations the previous driver dispatched and never saw answered, as they stand
        // before this driver dispatches anything itself.
        let unanswered: Vec<(u64, OperationRequest)> = self
            .state
            .unanswered_operations()
            .into_iter()
            .map(|(op, _, request)| (op, request.clone()))
            .collect();
        // The caller's command comes first: a mistaken one fails before anything runs, and a
        // pause or cancel holds back what recovery would otherwise start.
        if let Some(command) = command {
            self.apply_command(command)??;
        }
        self.recover_unanswered(unanswered)?;
        // Then decisions not yet taken (a run just started, or steps held back).
        let pending = self.state.advance();
        self.commit(vec![Group {
            input: None,
            decisions: pending,
        }])?;
        self.arm_pending_retries();
        loop {
            let status = self.state.status();
            if status.is_finished() && self.running.is_empty() {
                break;
            }
            let idle = self.running.is_empty() && self.timers.is_empty();
            if idle && !self.options.stay_alive_while_waiting {
                break;
            }
            let Some(first) = self.rx.recv().await else {
                break;
            };
            let mut messages = vec![first];
            while messages.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(m) => messages.push(m),
                    Err(_) => break,
                }
            }
            self.handle(messages)?;
        }
        for (_, timer) in self.timers.drain() {
            timer.abort();
        }
        Ok(self.state.status())
    }

    fn handle(&mut self, messages: Vec<Message>) -> Result<(), EngineError> {
        let mut groups = Vec::new();
        let mut replies = Vec::new();
        for message in messages {
            match message {
                Message::OperationDone { op, outcome } => {
                    self.running.remove(&op);
                    let input = match outcome {
                        Ok(result) => Event::OperationSucceeded { op, result },
                        Err(error) => Event::OperationFailed { op, error },
                    };
                    groups.push(self.take_input(input)?);
                }
                Message::RetryDue { step, attempt } => {
                    self.timers.remove(&step);
                    let waiting = self
                        .state
                        .pending_retries()
                        .iter()
                        .any(|(s, a)| *s == step && *a == attempt);
                    if waiting {
                        groups.push(self.take_input(Event::RetryDue { step, attempt })?);
                    }
                }
                Message::Command(command, reply) => {
                    // Commit what came before so the command sees it, then answer.
                    self.commit(std::mem::take(&mut groups))?;
                    let result = self.apply_command(command)?.map(|()| self.state.status());
                    replies.push((reply, result));
                }
            }
        }
        self.commit(groups)?;
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// Records a command. The outer error is fatal to the driver (the log could not be
    /// written); the inner one is the caller's: the command does not fit the run.
    fn apply_command(&mut self, command: Command) -> Result<Result<(), EngineError>, EngineError> {
        let is_cancel = matches!(command, Command::Cancel);
        let input = match command_event(
            &self.state,
            &self.run_id,
            &self.engine.config().user,
            command,
        ) {
            Ok(Some(input)) => input,
            Ok(None) => return Ok(Ok(())),
            Err(refused) => return Ok(Err(refused)),
        };
        if is_cancel {
            for cancel in self.running.values() {
                let _ = cancel.send(true);
            }
        }
        let group = self.take_input(input)?;
        self.commit(vec![group])?;
        Ok(Ok(()))
    }

    /// Applies an input and takes the decisions it leads to.
    fn take_input(&mut self, input: Event) -> Result<Group, EngineError> {
        let causation = input_causation(&input, |step| {
            self.state
                .step_state(step)
                .and_then(|s| s.pending_approval.as_ref())
                .map(|p| p.requested_seq)
        });
        let seq = self.state.last_seq() + 1;
        self.state
            .apply(seq, &input)
            .map_err(|source| EngineError::State {
                run_id: self.run_id.clone(),
                source,
            })?;
        let decisions = self.state.advance();
        Ok(Group {
            input: Some((input, causation)),
            decisions,
        })
    }

    /// Makes groups of (input, decisions) durable in one transaction, tells the observer, and
    /// then performs the operations and arms the timers they decided.
    fn commit(&mut self, groups: Vec<Group>) -> Result<(), EngineError> {
        let count: usize = groups
            .iter()
            .map(|g| usize::from(g.input.is_some()) + g.decisions.len())
            .sum();
        if count == 0 {
            return Ok(());
        }
        let now = self.engine.clock.now_ms();
        let first_seq = self.state.last_seq() + 1 - count as u64;
        let mut seq = first_seq;
        let mut rows = Vec::with_capacity(count);
        let mut appended = Vec::with_capacity(count);
        for Group { input, decisions } in groups {
            // Decisions are caused by their input; the first decisions of a run by RunStarted.
            let mut cause = 1;
            if let Some((input, causation)) = input {
                rows.push(new_event(&input, causation, now));
                appended.push((seq, now, input));
                cause = seq;
                seq += 1;
            }
            for decision in decisions {
                rows.push(new_event(&decision, Some(cause), now));
                appended.push((seq, now, decision));
                seq += 1;
            }
        }
        let status = self.state.status();
        self.engine
            .store()
            .append(&self.run_id, first_seq - 1, &rows, Some(status.as_str()))?;
        // Dispatch first: what is recorded as started must start, whatever an observer does.
        for (seq, recorded_at, event) in &appended {
            match event {
                Event::OperationStarted { request, .. } => self.dispatch(*seq, request.clone()),
                Event::StepRetryScheduled {
                    step,
                    attempt,
                    delay_ms,
                    ..
                } => {
                    self.retry_scheduled_at
                        .insert(step.clone(), (*recorded_at, *delay_ms));
                    self.arm_timer(step.clone(), *attempt, *delay_ms);
                }
                _ => {}
            }
        }
        self.observer.events_appended(&self.run_id, &appended);
        Ok(())
    }

    /// After a crash: operations that were dispatched but have no result. Reads are simply
    /// performed again; a write is checked against the file; a command is never repeated
    /// without a person saying so.
    fn recover_unanswered(
        &mut self,
        unanswered: Vec<(u64, OperationRequest)>,
    ) -> Result<(), EngineError> {
        for (op, request) in unanswered {
            // A cancelled run does not redo reads or writes; commands still need a person's
            // word on what happened, and the cancel then ends their steps.
            if self.state.cancel_requested() && !matches!(request, OperationRequest::RunCommand(_))
            {
                let error = OperationError::new(
                    stepwise_core::operation::OperationErrorKind::Cancelled,
                    "the run was cancelled before this operation was recovered",
                );
                let group = self.take_input(Event::OperationFailed { op, error })?;
                self.commit(vec![group])?;
                continue;
            }
            match &request {
                OperationRequest::ReadFile { .. } => self.dispatch(op, request),
                OperationRequest::WriteFile {
                    path,
                    base_hash,
                    content_hash,
                    ..
                } => {
                    match exec::recover_write(
                        &self.workspace,
                        path,
                        base_hash.as_deref(),
                        content_hash,
                    ) {
                        WriteRecovery::NotApplied => self.dispatch(op, request),
                        WriteRecovery::AlreadyApplied(result) => {
                            let group =
                                self.take_input(Event::OperationSucceeded { op, result })?;
                            self.commit(vec![group])?;
                        }
                        WriteRecovery::Conflict(error) => {
                            let group = self.take_input(Event::OperationFailed { op, error })?;
                            self.commit(vec![group])?;
                        }
                    }
                }
                OperationRequest::RunCommand(_) => {
                    let group = self.take_input(Event::OperationOutcomeUnknown { op })?;
                    self.commit(vec![group])?;
                }
            }
        }
        Ok(())
    }

    fn arm_pending_retries(&mut self) {
        let now = self.engine.clock.now_ms();
        let pending: Vec<(String, u32)> = self
            .state
            .pending_retries()
            .into_iter()
            .map(|(s, a)| (s.to_string(), a))
            .collect();
        for (step, attempt) in pending {
            let remaining = match self.retry_scheduled_at.get(&step) {
                Some((at, delay)) => {
                    let due = at.saturating_add(i64::try_from(*delay).unwrap_or(i64::MAX));
                    u64::try_from(due.saturating_sub(now).max(0)).unwrap_or(0)
                }
                None => 0,
            };
            self.arm_timer(step, attempt, remaining);
        }
    }

    fn arm_timer(&mut self, step: String, attempt: u32, delay_ms: u64) {
        let tx = self.tx.clone();
        let key = step.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let _ = tx.send(Message::RetryDue { step, attempt });
        });
        if let Some(old) = self.timers.insert(key, handle) {
            old.abort();
        }
    }

    /// Performs an operation in the background; its outcome comes back as a message.
    fn dispatch(&mut self, op: u64, request: OperationRequest) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.running.insert(op, cancel_tx);
        let tx = self.tx.clone();
        let workspace = self.workspace.clone();
        match request {
            // Commands run on a runtime worker thread: see `exec::run_command`.
            OperationRequest::RunCommand(request) => {
                tokio::spawn(async move {
                    let outcome = exec::run_command(&workspace, &request, cancel_rx).await;
                    let _ = tx.send(Message::OperationDone { op, outcome });
                });
            }
            OperationRequest::ReadFile { path, missing_ok } => {
                tokio::task::spawn_blocking(move || {
                    let outcome = exec::read_file(&workspace, &path, missing_ok);
                    let _ = tx.send(Message::OperationDone { op, outcome });
                });
            }
            OperationRequest::WriteFile {
                path,
                base_hash,
                content,
                content_hash,
            } => {
                tokio::task::spawn_blocking(move || {
                    let outcome = exec::write_file(
                        &workspace,
                        &path,
                        base_hash.as_deref(),
                        &content,
                        &content_hash,
                    );
                    let _ = tx.send(Message::OperationDone { op, outcome });
                });
            }
        }
    }
}

/// When each step's latest retry was scheduled and for how long.
fn retry_schedule(events: &[(StoredEvent, Event)]) -> HashMap<String, (i64, u64)> {
    events
        .iter()
        .filter_map(|(stored, event)| match event {
            Event::StepRetryScheduled { step, delay_ms, .. } => {
                Some((step.clone(), (stored.recorded_at_ms, *delay_ms)))
            }
            _ => None,
        })
        .collect()
}

/// Registers a live driver so in-process commands reach it; unregisters on drop.
struct LiveGuard<'e> {
    engine: &'e Engine,
    run_id: String,
}

impl<'e> LiveGuard<'e> {
    fn register(
        engine: &'e Engine,
        run_id: &str,
        tx: mpsc::UnboundedSender<Message>,
    ) -> LiveGuard<'e> {
        engine
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.to_string(), tx);
        LiveGuard {
            engine,
            run_id: run_id.to_string(),
        }
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.engine
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.run_id);
    }
}
