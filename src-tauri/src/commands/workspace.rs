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
    // A run of another machine: what is on disk here at that path is not its workspace; the
    // files it recorded are shown instead.
    if let Some(row) = &chosen {
        let digest = state.digests.of(&state.engine, row).await?;
        if let Some(host) = digest.host()
            && host != state.engine.config().host
        {
            let touched: HashSet<String> = digest.touched().cloned().collect();
            let pending: HashSet<String> = digest.pending_edits().cloned().collect();
            return Ok(WorkspaceView {
                root: root.display().to_string(),
                run_id,
                elsewhere: Some(host.to_owned()),
                tree: recorded_tree(&touched, &pending),
                truncated: 0,
            });
        }
    }
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
        elsewhere: None,
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

/// The tree of the paths a run recorded (read, wrote, or waits to edit), for a run whose
/// workspace is on another machine: folders made from the paths, nothing read from disk.
fn recorded_tree(touched: &HashSet<String>, pending: &HashSet<String>) -> Vec<FileNode> {
    let mut paths: Vec<&String> = touched.union(pending).collect();
    paths.sort();
    paths.truncate(MAX_ENTRIES);
    let mut root = Vec::new();
    for path in paths {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        insert_recorded(
            &mut root,
            &parts,
            0,
            touched.contains(path),
            pending.contains(path),
        );
    }
    root
}

fn insert_recorded(
    nodes: &mut Vec<FileNode>,
    parts: &[&str],
    depth: usize,
    touched: bool,
    pending: bool,
) {
    let Some(name) = parts.get(depth) else {
        return;
    };
    let is_file = depth + 1 == parts.len();
    let path = parts[..=depth].join("/");
    let at = match nodes
        .iter()
        .position(|n| n.name == *name && n.dir != is_file)
    {
        Some(at) => at,
        None => {
            nodes.push(FileNode {
                path,
                name: (*name).to_owned(),
                dir: !is_file,
                size: 0,
                touched: false,
                pending_edit: false,
                children: Vec::new(),
            });
            nodes.len() - 1
        }
    };
    let node = &mut nodes[at];
    node.touched |= touched;
    node.pending_edit |= pending;
    insert_recorded(&mut node.children, parts, depth + 1, touched, pending);
}
