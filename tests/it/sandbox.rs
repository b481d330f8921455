//! The workspace sandbox: `..`, absolute paths, symlinks and symlinked directories that lead
//! outside are refused with a clear error, and nothing is ever written outside. Edits and
//! commands are allowed by policy here, so that what stops them is the sandbox alone.

use std::os::unix::fs::symlink;

use serde_json::Value;

use crate::support::{Env, of_type, step};

#[test]
fn literal_paths_leaving_the_workspace_are_refused_at_validation() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "escape.yaml",
        r#"name: escape
steps:
  - id: up
    type: read_file
    path: ../x
  - id: passwd
    type: read_file
    path: /etc/passwd
  - id: write_up
    type: edit_file
    path: sub/../../x
    content: pwned
  - id: write_abs
    type: edit_file
    path: /tmp/x
    content: pwned
  - id: home
    type: read_file
    path: ~/.bashrc
  - id: cwd_up
    type: run_command
    cwd: ../
    command: ["touch", "ran"]
"#,
    );
    let file = wf.display();
    let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            format!(
                "{file}:5:5: step `up`: `path`: path `../x` uses `..` and could leave the workspace"
            ),
            format!(
                "{file}:8:5: step `passwd`: `path`: path `/etc/passwd` is absolute; paths are relative to the workspace"
            ),
            format!(
                "{file}:11:5: step `write_up`: `path`: path `sub/../../x` uses `..` and could leave the workspace"
            ),
            format!(
                "{file}:15:5: step `write_abs`: `path`: path `/tmp/x` is absolute; paths are relative to the workspace"
            ),
            format!(
                "{file}:19:5: step `home`: `path`: path `~/.bashrc` is absolute; paths are relative to the workspace"
            ),
            format!(
                "{file}:22:5: step `cwd_up`: `cwd`: path `../` uses `..` and could leave the workspace"
            ),
        ]
    );

    let run = env.run(&wf, &[]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(env.run_count(), 0, "nothing was started");
    assert!(!env.root().join("x").exists() && !env.root().join("ran").exists());
}

#[test]
fn a_templated_path_rendering_outside_fails_at_run_time_and_writes_nothing() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "templated.yaml",
        r#"
name: templated
inputs:
  target: { type: string, default: ../escape.txt }
  source: { type: string, default: /etc/passwd }
steps:
  - id: write
    type: edit_file
    path: ${inputs.target}
    content: pwned
  - id: read
    type: read_file
    path: ${inputs.source}
  - id: sneaky
    type: edit_file
    path: sub/${inputs.target}
    content: pwned
"#,
    );
    let validated = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_eq!(
        validated.code, 0,
        "a template cannot be judged before it is rendered: {validated}"
    );

    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let write = step(&show, "write");
    assert_eq!(write["status"], "failed");
    assert_eq!(
        write["error"],
        "`path`: path `../escape.txt` uses `..` and could leave the workspace"
    );
    let read = step(&show, "read");
    assert_eq!(
        read["error"],
        "`path`: path `/etc/passwd` is absolute; paths are relative to the workspace"
    );
    assert_eq!(read["output"], Value::Null, "nothing was read");
    assert_eq!(
        step(&show, "sneaky")["error"],
        "`path`: path `sub/../escape.txt` uses `..` and could leave the workspace"
    );
    assert!(!env.root().join("escape.txt").exists());
    assert!(
        of_type(&env.events(&out.run_id()), "OperationStarted").is_empty(),
        "no operation was even requested"
    );

    let other = env.run(&wf, &["--input", "target=../../escape.txt"]);
    assert_eq!(other.code, 1, "{other}");
    assert!(!env.root().join("escape.txt").exists());
    assert!(
        !env.root()
            .parent()
            .expect("a parent")
            .join("escape.txt")
            .exists()
    );
}

#[test]
fn a_symlink_to_a_file_outside_can_be_neither_read_nor_edited() {
    let env = Env::new();
    env.allow_everything();
    let secret = env.root().join("secret.txt");
    std::fs::write(&secret, "top secret\n").expect("write the outside file");
    symlink(&secret, env.ws.join("link.txt")).expect("symlink");
    symlink(env.root().join("not-yet.txt"), env.ws.join("dangling.txt")).expect("symlink");
    let wf = env.workflow(
        "links.yaml",
        r#"
name: links
steps:
  - id: read
    type: read_file
    path: link.txt
  - id: edit
    type: edit_file
    path: link.txt
    content: overwritten
  - id: create
    type: edit_file
    path: dangling.txt
    content: created outside
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    for id in ["read", "edit"] {
        let s = step(&show, id);
        assert_eq!(s["status"], "failed", "{id}");
        assert_eq!(
            s["error"],
            format!(
                "path `link.txt` leads outside the workspace through a symlink to `{}`",
                secret.display()
            ),
            "{id}"
        );
    }
    let create = step(&show, "create");
    assert_eq!(create["status"], "failed");
    assert!(
        create["error"]
            .as_str()
            .is_some_and(|e| e.contains("leads outside the workspace")),
        "{create}"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        "top secret\n",
        "untouched"
    );
    assert!(!env.root().join("not-yet.txt").exists());
    let log = serde_json::to_string(&env.events(&out.run_id())).expect("json");
    assert!(
        !log.contains("top secret"),
        "the outside content never reached the log"
    );
    let writes = env
        .events(&out.run_id())
        .into_iter()
        .filter(|e| e["type"] == "OperationStarted" && e["data"]["request"]["kind"] == "write_file")
        .count();
    assert_eq!(writes, 0, "no write was even attempted");
}

#[test]
fn a_symlinked_directory_pointing_outside_refuses_paths_through_it() {
    let env = Env::new();
    env.allow_everything();
    let outside = env.root().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("inside.txt"), "outside content\n").expect("write");
    symlink(&outside, env.ws.join("out")).expect("symlink");
    std::fs::create_dir(env.ws.join("sub")).expect("mkdir");
    symlink("../..", env.ws.join("sub/up")).expect("symlink");
    let wf = env.workflow(
        "dir.yaml",
        r#"
name: dir
steps:
  - id: read
    type: read_file
    path: out/inside.txt
  - id: write
    type: edit_file
    path: out/new/deeper.txt
    content: pwned
  - id: climb
    type: edit_file
    path: sub/up/climbed.txt
    content: pwned
  - id: cwd
    type: run_command
    cwd: out
    command: ["touch", "ran"]
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    for (id, path) in [
        ("read", "out/inside.txt"),
        ("write", "out/new/deeper.txt"),
        ("climb", "sub/up/climbed.txt"),
    ] {
        let s = step(&show, id);
        assert_eq!(s["status"], "failed", "{id}");
        let error = s["error"].as_str().expect("an error");
        assert!(
            error.starts_with(&format!(
                "path `{path}` leads outside the workspace through a symlink"
            )),
            "{id}: {error}"
        );
    }
    let cwd = step(&show, "cwd");
    assert_eq!(cwd["status"], "failed");
    assert!(
        cwd["error"]
            .as_str()
            .is_some_and(|e| e.contains("path `out` leads outside the workspace")),
        "{cwd}"
    );
    assert!(!outside.join("new").exists());
    assert!(!outside.join("ran").exists(), "the command never ran");
    assert!(!env.root().join("climbed.txt").exists());
    assert!(
        !env.root()
            .parent()
            .expect("a parent")
            .join("climbed.txt")
            .exists()
    );
    assert_eq!(
        std::fs::read_dir(&outside).expect("list").count(),
        1,
        "only inside.txt is there"
    );
}

#[test]
fn a_path_through_an_inside_symlink_is_refused_so_policy_judges_the_real_file() {
    let env = Env::new();
    env.allow_everything();
    std::fs::create_dir(env.ws.join("real")).expect("mkdir");
    env.write("real/f.txt", "before\n");
    symlink("real", env.ws.join("alias")).expect("symlink");
    let wf = env.workflow(
        "inside.yaml",
        "name: inside\nsteps:\n  - id: edit\n    type: edit_file\n    path: alias/f.txt\n    content: \"after\\n\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("real/f.txt"),
        "the error names the real file: {out}"
    );
    assert_eq!(env.read("real/f.txt").as_deref(), Some("before\n"));
    assert!(
        std::fs::symlink_metadata(env.ws.join("alias"))
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    let wf = env.workflow(
        "real.yaml",
        "name: real\nsteps:\n  - id: edit\n    type: edit_file\n    path: real/f.txt\n    content: \"after\\n\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("real/f.txt").as_deref(), Some("after\n"));
}
