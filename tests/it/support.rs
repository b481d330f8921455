//! Shared helpers: a temp workspace and database per test, the real `stepwise` binary, and
//! small readers for its JSON output. Helpers run things and parse what comes back; they never
//! assert: every check a test makes is written in the test.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

/// The `stepwise` binary built next to this test executable (`target/debug/stepwise`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/debug/deps/it-<hash> → target/debug/stepwise
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let bin = debug.join(format!("stepwise{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        panic!(
            "{} does not exist; build it first: cargo build -p stepwise-cli",
            bin.display()
        );
    }
    bin
}

/// Writes a workflow file into `dir` and returns its path.
pub fn workflow(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write the workflow file");
    path
}

/// One test's world: a temp directory holding the workspace (`ws/`), the database and the
/// (absent unless written) user policy file. Workflow files go beside the workspace, not in it.
pub struct Env {
    /// Removed (with everything in it) when the test ends.
    _dir: TempDir,
    /// The workspace, canonical (so paths compare with what the engine records).
    pub ws: PathBuf,
    pub db: PathBuf,
    /// The test's database, on the backend the suite runs on: the file at `db`, or its own
    /// PostgreSQL database (`STEPWISE_TEST_BACKEND=postgres`; then `db` is never made).
    pub database: crate::backend::TestDb,
    pub user_policy: PathBuf,
    /// Extra variables for the `stepwise` process.
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("stepwise-it-")
            .tempdir()
            .expect("create a temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let ws = root.join("ws");
        std::fs::create_dir(&ws).expect("create the workspace");
        std::fs::create_dir_all(root.join("config").join("stepwise"))
            .expect("create the config directory");
        Env {
            db: root.join("stepwise.db"),
            database: crate::backend::TestDb::new(root.join("stepwise.db")),
            // The default location under the test's own config directory: optional, as for a
            // user who never wrote one.
            user_policy: root.join("config").join("stepwise").join("policy.yaml"),
            ws,
            _dir: dir,
            vars: Vec::new(),
        }
    }

    /// The temp directory that holds the workspace: "outside" for sandbox tests.
    pub fn root(&self) -> PathBuf {
        self.ws
            .parent()
            .expect("the workspace has a parent")
            .to_path_buf()
    }

    /// Writes a workflow file beside the workspace.
    pub fn workflow(&self, name: &str, yaml: &str) -> PathBuf {
        workflow(&self.root(), name, yaml)
    }

    /// Writes `.stepwise/policy.yaml` in the workspace with these rules (YAML list items).
    pub fn workspace_policy(&self, rules: &str) {
        let dir = self.ws.join(".stepwise");
        std::fs::create_dir_all(&dir).expect("create .stepwise");
        std::fs::write(dir.join("policy.yaml"), format!("rules:\n{rules}"))
            .expect("write the policy");
    }

    /// A workspace policy that lets edits and commands run without asking, whatever
    /// environment they set or pass through and whatever shell features they use.
    pub fn allow_everything(&self) {
        self.workspace_policy(
            "  - allow: edit_file\n  - allow: run_command\n    env: \"*\"\n    pass_env: \"*\"\n    unchecked_shell: true\n",
        );
    }

    /// Writes a workspace file (parents created) and returns its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.ws.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, content).expect("write a workspace file");
        path
    }

    /// A workspace file's content, `None` when it does not exist.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.ws.join(rel)).ok()
    }

    /// `stepwise ARGS` with this test's database and user policy.
    pub fn stepwise(&self, args: &[&str]) -> Out {
        Out::from(self.command(args).output().expect("start stepwise"))
    }

    /// The `stepwise ARGS` command, set up with this test's database, user policy and
    /// variables, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .current_dir(self.root())
            .env("STEPWISE_DB", self.database.name())
            .env("XDG_CONFIG_HOME", self.root().join("config"))
            // This machine's own files for a PostgreSQL database go under the test's directory.
            .env("XDG_DATA_HOME", self.root().join("data"))
            .env_remove("STEPWISE_USER_POLICY")
            .env_remove("STEPWISE_SETTINGS")
            .env_remove("STEPWISE_SYNC")
            .env_remove("STEPWISE_LOG");
        for (name, value) in &self.vars {
            cmd.env(name, value);
        }
        cmd
    }

    /// The id of the first run recorded, waiting up to `limit` for it (a run started in the
    /// background; the database may be being created meanwhile). `None` if none appeared.
    pub fn first_run_id(&self, limit: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let found = self.database.first_run_id();
            if found.is_some() || std::time::Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `stepwise run WORKFLOW --workspace WS --json` in the background.
    pub fn spawn_run(&self, workflow: &Path) -> Background {
        let wf = workflow.to_str().expect("utf-8 path");
        let ws = self.ws.to_str().expect("utf-8 path");
        self.spawn(&["run", wf, "--workspace", ws, "--json"])
    }

    /// `stepwise run WORKFLOW --workspace WS --json EXTRA...`.
    pub fn run(&self, workflow: &Path, extra: &[&str]) -> Out {
        let wf = workflow.to_str().expect("utf-8 path");
        let ws = self.ws.to_str().expect("utf-8 path");
        let mut args = vec!["run", wf, "--workspace", ws, "--json"];
        args.extend_from_slice(extra);
        self.stepwise(&args)
    }

    /// `stepwise show RUN --json`, parsed.
    pub fn show(&self, run: &str) -> Value {
        self.stepwise(&["show", run, "--json"]).json()
    }

    /// `stepwise events RUN --json`, parsed.
    pub fn events(&self, run: &str) -> Vec<Value> {
        match self.stepwise(&["events", run, "--json"]).json() {
            Value::Array(events) => events,
            other => panic!("events --json is not a list: {other}"),
        }
    }

    /// `stepwise runs --json`, parsed: every run, newest first.
    pub fn runs(&self) -> Vec<Value> {
        self.stepwise(&["runs", "--json"])
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `stepwise approvals --json`, parsed.
    pub fn approvals(&self) -> Vec<Value> {
        match self.stepwise(&["approvals", "--json"]).json() {
            Value::Array(list) => list,
            other => panic!("approvals --json is not a list: {other}"),
        }
    }

    /// `stepwise approve RUN STEP --json EXTRA...`.
    pub fn approve(&self, run: &str, step: &str, extra: &[&str]) -> Out {
        let mut args = vec!["approve", run, step, "--json"];
        args.extend_from_slice(extra);
        self.stepwise(&args)
    }

    /// `stepwise reject RUN STEP --reason REASON --json`.
    pub fn reject(&self, run: &str, step: &str, reason: &str) -> Out {
        self.stepwise(&["reject", run, step, "--reason", reason, "--json"])
    }

    /// The SQLite database file, opened read-only, for a test that reads it with SQL (such
    /// a test is listed in `tests/postgres-skips.txt`: it cannot apply to PostgreSQL).
    pub fn db(&self) -> rusqlite::Connection {
        assert!(
            self.database.url.is_none(),
            "this test reads the SQLite file directly; list it in tests/postgres-skips.txt"
        );
        rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only")
    }

    /// How many events the database holds for a run (all runs when `None`).
    pub fn event_count(&self, run: Option<&str>) -> i64 {
        let count = match run {
            None => self.database.event_count(),
            Some(run) => self
                .database
                .with(|store| {
                    store
                        .run(&run.into())
                        .expect("read the run")
                        .map_or(0, |row| row.last_seq.get())
                })
                .unwrap_or(0),
        };
        i64::try_from(count).unwrap_or(i64::MAX)
    }

    /// How many runs the database holds (0 when it was never created).
    pub fn run_count(&self) -> i64 {
        i64::try_from(self.database.runs().len()).unwrap_or(i64::MAX)
    }
}

/// What a `stepwise` invocation did.
pub struct Out {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(output: Output) -> Out {
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Out {
    /// Stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// The run id printed by `run --json` (and by approve/reject/... `--json`).
    pub fn run_id(&self) -> String {
        self.json()["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run_id in the output:\n{self}"))
            .to_string()
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A step of `show --json`, by id.
pub fn step<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step `{id}` in {show:#}"))
}

/// The events of one type, in log order.
pub fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == event_type).collect()
}

/// The events of one type about one step, in log order.
pub fn of_step<'a>(events: &'a [Value], event_type: &str, step: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == event_type && e["data"]["step"] == step)
        .collect()
}

/// The `seq` of an event as a number.
pub fn seq(event: &Value) -> u64 {
    event["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {event}"))
}

/// The OS user, as `id -un` names it.
pub fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Reads a pid a command wrote into a file.
pub fn read_pid(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no pid file {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid file {} holds `{text}`: {e}", path.display()))
}

/// Waits (up to `limit`) for a process to have ended, on a pidfd rather than by polling.
/// Returns whether it ended. A process that is gone already counts as ended; so does a zombie
/// no one reaps (it runs nothing).
pub fn wait_until_ended(pid: i32, limit: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // ESRCH: no such process.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let fd = fd as libc::c_int;
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd; the descriptor is ours and closed right after.
    let ready = unsafe { libc::poll(&mut poll, 1, ms) };
    // SAFETY: closing the descriptor pidfd_open gave us.
    unsafe { libc::close(fd) };
    ready == 1
}

/// Whether a process exists and is not a zombie.
pub fn is_running(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A `stepwise` process running in the background, its output going to files.
pub struct Background {
    child: std::process::Child,
    /// Where stdout went (`None`: piped to the test).
    stdout: Option<PathBuf>,
    stderr: PathBuf,
}

impl Env {
    /// Starts `stepwise ARGS` in the background with this test's database and user policy.
    pub fn spawn(&self, args: &[&str]) -> Background {
        let n = BACKGROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = self.root().join(format!("bg-{n}.out"));
        let mut cmd = self.background_command(args, n);
        cmd.stdout(std::fs::File::create(&stdout).expect("stdout file"));
        Background {
            child: cmd.spawn().expect("start stepwise"),
            stdout: Some(stdout),
            stderr: self.root().join(format!("bg-{n}.err")),
        }
    }

    /// Starts `stepwise ARGS` in the background with its stdout read line by line.
    pub fn spawn_piped(&self, args: &[&str]) -> (Background, Lines) {
        let n = BACKGROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cmd = self.background_command(args, n);
        cmd.stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start stepwise");
        let lines = Lines::of(child.stdout.take().expect("piped stdout"));
        let background = Background {
            child,
            stdout: None,
            stderr: self.root().join(format!("bg-{n}.err")),
        };
        (background, lines)
    }

    fn background_command(&self, args: &[&str], n: usize) -> Command {
        let stderr = self.root().join(format!("bg-{n}.err"));
        let mut cmd = self.command(args);
        cmd.stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        cmd
    }

    /// Makes a named pipe in the workspace: a command writes to it when it gets somewhere
    /// (`echo started > ready.fifo`) or reads from it to wait for the test (`cat go.fifo`).
    pub fn fifo(&self, name: &str) -> PathBuf {
        let path = self.ws.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        path
    }
}

static BACKGROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Background {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid")
    }

    /// Waits (up to `limit`) for it to exit, and what it printed; panics if it does not.
    pub fn finish(mut self, limit: Duration) -> Out {
        if !wait_until_ended(self.pid(), limit) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "stepwise did not exit within {limit:?}:\n{}",
                self.output(-1)
            );
        }
        let status = self.child.wait().expect("reap stepwise");
        self.output(status.code().unwrap_or(-1))
    }

    /// SIGKILLs it and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it (SIGSTOP): it holds what it holds, but does nothing.
    pub fn freeze(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .expect("SIGSTOP");
    }

    fn output(&self, code: i32) -> Out {
        Out {
            code,
            stdout: self
                .stdout
                .as_ref()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits (up to `limit`) for a line written to a named pipe; `None` on timeout. Blocks on the
/// pipe rather than polling.
pub fn wait_for_fifo(path: &Path, limit: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = path.to_path_buf();
    std::thread::spawn(move || {
        let line = std::fs::read_to_string(&reader).unwrap_or_default();
        let _ = tx.send(line);
    });
    match rx.recv_timeout(limit) {
        Ok(line) => Some(line.trim().to_string()),
        Err(_) => {
            // Unblock the reader: open the pipe for writing and close it.
            let _ = std::fs::OpenOptions::new().write(true).open(path);
            None
        }
    }
}

/// Writes a line into a named pipe a command waits on (`cat go.fifo`), letting it go on.
pub fn release(path: &Path) {
    std::fs::write(path, "go\n").expect("write to the fifo");
}

/// Lines a process prints, read as they come (by a thread of their own).
pub struct Lines {
    rx: std::sync::mpsc::Receiver<(std::time::SystemTime, String)>,
}

impl Lines {
    pub fn of(stdout: std::process::ChildStdout) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((std::time::SystemTime::now(), line)).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line and when it arrived, waiting up to `limit`.
    pub fn next(&self, limit: Duration) -> Option<(std::time::SystemTime, String)> {
        self.rx.recv_timeout(limit).ok()
    }

    /// Reads lines until one satisfies `wanted`, up to `limit` in all.
    pub fn until(
        &self,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<(std::time::SystemTime, String)> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (at, line) = self.next(left)?;
            if wanted(&line) {
                return Some((at, line));
            }
        }
    }
}

/// CPU time (user + system) a process has used, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// A `sleep` duration no other process on the machine uses (`302.<pid><n>`): the argument
/// marks the processes a test starts, so that it can find them in `/proc` whatever became of
/// the pid files and parents they had.
pub fn sleep_mark(seconds: u32) -> String {
    let n = MARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{seconds}.{}{n:03}", std::process::id())
}

static MARKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The running (not zombie) processes that have `arg` as one of their arguments.
pub fn running_with_arg(arg: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        })
        .filter(|&pid| is_running(pid))
        .collect()
}

/// A process's parent, from `/proc/PID/stat` (`None` once it is gone).
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name: state, then the parent's pid.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Held by the tests that measure time or use much of the machine (soak, latency), so that no
/// two of them run side by side on a small machine: each measures the engine, not its
/// neighbour.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Env {
    /// How an engine opened by the test itself sees this test's database and user policy.
    pub fn engine_config(&self) -> stepwise_engine::EngineConfig {
        let mut config = stepwise_engine::EngineConfig::new(&self.db);
        config.shared = self
            .database
            .url
            .as_ref()
            .map(|url| stepwise_engine::SharedDatabase {
                url: url.clone(),
                password_env: None,
            });
        config.user_policy = Some(self.user_policy.clone());
        config
    }

    /// A request to start `workflow` in this test's workspace, as a test's engine makes it.
    pub fn start_request(&self, workflow: PathBuf) -> stepwise_engine::StartRun {
        stepwise_engine::StartRun {
            workflow_path: workflow,
            workspace: self.ws.clone(),
            inputs: Default::default(),
            trigger: "test".into(),
            max_parallel: None,
            budget_micro_usd: None,
            pauses: Default::default(),
            cause: None,
        }
    }
}

/// A runtime for a test that drives an engine in its own process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// How many threads this process has.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}
