//! A schedule trigger's slots: the times its cron expression names, in the local time zone.
//! A watcher starts one run per slot as it passes; one that starts after slots passed with no
//! watcher running starts at most one run, for the latest (`catch_up: latest`), and only when
//! the schedule fired before (a new schedule has missed nothing).

use chrono::{Local, TimeZone};
use stepwise_core::workflow::triggers::{CatchUp, ScheduleTrigger, parse_cron};

pub(super) struct ScheduleWatch {
    pub(super) trigger: ScheduleTrigger,
    cron: croner::Cron,
    /// The latest slot answered (fired, or passed before the watch began).
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
    /// `recorded_ms`: the catch-up to fire now, if any.
    pub(super) fn begin(&mut self, now_ms: i64, recorded_ms: Option<i64>) -> Option<Slot> {
        let latest = self.latest_slot(now_ms);
        self.last_slot_ms = latest.max(recorded_ms);
        match (latest, recorded_ms, self.trigger.catch_up) {
            (Some(latest), Some(recorded), CatchUp::Latest) if latest > recorded => Some(Slot {
                at_ms: latest,
                catch_up: true,
            }),
            _ => None,
        }
    }

    /// The slot that passed since the last one answered, if one did (the latest, when the
    /// clock jumped over several).
    pub(super) fn due(&mut self, now_ms: i64) -> Option<Slot> {
        let latest = self.latest_slot(now_ms)?;
        if self.last_slot_ms.is_some_and(|last| latest <= last) {
            return None;
        }
        self.last_slot_ms = Some(latest);
        Some(Slot {
            at_ms: latest,
            catch_up: false,
        })
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
        assert_eq!(schedule.begin(start, None), None);
        assert_eq!(schedule.due(start + 1_000), None);
        let slot = schedule.due(start + MINUTE).expect("next slot");
        assert_eq!(slot.at_ms, start - 10_000 + MINUTE);
        assert_eq!(schedule.due(start + MINUTE + 5_000), None);
        // A watcher starting after ten missed slots fires the latest only.
        let mut later = every_minute(CatchUp::Latest);
        let caught = later
            .begin(start + 11 * MINUTE, Some(slot.at_ms))
            .expect("catch-up");
        assert!(caught.catch_up);
        assert_eq!(caught.at_ms, slot.at_ms + 10 * MINUTE);
        assert_eq!(later.due(start + 11 * MINUTE + 1), None);
        let mut none = every_minute(CatchUp::None);
        assert_eq!(none.begin(start + 11 * MINUTE, Some(slot.at_ms)), None);
    }
}
