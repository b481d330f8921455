//! The workspace view: a run's workspace as a tree (the newest run's by default), files runs
//! touched and files with pending edits marked, watched so that changes show at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use stepwise_engine::RunsQuery;
use tauri::State;

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::view::{FileNode, WorkspaceView};

/// The most entries the tree shows.
const MAX_ENTRIES: usize = 5_000;
/// How many of the workspace's newest runs say which files were touched.
const RUNS_LOOKED_AT: usize = 50;
/// Folders left out of the tree: tools' caches, not the project.
const SKIPPED: &[&str] = &[".git", "node_modules", "target", "__pycache__", ".venv"];

/// The tree of `run`'s workspace (default: the newest run's, else the app's workspace).
#[tauri::command]
pub async fn workspace_tree(
    state: State<'_, AppState>,
    run: Option<String>,
) -> Result<WorkspaceView, AppError> {
    let runs = state
        .engine
        .runs_page(RunsQuery {
            limit: RUNS_LOOKED_AT,
            ..RunsQuery::default()
        })
        .await?
        .runs;
    let chosen = match &run {
        Some(id) => Some(state.engine.find_run(id).await?),
        None => runs.first().cloned(),
    };
    let (root, run_id) = match &chosen {
        Some(row) => (PathBuf::from(&row.workspace), Some(row.run_id.clone())),
        None => (state.default_workspace.clone(), None),
    };
    let mut touched = HashSet::new();
    let mut pending = HashSet::new();
    for row in runs.iter().filter(|r| Path::new(&r.workspace) == root) {
        let Ok(digest) = state.digests.of(&state.engine, row).await else {
            continue;
        };
        touched.extend(digest.touched().cloned());
        pending.extend(digest.pending_edits().cloned());
    }
    if let Err(error) = state.watch.watch(&root) {
        tracing::warn!("{error}");
    }
    let shown = root.clone();
    let (tree, truncated) = tauri::async_runtime::spawn_blocking(move || {
        let mut budget = MAX_ENTRIES;
        let mut truncated = 0u64;
        let tree = list(
            &root,
            &root,
            &touched,
            &pending,
            &mut budget,
            &mut truncated,
        );
        (tree, truncated)
    })
    .await
    .map_err(|e| AppError::internal(format!("listing the workspace stopped: {e}")))?;
    if !shown.is_dir() {
        return Err(AppError::new(
            ErrorCode::NotFound,
            format!("the workspace {} does not exist any more", shown.display()),
        ));
    }
    Ok(WorkspaceView {
        root: shown.display().to_string(),
        run_id,
        tree,
        truncated,
    })
}

fn list(
    root: &Path,
    dir: &Path,
    touched: &HashSet<String>,
    pending: &HashSet<String>,
    budget: &mut usize,
    truncated: &mut u64,
) -> Vec<FileNode> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| {
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        (!is_dir, e.file_name())
    });
    let mut nodes = Vec::new();
    for entry in entries {
        if *budget == 0 {
            *truncated += 1;
            continue;
        }
        *budget -= 1;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|_| name.clone());
        // Symlinks are shown, never followed (they may point outside the workspace).
        let file_type = entry.file_type().ok();
        let dir = file_type.is_some_and(|t| t.is_dir());
        let children = if dir && !SKIPPED.contains(&name.as_str()) {
            list(root, &path, touched, pending, budget, truncated)
        } else {
            Vec::new()
        };
        let size = if dir {
            0
        } else {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        };
        nodes.push(FileNode {
            touched: touched.contains(&rel) || children.iter().any(|c| c.touched),
            pending_edit: pending.contains(&rel) || children.iter().any(|c| c.pending_edit),
            path: rel,
            name,
            dir,
            size,
            children,
        });
    }
    nodes
}
