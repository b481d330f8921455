//! Pages of the runs list: a list of tens of thousands of runs is shown a screenful at a time,
//! filtered and counted by the database, so a client never holds more rows than it shows.

use rusqlite::ToSql;
use stepwise_core::ids::RunId;

use crate::runs::{RUN_COLUMNS, run_row};
use crate::{RunRow, SqliteStore, StoreError};

/// Which runs a page of the list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs with this recorded status.
    pub status: Option<String>,
    /// Only these runs, when given.
    pub only: Option<Vec<RunId>>,
    /// None of these runs.
    pub except: Vec<RunId>,
    /// Every word must appear in the workflow's name or path, the run id or the trigger,
    /// compared without regard to ASCII case.
    pub words: Vec<String>,
}

impl RunFilter {
    /// The `WHERE` clause and its parameters.
    fn clause(&self) -> (String, Vec<Box<dyn ToSql>>) {
        let mut terms: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(status) = &self.status {
            terms.push("status = ?".into());
            params.push(Box::new(status.clone()));
        }
        let ids = |ids: &[RunId], params: &mut Vec<Box<dyn ToSql>>| {
            for id in ids {
                params.push(Box::new(id.as_str().to_owned()));
            }
            vec!["?"; ids.len()].join(", ")
        };
        if let Some(only) = &self.only {
            if only.is_empty() {
                terms.push("0".into());
            } else {
                terms.push(format!("run_id IN ({})", ids(only, &mut params)));
            }
        }
        if !self.except.is_empty() {
            terms.push(format!(
                "run_id NOT IN ({})",
                ids(&self.except, &mut params)
            ));
        }
        for word in &self.words {
            // SQLite's lower() folds ASCII only; the word is folded the same way.
            terms.push(
                "instr(lower(workflow_name || char(10) || workflow_path || char(10) || run_id \
                 || char(10) || trigger), ?) > 0"
                    .into(),
            );
            params.push(Box::new(word.to_ascii_lowercase()));
        }
        let clause = if terms.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", terms.join(" AND "))
        };
        (clause, params)
    }
}

impl SqliteStore {
    /// The runs `filter` admits, newest first (the order of [`SqliteStore::list_runs`]), each child
    /// run (a `workflow` step's) right after its parent, a parent's children in the order they
    /// started (each followed by its own); from the `offset`th, at most `limit`.
    pub fn runs_page(
        &self,
        filter: &RunFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        let (clause, mut params) = filter.clause();
        params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        params.push(Box::new(i64::try_from(offset).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {clause}
             ORDER BY family_at_ms DESC, family_run_id DESC, family_path, run_id LIMIT ? OFFSET ?"
        );
        let params: Vec<&dyn ToSql> = params.iter().map(|p| p.as_ref()).collect();
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_map(params.as_slice(), run_row)?
            .collect::<Result<_, _>>()?)
    }

    /// How many runs `filter` admits.
    pub fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        let (clause, params) = filter.clause();
        let params: Vec<&dyn ToSql> = params.iter().map(|p| p.as_ref()).collect();
        let count: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM runs {clause}"))?
            .query_row(params.as_slice(), |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// How many runs have each recorded status, by status.
    pub fn count_runs_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")?
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                ))
            })?
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::NewRun;
    use crate::test_support::{event, new_run, rid, temp_store};

    fn runs(store: &mut SqliteStore) {
        for (i, (id, workflow, status)) in [
            ("r1", "build", "succeeded"),
            ("r2", "Deploy-Prod", "failed"),
            ("r3", "build", "running"),
            ("r4", "lint", "running"),
            ("r5", "build", "succeeded"),
        ]
        .into_iter()
        .enumerate()
        {
            let run = NewRun {
                workflow_name: workflow.into(),
                workflow_path: format!("workflows/{workflow}.yaml"),
                status: status.into(),
                created_at_ms: 1_000 + i as i64,
                parent: None,
                cause: None,
                ..new_run(id)
            };
            store
                .create_run(&run, &[event("RunStarted", json!({}))])
                .unwrap();
        }
    }

    fn ids(rows: &[RunRow]) -> Vec<&str> {
        rows.iter().map(|r| r.run_id.as_str()).collect()
    }

    #[test]
    fn child_runs_are_listed_under_their_parents_and_forks_are_not() {
        let (_dir, mut store) = temp_store();
        let add =
            |store: &mut SqliteStore, id: &str, at: i64, trigger: &str, parent: Option<&str>| {
                let run = NewRun {
                    trigger: trigger.into(),
                    created_at_ms: at,
                    parent: parent.map(rid),
                    cause: None,
                    ..new_run(id)
                };
                store
                    .create_run(&run, &[event("RunStarted", json!({}))])
                    .unwrap();
            };
        add(&mut store, "top", 1_000, "cli", None);
        add(&mut store, "other", 1_500, "cli", None);
        add(&mut store, "child-b", 2_000, "workflow", Some("top"));
        add(&mut store, "grandchild", 2_500, "workflow", Some("child-b"));
        add(&mut store, "child-a", 3_000, "workflow", Some("top"));
        add(&mut store, "fork", 4_000, "cli", Some("top"));
        // A grandchild started after its parent's younger sibling still follows its parent.
        add(
            &mut store,
            "late-grandchild",
            3_500,
            "workflow",
            Some("child-b"),
        );
        let page = store.runs_page(&RunFilter::default(), 0, 10).unwrap();
        assert_eq!(
            ids(&page),
            [
                "fork",
                "other",
                "top",
                "child-b",
                "grandchild",
                "late-grandchild",
                "child-a"
            ]
        );
        assert_eq!(
            ids(&store.runs_page(&RunFilter::default(), 3, 2).unwrap()),
            ["child-b", "grandchild"]
        );
    }

    #[test]
    fn pages_are_newest_first_and_filtered_by_the_database() {
        let (_dir, mut store) = temp_store();
        runs(&mut store);
        let all = RunFilter::default();
        assert_eq!(ids(&store.runs_page(&all, 0, 2).unwrap()), ["r5", "r4"]);
        assert_eq!(ids(&store.runs_page(&all, 2, 2).unwrap()), ["r3", "r2"]);
        assert_eq!(ids(&store.runs_page(&all, 4, 2).unwrap()), ["r1"]);
        assert_eq!(store.count_runs(&all).unwrap(), 5);

        let built = RunFilter {
            words: vec!["BUILD".into()],
            ..RunFilter::default()
        };
        assert_eq!(
            ids(&store.runs_page(&built, 0, 10).unwrap()),
            ["r5", "r3", "r1"]
        );
        let words = RunFilter {
            words: vec!["deploy".into(), "prod".into()],
            ..RunFilter::default()
        };
        assert_eq!(ids(&store.runs_page(&words, 0, 10).unwrap()), ["r2"]);

        let running_but_r3 = RunFilter {
            status: Some("running".into()),
            except: vec![rid("r3")],
            ..RunFilter::default()
        };
        assert_eq!(
            ids(&store.runs_page(&running_but_r3, 0, 10).unwrap()),
            ["r4"]
        );
        let only = RunFilter {
            only: Some(vec![rid("r1"), rid("r3")]),
            ..RunFilter::default()
        };
        assert_eq!(store.count_runs(&only).unwrap(), 2);
        let none = RunFilter {
            only: Some(Vec::new()),
            ..RunFilter::default()
        };
        assert_eq!(store.count_runs(&none).unwrap(), 0);

        assert_eq!(
            store.count_runs_by_status().unwrap(),
            [
                ("failed".to_string(), 1),
                ("running".to_string(), 2),
                ("succeeded".to_string(), 2)
            ]
        );
    }

    #[test]
    fn a_page_reads_only_the_events_asked_for() {
        let (_dir, mut store) = temp_store();
        let events: Vec<_> = (0..5).map(|i| event("E", json!({ "i": i }))).collect();
        store.create_run(&new_run("r"), &events).unwrap();
        let seqs = [5, 2, 9, 2].map(stepwise_core::ids::EventSeq::new);
        let found = store.load_events_at(&rid("r"), &seqs).unwrap();
        let got: Vec<_> = found
            .iter()
            .map(|e| (e.seq.get(), e.payload["i"].clone()))
            .collect();
        assert_eq!(got, [(2, json!(1)), (5, json!(4))]);
    }
}
