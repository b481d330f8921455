//! A schedule trigger's slots: the times its cron expression names, in the local time zone.
//! A watcher starts one run per slot as it passes. A slot found long after its time (the
//! machine slept, no watcher ran) is a catch-up: with `catch_up: latest` one run starts for the
//! latest such slot, with `none` none does; a schedule that never fired before has missed
//! nothing. A slot is answered only once its firing is recorded, so a failure to record it is
//! tried again.

use chrono::{Local, TimeZone};
use stepwise_core::workflow::triggers::{CatchUp, ScheduleTrigger, parse_cron};

/// A slot found later than this after its time is a catch-up.
const LATE_MS: i64 = 60_000;

pub(super) struct ScheduleWatch {
    pub(super) trigger: ScheduleTrigger,
    cron: croner::Cron,
    /// The latest slot answered (fired, skipped, or passed before the schedule began).
    last_slot_ms: Option<i64>,
}

/// A slot to fire: its time, and whether it is a catch-up for slots missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) at_ms: i64,
    pub(super) catch_up: bool,
}

impl ScheduleWatch {
    pub(super) fn new(trigger: ScheduleTrigger) -> Result<ScheduleWatch, String> {
        let cron = parse_cron(&trigger.cron)?;
        Ok(ScheduleWatch {
            trigger,
            cron,
            last_slot_ms: None,
        })
    }

    /// The latest slot at or before `now_ms`.
    fn latest_slot(&self, now_ms: i64) -> Option<i64> {
        let now = Local.timestamp_millis_opt(now_ms).single()?;
        let slot = self.cron.find_previous_occurrence(&now, true).ok()?;
        Some(slot.timestamp_millis())
    }

    /// Begins watching at `now_ms`, the slot of the schedule's latest recorded firing being
    /// `recorded_ms`; afterwards [`ScheduleWatch::due`] says what to fire.
    pub(super) fn begin(&mut self, now_ms: i64, recorded_ms: Option<i64>) {
        self.last_slot_ms = match recorded_ms {
            // It fired before: what passed since is missed, and due.
            Some(recorded) => Some(recorded),
            // A new schedule has missed nothing.
            None => self.latest_slot(now_ms),
        };
    }

    /// The slot to fire now, if one passed since the last answered (the latest, when several
    /// did); `None` also for a catch-up with `catch_up: none` (see [`ScheduleWatch::skip`]).
    pub(super) fn due(&self, now_ms: i64) -> Option<Slot> {
        let latest = self.latest_slot(now_ms)?;
        if self.last_slot_ms.is_some_and(|last| latest <= last) {
            return None;
        }
        let missed_several = self.last_slot_ms.is_some_and(|last| {
            Local
                .timestamp_millis_opt(last)
                .single()
                .and_then(|last| self.cron.find_next_occurrence(&last, false).ok())
                .is_some_and(|next| next.timestamp_millis() < latest)
        });
        Some(Slot {
            at_ms: latest,
            catch_up: missed_several || now_ms.saturating_sub(latest) > LATE_MS,
        })
    }

    /// Whether `slot` is not to be fired at all (a catch-up, and the schedule wants none).
    pub(super) fn skip(&self, slot: Slot) -> bool {
        slot.catch_up && self.trigger.catch_up == CatchUp::None
    }

    /// The slot is answered: recorded (or skipped).
    pub(super) fn answered(&mut self, slot: Slot) {
        self.last_slot_ms = self.last_slot_ms.max(Some(slot.at_ms));
    }
}

/// A slot as people read it: `10:15` today, `2026-12-05 10:15` another day.
pub(super) fn shown(slot_ms: i64, now_ms: i64) -> String {
    let (Some(slot), Some(now)) = (
        Local.timestamp_millis_opt(slot_ms).single(),
        Local.timestamp_millis_opt(now_ms).single(),
    ) else {
        return slot_ms.to_string();
    };
    if slot.date_naive() == now.date_naive() {
        slot.format("%H:%M").to_string()
    } else {
        slot.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// A slot as the run's input records it: RFC 3339 with the local offset.
pub(super) fn rfc3339(slot_ms: i64) -> String {
    Local
        .timestamp_millis_opt(slot_ms)
        .single()
        .map_or_else(|| slot_ms.to_string(), |slot| slot.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn every_minute(catch_up: CatchUp) -> ScheduleWatch {
        ScheduleWatch::new(ScheduleTrigger {
            cron: "* * * * *".into(),
            catch_up,
        })
        .expect("valid")
    }

    #[test]
    fn one_slot_fires_once_and_a_gap_is_caught_up_once() {
        let start = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE + 10_000;
        let mut schedule = every_minute(CatchUp::Latest);
        // Never fired before: nothing was missed.
        schedule.begin(start, None);
        assert_eq!(schedule.due(start + 1_000), None);
        let slot = schedule.due(start + MINUTE).expect("next slot");
        assert_eq!(slot.at_ms, start - 10_000 + MINUTE);
        assert!(!slot.catch_up);
        // Not answered (say it could not be recorded): still due.
        assert_eq!(schedule.due(start + MINUTE + 1_000), Some(slot));
        schedule.answered(slot);
        assert_eq!(schedule.due(start + MINUTE + 5_000), None);

        // A watcher starting after ten missed slots fires the latest only, as a catch-up.
        let mut later = every_minute(CatchUp::Latest);
        later.begin(start + 11 * MINUTE, Some(slot.at_ms));
        let caught = later.due(start + 11 * MINUTE).expect("catch-up");
        assert!(caught.catch_up && !later.skip(caught));
        assert_eq!(caught.at_ms, slot.at_ms + 10 * MINUTE);
        later.answered(caught);
        assert_eq!(later.due(start + 11 * MINUTE + 1), None);

        let mut none = every_minute(CatchUp::None);
        none.begin(start + 11 * MINUTE, Some(slot.at_ms));
        let missed = none.due(start + 11 * MINUTE).expect("a slot, to skip");
        assert!(none.skip(missed));

        // A machine that slept through one slot: found late, a catch-up too.
        let mut slept = every_minute(CatchUp::None);
        slept.begin(start, None);
        let late = slept.due(start + MINUTE + 50_000).expect("the slot");
        assert!(late.catch_up && slept.skip(late));
    }
}
