//! Searching a workspace directory's text files for lines matching a regular expression, with
//! ripgrep's own crates (`grep-regex`, `grep-searcher`) over the files a listing sees. Bounded
//! everywhere: the pattern's compiled size, the matches kept, each line's length, the size of
//! a file searched, and the bytes searched in all. Files the step may not read without asking
//! (`excluded`) are never opened, and binary files are left out.

use std::io::Read as _;

use cap_std::fs::{OpenOptions, OpenOptionsExt};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::sinks::Lossy;
use grep_searcher::{BinaryDetection, SearcherBuilder};
use stepwise_core::operation::{OperationError, OperationErrorKind, OperationResult, SearchMatch};

use super::list::walk_files;
use crate::sandbox::Workspace;

/// The most matching lines one search keeps (it says when there were more).
pub const MAX_MATCHES: usize = 200;
/// The longest line kept, in bytes; a longer one is cut.
const MAX_LINE_BYTES: usize = 300;
/// A larger file is not searched.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// A search stops after reading this much in all (and says it was cut).
const MAX_SEARCHED_BYTES: u64 = 64 * 1024 * 1024;
/// The most memory the compiled pattern may take.
const MAX_PATTERN_MEMORY: usize = 1024 * 1024;
/// The longest a search may take: a pattern that is slow on the text found stops there.
const MAX_SEARCH_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// The lines of the text files under `path` matching `pattern`, by path then line.
pub fn search_files(
    ws: &Workspace,
    pattern: &str,
    path: &str,
    glob: Option<&str>,
    excluded: &[String],
) -> Result<OperationResult, OperationError> {
    let matcher = RegexMatcherBuilder::new()
        .size_limit(MAX_PATTERN_MEMORY)
        .dfa_size_limit(MAX_PATTERN_MEMORY)
        .build(pattern)
        .map_err(|e| {
            OperationError::new(
                OperationErrorKind::Io,
                format!("the pattern cannot be searched for: {e}"),
            )
        })?;
    let excluded = exclusions(excluded)?;
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .build();
    let mut matches: Vec<SearchMatch> = Vec::new();
    let mut truncated = false;
    let mut searched: u64 = 0;
    let mut buffer = Vec::new();
    let deadline = std::time::Instant::now() + MAX_SEARCH_TIME;
    // Opened without following a link put in a file's place, and without blocking on a FIFO.
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    let cut = walk_files(ws, path, glob, |shown, inside| {
        if std::time::Instant::now() > deadline {
            truncated = true;
            return false;
        }
        if excluded.is_match(shown) {
            return true;
        }
        let Ok(file) = ws.dir().open_with(inside, &options) else {
            return true;
        };
        let Ok(meta) = file.metadata() else {
            return true;
        };
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
            return true;
        }
        if searched + meta.len() > MAX_SEARCHED_BYTES {
            truncated = true;
            return false;
        }
        buffer.clear();
        if file.take(MAX_FILE_BYTES).read_to_end(&mut buffer).is_err() {
            return true;
        }
        searched += buffer.len() as u64;
        let found = searcher.search_slice(
            &matcher,
            &buffer,
            Lossy(|line, text| {
                if matches.len() == MAX_MATCHES {
                    truncated = true;
                    return Ok(false);
                }
                matches.push(SearchMatch {
                    path: shown.to_string(),
                    line,
                    text: cut_line(text.trim_end_matches(['\n', '\r'])),
                });
                Ok(true)
            }),
        );
        // A file that cannot be searched is left out; the search goes on.
        let _ = found;
        !truncated
    })?;
    matches.sort_by(|a, b| (a.path.as_str(), a.line).cmp(&(b.path.as_str(), b.line)));
    Ok(OperationResult::FilesSearched {
        matches,
        truncated: truncated || cut,
    })
}

/// The globs of paths the search may not open.
fn exclusions(globs: &[String]) -> Result<GlobSet, OperationError> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let glob = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                OperationError::new(OperationErrorKind::Io, format!("glob `{glob}`: {e}"))
            })?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| OperationError::new(OperationErrorKind::Io, format!("exclusions: {e}")))
}

/// At most [`MAX_LINE_BYTES`] of a line, cut at a character, marked when cut.
fn cut_line(line: &str) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line.to_string();
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} […]", &line[..end])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::temp_workspace;

    fn found(result: OperationResult) -> (Vec<(String, u64, String)>, bool) {
        match result {
            OperationResult::FilesSearched { matches, truncated } => (
                matches
                    .into_iter()
                    .map(|m| (m.path, m.line, m.text))
                    .collect(),
                truncated,
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_are_found_in_text_files_never_in_excluded_binary_or_outside_ones() {
        let (dir, ws) = temp_workspace();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("secrets")).unwrap();
        std::fs::write(
            root.join("src/calc.py"),
            "def add(a, b):\n    return a - b\n",
        )
        .unwrap();
        std::fs::write(root.join("src/blob.bin"), b"def add\0binary").unwrap();
        std::fs::write(root.join("secrets/key.txt"), "def add = hunter2\n").unwrap();
        std::fs::write(root.join("long.txt"), format!("def {}\n", "x".repeat(1000))).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("o.txt"), "def add outside\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("o.txt"), root.join("o.txt")).unwrap();

        let (matches, truncated) =
            found(search_files(&ws, r"def\s+\w+", ".", None, &["secrets/**".into()]).unwrap());
        assert!(!truncated);
        let places: Vec<(&str, u64)> = matches.iter().map(|(p, l, _)| (p.as_str(), *l)).collect();
        assert_eq!(places, [("long.txt", 1), ("src/calc.py", 1)]);
        assert!(matches[0].2.ends_with(" […]") && matches[0].2.len() < 320);
        assert_eq!(matches[1].2, "def add(a, b):");
        // A glob narrows it; a bad pattern is an error that says so.
        let (matches, _) = found(search_files(&ws, "return", ".", Some("**/*.py"), &[]).unwrap());
        assert_eq!(matches.len(), 1);
        let error = search_files(&ws, "(", ".", None, &[]).unwrap_err();
        assert!(error.message.contains("pattern"), "{error:?}");
        assert_eq!(
            search_files(&ws, "x", "link", None, &[]).unwrap_err().kind,
            OperationErrorKind::Sandbox
        );
    }

    #[test]
    fn a_search_keeps_at_most_its_ceiling_and_says_so() {
        let (dir, ws) = temp_workspace();
        std::fs::write(dir.path().join("many.txt"), "hit\n".repeat(MAX_MATCHES + 5)).unwrap();
        let (matches, truncated) = found(search_files(&ws, "hit", ".", None, &[]).unwrap());
        assert_eq!(matches.len(), MAX_MATCHES);
        assert!(truncated);
    }
}
