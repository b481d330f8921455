//! The export loop: take the lease, find the runs with events not exported yet, send the spans
//! those events ended (one request per run), then move the run's position on; when the
//! collector fails, try again later from the same position, backing off. Positions move only
//! from where this loop read them, so a span goes out once however many processes export.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::otlp::Otlp;
use super::spans::{spans_ended, trace_id};
use crate::engine::Engine;
use crate::error::EngineError;

/// How long the lease lasts; renewed once half of it is gone, before each run's export.
const LEASE_MS: i64 = 30_000;

/// How often an idle exporter looks again (and renews its lease).
const IDLE_PASS: Duration = Duration::from_secs(10);

/// How many runs one pass takes.
const RUNS_PER_PASS: usize = 32;

/// The longest wait between tries while the collector fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A running export: it stops when dropped.
pub struct TelemetryExport {
    url: String,
    stop: watch::Sender<bool>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TelemetryExport {
    /// Where the traces go (without any user name or password the URL holds).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits (up to `limit`) until what is recorded now has been exported; whether it has.
    /// `false` too when another process holds the export (it exports these runs).
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, exported) = oneshot::channel();
        if self.flushes.send(done).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, exported).await, Ok(Ok(true)))
    }
}

impl TelemetryExport {
    /// Stops exporting, and waits (up to `limit`) until the lease is given up, so that another
    /// process takes the export over at once rather than when the lease lapses.
    pub async fn stop(mut self, limit: Duration) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(limit, task).await;
        }
    }
}

impl Drop for TelemetryExport {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

pub(super) fn start(engine: Engine, otlp: Otlp, url: String) -> TelemetryExport {
    let (stop, stopped) = watch::channel(false);
    let (flushes, flush_requests) = mpsc::unbounded_channel();
    let exec = engine.ctx.exec.clone();
    let task = exec.spawn(run(engine, otlp, stopped, flush_requests));
    TelemetryExport {
        url,
        stop,
        flushes,
        task: Some(task),
    }
}

/// What one pass found.
enum Pass {
    /// Everything recorded when it looked is exported.
    CaughtUp,
    /// There is more to do at once.
    More,
    /// Another process holds the export.
    NotHolder,
}

/// The lease as this process holds it: since when telemetry is on, and until when it is ours.
#[derive(Clone, Copy)]
struct Lease {
    since: i64,
    until: i64,
}

async fn run(
    engine: Engine,
    otlp: Otlp,
    mut stopped: watch::Receiver<bool>,
    mut flush_requests: mpsc::UnboundedReceiver<oneshot::Sender<bool>>,
) {
    let holder = format!(
        "pid {} {}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let mut changes = engine.ctx.db.watch_changes();
    let mut shutdown = engine.ctx.watch_shutdown();
    let mut backoff = Duration::from_millis(500);
    let mut flushes: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut last_problem = String::new();
    let mut lease: Option<Lease> = None;
    loop {
        changes.borrow_and_update();
        let (wait, on_change) = match pass(&engine, &otlp, &holder, &mut lease, &stopped).await {
            Ok(Pass::CaughtUp) => {
                for flush in flushes.drain(..) {
                    let _ = flush.send(true);
                }
                backoff = Duration::from_millis(500);
                last_problem.clear();
                (IDLE_PASS, true)
            }
            Ok(Pass::More) => (Duration::ZERO, false),
            Ok(Pass::NotHolder) => {
                for flush in flushes.drain(..) {
                    let _ = flush.send(false);
                }
                (IDLE_PASS / 2, false)
            }
            Err(problem) => {
                if problem != last_problem {
                    tracing::warn!("telemetry: {problem}; trying again from where it stopped");
                    last_problem = problem;
                }
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                (wait, false)
            }
        };
        if *stopped.borrow() {
            break;
        }
        if wait.is_zero() && flush_requests.is_empty() {
            continue;
        }
        // Waking on any commit is cheap: a pass that finds nothing new writes nothing (the
        // lease is renewed only when half of it is gone), so it does not wake itself again.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = changes.changed(), if on_change => {
                if changed.is_err() {
                    break;
                }
            }
            Some(flush) = flush_requests.recv() => {
                flushes.push(flush);
                backoff = Duration::from_millis(500);
            }
            _ = stopped.wait_for(|stop| *stop) => break,
            _ = shutdown.wait_for(|down| *down) => break,
        }
    }
    let collector = otlp.collector.clone();
    let _ = engine
        .ctx
        .db
        .write(move |store| store.release_telemetry(&collector, &holder))
        .await;
}

/// The lease, renewed when less than half of it is left; `None` when another process holds
/// it.
async fn hold(
    engine: &Engine,
    collector: &str,
    holder: &str,
    lease: &mut Option<Lease>,
) -> Result<Option<i64>, String> {
    let now = engine.ctx.clock.now_ms();
    if let Some(held) = *lease
        && held.until.saturating_sub(now) > LEASE_MS / 2
    {
        return Ok(Some(held.since));
    }
    let (collector, claimant) = (collector.to_string(), holder.to_string());
    let since = engine
        .ctx
        .db
        .write(move |store| store.claim_telemetry(&collector, &claimant, now, LEASE_MS))
        .await
        .map_err(|e| format!("the export's lease: {e}"))?;
    *lease = since.map(|since| Lease {
        since,
        until: now.saturating_add(LEASE_MS),
    });
    Ok(since)
}

async fn pass(
    engine: &Engine,
    otlp: &Otlp,
    holder: &str,
    lease: &mut Option<Lease>,
    stopped: &watch::Receiver<bool>,
) -> Result<Pass, String> {
    let Some(since) = hold(engine, &otlp.collector, holder, lease).await? else {
        return Ok(Pass::NotHolder);
    };
    let pending = engine
        .ctx
        .db
        .read({
            let collector = otlp.collector.clone();
            move |store| Ok(store.telemetry_pending(&collector, since, RUNS_PER_PASS)?)
        })
        .await
        .map_err(|e| format!("looking for runs to export: {e}"))?;
    if pending.is_empty() {
        return Ok(Pass::CaughtUp);
    }
    let full = pending.len() == RUNS_PER_PASS;
    // A run the collector refuses does not hold the others back.
    let mut failed = None;
    for (row, from) in pending {
        if *stopped.borrow() {
            return Ok(Pass::More);
        }
        // Still ours before anything is sent (an export may take a while).
        if hold(engine, &otlp.collector, holder, lease)
            .await?
            .is_none()
        {
            return Ok(Pass::NotHolder);
        }
        let run_id = row.run_id.clone();
        let to = match engine.load_run(run_id.as_str()).await {
            Ok(loaded) => {
                let to = loaded.row.last_seq.get();
                let step_types: BTreeMap<_, _> = loaded
                    .state
                    .steps()
                    .map(|(def, _)| (def.id.clone(), def.action.type_name().to_string()))
                    .collect();
                let spans = spans_ended(&run_id, &loaded.events, &step_types, from, to);
                if !spans.is_empty()
                    && let Err(e) = otlp.export(trace_id(&run_id), &spans).await
                {
                    failed.get_or_insert(format!("exporting run {run_id}: {e}"));
                    continue;
                }
                to
            }
            // A log this stepwise cannot read is left out, not tried for ever; anything else
            // (the database busy, the engine stopping) is tried again.
            Err(
                error @ (EngineError::UnreadableRun { .. }
                | EngineError::Decode { .. }
                | EngineError::State { .. }),
            ) => {
                tracing::warn!("telemetry: run {run_id} is not exported: {error}");
                row.last_seq.get()
            }
            Err(error) => return Err(format!("reading run {run_id}: {error}")),
        };
        let (run, claimant) = (run_id.to_string(), holder.to_string());
        let collector = otlp.collector.clone();
        let advanced = engine
            .ctx
            .db
            .write(move |store| store.advance_telemetry(&collector, &claimant, &run, (from, to)))
            .await
            .map_err(|e| format!("recording what was exported: {e}"))?;
        if !advanced {
            // Another process took the export over: it goes on from the positions it finds.
            *lease = None;
            return Ok(Pass::NotHolder);
        }
    }
    if let Some(problem) = failed {
        return Err(problem);
    }
    Ok(if full { Pass::More } else { Pass::CaughtUp })
}
