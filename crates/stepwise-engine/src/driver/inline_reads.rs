//! Reads performed inline: a small read changes nothing in the world, so it is performed as
//! soon as it is decided and its result taken in the same commit (see
//! [`Driver::read_inline`]).

use std::collections::HashSet;

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::operation::OperationRequest;

use super::{Driver, Group, INLINE_READ_MAX_BYTES, INLINE_READS_PER_COMMIT};
use crate::error::EngineError;
use crate::exec;

impl Driver {
    /// Reads change nothing in the world, so a small one is performed right here, as soon as
    /// it is decided, and its result taken as an input at once: request, result and what
    /// follows from it are all recorded in this one commit (nothing outside the log has
    /// depended on the result before then). A chain of reads and the pure steps between them
    /// thus costs one commit, not one per read. Large files are read on a blocking thread
    /// instead. Returns the groups with the reads' results added, and the reads done.
    pub(super) fn read_inline(
        &mut self,
        mut groups: Vec<Group>,
    ) -> Result<(Vec<Group>, HashSet<EventSeq>), EngineError> {
        let mut done = HashSet::new();
        let mut scanned = 0;
        while scanned < groups.len() && done.len() < INLINE_READS_PER_COMMIT {
            let total = super::event_count(&groups);
            // The groups' events are the state's last `total`; `seq` walks them.
            let mut seq = EventSeq::new(self.state.last_seq().get() + 1 - total as u64);
            let mut reads = Vec::new();
            for (index, group) in groups.iter().enumerate() {
                if group.input.is_some() {
                    seq = seq.next();
                }
                for decision in &group.decisions {
                    if index >= scanned
                        && let Event::OperationStarted {
                            request: OperationRequest::ReadFile { path, missing_ok },
                            ..
                        } = decision
                    {
                        reads.push((seq, path.clone(), *missing_ok));
                    }
                    seq = seq.next();
                }
            }
            scanned = groups.len();
            for (op, path, missing_ok) in reads {
                if done.len() >= INLINE_READS_PER_COMMIT {
                    continue;
                }
                // A larger file is read on a blocking thread once the request is recorded.
                let Some(read) = exec::read_small_file(
                    &self.workspace,
                    &path,
                    missing_ok,
                    INLINE_READ_MAX_BYTES,
                ) else {
                    continue;
                };
                let input = match read {
                    Ok(result) => Event::OperationSucceeded { op, result },
                    Err(error) => Event::OperationFailed { op, error },
                };
                groups.push(self.take_input(input)?);
                done.insert(op);
            }
        }
        Ok((groups, done))
    }
}
