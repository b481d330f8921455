//! Workspace checkpoints as data: what an operation changed in the workspace's files (created,
//! modified, deleted, renamed), each version named by its content hash, and the settings that
//! say which files are looked at. The engine finds the changes (`stepwise-engine`'s
//! `checkpoint`); they are recorded in the operation's result (`OperationResult::file_changes`),
//! so a run's log says what every command, edit and MCP call did to the files, and what each
//! file held before (`run::workspace_changes` reads them back by step).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Files larger than this are recorded by their hash only, and cannot be restored.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Which files of a workspace checkpoints look at: all of its regular files but those its
/// `.gitignore` files ignore, those `ignore` names (globs over workspace-relative paths), and
/// never `.git/` or `.stepwise/`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Larger files are recorded by hash only (not restorable).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        CheckpointSpec {
            ignore: Vec::new(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

/// One version of a file.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    /// `sha256:<hex>` of its content; the content is a blob of that name when `stored`.
    pub hash: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size: u64,
    /// Whether its content was kept (files over the ceiling are not): it can be restored.
    pub stored: bool,
}

/// What happened to one path.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
    /// Moved from `from` to `path`, its content unchanged.
    Renamed,
}

/// One change an operation made to the workspace's files.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Workspace-relative, with `/`.
    pub path: String,
    pub kind: ChangeKind,
    /// A rename's old path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// What it held before (`None`: it did not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<FileVersion>,
    /// What it holds after (`None`: it no longer exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<FileVersion>,
}

/// The state of the workspace's files at one moment: each path and its version.
pub type Snapshot = BTreeMap<String, FileVersion>;

/// What changed from `before` to `after`, by path. A path deleted and another created with the
/// same content is a rename (paired in path order).
pub fn changes_between(before: &Snapshot, after: &Snapshot) -> Vec<FileChange> {
    let mut created: Vec<(&String, &FileVersion)> = Vec::new();
    let mut deleted: Vec<(&String, &FileVersion)> = Vec::new();
    let mut changes = Vec::new();
    for (path, was) in before {
        match after.get(path) {
            None => deleted.push((path, was)),
            Some(now) if now.hash != was.hash => changes.push(FileChange {
                path: path.clone(),
                kind: ChangeKind::Modified,
                from: None,
                before: Some(was.clone()),
                after: Some(now.clone()),
            }),
            Some(_) => {}
        }
    }
    for (path, now) in after {
        if !before.contains_key(path) {
            created.push((path, now));
        }
    }
    let mut renamed_from = vec![false; deleted.len()];
    // Deleted paths by content, in path order: each created path takes the first left. An
    // empty file is never a rename (as git sees it): any two empty files look alike.
    let mut by_hash: BTreeMap<&str, std::collections::VecDeque<usize>> = BTreeMap::new();
    for (i, (_, was)) in deleted.iter().enumerate() {
        if was.size > 0 {
            by_hash.entry(was.hash.as_str()).or_default().push_back(i);
        }
    }
    for (path, now) in created {
        let source = by_hash
            .get_mut(now.hash.as_str())
            .and_then(std::collections::VecDeque::pop_front);
        match source {
            Some(i) => {
                renamed_from[i] = true;
                changes.push(FileChange {
                    path: path.clone(),
                    kind: ChangeKind::Renamed,
                    from: Some(deleted[i].0.clone()),
                    before: Some(deleted[i].1.clone()),
                    after: Some(now.clone()),
                });
            }
            None => changes.push(FileChange {
                path: path.clone(),
                kind: ChangeKind::Created,
                from: None,
                before: None,
                after: Some(now.clone()),
            }),
        }
    }
    for (i, (path, was)) in deleted.into_iter().enumerate() {
        if !renamed_from[i] {
            changes.push(FileChange {
                path: path.clone(),
                kind: ChangeKind::Deleted,
                from: None,
                before: Some(was.clone()),
                after: None,
            });
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

/// A path as one line shows it: control characters (a newline in a file's name could forge
/// the next line of a terminal's output) escaped.
fn shown(path: &str) -> std::borrow::Cow<'_, str> {
    if path.chars().any(char::is_control) {
        std::borrow::Cow::Owned(path.escape_debug().to_string())
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// The changes as one line a person reads: `wrote build/out.txt, deleted tmp.log`.
pub fn describe(changes: &[FileChange]) -> String {
    describe_at_most(changes, usize::MAX)
}

/// [`describe`], naming at most `most` changes and counting the rest.
pub fn describe_at_most(changes: &[FileChange], most: usize) -> String {
    let mut said = changes
        .iter()
        .take(most)
        .map(|c| match c.kind {
            ChangeKind::Created => format!("created {}", shown(&c.path)),
            ChangeKind::Modified => format!("wrote {}", shown(&c.path)),
            ChangeKind::Deleted => format!("deleted {}", shown(&c.path)),
            ChangeKind::Renamed => format!(
                "renamed {} to {}",
                shown(c.from.as_deref().unwrap_or("?")),
                shown(&c.path)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ");
    if changes.len() > most {
        said.push_str(&format!(" and {} more", changes.len() - most));
    }
    said
}

/// A change as a unified diff, given the contents of its versions (`None`: the version does
/// not exist, or is not text); `None` when there is nothing to show as text (a rename keeps the
/// content, a binary file has no lines).
pub fn change_diff(
    change: &FileChange,
    before: Option<&str>,
    after: Option<&str>,
) -> Option<String> {
    let path = &change.path;
    let lines = |text: &str| -> Vec<String> { text.lines().map(str::to_string).collect() };
    match change.kind {
        ChangeKind::Renamed => None,
        ChangeKind::Created => after.map(|after| crate::run::unified_diff(path, None, after)),
        ChangeKind::Modified => Some(crate::run::unified_diff(path, Some(before?), after?)),
        ChangeKind::Deleted => {
            let before = lines(before?);
            let mut diff = format!(
                "--- a/{path}\n+++ /dev/null\n@@ -1,{} +0,0 @@\n",
                before.len()
            );
            for line in before {
                diff.push('-');
                diff.push_str(&line);
                diff.push('\n');
            }
            Some(diff)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(hash: &str) -> FileVersion {
        FileVersion {
            hash: hash.into(),
            size: 1,
            stored: true,
        }
    }

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        files
            .iter()
            .map(|(p, h)| ((*p).to_string(), version(h)))
            .collect()
    }

    #[test]
    fn changes_are_created_modified_deleted_and_renamed() {
        let before = snapshot(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let after = snapshot(&[("a", "1"), ("b", "9"), ("e", "3"), ("f", "5")]);
        let changes = changes_between(&before, &after);
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.kind, c.from.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("b", ChangeKind::Modified, None),
                ("d", ChangeKind::Deleted, None),
                ("e", ChangeKind::Renamed, Some("c")),
                ("f", ChangeKind::Created, None),
            ]
        );
        assert_eq!(
            describe(&changes),
            "wrote b, deleted d, renamed c to e, created f"
        );
        assert!(changes_between(&before, &before).is_empty());
        assert_eq!(
            describe_at_most(&changes, 2),
            "wrote b, deleted d and 2 more"
        );
    }

    #[test]
    fn a_deleted_file_shows_as_its_lines_removed() {
        let deleted = FileChange {
            path: "tmp.log".into(),
            kind: ChangeKind::Deleted,
            from: None,
            before: Some(version("1")),
            after: None,
        };
        assert_eq!(
            change_diff(&deleted, Some("a\nb\n"), None).as_deref(),
            Some("--- a/tmp.log\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n")
        );
        assert_eq!(change_diff(&deleted, None, None), None);
    }

    #[test]
    fn empty_files_are_never_taken_for_renames() {
        let empty = |p: &str| {
            let version = FileVersion {
                hash: "sha256:e".into(),
                size: 0,
                stored: true,
            };
            (p.to_string(), version)
        };
        let before: Snapshot = [empty("a")].into_iter().collect();
        let after: Snapshot = [empty("b")].into_iter().collect();
        assert_eq!(
            describe(&changes_between(&before, &after)),
            "deleted a, created b"
        );
    }

    #[test]
    fn two_copies_deleted_and_one_created_make_one_rename_and_one_deletion() {
        let before = snapshot(&[("x", "7"), ("y", "7")]);
        let after = snapshot(&[("z", "7")]);
        let changes = changes_between(&before, &after);
        assert_eq!(describe(&changes), "deleted y, renamed x to z");
    }
}
