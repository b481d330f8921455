#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use stepwise_core::checkpoint::{ChangeKind, Snapshot, changes_between, describe};

use super::{ignore_set, scan};
use crate::sandbox::temp_workspace;

/// A scan, and the contents it read, by hash.
fn look(
    ws: &crate::sandbox::Workspace,
    ignore: &[&str],
    max: u64,
    known: &HashMap<String, scan::Known>,
) -> (scan::Scanned, Vec<String>) {
    let globs: Vec<String> = ignore.iter().map(|g| (*g).to_string()).collect();
    let mut read = Vec::new();
    let scanned = scan::scan(
        ws,
        &ignore_set(&globs).unwrap(),
        max,
        known,
        &mut |hash, _| {
            read.push(hash);
            Ok(())
        },
    )
    .unwrap();
    (scanned, read)
}

fn paths(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.keys().map(String::as_str).collect()
}

#[test]
fn a_checkpoint_sees_what_gitignore_and_its_ignore_list_leave_and_never_git_or_stepwise() {
    let (dir, ws) = temp_workspace();
    let root = dir.path();
    for file in [
        "src/a.rs",
        ".env.example",
        "target/debug/out",
        "node_modules/x/index.js",
        "logs/today.log",
        ".git/HEAD",
        ".stepwise/policy.yaml",
        "docs/keep.md",
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, file).unwrap();
    }
    std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
    let (scanned, read) = look(
        &ws,
        &["node_modules/", "**/*.log"],
        1 << 20,
        &HashMap::new(),
    );
    assert_eq!(
        paths(&scanned.snapshot),
        [".env.example", ".gitignore", "docs/keep.md", "src/a.rs"]
    );
    // Every file was read once, and its content goes to the store.
    assert_eq!(read.len(), 4);
    assert!(scanned.snapshot.values().all(|v| v.stored));
}

#[test]
fn only_files_whose_stat_moved_are_read_again_and_changes_are_exact() {
    let (dir, ws) = temp_workspace();
    let root = dir.path();
    for (file, text) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
        std::fs::write(root.join(file), text).unwrap();
    }
    // Hashed well after they were written, so that their stat can be trusted.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (first, _) = look(&ws, &[], 1 << 20, &HashMap::new());
    let (again, read) = look(&ws, &[], 1 << 20, &first.known);
    assert!(read.is_empty(), "nothing moved, nothing read: {read:?}");
    assert_eq!(again.snapshot, first.snapshot);

    std::fs::write(root.join("b"), "two").unwrap();
    std::fs::remove_file(root.join("d")).unwrap();
    std::fs::rename(root.join("c"), root.join("e")).unwrap();
    std::fs::write(root.join("f"), "new").unwrap();
    let (after, read) = look(&ws, &[], 1 << 20, &again.known);
    // The renamed file is read again (its path is new); the untouched one is not.
    assert_eq!(read.len(), 3);
    let changes = changes_between(&again.snapshot, &after.snapshot);
    assert_eq!(
        describe(&changes),
        "wrote b, deleted d, renamed c to e, created f"
    );
    assert_eq!(changes[0].kind, ChangeKind::Modified);
}

#[test]
fn a_change_that_keeps_size_and_mtime_is_still_seen() {
    let (dir, ws) = temp_workspace();
    let file = dir.path().join("a");
    std::fs::write(&file, "aaaa").unwrap();
    // Hashed at once: its time is too close to the hash to be trusted next time.
    let (first, _) = look(&ws, &[], 1 << 20, &HashMap::new());
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "bbbb").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (after, _) = look(&ws, &[], 1 << 20, &first.known);
    assert_ne!(after.snapshot["a"].hash, first.snapshot["a"].hash);
}

#[test]
fn a_file_over_the_ceiling_is_hashed_but_not_stored() {
    let (dir, ws) = temp_workspace();
    std::fs::write(dir.path().join("big"), vec![b'x'; 5000]).unwrap();
    std::fs::write(dir.path().join("small"), "s").unwrap();
    let (scanned, read) = look(&ws, &[], 4096, &HashMap::new());
    assert_eq!(read.len(), 1);
    let big = &scanned.snapshot["big"];
    assert!(!big.stored);
    assert_eq!(big.size, 5000);
    assert_eq!(
        big.hash,
        stepwise_core::hash::content_hash(&vec![b'x'; 5000])
    );
}

#[test]
fn a_bad_ignore_glob_is_named() {
    let error = ignore_set(&["src/[".to_string()]).unwrap_err();
    assert!(error.contains("src/["), "{error}");
}

#[test]
fn a_fifo_or_a_link_put_where_a_file_was_is_refused_at_once() {
    let (dir, ws) = temp_workspace();
    nix::unistd::mkfifo(&dir.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
    let started = std::time::Instant::now();
    assert!(scan::hash_file(&ws, "pipe", 1 << 20).is_err());
    assert!(scan::hash_file(&ws, "link", 1 << 20).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // And the walk never takes them for files.
    let (scanned, _) = look(&ws, &[], 1 << 20, &HashMap::new());
    assert!(scanned.snapshot.is_empty(), "{:?}", scanned.snapshot.keys());
}

#[test]
fn ignoring_everything_turns_checkpoints_off() {
    let (dir, ws) = temp_workspace();
    std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
    std::fs::write(dir.path().join("src/deep/a.rs"), "a").unwrap();
    std::fs::write(dir.path().join("top.txt"), "t").unwrap();
    let (scanned, read) = look(&ws, &["**"], 1 << 20, &HashMap::new());
    assert!(scanned.snapshot.is_empty() && read.is_empty());
}

#[test]
fn a_gitignore_with_a_byte_that_is_not_utf8_still_ignores_and_unanchored_globs_match_anywhere() {
    let (dir, ws) = temp_workspace();
    for file in [
        "target/out.o",
        "a/node_modules/x.js",
        "node_modules/y.js",
        "src/keep.rs",
        "a/b/.git/HEAD",
        "x.tmp",
        "d/y.tmp",
    ] {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }
    std::fs::write(dir.path().join(".gitignore"), b"# caf\xe9\ntarget/\n").unwrap();
    let (scanned, _) = look(&ws, &["node_modules/", "*.tmp"], 1 << 20, &HashMap::new());
    assert_eq!(paths(&scanned.snapshot), [".gitignore", "src/keep.rs"]);
}
