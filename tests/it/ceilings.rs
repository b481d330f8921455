//! Ceilings: whatever a workflow says, a command's output and a template's result are bounded,
//! in memory and in the log, and going past a bound is a clear error, not a flood.

use crate::support::{Env, step};

#[test]
fn a_max_output_above_the_ceiling_is_a_validation_error() {
    let env = Env::new();
    let wf = env.workflow(
        "big.yaml",
        "name: big\nsteps:\n  - id: flood\n    type: run_command\n    command: \"true\"\n    max_output: 18446744073709551615\n",
    );
    let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout.contains("flood") && out.stdout.contains("at most 8388608 bytes"),
        "{out}"
    );
}

/// Runs a command to its end and returns its exit code and the peak resident memory, in KiB,
/// of it and the processes it waited for (its supervisors and commands): `wait4` on that one
/// child, so other tests' processes do not count.
#[allow(unsafe_code)]
fn run_measured(mut command: std::process::Command) -> (i32, i64) {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start stepwise");
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: wait4 on our own child, with a zeroed rusage and status to fill.
    let (status, usage) = unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut usage);
        (status, usage)
    };
    // Reaped above: the handle must not wait again.
    std::mem::forget(child);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
fn a_flood_of_output_costs_neither_memory_nor_database() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let wf = env.workflow(
        "flood.yaml",
        "name: flood\nsteps:\n  - id: flood\n    type: run_command\n    command: \"head -c 300000000 /dev/zero\"\n",
    );
    let (code, peak) = run_measured(env.command(&[
        "run",
        wf.to_str().expect("utf-8"),
        "--workspace",
        env.ws.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 0);
    assert!(peak < 100 * 1024, "stepwise peaked at {peak} KiB");
    let run = env.database.first_run_id().expect("the run");
    let show = env.show(&run);
    let output = &step(&show, "flood")["output"];
    assert_eq!(output["stdout_truncated"], true);
    assert_eq!(
        output["stdout"].as_str().map(str::len),
        Some(1024 * 1024),
        "the default keeps 1 MiB"
    );
    let events = env.events(&run);
    let finished = events
        .iter()
        .find(|e| e["type"] == "OperationSucceeded")
        .expect("the command's result");
    assert_eq!(finished["data"]["result"]["stdout_bytes"], 300_000_000);
    let db_bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", env.db.display()))
                .ok()
                .map(|m| m.len())
        })
        .sum();
    assert!(
        db_bytes < 20 * 1024 * 1024,
        "the database grew to {db_bytes} bytes"
    );
}

#[test]
fn a_template_may_not_produce_more_than_its_ceiling() {
    let env = Env::new();
    // A constant that is too large is found at validation: no run starts.
    let constant = env.workflow(
        "constant.yaml",
        "name: huge\nsteps:\n  - id: blow\n    type: set\n    values:\n      v: \"${'x' * 100000000}\"\n",
    );
    let out = env.run(&constant, &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("step `blow`"), "{out}");
    assert!(out.stderr.contains("at most 4194304 bytes"), "{out}");
    assert_eq!(env.run_count(), 0);

    // Computed from an input, it fails the step when it runs, and nothing large is kept.
    let wf = env.workflow(
        "huge.yaml",
        "name: huge\ninputs:\n  n: {type: integer, default: 100000000}\nsteps:\n  - id: blow\n    type: set\n    values:\n      v: \"${'x' * inputs.n}\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let error = step(&show, "blow")["error"]
        .as_str()
        .expect("an error")
        .to_string();
    assert!(error.contains("at most 4194304 bytes"), "{error}");
    let size = std::fs::metadata(&env.db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(format!("{}-wal", env.db.display()))
            .map(|m| m.len())
            .unwrap_or(0);
    assert!(size < 10 * 1024 * 1024, "the log grew to {size} bytes");
}

#[test]
fn a_flood_saved_to_a_file_is_streamed_whole_and_never_held_in_memory() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let wf = env.workflow(
        "saved.yaml",
        "name: saved\nsteps:\n  - id: flood\n    type: run_command\n    command: \"head -c 200000000 /dev/zero; echo done >&2\"\n    max_output: 1000\n    save_output: true\n",
    );
    let (code, peak) = run_measured(env.command(&[
        "run",
        wf.to_str().expect("utf-8"),
        "--workspace",
        env.ws.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 0);
    assert!(peak < 100 * 1024, "stepwise peaked at {peak} KiB");
    let run = env.database.first_run_id().expect("the run");
    let show = env.show(&run);
    let output = &step(&show, "flood")["output"];
    assert_eq!(output["stdout"].as_str().map(str::len), Some(1000));
    let stdout_file = output["stdout_file"].as_str().expect("stdout_file");
    let stderr_file = output["stderr_file"].as_str().expect("stderr_file");
    assert!(
        stdout_file.starts_with(&format!(".stepwise/output/{run}/flood-")),
        "{stdout_file}"
    );
    let saved = std::fs::metadata(env.ws.join(stdout_file)).expect("the saved stdout");
    assert_eq!(saved.len(), 200_000_000, "the whole stream was saved");
    assert_eq!(env.read(stderr_file).as_deref(), Some("done\n"));
    let db_bytes = std::fs::metadata(&env.db).map_or(0, |m| m.len())
        + std::fs::metadata(format!("{}-wal", env.db.display())).map_or(0, |m| m.len());
    assert!(
        db_bytes < 10 * 1024 * 1024,
        "the database grew to {db_bytes} bytes"
    );
}

/// Saved output replaces what is at its path, and never writes through it: an earlier command
/// of the run can plant links, hard or symbolic, where a later step's output will be saved.
#[test]
fn saved_output_never_writes_through_a_link_planted_at_its_path() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    env.write("precious.txt", "precious\n");
    let wf = env.workflow(
        "links.yaml",
        "name: links\nsteps:\n  - id: first\n    type: run_command\n    command: \"echo first\"\n    save_output: true\n  - id: plant\n    type: run_command\n    needs: [first]\n    command: \"for d in .stepwise/output/*; do for i in $(seq 1 60); do if [ $((i % 2)) = 0 ]; then ln -f precious.txt $d/save-$i.stdout; ln -f precious.txt $d/save-$i.stderr; else ln -sf ../../../precious.txt $d/save-$i.stdout; ln -sf ../../../precious.txt $d/save-$i.stderr; fi; done; done\"\n  - id: save\n    type: run_command\n    needs: [plant]\n    command: \"echo overwritten; echo err >&2\"\n    save_output: true\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("precious.txt").as_deref(), Some("precious\n"));
    let show = env.show(&out.run_id());
    let stdout_file = step(&show, "save")["output"]["stdout_file"]
        .as_str()
        .expect("stdout_file")
        .to_string();
    assert_eq!(env.read(&stdout_file).as_deref(), Some("overwritten\n"));
}
