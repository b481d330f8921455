//! Run rows on PostgreSQL: looking runs up, listing them, and pages of the runs list, as
//! `runs.rs` and `runs_page.rs` do on SQLite.

use postgres::Row;
use postgres::types::ToSql;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::run::RunStatus;

use super::{PgStore, limit, signed, unsigned};
use crate::runs::{AMBIGUOUS_MATCHES_SHOWN, RUN_COLUMNS, prefix_successor};
use crate::{RunFilter, RunRow, StoreError};

/// A `runs` row read with [`RUN_COLUMNS`] first.
pub(super) fn run_row(row: &Row) -> Result<RunRow, StoreError> {
    let status: String = row.get(6);
    let status = RunStatus::parse(&status).ok_or_else(|| StoreError::Postgres {
        database: None,
        reason: format!("`{status}` is not a run status this stepwise knows"),
        retryable: false,
        gone: false,
    })?;
    Ok(RunRow {
        run_id: RunId::from(row.get::<_, String>(0)),
        workflow_name: row.get(1),
        workflow_path: row.get(2),
        workflow_hash: row.get(3),
        workspace: row.get(4),
        trigger: row.get(5),
        status,
        created_at_ms: row.get(7),
        updated_at_ms: row.get(8),
        last_seq: EventSeq::new(unsigned(row.get(9))),
        change_seq: unsigned(row.get(10)),
        cost_micro_usd: unsigned(row.get(11)).min(stepwise_core::llm::MAX_MICRO_USD),
        parent: row.get::<_, Option<String>>(12).map(RunId::from),
        cause: row.get(13),
    })
}

fn run_rows(rows: &[Row]) -> Result<Vec<RunRow>, StoreError> {
    rows.iter().map(run_row).collect()
}

impl PgStore {
    pub fn run(&self, run_id: &RunId) -> Result<Option<RunRow>, StoreError> {
        self.read(|db| {
            db.query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"),
                &[&run_id.as_str()],
            )?
            .as_ref()
            .map(run_row)
            .transpose()
        })
    }

    pub fn runs_from(&self, run_id: &RunId) -> Result<Vec<RunRow>, StoreError> {
        self.read(|db| {
            run_rows(&db.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id = $1
                     ORDER BY created_at_ms, run_id COLLATE \"C\""
                ),
                &[&run_id.as_str()],
            )?)
        })
    }

    pub fn find_run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError> {
        if id_or_prefix.is_empty() {
            return Err(StoreError::RunNotFound(String::new()));
        }
        if let Some(run) = self.run(&RunId::from(id_or_prefix))? {
            return Ok(run);
        }
        let shown = limit(AMBIGUOUS_MATCHES_SHOWN);
        // `COLLATE "C"`: byte order, whatever the database's collation, as on SQLite.
        let mut matches = self.read(|db| {
            run_rows(&match prefix_successor(id_or_prefix) {
                Some(upper) => db.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs
                         WHERE run_id COLLATE \"C\" >= $1 AND run_id COLLATE \"C\" < $2
                         ORDER BY run_id COLLATE \"C\" LIMIT $3"
                    ),
                    &[&id_or_prefix, &upper, &shown],
                )?,
                None => db.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE run_id COLLATE \"C\" >= $1
                         ORDER BY run_id COLLATE \"C\" LIMIT $2"
                    ),
                    &[&id_or_prefix, &shown],
                )?,
            })
        })?;
        match matches.len() {
            0 => Err(StoreError::RunNotFound(id_or_prefix.to_owned())),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::AmbiguousRun {
                prefix: id_or_prefix.to_owned(),
                matches: matches.into_iter().map(|run| run.run_id).collect(),
            }),
        }
    }

    pub fn list_runs(&self, max: usize) -> Result<Vec<RunRow>, StoreError> {
        self.read(|db| {
            run_rows(&db.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     ORDER BY created_at_ms DESC, run_id COLLATE \"C\" DESC LIMIT $1"
                ),
                &[&limit(max)],
            )?)
        })
    }

    pub fn runs_changed_since(
        &self,
        change_seq: u64,
        max: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        self.read(|db| {
            run_rows(&db.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE change_seq > $1
                     ORDER BY change_seq LIMIT $2"
                ),
                &[&signed(change_seq), &limit(max)],
            )?)
        })
    }

    pub fn last_change_seq(&self) -> Result<u64, StoreError> {
        self.read(|db| {
            Ok(unsigned(
                db.query_one("SELECT COALESCE(MAX(change_seq), 0)::BIGINT FROM runs", &[])?
                    .get(0),
            ))
        })
    }

    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.read(|db| {
            run_rows(&db.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE status NOT IN ('succeeded', 'failed', 'cancelled')
                     ORDER BY created_at_ms ASC, run_id COLLATE \"C\" ASC"
                ),
                &[],
            )?)
        })
    }

    pub fn runs_page(
        &self,
        filter: &RunFilter,
        offset: usize,
        max: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        let (clause, mut params) = clause(filter);
        params.push(Box::new(limit(max)));
        params.push(Box::new(limit(offset)));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {clause}
             ORDER BY family_at_ms DESC, family_run_id COLLATE \"C\" DESC,
                      family_path COLLATE \"C\", run_id COLLATE \"C\"
             LIMIT ${} OFFSET ${}",
            params.len() - 1,
            params.len()
        );
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        self.read(|db| run_rows(&db.query(&sql, &params)?))
    }

    pub fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        let (clause, params) = clause(filter);
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        self.read(|db| {
            Ok(unsigned(
                db.query_one(&format!("SELECT COUNT(*) FROM runs {clause}"), &params)?
                    .get(0),
            ))
        })
    }

    pub fn count_runs_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    "SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status COLLATE \"C\"",
                    &[],
                )?
                .iter()
                .map(|row| (row.get(0), unsigned(row.get(1))))
                .collect())
        })
    }
}

type Param = Box<dyn ToSql + Sync>;

/// The filter as a `WHERE` clause and its parameters, numbered from `$1` (see `RunFilter` on
/// SQLite: the same terms).
fn clause(filter: &RunFilter) -> (String, Vec<Param>) {
    let mut terms: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    if let Some(status) = &filter.status {
        params.push(Box::new(status.clone()));
        terms.push(format!("status = ${}", params.len()));
    }
    let ids = |ids: &[RunId]| -> Param {
        Box::new(
            ids.iter()
                .map(|id| id.as_str().to_owned())
                .collect::<Vec<String>>(),
        )
    };
    if let Some(only) = &filter.only {
        params.push(ids(only));
        terms.push(format!("run_id = ANY(${})", params.len()));
    }
    if !filter.except.is_empty() {
        params.push(ids(&filter.except));
        terms.push(format!("NOT (run_id = ANY(${}))", params.len()));
    }
    for word in &filter.words {
        params.push(Box::new(word.to_ascii_lowercase()));
        // ASCII folded only, as on SQLite.
        terms.push(format!(
            "strpos(translate(workflow_name || chr(10) || workflow_path || chr(10) || run_id
                    || chr(10) || trigger, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                    'abcdefghijklmnopqrstuvwxyz'), ${}) > 0",
            params.len()
        ));
    }
    let clause = if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", terms.join(" AND "))
    };
    (clause, params)
}
