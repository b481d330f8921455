use super::*;
use std::os::unix::fs::{PermissionsExt, symlink};

use crate::sandbox::temp_workspace as workspace;

fn hash(s: &str) -> String {
    content_hash(s.as_bytes())
}

#[test]
fn reads_a_text_file_with_its_hash() {
    let (_d, ws) = workspace();
    std::fs::create_dir(ws.root().join("src")).unwrap();
    std::fs::write(ws.root().join("src/a.py"), "print(1)\n").unwrap();
    assert_eq!(
        read_file(&ws, "src/a.py", false).unwrap(),
        OperationResult::FileRead {
            exists: true,
            content: "print(1)\n".into(),
            hash: Some(hash("print(1)\n")),
        }
    );
}

#[test]
fn a_missing_file_is_an_error_unless_missing_is_ok() {
    let (_d, ws) = workspace();
    let err = read_file(&ws, "nope.txt", false).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::NotFound);
    assert_eq!(
        err.message,
        "file `nope.txt` does not exist in the workspace"
    );
    assert_eq!(
        read_file(&ws, "nope.txt", true).unwrap(),
        OperationResult::FileRead {
            exists: false,
            content: String::new(),
            hash: None,
        }
    );
}

#[test]
fn a_small_read_leaves_a_larger_file_to_be_read_elsewhere_and_answers_the_rest() {
    let (_d, ws) = workspace();
    std::fs::write(ws.root().join("small.txt"), "12345678").unwrap();
    std::fs::write(ws.root().join("large.txt"), "123456789").unwrap();
    assert_eq!(
        read_small_file(&ws, "small.txt", false, 8),
        Some(read_file(&ws, "small.txt", false)),
        "at the limit: read, as `read_file` reads it"
    );
    assert_eq!(read_small_file(&ws, "large.txt", false, 8), None);
    // What is not a regular file over the limit is answered here, errors included.
    assert_eq!(
        read_small_file(&ws, "nope.txt", true, 8),
        Some(read_file(&ws, "nope.txt", true))
    );
    let missing = read_small_file(&ws, "nope.txt", false, 8).unwrap();
    assert_eq!(missing.unwrap_err().kind, OperationErrorKind::NotFound);
    std::fs::create_dir(ws.root().join("dir")).unwrap();
    let dir = read_small_file(&ws, "dir", false, 0).unwrap();
    assert!(dir.unwrap_err().message.contains("is a directory"));
    symlink(ws.root().join("large.txt"), ws.root().join("link")).unwrap();
    let link = read_small_file(&ws, "link", false, 100).unwrap();
    assert_eq!(link.unwrap_err().kind, OperationErrorKind::Sandbox);
}

#[test]
fn refuses_non_utf8_and_directories() {
    let (_d, ws) = workspace();
    std::fs::write(ws.root().join("bin"), [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(
        read_file(&ws, "bin", false).unwrap_err().kind,
        OperationErrorKind::NotText
    );
    std::fs::create_dir(ws.root().join("dir")).unwrap();
    let err = read_file(&ws, "dir", true).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Io);
    assert_eq!(err.message, "`dir` is a directory, not a file");
}

#[test]
fn a_fifo_in_place_of_a_file_is_refused_at_once_not_waited_on() {
    let (_d, ws) = workspace();
    nix::unistd::mkfifo(
        &ws.root().join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    // Nobody writes to it: a blocking open would never return.
    let err = read_file(&ws, "pipe", false).unwrap_err();
    assert_eq!(err.message, "`pipe` is not a regular file");
    assert!(current_hash(&ws, "pipe").is_err());
}

#[test]
fn reading_through_an_escaping_symlink_is_a_sandbox_error() {
    let (_d, ws) = workspace();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    symlink(outside.path().join("secret"), ws.root().join("link")).unwrap();
    assert_eq!(
        read_file(&ws, "link", false).unwrap_err().kind,
        OperationErrorKind::Sandbox
    );
}

#[test]
fn write_creates_the_file_and_its_parent_directories() {
    let (_d, ws) = workspace();
    let result = write_file(&ws, "a/b/c.txt", None, "hello", &hash("hello")).unwrap();
    assert_eq!(
        result,
        OperationResult::FileWritten {
            before_hash: None,
            after_hash: hash("hello"),
            recovered: false,
            changes: Vec::new(),
        }
    );
    assert_eq!(
        std::fs::read_to_string(ws.root().join("a/b/c.txt")).unwrap(),
        "hello"
    );
    // No temp file left behind.
    assert_eq!(std::fs::read_dir(ws.root().join("a/b")).unwrap().count(), 1);
}

#[test]
fn write_replaces_a_file_with_the_expected_hash_and_keeps_its_permissions() {
    let (_d, ws) = workspace();
    let file = ws.root().join("run.sh");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o750)).unwrap();
    let result = write_file(&ws, "run.sh", Some(&hash("old")), "new", &hash("new")).unwrap();
    assert_eq!(
        result,
        OperationResult::FileWritten {
            before_hash: Some(hash("old")),
            after_hash: hash("new"),
            recovered: false,
            changes: Vec::new(),
        }
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o750);
}

#[test]
fn a_hash_mismatch_is_a_conflict_and_writes_nothing() {
    let (_d, ws) = workspace();
    std::fs::create_dir(ws.root().join("src")).unwrap();
    let file = ws.root().join("src/a.py");
    std::fs::write(&file, "theirs").unwrap();
    let err = write_file(&ws, "src/a.py", Some(&hash("base")), "mine", &hash("mine")).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Conflict);
    assert_eq!(
        err.message,
        format!(
            "`src/a.py` changed since the proposal (expected {}, found {}); nothing was written",
            hash("base"),
            hash("theirs")
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "theirs");

    let err = write_file(&ws, "src/a.py", None, "mine", &hash("mine")).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Conflict);
    assert!(err.message.contains("expected no file"), "{}", err.message);
    let err = write_file(&ws, "new.py", Some(&hash("x")), "mine", &hash("mine")).unwrap_err();
    assert!(err.message.contains("found no file"), "{}", err.message);
    assert!(!ws.root().join("new.py").exists());
    assert_eq!(std::fs::read_dir(ws.root().join("src")).unwrap().count(), 1);
}

#[test]
fn a_content_hash_that_does_not_match_the_content_writes_nothing() {
    let (_d, ws) = workspace();
    let err = write_file(&ws, "a.txt", None, "hello", &hash("other")).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Io);
    assert!(!ws.root().join("a.txt").exists());
}

#[test]
fn writing_through_an_escaping_symlink_is_refused_and_writes_nothing_outside() {
    let (_d, ws) = workspace();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), ws.root().join("out")).unwrap();
    symlink(outside.path().join("new.txt"), ws.root().join("dangling")).unwrap();

    let err = write_file(&ws, "out/x.txt", None, "pwned", &hash("pwned")).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Sandbox);
    let err = write_file(&ws, "dangling", None, "pwned", &hash("pwned")).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Sandbox);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_link_inside_the_workspace_is_refused_so_policy_sees_the_real_path() {
    let (_d, ws) = workspace();
    std::fs::create_dir(ws.root().join("ci")).unwrap();
    std::fs::write(ws.root().join("ci/config.yml"), "old").unwrap();
    std::fs::create_dir(ws.root().join("docs")).unwrap();
    symlink(ws.root().join("ci/config.yml"), ws.root().join("docs/x.md")).unwrap();
    let err = write_file(&ws, "docs/x.md", Some(&hash("old")), "new", &hash("new")).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Sandbox);
    assert!(err.message.contains("ci/config.yml"), "{}", err.message);
    assert_eq!(
        std::fs::read_to_string(ws.root().join("ci/config.yml")).unwrap(),
        "old"
    );
    let err = read_file(&ws, "docs/x.md", false).unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Sandbox);
    // The file itself, named by its own path, is fine.
    write_file(
        &ws,
        "ci/config.yml",
        Some(&hash("old")),
        "new",
        &hash("new"),
    )
    .unwrap();
}

#[test]
fn recover_write_tells_applied_from_not_applied_from_conflict() {
    let (_d, ws) = workspace();
    let file = ws.root().join("f.txt");

    // Never created, and the write would create it.
    assert_eq!(
        recover_write(&ws, "f.txt", None, &hash("new")),
        WriteRecovery::NotApplied
    );

    std::fs::write(&file, "old").unwrap();
    assert_eq!(
        recover_write(&ws, "f.txt", Some(&hash("old")), &hash("new")),
        WriteRecovery::NotApplied
    );

    std::fs::write(&file, "new").unwrap();
    assert_eq!(
        recover_write(&ws, "f.txt", Some(&hash("old")), &hash("new")),
        WriteRecovery::AlreadyApplied(OperationResult::FileWritten {
            before_hash: Some(hash("old")),
            after_hash: hash("new"),
            recovered: true,
            changes: Vec::new(),
        })
    );

    std::fs::write(&file, "someone else").unwrap();
    match recover_write(&ws, "f.txt", Some(&hash("old")), &hash("new")) {
        WriteRecovery::Conflict(err) => assert_eq!(err.kind, OperationErrorKind::Conflict),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn recover_write_removes_leftover_temp_files() {
    let (_d, ws) = workspace();
    std::fs::write(ws.root().join("f.txt"), "old").unwrap();
    std::fs::write(ws.root().join(".f.txt.stepwise-tmp-1-0"), "half").unwrap();
    std::fs::write(ws.root().join(".g.txt.stepwise-tmp-1-0"), "other file's").unwrap();
    recover_write(&ws, "f.txt", Some(&hash("old")), &hash("new"));
    assert!(!ws.root().join(".f.txt.stepwise-tmp-1-0").exists());
    assert!(ws.root().join(".g.txt.stepwise-tmp-1-0").exists());
}
