//! Workspace-relative paths, checked without touching the filesystem.
//!
//! This is the first of two checks: it refuses absolute paths and `..` wherever a path is
//! written or rendered. The engine checks again when it performs an operation, following
//! symlinks, because only the filesystem knows where a link points.

use thiserror::Error;

/// Why a path cannot name something inside the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path `{0}` is absolute; paths are relative to the workspace")]
    Absolute(String),
    #[error("path `{0}` uses `..` and could leave the workspace")]
    ParentDir(String),
    #[error("path `{0}` contains a NUL byte")]
    Nul(String),
}

/// The directory where a workspace keeps its own policy.
pub const POLICY_DIR: &str = ".stepwise";

/// Whether a normalised workspace path is inside (or is) the workspace's `.stepwise/`
/// directory, compared case-insensitively (with Unicode case folding, as NTFS and APFS compare
/// names): on a case-insensitive filesystem `.STEPWISE/policy.yaml` is the policy file. On a
/// case-sensitive one, treating it so only asks a person once more.
pub fn is_in_policy_dir(path: &str) -> bool {
    let first = path.split(['/', '\\']).find(|p| !p.is_empty() && *p != ".");
    first.is_some_and(|name| {
        name.to_lowercase() == POLICY_DIR || name.to_uppercase() == POLICY_DIR.to_uppercase()
    })
}

/// Checks a workspace-relative path and returns it normalised: `.` segments and repeated or
/// trailing slashes removed, `.` for the workspace root itself.
pub fn normalize_workspace_path(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul(path.to_string()));
    }
    if path.starts_with('/') || path.starts_with('~') || looks_like_windows_absolute(path) {
        return Err(PathError::Absolute(path.to_string()));
    }
    let mut parts = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::ParentDir(path.to_string())),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Ok(".".to_string());
    }
    Ok(parts.join("/"))
}

fn looks_like_windows_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_dir_is_recognised_in_any_case() {
        for path in [
            ".stepwise",
            ".stepwise/policy.yaml",
            ".STEPWISE/policy.yaml",
            ".StepWise/POLICY.YAML",
            "./.stepwise/x",
            // U+017F LATIN SMALL LETTER LONG S uppercases to S, as NTFS compares it.
            ".\u{17f}tepwise/policy.yaml",
        ] {
            assert!(is_in_policy_dir(path), "{path}");
        }
        for path in [
            "stepwise/x",
            "docs/.stepwise/x",
            ".stepwise-tmp",
            "a.stepwise",
        ] {
            assert!(!is_in_policy_dir(path), "{path}");
        }
    }

    #[test]
    fn normalises_harmless_paths() {
        assert_eq!(
            normalize_workspace_path("./src//lib.rs").as_deref(),
            Ok("src/lib.rs")
        );
        assert_eq!(normalize_workspace_path(".").as_deref(), Ok("."));
        assert_eq!(normalize_workspace_path("docs/").as_deref(), Ok("docs"));
    }

    #[test]
    fn refuses_escapes() {
        assert!(matches!(
            normalize_workspace_path("../x"),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(
            normalize_workspace_path("a/../../x"),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(
            normalize_workspace_path("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            normalize_workspace_path("~/x"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            normalize_workspace_path(""),
            Err(PathError::Empty)
        ));
    }
}
