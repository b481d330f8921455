//! Commands are started by a launcher the engine forks once, while it is small: whatever the
//! engine's size, each command runs under a small supervisor of its own; the launcher and its
//! spare supervisors can be killed or stopped without a command failing or escaping; and when
//! the engine dies, every running command's tree dies with it.

use std::time::Duration;

use crate::support::{
    Env, is_running, read_pid, release, running_with_arg, sleep_mark, step, wait_for_fifo,
    wait_until_ended,
};

const PATIENCE: Duration = Duration::from_secs(30);

/// What `/proc/PID/stat` says of a process: its parent and its session.
fn stat(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// The running children of `parent` named `name` (`/proc/PID/comm`).
fn children_named(parent: i32, name: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(ppid, _)| ppid == parent))
        .filter(|&pid| is_running(pid) && comm(pid) == name)
        .collect()
}

/// The engine's launcher (it is forked as the CLI starts): it leads a session of its own,
/// which a spare it just forked, still under its name for a moment, does not.
fn launcher_of(engine: i32) -> i32 {
    let launchers: Vec<i32> = children_named(engine, "stepwise-launch")
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|(_, session)| session == pid))
        .collect();
    assert_eq!(launchers.len(), 1, "the engine's launchers: {launchers:?}");
    launchers[0]
}

/// The spare supervisors of `engine` forked by `launcher` (still in its session), waiting up
/// to `limit` for one: the engine asks for the next spare as each command starts.
fn spares_of(engine: i32, launcher: i32, limit: Duration) -> Vec<i32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let spares: Vec<i32> = children_named(engine, "stepwise-superv")
            .into_iter()
            .filter(|&pid| stat(pid).is_some_and(|(_, session)| session == launcher))
            .collect();
        if !spares.is_empty() || std::time::Instant::now() >= deadline {
            return spares;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: i32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal");
}

/// A run whose first step starts a detached process and waits for the test; the steps after
/// it, which start together once it ends, print their name. All but one need a new supervisor
/// (the first's is kept for one of them): the launcher and its spare are asked for.
fn waiting_then(env: &Env, mark: &str, after: &[&str]) -> std::path::PathBuf {
    let mut yaml = format!(
        "name: relaunch\nsteps:\n  - id: first\n    type: run_command\n    command: \"(setsid sleep {mark} &); echo started > ready.fifo; cat go.fifo\"\n"
    );
    for id in after {
        yaml.push_str(&format!(
            "  - id: {id}\n    type: run_command\n    needs: [first]\n    command: \"echo {id} ran\"\n"
        ));
    }
    env.workflow("relaunch.yaml", &yaml)
}

/// Once the first step of [`waiting_then`] runs, sends `sig` to the engine's launcher and the
/// spare it forked (waiting for the next command), then lets the first step end. The launcher.
fn signal_launcher_and_spares(
    engine: &crate::support::Background,
    ready: &std::path::Path,
    go: &std::path::Path,
    sig: nix::sys::signal::Signal,
) -> i32 {
    assert_eq!(wait_for_fifo(ready, PATIENCE).as_deref(), Some("started"));
    let launcher = launcher_of(engine.pid());
    let spares = spares_of(engine.pid(), launcher, PATIENCE);
    assert!(!spares.is_empty(), "no spare supervisor was forked");
    for pid in spares.iter().chain([&launcher]) {
        signal(*pid, sig);
    }
    release(go);
    launcher
}

#[test]
fn a_killed_launcher_and_spare_are_replaced_and_the_next_commands_run() {
    let env = Env::new();
    env.allow_everything();
    let (ready, go) = (env.fifo("ready.fifo"), env.fifo("go.fifo"));
    let mark = sleep_mark(310);
    let wf = waiting_then(&env, &mark, &["second", "third"]);
    let engine = env.spawn_run(&wf);
    signal_launcher_and_spares(&engine, &ready, &go, nix::sys::signal::Signal::SIGKILL);

    let out = engine.finish(PATIENCE);
    assert_eq!(out.code, 0, "{out}");
    let run = env.first_run_id(PATIENCE).expect("the run");
    let show = env.show(&run);
    for id in ["second", "third"] {
        assert_eq!(step(&show, id)["output"]["stdout"], format!("{id} ran\n"));
    }
    // The first command's own supervisor was no spare: its detached process died with it.
    assert_eq!(running_with_arg(&mark), Vec::<i32>::new());
}

#[test]
fn a_stopped_launcher_and_spare_are_killed_and_hold_up_no_command() {
    let env = Env::new();
    env.allow_everything();
    let (ready, go) = (env.fifo("ready.fifo"), env.fifo("go.fifo"));
    let mark = sleep_mark(311);
    let wf = waiting_then(&env, &mark, &["second", "third", "fourth"]);
    let engine = env.spawn_run(&wf);
    let launcher =
        signal_launcher_and_spares(&engine, &ready, &go, nix::sys::signal::Signal::SIGSTOP);

    let started = std::time::Instant::now();
    let out = engine.finish(PATIENCE);
    assert_eq!(out.code, 0, "{out}");
    // The engine looks at a launcher that does not answer every 100 ms.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run waited on it"
    );
    assert!(
        wait_until_ended(launcher, PATIENCE),
        "the stopped launcher lives on"
    );
    let run = env.first_run_id(PATIENCE).expect("the run");
    assert_eq!(
        step(&env.show(&run), "fourth")["output"]["stdout"],
        "fourth ran\n"
    );
}

#[test]
fn a_sigkilled_engine_takes_every_running_commands_tree_with_it() {
    let env = Env::new();
    env.allow_everything();
    let branches = 4;
    let (detached, background) = (sleep_mark(312), sleep_mark(312));
    let mut yaml = String::from("name: many\nsteps:\n");
    for i in 0..branches {
        env.fifo(&format!("ready-{i}.fifo"));
        yaml.push_str(&format!(
            "  - id: b{i}\n    type: run_command\n    command: \"setsid sh -c 'echo $$ > d{i}.pid; exec sleep {detached}' & sleep {background} & while [ ! -s d{i}.pid ]; do :; done; echo started > ready-{i}.fifo; wait\"\n"
        ));
    }
    let wf = env.workflow("many.yaml", &yaml);
    let engine = env.spawn_run(&wf);
    for i in 0..branches {
        let fifo = env.ws.join(format!("ready-{i}.fifo"));
        assert_eq!(wait_for_fifo(&fifo, PATIENCE).as_deref(), Some("started"));
    }
    // A supervisor each (and maybe a spare), and the launcher: all die with the engine too.
    let supervisors = children_named(engine.pid(), "stepwise-superv");
    assert!(
        supervisors.len() >= branches,
        "supervisors: {supervisors:?}"
    );
    let backgrounds = running_with_arg(&background);
    assert_eq!(
        backgrounds.len(),
        branches,
        "background sleeps: {backgrounds:?}"
    );
    let mut doomed: Vec<i32> = (0..branches)
        .map(|i| read_pid(&env.ws.join(format!("d{i}.pid"))))
        .collect();
    doomed.extend(backgrounds);
    doomed.extend(supervisors);
    doomed.push(launcher_of(engine.pid()));

    engine.kill();
    for pid in doomed {
        assert!(
            wait_until_ended(pid, PATIENCE),
            "process {pid} ({}) outlived the engine",
            comm(pid)
        );
    }
    assert_eq!(running_with_arg(&detached), Vec::<i32>::new());
}

/// The engine's memory is not its commands' cost: a supervisor is a fork of the launcher,
/// which was forked before the engine grew, so it holds none of the engine's memory (before,
/// each command forked the engine itself, page tables and all).
#[test]
fn parallel_commands_each_run_under_a_small_supervisor_of_their_own() {
    let env = Env::new();
    env.allow_everything();
    env.write(
        "probe.sh",
        "s=$PPID; e=$(awk '{print $4}' /proc/$s/stat)\n\
         anon() { awk '/^RssAnon:/ {print $2}' /proc/$1/status; }\n\
         : > started-$1\n\
         n=0; while [ $(ls started-* | wc -l) -lt $2 ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n+1)); done\n\
         echo \"$1 $s $(anon $s) $(anon $e)\"\n",
    );
    let branches = 24;
    let mut yaml = format!("name: wide\nmax_parallel: {branches}\nsteps:\n");
    for i in 0..branches {
        yaml.push_str(&format!(
            "  - id: b{i}\n    type: run_command\n    command: \"exec sh probe.sh {i} {branches}\"\n"
        ));
    }
    // A workflow of 8 MB (comments): the engine holds its text, so it is large when the
    // commands run.
    let line = format!("# {}\n", "x".repeat(98));
    yaml.push_str(&line.repeat(80_000));
    let wf = env.workflow("wide.yaml", &yaml);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let mut supervisors = std::collections::BTreeSet::new();
    for i in 0..branches {
        let stdout = step(&show, &format!("b{i}"))["output"]["stdout"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let words: Vec<u64> = stdout
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [n, supervisor, supervisor_kb, engine_kb] = words[..] else {
            panic!("step b{i} printed `{stdout}`");
        };
        assert_eq!(n, i as u64, "step b{i} got another's output: `{stdout}`");
        assert!(
            engine_kb > 32 * 1024,
            "the engine holds only {engine_kb} kB"
        );
        assert!(
            supervisor_kb < 8 * 1024,
            "step b{i}'s supervisor holds {supervisor_kb} kB of the engine's {engine_kb} kB"
        );
        supervisors.insert(supervisor);
    }
    // All ran at once (each waited for all to start): none shared its supervisor.
    assert_eq!(supervisors.len(), branches, "a supervisor each");
}

/// A supervisor whose command ended is kept for the next command: a chain of commands runs
/// under one supervisor, with no fork between them. The next command finds nothing of the one
/// before: not its processes (killed as it ended), not its working directory or environment.
#[test]
fn a_chain_of_commands_runs_under_one_supervisor_and_finds_nothing_of_the_one_before() {
    let env = Env::new();
    env.allow_everything();
    std::fs::create_dir_all(env.ws.join("sub")).expect("sub");
    let mark = sleep_mark(313);
    let wf = env.workflow(
        "chain.yaml",
        &format!(
            "name: chain\nsteps:\n\
             \x20 - id: a\n    type: run_command\n    cwd: sub\n    env: {{ LEFT: behind }}\n    command: \"(setsid sleep {mark} &); echo $PPID > ../a.pid\"\n\
             \x20 - id: b\n    type: run_command\n    needs: [a]\n    command: \"echo $PPID > b.pid; pwd; printenv LEFT || echo unset\"\n\
             \x20 - id: c\n    type: run_command\n    needs: [b]\n    command: \"echo $PPID > c.pid\"\n"
        ),
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let pids: Vec<i32> = ["a", "b", "c"]
        .iter()
        .map(|id| read_pid(&env.ws.join(format!("{id}.pid"))))
        .collect();
    assert!(
        pids.iter().all(|&pid| pid == pids[0]),
        "supervisors: {pids:?}"
    );
    let workspace = std::fs::canonicalize(&env.ws).expect("workspace");
    assert_eq!(
        step(&show, "b")["output"]["stdout"],
        format!("{}\nunset\n", workspace.display())
    );
    assert_eq!(running_with_arg(&mark), Vec::<i32>::new());
}

/// A command that changes its supervisor (here its nice value, as `prlimit`, `taskset` or a
/// cgroup move would change something else) does not pass that on: the supervisor is not kept,
/// and the next command runs under a fresh one, at the engine's own priority.
#[test]
fn a_supervisor_a_command_changed_is_not_kept_for_the_next() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "renice.yaml",
        "name: renice\nsteps:\n\
         \x20 - id: a\n    type: run_command\n    command: \"renice -n 7 -p $PPID > /dev/null; echo $PPID > a.pid\"\n\
         \x20 - id: b\n    type: run_command\n    needs: [a]\n    command: \"echo $PPID > b.pid; nice\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let (a, b) = (
        read_pid(&env.ws.join("a.pid")),
        read_pid(&env.ws.join("b.pid")),
    );
    assert_ne!(a, b, "the changed supervisor ran the next command");
    let show = env.show(&out.run_id());
    // The engine runs at this test's priority.
    let ours = std::process::Command::new("nice").output().expect("nice");
    assert_eq!(
        step(&show, "b")["output"]["stdout"],
        String::from_utf8_lossy(&ours.stdout).as_ref(),
        "the next command inherited the change"
    );
}

/// A kept supervisor that is killed or stopped while it waits for a command (by another
/// step's command, say) is replaced: the command that would have gone to it runs all the
/// same, and a stopped one is killed.
fn a_kept_supervisor_that_is(signal_it: nix::sys::signal::Signal) {
    let env = Env::new();
    env.allow_everything();
    let (ready, go) = (env.fifo("ready.fifo"), env.fifo("go.fifo"));
    // `a` ends once `b` has started (so each has a supervisor of its own), its supervisor
    // kept; `b` runs until the test lets it go; then `c1` and `c2` start: each takes a kept
    // supervisor, `b`'s or `a`'s (one found stopped is replaced; one never taken again is
    // killed when the engine shuts down).
    let wf = env.workflow(
        "kept.yaml",
        "name: kept\nsteps:\n\
         \x20 - id: a\n    type: run_command\n    command: \"echo $PPID > a.pid; while [ ! -e b.started ]; do sleep 0.01; done\"\n\
         \x20 - id: b\n    type: run_command\n    command: \"touch b.started; echo started > ready.fifo; cat go.fifo\"\n\
         \x20 - id: c1\n    type: run_command\n    needs: [a, b]\n    command: \"echo c1 ran\"\n\
         \x20 - id: c2\n    type: run_command\n    needs: [a, b]\n    command: \"echo c2 ran\"\n",
    );
    let engine = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = env.first_run_id(PATIENCE).expect("the run");
    let deadline = std::time::Instant::now() + PATIENCE;
    while step(&env.show(&run), "a")["status"] != "succeeded" {
        assert!(std::time::Instant::now() < deadline, "`a` never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kept = read_pid(&env.ws.join("a.pid"));
    assert_eq!(comm(kept), "stepwise-superv", "`a`'s supervisor is kept");
    signal(kept, signal_it);
    release(&go);

    let out = engine.finish(PATIENCE);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&run);
    for id in ["c1", "c2"] {
        assert_eq!(step(&show, id)["output"]["stdout"], format!("{id} ran\n"));
    }
    assert!(
        wait_until_ended(kept, PATIENCE),
        "the kept supervisor lives on"
    );
}

#[test]
fn a_kept_supervisor_killed_while_it_waits_is_replaced() {
    a_kept_supervisor_that_is(nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn a_kept_supervisor_stopped_while_it_waits_is_killed_and_replaced() {
    a_kept_supervisor_that_is(nix::sys::signal::Signal::SIGSTOP);
}

/// A kept supervisor stopped while it waits, and never given another command before the run
/// ends, does not outlive the engine: the engine kills its idle supervisors when it shuts
/// down (a stopped one could not see its socket close).
#[test]
fn a_kept_supervisor_stopped_and_never_used_again_dies_with_the_engine() {
    use crate::fake_llm::{FakeProvider, env_with_fake_provider, openai_reply};
    let server = FakeProvider::start(vec![
        openai_reply("done", 1, 1).after(Duration::from_millis(1500)),
    ]);
    let env = env_with_fake_provider("openai", &server.base_url(), "k", "", "");
    env.allow_everything();
    let wf = env.workflow(
        "idle.yaml",
        "name: idle\nsteps:\n\
         \x20 - id: a\n    type: run_command\n    command: \"echo $PPID > a.pid\"\n\
         \x20 - id: ask\n    type: prompt\n    needs: [a]\n    model: m\n    prompt: hi\n",
    );
    let engine = env.spawn_run(&wf);
    let deadline = std::time::Instant::now() + PATIENCE;
    while env.read("a.pid").is_none_or(|p| p.trim().is_empty()) {
        assert!(std::time::Instant::now() < deadline, "`a` never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kept = read_pid(&env.ws.join("a.pid"));
    // Kept, idle, while the model takes its time: `a` has ended (its result is recorded,
    // after the checkpoint that follows the command), so its supervisor waits for another.
    let run = env.first_run_id(PATIENCE).expect("the run");
    let idle_deadline = std::time::Instant::now() + PATIENCE;
    while step(&env.show(&run), "a")["status"] != "succeeded" || comm(kept) != "stepwise-superv" {
        assert!(
            std::time::Instant::now() < idle_deadline,
            "`a`'s supervisor was not kept"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(kept, nix::sys::signal::Signal::SIGSTOP);
    let out = engine.finish(PATIENCE);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        wait_until_ended(kept, Duration::from_secs(5)),
        "the stopped idle supervisor outlived the engine"
    );
}
