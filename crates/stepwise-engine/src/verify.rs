//! Checking a run's log against its hash chain and its blobs (`stepwise_store::chain`).

use stepwise_core::records::RunRow;
use stepwise_store::Verified;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::unreadable;

impl Engine {
    /// Recomputes the hash chain of a run (by id or unique prefix) and checks every blob its
    /// log names: where the chain breaks, which blobs are missing or altered, and the last
    /// link (what an export carries).
    pub async fn verify(&self, run: &str) -> Result<(RunRow, Verified), EngineError> {
        let run = run.to_string();
        self.ctx
            .db
            .read(move |store| {
                let row = store.find_run(&run)?;
                let verified = store
                    .verify_run(&row.run_id)
                    .map_err(|error| unreadable(&row.run_id, store, error.into()))?;
                Ok((row, verified))
            })
            .await
    }
}
