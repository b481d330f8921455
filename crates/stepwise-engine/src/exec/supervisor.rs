//! Commands run under a supervisor, so that nothing a command starts outlives it unseen.
//!
//! The supervisor is a process forked from the engine (not exec'd). It leads a session of its
//! own, starts the command in a process group of its own and becomes a *child subreaper*:
//! everything the command starts, even what detaches with `setsid` or a double fork, stays its
//! descendant. It kills that whole
//! tree when the command ends (background processes left behind included), when the engine
//! asks (cancel, timeout), and when the engine dies: it watches a pipe whose only writer is the
//! engine, so the engine's death, however sudden (SIGKILL), closes it. While anything of the
//! command may run it holds a lock file, so that an engine recovering the run after a crash can
//! tell when the command's processes are gone (see `driver::recovery`). The supervisor can be
//! killed itself (the command knows it as `$PPID`); the engine then kills what it left
//! (`orphans`).
//!
//! This module is the engine's side: preparing everything the supervisor needs before the
//! fork (it may not allocate after it), forking it, and reading what it reports. The code that
//! runs in the forked process is in `child`.

#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_int, pid_t};
use nix::fcntl::OFlag;

mod child;
mod orphans;

use child::{Child, supervise};
pub(crate) use orphans::{CommandFate, Reaped};

/// What the supervisor reports, one record of 5 bytes each: a kind and a value.
const STARTED: u8 = b'p';
const EXEC_FAILED: u8 = b'e';
const EXITED: u8 = b'x';
const SIGNALED: u8 = b's';
const KILLED: u8 = b'k';

/// A command running under its supervisor. Dropping it (or [`Supervised::stop`]) makes the
/// supervisor kill the command's whole tree.
pub(crate) struct Supervised {
    pub(crate) pid: pid_t,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    pub(crate) report: Option<OwnedFd>,
    control: Option<OwnedFd>,
    /// When the supervisor started, in clock ticks since boot (`orphans`).
    started: u64,
    /// The engine killed it because it was stopped.
    killed_stopped: bool,
    reaped: bool,
}

/// What the supervisor reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// The command's pid, once it started.
    pub(crate) command: Option<pid_t>,
    pub(crate) ended: Ended,
}

/// How the supervised command ended, from the supervisor's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
    /// Killed, with its tree, because the engine asked.
    Killed,
    /// It could not be started (`posix_spawn` failed with this errno).
    NotStarted {
        errno: i32,
    },
    /// The supervisor said nothing of its end (it was killed itself).
    Unknown,
}

impl Report {
    /// Reads the supervisor's records (all it wrote before it exited).
    pub(crate) fn parse(bytes: &[u8]) -> Report {
        let mut report = Report {
            command: None,
            ended: Ended::Unknown,
        };
        for record in bytes.chunks_exact(5) {
            let value = i32::from_le_bytes([record[1], record[2], record[3], record[4]]);
            report.ended = match record[0] {
                STARTED => {
                    report.command = Some(value);
                    continue;
                }
                EXEC_FAILED => Ended::NotStarted { errno: value },
                EXITED => Ended::Exited(value),
                SIGNALED => Ended::Signaled(value),
                KILLED => Ended::Killed,
                _ => continue,
            };
        }
        report
    }
}

impl Supervised {
    /// Tells the supervisor to kill the command's whole tree (it then reports `Killed`).
    pub(crate) fn stop(&mut self) {
        self.control = None;
    }

    /// Kills the supervisor if it is stopped (a stopped supervisor would neither report nor
    /// kill the tree: the command, or anyone, could hold it so forever). Once killed, it is
    /// dealt with as any killed supervisor (see [`Supervised::reap`]). Whether it was.
    pub(crate) fn kill_if_stopped(&mut self) -> bool {
        if !self.killed_stopped && !self.reaped && orphans::is_stopped(self.pid) {
            // Not reaped yet, so the pid is still this process's.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.killed_stopped = true;
        }
        self.killed_stopped
    }

    /// A descriptor that becomes readable when the supervisor exits (a pidfd), so that its end
    /// is known without waiting for the end of its report pipe: any process of the user can
    /// open that pipe (`/proc/PID/fd`) and hold it open. `None` before Linux 5.3.
    pub(crate) fn exit_watch(&self) -> Option<OwnedFd> {
        if self.reaped {
            return None;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. The
        // supervisor is this process's child and not reaped, so its pid is still its own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, libc::O_NONBLOCK) };
        let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: a descriptor just returned by the kernel, owned by nothing else.
        Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }

    /// Waits for the supervisor to exit (it does right after its report) and reaps it. If it
    /// was killed, first kills what it left (see `orphans`), and says how the command ended.
    pub(crate) fn reap(&mut self, report: &Report) -> Reaped {
        if self.reaped {
            return Reaped::default();
        }
        self.reaped = true;
        let mut reaped = orphans::reap(self.pid, self.started, report.command);
        reaped.stopped |= self.killed_stopped;
        reaped
    }
}

/// Returns once the process behind `exit_watch` (a pidfd from [`Supervised::exit_watch`]) has
/// exited; never, if the descriptor cannot be watched.
pub(crate) async fn exited(exit_watch: OwnedFd) {
    // SAFETY: the descriptor is moved into the `AsyncFd` and closed only when it is dropped,
    // after it is deregistered: nothing else can close it while it is registered.
    match unsafe { tokio::io::unix::AsyncFd::register(exit_watch) } {
        Ok(watch) => {
            let _ = watch.readable().await;
        }
        Err(_) => std::future::pending().await,
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
        if !self.reaped {
            // The supervisor exits within moments of the pipe closing; reap it off this thread
            // so that a long-lived engine keeps no zombies (and, if it was killed, so that
            // what it left is killed).
            let (pid, started) = (self.pid, self.started);
            self.reaped = true;
            let _ = std::thread::Builder::new()
                .name("stepwise-reap".into())
                .stack_size(256 * 1024)
                .spawn(move || orphans::reap(pid, started, None));
        }
    }
}

/// What to run.
pub(crate) struct Launch<'a> {
    pub(crate) program: &'a OsStr,
    pub(crate) args: &'a [OsString],
    pub(crate) env: &'a [(OsString, OsString)],
    pub(crate) cwd: &'a Path,
    /// Held by the supervisor while the command's tree may live.
    pub(crate) lock: Option<&'a Path>,
}

/// Everything the forked processes use, prepared before the fork (they may not allocate).
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    lock: Option<CString>,
}

/// How the supervisor starts the command: `posix_spawn` (a `vfork`-like clone, so that the
/// engine's large address space is not copied a second time), with stdio on the pipes, the
/// working directory, every other descriptor closed, a process group of its own, default
/// signal handling and an empty signal mask. Set up before the fork (it allocates), used by
/// the supervisor, freed by the engine after the fork.
struct SpawnPlan {
    actions: libc::posix_spawn_file_actions_t,
    attributes: libc::posix_spawnattr_t,
}

impl SpawnPlan {
    fn new(cwd: &CString, stdout: RawFd, stderr: RawFd, null: RawFd) -> io::Result<Box<SpawnPlan>> {
        let check = |rc: c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(rc))
            }
        };
        // SAFETY: zeroed structures are then initialised by their init functions before any
        // other use; they are destroyed in `Drop`, once and after init.
        unsafe {
            let mut plan = Box::new(SpawnPlan {
                actions: std::mem::zeroed(),
                attributes: std::mem::zeroed(),
            });
            check(libc::posix_spawn_file_actions_init(&mut plan.actions))?;
            check(libc::posix_spawnattr_init(&mut plan.attributes))?;
            let actions = &mut plan.actions;
            check(libc::posix_spawn_file_actions_adddup2(actions, null, 0))?;
            check(libc::posix_spawn_file_actions_adddup2(actions, stdout, 1))?;
            check(libc::posix_spawn_file_actions_adddup2(actions, stderr, 2))?;
            check(libc::posix_spawn_file_actions_addchdir_np(
                actions,
                cwd.as_ptr(),
            ))?;
            check(libc::posix_spawn_file_actions_addclosefrom_np(actions, 3))?;
            let attributes = &mut plan.attributes;
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGDEF
                | libc::POSIX_SPAWN_SETSIGMASK;
            check(libc::posix_spawnattr_setflags(
                attributes,
                flags as libc::c_short,
            ))?;
            check(libc::posix_spawnattr_setpgroup(attributes, 0))?;
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            check(libc::posix_spawnattr_setsigdefault(attributes, &all))?;
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::posix_spawnattr_setsigmask(attributes, &none))?;
            Ok(plan)
        }
    }
}

impl Drop for SpawnPlan {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `new` (a failed `new` never returns a plan).
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attributes);
        }
    }
}

/// Starts the command under a supervisor. An error here is the engine's (pipes, fork); a
/// program that cannot be started is reported as [`Ended::NotStarted`].
pub(crate) fn spawn(launch: &Launch<'_>) -> io::Result<Supervised> {
    let prepared = prepare(launch)?;
    let argv_ptrs = pointers(&prepared.argv);
    let envp_ptrs = pointers(&prepared.envp);
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let (control_r, control_w) = pipe()?;
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into();
    let plan = SpawnPlan::new(
        &prepared.cwd,
        stdout_w.as_raw_fd(),
        stderr_w.as_raw_fd(),
        null.as_raw_fd(),
    )?;
    let child = Child {
        program: prepared.program.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        actions: &plan.actions,
        attributes: &plan.attributes,
        lock: prepared
            .lock
            .as_ref()
            .map_or(std::ptr::null(), |l| l.as_ptr()),
        stdout: stdout_w.as_raw_fd(),
        stderr: stderr_w.as_raw_fd(),
        report: report_w.as_raw_fd(),
        control: control_r.as_raw_fd(),
        null: null.as_raw_fd(),
    };
    let forking = orphans::forking();
    // SAFETY: the child runs `supervise`, which makes async-signal-safe calls only and never
    // returns; everything it reads was prepared above and outlives the fork in its copy of the
    // address space (the lock `forking` holds included: the child never touches it).
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the forked child; see `supervise`.
        unsafe { supervise(&child) }
    }
    let started = forking.forked(pid);
    // The child's ends are the supervisor's alone now: only its tree may hold the output
    // pipes (their end is the tree's end) and only it the report pipe.
    drop((stdout_w, stderr_w, report_w, control_r, null, plan));
    Ok(Supervised {
        pid,
        stdout: Some(stdout_r),
        stderr: Some(stderr_r),
        report: Some(report_r),
        control: Some(control_w),
        started,
        killed_stopped: false,
        reaped: false,
    })
}

fn prepare(launch: &Launch<'_>) -> io::Result<Prepared> {
    let program = resolve(launch.program, launch.env, launch.cwd);
    let argv = std::iter::once(launch.program)
        .chain(launch.args.iter().map(OsString::as_os_str))
        .map(cstring)
        .collect::<io::Result<Vec<_>>>()?;
    let envp = launch
        .env
        .iter()
        .map(|(name, value)| {
            let mut pair = name.clone();
            pair.push("=");
            pair.push(value);
            cstring(&pair)
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Prepared {
        program: cstring(program.as_os_str())?,
        argv,
        envp,
        cwd: cstring(launch.cwd.as_os_str())?,
        lock: launch.lock.map(|l| cstring(l.as_os_str())).transpose()?,
    })
}

/// The program to `execve`: a name without a slash is looked up in the command's own `PATH`
/// (as a shell would), anything else is taken as it is (relative to the working directory).
fn resolve(program: &OsStr, env: &[(OsString, OsString)], cwd: &Path) -> PathBuf {
    if program.as_bytes().contains(&b'/') {
        return PathBuf::from(program);
    }
    let path = env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let dir = if dir.is_relative() {
            cwd.join(dir)
        } else {
            dir
        };
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    // Not found: execve fails with ENOENT and that is what is reported.
    PathBuf::from(program)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn cstring(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` contains a NUL byte", text.to_string_lossy()),
        )
    })
}

fn pointers(strings: &[CString]) -> Vec<*mut c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}
