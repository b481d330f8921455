//! Telemetry: runs exported as OpenTelemetry traces over OTLP/HTTP, from the log, after it is
//! committed. Nothing here is on a run's way: a driver never waits for it, and a collector
//! that is down loses nothing, since what was exported is kept as a position in each run's
//! log (`telemetry_cursors`) and export goes on from there.
//!
//! `spans` makes a run's log into spans (pure, ids included); `otlp` sends them with the
//! `opentelemetry` crates' exporter; `exporter` is the loop that finds what is new, sends it
//! and moves the positions on, in one process at a time (a lease in the database).

mod exporter;
mod otlp;
mod spans;

pub use exporter::TelemetryExport;

use crate::engine::Engine;
use crate::error::EngineError;

impl Engine {
    /// Starts exporting this database's runs as traces, when the settings (or the standard
    /// OTLP variables) name a collector; `None` when they do not. Exports until the handle is
    /// dropped or the engine shuts down; of several processes doing so, one exports at a time.
    ///
    /// The first time telemetry is on for a database is recorded before this returns: runs
    /// started from then on are exported, runs from before are not.
    pub async fn export_telemetry(&self) -> Result<Option<TelemetryExport>, EngineError> {
        let Some((url, from_env)) = self.telemetry_target()? else {
            return Ok(None);
        };
        let otlp =
            otlp::Otlp::new(&url, from_env).map_err(|message| EngineError::Settings { message })?;
        let now = self.ctx.clock.now_ms();
        self.ctx
            .db
            .write({
                let collector = otlp.collector.clone();
                move |store| store.start_telemetry(&collector, now)
            })
            .await?;
        Ok(Some(exporter::start(
            self.clone(),
            otlp,
            crate::service_settings::shown_url(&url),
        )))
    }
}
