//! The driver: one task per run that feeds inputs to the core, makes every input and the
//! decisions it leads to durable in one commit, and only then performs the operations decided.
//!
//! Write-ahead holds by construction: an operation starts after the commit that records its
//! `OperationStarted` (one whose executor prepares early, a command or a model call, is
//! dispatched while that commit is written, and starts the moment it is durable: see
//! `exec::Recorded`), and its result reaches the core (and so any dependent step) only as an
//! input that is committed together with the decisions it leads to.
//!
//! Its parts: `dispatch` starts operations, `inbox` applies commands sent from any process,
//! `recovery` deals with what a crash left unanswered, `retries` arms retry timers, `stale`
//! voids proposals whose files changed.

mod abort;
mod alerts;
mod children;
mod dispatch;
mod inbox;
mod inline_reads;
mod outage;
mod recovery;
mod retries;
mod stale;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::operation::OperationRequest;
use stepwise_core::run::{RunState, RunStatus};
use stepwise_store::HandledCommand;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::commands::Command;
use crate::context::Context;
use crate::error::EngineError;
use crate::exec;
use crate::file_watch::OnChange;
use crate::lock::RunLock;
use crate::messages::Message;
use crate::record::{input_causation, new_event};
use crate::sandbox::Workspace;

/// One input (with the seq of the event it answers) and the decisions it led to.
pub(super) struct Group {
    input: Option<(Event, Option<EventSeq>)>,
    decisions: Vec<Event>,
}

/// How many events `groups` hold: the state's last ones, not yet in the log.
fn event_count(groups: &[Group]) -> usize {
    groups
        .iter()
        .map(|g| usize::from(g.input.is_some()) + g.decisions.len())
        .sum()
}

/// Inputs folded together before one commit, so that completions arriving together share an
/// fsync.
const MAX_BATCH: usize = 256;

/// Files up to this size are read on the driver's thread (see `Driver::read_inline`).
const INLINE_READ_MAX_BYTES: u64 = 64 * 1024;

/// At most this many reads are done inline for one commit, so that a long chain of reads
/// still commits as it goes.
const INLINE_READS_PER_COMMIT: usize = 256;

/// Drives a run whose lock this process holds, until it finishes or (unless the engine holds
/// waiting runs) nothing can move without a person.
pub(crate) async fn drive(
    ctx: Arc<Context>,
    run_id: RunId,
    lock: RunLock,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
) -> Result<RunStatus, EngineError> {
    if lock.is_lost() {
        return Err(EngineError::HoldLost { run_id });
    }
    let loaded = ctx.load_run(run_id.as_str()).await?;
    // Only a process on the machine a run was started on drives it: its workspace is there.
    if let Some(host) = &loaded.state.started().host
        && *host != ctx.config.host
    {
        ctx.note_machine(&run_id, Some(host.clone()));
        return Err(EngineError::DrivenElsewhere {
            run_id,
            host: host.clone(),
            here: ctx.config.host.clone(),
        });
    }
    let root = std::path::PathBuf::from(&loaded.state.started().workspace);
    let opened = tokio::task::spawn_blocking(move || Workspace::open(&root))
        .await
        .map_err(|e| EngineError::Internal(format!("opening the workspace stopped: {e}")))
        .and_then(|opened| opened.map_err(EngineError::from));
    let workspace = match opened {
        Ok(workspace) => workspace,
        Err(error) => {
            if abort::record_abort(&ctx, &run_id, &error).await {
                lock.remove();
            }
            return Err(error);
        }
    };
    let retry_scheduled_at = retries::retry_schedule(&loaded.events);
    let hold = ctx.config.hold_waiting_runs;
    let commands_lock = Arc::new(crate::lock::CommandsLock::new(&ctx.db.lock_dir, &run_id));
    let workspace = Arc::new(workspace);
    // The settings were checked when the run started; were they refused now (a run recorded
    // by another version), the run goes on without checkpoints rather than not at all.
    let checkpointer = ctx
        .checkpoints
        .of(
            Arc::clone(&workspace),
            &loaded.state.started().checkpoint,
            Arc::clone(&ctx.db.writer),
        )
        .inspect_err(|error| tracing::warn!(%error, "the run's checkpoints are off"))
        .ok();
    let mut driver = Driver {
        ctx,
        run_id,
        state: loaded.state,
        retry_scheduled_at,
        workspace,
        tx,
        rx,
        running: HashMap::new(),
        timers: HashMap::new(),
        alerts: alerts::Alerts::from_log(&loaded.events),
        hold,
        watch_id: next_watch_id(),
        edit_check_armed: false,
        reproposed: HashMap::new(),
        lock: Some(lock),
        commands_lock,
        checkpointer,
    };
    let result = driver.run().await;
    if let Err(error) = &result {
        driver.wind_down().await;
        abort::record_abort(&driver.ctx, &driver.run_id, error).await;
        if let Ok(loaded) = driver.ctx.load_run(driver.run_id.as_str()).await {
            driver.state = loaded.state;
        }
    }
    // Nobody drives a finished run again: what was kept for it goes, its lock file too (while
    // still held).
    if driver.state.status().is_finished() {
        driver.ctx.executors.run_finished(&driver.run_id);
        if let Some(lock) = driver.lock.take() {
            lock.remove();
            crate::lock::remove_commands_lock(&driver.ctx.db.lock_dir, &driver.run_id);
        }
    }
    result
}

fn next_watch_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Its files are watched no more.
        if let Some(watch) = self.ctx.started_file_watch() {
            watch.set(
                self.watch_id,
                std::path::Path::new("/"),
                std::collections::BTreeSet::new(),
                self.on_files_changed(),
            );
        }
    }
}

pub(crate) struct Driver {
    ctx: Arc<Context>,
    run_id: RunId,
    state: RunState,
    /// When each retry was scheduled, to re-arm timers after a restart.
    retry_scheduled_at: HashMap<StepId, (i64, u64)>,
    workspace: Arc<Workspace>,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Operations in progress, by the seq of their `OperationStarted`.
    running: HashMap<EventSeq, watch::Sender<bool>>,
    timers: HashMap<StepId, JoinHandle<()>>,
    /// The run's and its steps' alert timers.
    alerts: alerts::Alerts,
    /// Keep holding the run while it waits for a person.
    hold: bool,
    /// This driver's interest in the engine's file watch (the files of its pending edits).
    watch_id: u64,
    edit_check_armed: bool,
    /// When the watch last proposed each step's edit again, and how long the next must wait.
    reproposed: HashMap<StepId, (std::time::Instant, Duration)>,
    /// Held while the driver lives; taken to remove it once the run has finished.
    lock: Option<RunLock>,
    /// The file the run's command supervisors hold (see `lock::commands`).
    commands_lock: Arc<crate::lock::CommandsLock>,
    /// Takes the workspace checkpoints around the run's operations.
    checkpointer: Option<crate::checkpoint::Checkpointer>,
}

impl Driver {
    /// What the file watch calls when a file of this driver's pending edits may have changed.
    fn on_files_changed(&self) -> OnChange {
        let tx = self.tx.clone();
        Arc::new(move || {
            let _ = tx.send(Message::FilesChanged);
        })
    }

    async fn run(&mut self) -> Result<RunStatus, EngineError> {
        if self.state.status().is_finished() {
            // Nothing is left to do or recover; commands waiting for it are refused.
            self.process_inbox().await?;
            return Ok(self.state.status());
        }
        // Operations the previous driver dispatched and never saw answered, as they stand
        // before this driver dispatches anything itself.
        let unanswered: Vec<Unanswered> = self
            .state
            .unanswered_operations()
            .into_iter()
            .map(|(op, step, request)| (op, step.clone(), request.clone()))
            .collect();
        // Their progress, if a holder that died left it behind: nobody else writes this run's
        // progress while this driver holds its lock.
        crate::progress::remove_left_behind(
            &self.ctx.db.lock_dir,
            &self.run_id,
            unanswered.iter().map(|(op, _, _)| *op),
        );
        // A pause or cancel waiting in the inbox is applied before anything else, so that it
        // holds back what recovery would otherwise start (marking a command's outcome unknown
        // frees a slot that a held-back step would take).
        self.process_inbox_where(Command::holds_back).await?;
        self.cancel_if_parent_ended().await?;
        // Commands whose outcome is lost are marked so next, so that a `resolve` waiting in
        // the inbox finds them in that state.
        let unanswered = self.ask_about_lost_outcomes(unanswered).await?;
        // Then the other commands: a mistaken one is refused before anything runs.
        self.process_inbox().await?;
        // Proposals made against files that have changed since are made anew.
        self.void_stale_edits(false).await?;
        self.recover_the_rest(unanswered).await?;
        // Then decisions not yet taken (a run just started, or steps held back).
        let pending = self.state.advance().map_err(|source| EngineError::State {
            run_id: self.run_id.clone(),
            source,
        })?;
        self.commit(
            vec![Group {
                input: None,
                decisions: pending,
            }],
            Vec::new(),
        )?;
        self.arm_pending_retries();
        self.arm_alerts();
        loop {
            if self.hold {
                self.refresh_edit_watch();
            }
            let finished = self.state.status().is_finished() && self.running.is_empty();
            let idle = self.running.is_empty() && self.timers.is_empty();
            // Paused, with nothing under way but waits for signals: nothing moves until a
            // person resumes it, and the waits are performed again by whoever drives it then
            // (nothing of them is recorded).
            if !self.hold
                && !self.running.is_empty()
                && self.state.status() == RunStatus::Paused
                && self.waits_only(false)
            {
                return Err(EngineError::ShutDown);
            }
            if finished || (idle && !self.hold) {
                // A last look at the inbox, so a command sent while this driver was finishing
                // is not left for another one.
                if self.process_inbox().await? {
                    continue;
                }
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
            match self.handle(messages).await {
                // A read that found the server gone: once it is back, the inbox is read anew.
                Err(error) if self.is_outage(&error) => {
                    let logged = self.state.last_seq();
                    self.ride_out(
                        &outage::Pending::Nothing { logged },
                        std::time::Instant::now(),
                    )?;
                    let _ = self.tx.send(Message::InboxChanged);
                }
                handled => handled?,
            }
        }
        for (_, timer) in self.timers.drain() {
            timer.abort();
        }
        self.alerts.stop();
        Ok(self.state.status())
    }

    /// Whether all the run has under way is waits for others: signals, and with `children`
    /// child runs too.
    fn waits_only(&self, children: bool) -> bool {
        use stepwise_core::operation::OperationRequest;
        self.state
            .unanswered_operations()
            .iter()
            .all(|(_, _, request)| match request {
                OperationRequest::WaitSignal { .. } => true,
                OperationRequest::RunWorkflow { .. } => children,
                _ => false,
            })
    }

    /// After a failure (the log could not be written): nothing this driver started may go on
    /// once it lets go of the run, because the next holder recovers the run as if this one had
    /// died. Running commands are killed, reads and writes are waited for, timers stopped; none
    /// of their outcomes is recorded (the next holder finds them unanswered).
    async fn wind_down(&mut self) {
        for (_, timer) in self.timers.drain() {
            timer.abort();
        }
        self.alerts.stop();
        for cancel in self.running.values() {
            let _ = cancel.send(true);
        }
        while !self.running.is_empty() {
            match self.rx.recv().await {
                Some(Message::OperationDone { op, .. }) => {
                    self.running.remove(&op);
                }
                Some(_) => {}
                None => break,
            }
        }
    }

    async fn handle(&mut self, messages: Vec<Message>) -> Result<(), EngineError> {
        let mut groups = Vec::new();
        let mut inbox = false;
        let mut files_changed = false;
        let mut check_edits = false;
        let mut replaced = false;
        // A hold lost before this driver could be told (it was taken, then the connection
        // holding it ended) is found here, before anything more is done.
        let mut hold_lost = self
            .lock
            .as_ref()
            .is_some_and(crate::lock::RunLock::is_lost);
        let mut shutdown = false;
        let mut let_go = Vec::new();
        let mut let_go_children = Vec::new();
        let mut direct = Vec::new();
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
                        .any(|(s, a)| **s == step && *a == attempt);
                    if waiting {
                        groups.push(self.take_input(Event::RetryDue { step, attempt })?);
                    }
                }
                Message::AlertDue { step } => {
                    if let Some(alert) = self.alert_due(step) {
                        groups.push(self.take_input(alert)?);
                    }
                }
                Message::InboxChanged => inbox = true,
                Message::FilesChanged => files_changed = true,
                Message::CheckEdits => check_edits = true,
                Message::DatabaseReplaced => replaced = true,
                Message::HoldLost => hold_lost = true,
                Message::Shutdown => shutdown = true,
                Message::LetGoIfIdle { reply } => let_go.push(reply),
                Message::LetGoIfOnlyChildrenRun { reply } => let_go_children.push(reply),
                Message::Command {
                    command,
                    issued_by,
                    reply,
                } => direct.push((command, issued_by, reply)),
            }
        }
        // Every message is looked at first, so that operations that ended are known to have.
        if replaced {
            return Err(self.ctx.db.file.error().into());
        }
        if hold_lost {
            // The server went away (and may be back): ride it out, the results in hand kept.
            if !self.ctx.db.holds.is_shared() {
                return Err(EngineError::HoldLost {
                    run_id: self.run_id.clone(),
                });
            }
            let logged = EventSeq::new(self.state.last_seq().get() - event_count(&groups) as u64);
            self.ride_out(
                &outage::Pending::Nothing { logged },
                std::time::Instant::now(),
            )?;
        }
        self.commit(groups, Vec::new())?;
        // Outcomes already in hand are recorded before letting go, so that the next holder
        // does not find them unanswered.
        if shutdown {
            return Err(EngineError::ShutDown);
        }
        if !let_go_children.is_empty() {
            // Only waits for others: child runs, or signals (performed again by whoever drives
            // the run next).
            let only_children = self.waits_only(true);
            for reply in let_go_children {
                let _ = reply.send(only_children);
            }
            if only_children {
                return Err(EngineError::ShutDown);
            }
        }
        if !let_go.is_empty() {
            let idle = self.running.is_empty();
            for reply in let_go {
                let _ = reply.send(idle);
            }
            if idle {
                return Err(EngineError::ShutDown);
            }
        }
        for (command, issued_by, reply) in direct {
            let applied = self.apply_direct(command, issued_by).await?;
            let _ = reply.send(applied);
        }
        if inbox {
            self.process_inbox().await?;
        }
        if files_changed {
            self.schedule_edit_check();
        }
        if check_edits {
            self.edit_check_armed = false;
            self.rewatch_edit_dirs();
            self.void_stale_edits(true).await?;
        }
        Ok(())
    }

    /// Applies an input and takes the decisions it leads to. The input gets seq
    /// `last_seq() + 1` as things stood before the call.
    fn take_input(&mut self, input: Event) -> Result<Group, EngineError> {
        let causation = input_causation(&input, |step| {
            self.state
                .step_state(step)
                .and_then(|s| s.pending_approval.as_ref())
                .map(|p| p.requested_seq)
        });
        let seq = self.state.last_seq().next();
        self.state
            .apply(seq, &input)
            .map_err(|source| EngineError::State {
                run_id: self.run_id.clone(),
                source,
            })?;
        let decisions = self.state.advance().map_err(|source| EngineError::State {
            run_id: self.run_id.clone(),
            source,
        })?;
        Ok(Group {
            input: Some((input, causation)),
            decisions,
        })
    }

    /// Makes groups of (input, decisions) durable in one transaction, together with the
    /// commands they handle, and then performs the operations and arms the timers decided.
    /// Returns the ids of the commands it handled.
    fn commit(
        &mut self,
        groups: Vec<Group>,
        handled: Vec<HandledCommand>,
    ) -> Result<Vec<i64>, EngineError> {
        let (groups, read_here) = self.read_inline(groups)?;
        let count = event_count(&groups);
        if count == 0 && handled.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.ctx.clock.now_ms();
        // The groups' events are applied to the state already (they are its last `count`);
        // the log ends just before them.
        let expected = EventSeq::new(self.state.last_seq().get() - count as u64);
        let mut seq = expected.next();
        let mut rows = Vec::with_capacity(count);
        let mut to_start = Vec::new();
        let mut started = Vec::new();
        // Operations whose executor prepares while the commit is written (commands, model
        // calls).
        let mut early = Vec::new();
        for Group { input, decisions } in groups {
            // Decisions are caused by their input; the first decisions of a run by RunStarted.
            let mut cause = EventSeq::FIRST;
            if let Some((input, causation)) = input {
                rows.push(new_event(&input, causation, now)?);
                cause = seq;
                seq = seq.next();
            }
            for decision in decisions {
                rows.push(new_event(&decision, Some(cause), now)?);
                match decision {
                    // A read changes nothing in the world, so it starts while its request
                    // commits; its result is taken only after the commit (the driver reads
                    // its messages once this returns), so nothing depends on it before then.
                    Event::OperationStarted {
                        request: OperationRequest::ReadFile { .. },
                        ..
                    } if read_here.contains(&seq) => {}
                    Event::OperationStarted {
                        step,
                        request: request @ OperationRequest::ReadFile { .. },
                        ..
                    } => self.dispatch(seq, step, request),
                    Event::OperationStarted { step, request, .. }
                        if self.ctx.executors.for_request(&request).prepares_early() =>
                    {
                        early.push((seq, step, request));
                    }
                    Event::OperationStarted { step, request, .. } => {
                        to_start.push(Start::Operation(seq, step, request));
                    }
                    Event::StepRetryScheduled {
                        step,
                        attempt,
                        delay_ms,
                        ..
                    } => to_start.push(Start::Timer(step, attempt, delay_ms)),
                    Event::StepStarted { step, .. } => started.push(step),
                    _ => {}
                }
                seq = seq.next();
            }
        }
        let status = self.state.status().as_str();
        let run_id = self.run_id.clone();
        // They start preparing now, and start once the commit is durable (if it fails, `commit`
        // is dropped and they do nothing).
        let (commit, recorded) = exec::Commit::new();
        for (op, step, request) in early {
            self.dispatch_with(op, step, request, false, recorded.clone());
        }
        self.ctx
            .test_hooks
            .before_commit(&run_id, &self.ctx.config.db_path)?;
        // Drivers live on the writer thread: the commit happens here, without a hand-off.
        let began = std::time::Instant::now();
        let handled_ids = loop {
            let appended = self.ctx.db.writer.write_here(|store| {
                store.append_commands(&run_id, expected, &rows, Some(status), &handled)
            });
            match appended {
                Ok((_, ids)) => break ids,
                Err(error) if self.is_outage(&error) => {
                    let pending = outage::Pending::Commit {
                        expected,
                        rows: &rows,
                    };
                    if self.ride_out(&pending, began)? == outage::Found::Landed {
                        break handled.iter().map(HandledCommand::known_id).collect();
                    }
                }
                Err(error) => return Err(error),
            }
        };
        commit.done();
        self.alerts_started(started, now);
        // What is recorded as started must start.
        for start in to_start {
            match start {
                Start::Operation(op, step, request) => self.dispatch(op, step, request),
                Start::Timer(step, attempt, delay_ms) => {
                    self.retry_scheduled_at
                        .insert(step.clone(), (now, delay_ms));
                    self.arm_timer(step, attempt, delay_ms);
                }
            }
        }
        Ok(handled_ids)
    }
}

/// An operation dispatched before a crash and never answered.
pub(super) type Unanswered = (EventSeq, StepId, OperationRequest);

/// Something a commit decided that must start once it is durable.
enum Start {
    Operation(EventSeq, StepId, OperationRequest),
    Timer(StepId, u32, u64),
}
