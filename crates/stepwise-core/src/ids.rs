//! Identifiers, each a type of its own so that one cannot be passed where another is meant: a
//! run's id ([`RunId`]), a step's id within its workflow ([`StepId`]) and an event's number in
//! its run's log ([`EventSeq`]).
//!
//! They are written exactly as the plain values they wrap (`#[serde(transparent)]`): a run id
//! is the bare string and a seq the bare number, in stored events, in the database and in every
//! JSON the CLI prints. They must never change that. They check nothing about what they hold:
//! a step id is checked where its workflow is compiled, a run id where its run is looked up.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a string id with the conversions and comparisons it needs.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, so that widths and alignment (`{:<36}`) apply as to a string.
                f.pad(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // `Hash`, `Eq` and `Ord` are the wrapped string's, so a map keyed by the id can be
        // looked up with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

string_id! {
    /// A run's id (a UUID today), unique in the database.
    RunId
}

string_id! {
    /// A step's `id` in its workflow, unique within the workflow.
    StepId
}

/// The number of an event in its run's log: `1` is the run's `RunStarted`, and each event
/// after it is one more, without gaps. An operation is named by the seq of its
/// `OperationStarted`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "ts", ts(type = "number"))]
pub struct EventSeq(u64);

impl EventSeq {
    /// Before the first event: the last seq of a log that holds none.
    pub const ZERO: EventSeq = EventSeq(0);
    /// The first event of every run, its `RunStarted`.
    pub const FIRST: EventSeq = EventSeq(1);

    pub const fn new(seq: u64) -> EventSeq {
        EventSeq(seq)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq of the event after this one.
    pub const fn next(self) -> EventSeq {
        EventSeq(self.0 + 1)
    }
}

impl fmt::Display for EventSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u64> for EventSeq {
    fn from(seq: u64) -> Self {
        EventSeq(seq)
    }
}

impl From<EventSeq> for u64 {
    fn from(seq: EventSeq) -> u64 {
        seq.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn ids_are_written_as_the_bare_string_and_read_back() {
        let run = RunId::from("0193aa01-run");
        assert_eq!(serde_json::to_value(&run).unwrap(), json!("0193aa01-run"));
        assert_eq!(
            serde_json::from_value::<RunId>(json!("0193aa01-run")).unwrap(),
            run
        );
        let step = StepId::from("build");
        assert_eq!(serde_json::to_string(&step).unwrap(), "\"build\"");
        assert_eq!(serde_json::from_str::<StepId>("\"build\"").unwrap(), step);
        assert!(serde_json::from_value::<StepId>(json!(1)).is_err());
    }

    #[test]
    fn seqs_are_written_as_the_bare_number_and_read_back() {
        let seq = EventSeq::from(42);
        assert_eq!(serde_json::to_value(seq).unwrap(), json!(42));
        assert_eq!(serde_json::from_value::<EventSeq>(json!(42)).unwrap(), seq);
        assert_eq!(
            serde_json::to_value(Some(EventSeq::FIRST)).unwrap(),
            json!(1)
        );
        assert!(serde_json::from_value::<EventSeq>(json!("42")).is_err());
    }

    #[test]
    fn ids_show_and_compare_as_their_text() {
        let step = StepId::from("build".to_string());
        assert_eq!(step.to_string(), "build");
        assert_eq!(format!("[{step:<7}]"), "[build  ]");
        assert_eq!(format!("[{:>4}]", EventSeq::new(12)), "[  12]");
        assert_eq!(step, "build");
        assert_eq!(step, *"build");
        assert_eq!(step, "build".to_string());
        let mut index = HashMap::new();
        index.insert(step.clone(), 3);
        assert_eq!(index.get("build"), Some(&3));
        assert_eq!(RunId::from("r").as_str(), "r");
    }

    #[test]
    fn seqs_count_on_and_show_as_numbers() {
        assert_eq!(EventSeq::ZERO.next(), EventSeq::FIRST);
        assert_eq!(EventSeq::new(7).next().get(), 8);
        assert!(EventSeq::new(2) > EventSeq::FIRST);
        assert_eq!(EventSeq::new(12).to_string(), "12");
        assert_eq!(u64::from(EventSeq::new(5)), 5);
        assert_eq!(EventSeq::default(), EventSeq::ZERO);
    }
}
