//! The engine's part in containment: what a killed supervisor leaves behind, it kills.
//!
//! A supervisor is a process like any other: the command knows its pid (`$PPID`), runs as the
//! same user, and can SIGKILL it; so can anyone else. Its children then go to the nearest
//! *child subreaper* above it, or to init, where nothing would kill them. So while any
//! supervisor runs a command, the engine's process is a child subreaper itself (and stops
//! being one when none does, unless it was one before: a kept supervisor waiting for its next
//! command has no child to leave behind, and the embedding process's own orphans, WebKit's
//! say, must not become the engine's): a killed supervisor's orphans come to
//! the engine, which kills them, and whatever they leave, until none is left.
//!
//! The engine shares its process with others' children (in the app, WebKit's web and network
//! processes), so it must tell the dead supervisor's processes from those without doubt. Each
//! supervisor starts a session of its own, and a process can leave its session only for a new
//! one it leads, never to join another: so everything a command starts is in the supervisor's
//! session or in sessions its processes made, never in the engine's. The engine's processes
//! that are the command's are thus its children that are not in its own session, nor in
//! another supervisor's, nor in a launcher's, not a supervisor, and started after the dead
//! supervisor's command was asked for; everything descending from them; and every member of
//! the dead supervisor's session (a session's id is its leader's pid, never reused while a
//! member lives). WebKit's processes, and whatever the embedding process starts in its own
//! session, are none of these. Supervisors are forked by the launcher (`launcher`), but with
//! `CLONE_PARENT`: they are the engine's children, so all of this holds for them as if the
//! engine had forked them. The launcher's session holds only the launcher and the spare
//! supervisors it forked, which have no command yet; a spare is recorded as a supervisor
//! before it is given its command, and only then leaves for a session of its own.
//!
//! Children are reaped by pid only, never with `waitpid(-1)`, which would take other
//! children's statuses from those who wait for them (tokio, GLib).

#![allow(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use libc::pid_t;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How long the engine keeps killing what a killed supervisor left before it gives up (only a
/// process stuck in the kernel can resist that long).
const PATIENCE: Duration = Duration::from_secs(10);

/// The pause between two rounds: SIGKILL is delivered asynchronously, and a killed process's
/// children are handed over only once it has died.
const ROUND: Duration = Duration::from_millis(2);

/// The supervisors this process forked and has not reaped yet.
static SUPERVISORS: Mutex<Supervisors> = Mutex::new(Supervisors {
    live: Vec::new(),
    busy: Vec::new(),
    launchers: Vec::new(),
    made_subreaper: false,
});

struct Supervisors {
    live: Vec<pid_t>,
    /// Those of `live` that may have a command's tree under them: from before it is given a
    /// command until it reports the tree dead (and is kept) or is reaped.
    busy: Vec<pid_t>,
    /// The launchers (see `launcher`) this process forked and has not reaped: children of the
    /// engine in sessions of their own, never what a supervisor left.
    launchers: Vec<pid_t>,
    /// Whether the engine made this process a child subreaper (and so may undo it).
    made_subreaper: bool,
}

impl Supervisors {
    /// A supervisor reaped, or never given its command: no longer one of this process's.
    fn forget(&mut self, pid: pid_t) {
        self.live.retain(|&p| p != pid);
        self.busy.retain(|&p| p != pid);
    }

    /// Makes this process a child subreaper while any supervisor runs a command (or one is
    /// being forked or given one),
    /// and no longer once none does, unless it was one before.
    fn update_subreaper(&mut self, forking: bool) {
        let wanted = forking || !self.busy.is_empty();
        if wanted && !self.made_subreaper {
            if nix::sys::prctl::get_child_subreaper() == Ok(false) {
                match nix::sys::prctl::set_child_subreaper(true) {
                    Ok(()) => self.made_subreaper = true,
                    Err(e) => tracing::warn!(
                        "could not make the engine a child subreaper ({}): processes of a command whose supervisor is killed may outlive it",
                        e.desc()
                    ),
                }
            }
        } else if !wanted
            && self.made_subreaper
            && nix::sys::prctl::set_child_subreaper(false).is_ok()
        {
            self.made_subreaper = false;
        }
    }
}

fn supervisors() -> MutexGuard<'static, Supervisors> {
    SUPERVISORS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held from before a supervisor is given its command until it is recorded (and across the
/// fork of the launcher), so that no sweep runs while a supervisor exists in a session of its
/// own that is not yet known as one. Taken before the launcher's own lock.
pub(super) struct Forking(MutexGuard<'static, Supervisors>);

/// Locks the list of supervisors for a fork; the engine is a child subreaper from now on.
pub(super) fn forking() -> Forking {
    let mut supervisors = supervisors();
    supervisors.update_subreaper(true);
    Forking(supervisors)
}

impl Forking {
    /// Records a supervisor about to receive its command.
    pub(super) fn forked(&mut self, pid: pid_t) {
        self.0.live.push(pid);
        self.0.busy.push(pid);
    }

    /// A supervisor recorded by [`Forking::forked`] never got its command, and was reaped.
    pub(super) fn withdrawn(&mut self, pid: pid_t) {
        self.0.forget(pid);
    }

    /// A kept supervisor (recorded already) is about to be given a command.
    pub(super) fn busy(&mut self, pid: pid_t) {
        if !self.0.busy.contains(&pid) {
            self.0.busy.push(pid);
        }
    }

    /// A kept supervisor was not given the command after all: it waits again.
    pub(super) fn idle(&mut self, pid: pid_t) {
        self.0.busy.retain(|&p| p != pid);
    }

    /// This process's children in `session` (a dead launcher's) that are not known
    /// supervisors: spares it forked that the engine never took.
    pub(super) fn unknown_in_session(&self, session: pid_t) -> Vec<pid_t> {
        let me = own_pid();
        process_table()
            .into_values()
            .filter(|p| p.ppid == me && p.session == session && !self.0.live.contains(&p.pid))
            .map(|p| p.pid)
            .collect()
    }

    /// Records the launcher just forked.
    pub(super) fn launcher_started(&mut self, pid: pid_t) {
        self.0.launchers.push(pid);
    }

    /// The launcher `pid` was reaped: its pid may name another process from now on.
    pub(super) fn launcher_reaped(&mut self, pid: pid_t) {
        self.0.launchers.retain(|&p| p != pid);
    }
}

/// [`forking`], unless another holds the list now (a sweep may, for a while): for the thread
/// that must never wait.
pub(super) fn try_forking() -> Option<Forking> {
    let mut supervisors = match SUPERVISORS.try_lock() {
        Ok(supervisors) => supervisors,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    supervisors.update_subreaper(true);
    Some(Forking(supervisors))
}

/// A supervisor reported its command's tree dead and is kept for another: it has no child
/// to leave behind any more.
pub(super) fn now_idle(pid: pid_t) {
    let mut supervisors = supervisors();
    supervisors.busy.retain(|&p| p != pid);
    supervisors.update_subreaper(false);
}

/// Clock ticks since boot, as [`Proc::start`] counts them: taken before a supervisor is asked
/// for, it is at most the supervisor's start (both are the boot-time clock in whole ticks), so
/// that nothing started before the request is ever taken for what the supervisor left.
pub(super) fn boot_ticks() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given; sysconf takes a constant.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return 0;
    }
    let now = Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    );
    // SAFETY: as above.
    let hz = u128::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    u64::try_from(now.as_nanos() / (1_000_000_000 / hz)).unwrap_or(0)
}

/// How long the reaper thread waits for work before it retires.
const REAPER_IDLE: std::time::Duration = std::time::Duration::from_millis(250);

/// Hands a supervisor to the reaper thread, which waits for it and reaps it as [`reap`] does
/// (sweeping what it left, if it was killed): one thread for all, started when first needed,
/// rather than one per command.
pub(super) fn reap_later(supervisor: pid_t, started: u64) {
    static REAPER: Mutex<Option<std::sync::mpsc::Sender<(pid_t, u64)>>> = Mutex::new(None);
    let mut reaper = REAPER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = reaper.as_ref()
        && tx.send((supervisor, started)).is_ok()
    {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<(pid_t, u64)>();
    let spawned = std::thread::Builder::new()
        .name("stepwise-reap".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            loop {
                match rx.recv_timeout(REAPER_IDLE) {
                    Ok((pid, started)) => {
                        reap(pid, started, None);
                    }
                    // Idle: it retires, so that no thread is left behind an engine that has
                    // stopped. Once it is out of REAPER no one sends to it; what was sent
                    // before is reaped first.
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        *REAPER.lock().unwrap_or_else(PoisonError::into_inner) = None;
                        while let Ok((pid, started)) = rx.try_recv() {
                            let _ = reap(pid, started, None);
                        }
                        return;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
    match spawned {
        Ok(_) => {
            let _ = tx.send((supervisor, started));
            *reaper = Some(tx);
        }
        Err(e) => tracing::warn!(
            supervisor,
            "could not start a thread to reap a command's supervisor ({e}); it stays a zombie"
        ),
    }
}

/// Reaps a supervisor that has exited on its own, at once; `None` if it has not exited yet or
/// was killed (then [`reap`], which may sweep for a while, is for a blocking thread).
pub(super) fn reap_if_exited(supervisor: pid_t) -> Option<Reaped> {
    let pid = Pid::from_raw(supervisor);
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    if !matches!(
        nix::sys::wait::waitid(Id::Pid(pid), flags),
        Ok(WaitStatus::Exited(..))
    ) {
        return None;
    }
    let mut supervisors = supervisors();
    supervisors.forget(supervisor);
    let _ = nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG));
    supervisors.update_subreaper(false);
    Some(Reaped::default())
}

impl Drop for Forking {
    fn drop(&mut self) {
        self.0.update_subreaper(false);
    }
}

/// How a command ended, as the engine found it after its supervisor was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandFate {
    /// It had ended on its own: its exit code.
    Exited(i32),
    /// It had ended on its own, by this signal.
    Signaled(i32),
    /// It was still running; the engine killed it.
    Killed,
}

/// What became of a supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Reaped {
    /// The signal that killed it (a supervisor that finished its work exits with 0).
    pub(crate) killed_by: Option<i32>,
    /// How its command ended, when the engine had to find out itself.
    pub(crate) command: Option<CommandFate>,
    /// Processes that would not die in time (stuck in the kernel).
    pub(crate) survivors: Vec<pid_t>,
    /// It was found stopped, and the engine killed it.
    pub(crate) stopped: bool,
}

/// Waits for a supervisor to exit and reaps it. One that is stopped meanwhile is killed (it
/// would never exit). If it was killed, kills what it left first, whatever its report pipe
/// said (any process of the user can open that pipe and write to it). `started`
/// is [`boot_ticks`] before it was forked; `command` the command's pid, if the supervisor said
/// it.
pub(super) fn reap(supervisor: pid_t, started: u64, command: Option<pid_t>) -> Reaped {
    let pid = Pid::from_raw(supervisor);
    // Until it is reaped its pid is not reused, and it stays listed as a supervisor: a sweep
    // (its own or another's) leaves it alone.
    let mut stopped = false;
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::WNOWAIT;
    let status = loop {
        match nix::sys::wait::waitid(Id::Pid(pid), flags) {
            Err(nix::errno::Errno::EINTR) => {}
            Ok(WaitStatus::Stopped(..)) => {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                stopped = true;
            }
            other => break other,
        }
    };
    let killed_by = match status {
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(signal as i32),
        _ => None,
    };
    let mut reaped = Reaped {
        killed_by,
        stopped,
        ..Reaped::default()
    };
    // Had the supervisor killed its tree before it was killed, there is nothing to find.
    if killed_by.is_some() {
        (reaped.command, reaped.survivors) = sweep(supervisor, started, command);
    }
    let mut supervisors = supervisors();
    supervisors.forget(supervisor);
    let _ = nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG));
    supervisors.update_subreaper(false);
    reaped
}

/// Kills, round after round, every process the dead supervisor left, and reaps those that
/// became the engine's children, until none is left or [`PATIENCE`] runs out. Returns how the
/// command ended (if it was among them) and the processes that survived.
fn sweep(dead: pid_t, started: u64, command: Option<pid_t>) -> (Option<CommandFate>, Vec<pid_t>) {
    let me = own_pid();
    let Ok(own_session) = nix::unistd::getsid(None).map(Pid::as_raw) else {
        return (None, Vec::new());
    };
    let deadline = Instant::now() + PATIENCE;
    let mut fate = None;
    loop {
        // Held for the whole round: no supervisor is forked unseen, and no other sweep reaps a
        // child of the engine (so frees its pid) between the table and the kill.
        let supervisors = supervisors();
        let table = process_table();
        // A process in another supervisor's session is that one's (alive, or being swept for
        // as well): left to it, so that each sweep can say how its own command ended. The
        // launchers' sessions hold only launchers and supervisors not yet in a session of
        // their own.
        let ours = |p: &Proc| {
            p.ppid == me
                && p.start >= started
                && !supervisors.live.contains(&p.pid)
                && !supervisors.launchers.contains(&p.session)
                && (p.session == dead
                    || (p.session != own_session && !supervisors.live.contains(&p.session)))
        };
        let roots: Vec<&Proc> = table.values().filter(|p| ours(p)).collect();
        let mut doomed: BTreeSet<pid_t> = roots.iter().map(|p| p.pid).collect();
        doomed.extend(
            table
                .values()
                .filter(|p| p.session == dead && p.pid != me && !supervisors.live.contains(&p.pid))
                .map(|p| p.pid),
        );
        descendants(&table, &mut doomed);
        if doomed.is_empty() {
            return (fate, Vec::new());
        }
        for pid in &doomed {
            if let Some(p) = table.get(pid).filter(|p| p.state != b'Z') {
                kill_exactly(p);
            }
        }
        for root in roots {
            if Some(root.pid) == command && fate.is_none() && root.state != b'Z' {
                fate = Some(CommandFate::Killed);
            }
            let status =
                nix::sys::wait::waitpid(Pid::from_raw(root.pid), Some(WaitPidFlag::WNOHANG));
            if Some(root.pid) == command && fate.is_none() {
                fate = match status {
                    Ok(WaitStatus::Exited(_, code)) => Some(CommandFate::Exited(code)),
                    Ok(WaitStatus::Signaled(_, signal, _)) => {
                        Some(CommandFate::Signaled(signal as i32))
                    }
                    _ => None,
                };
            }
        }
        drop(supervisors);
        if Instant::now() >= deadline {
            let survivors: Vec<pid_t> = doomed.into_iter().collect();
            tracing::warn!(
                ?survivors,
                "processes of a command whose supervisor was killed would not die"
            );
            return (fate, survivors);
        }
        std::thread::sleep(ROUND);
    }
}

/// Adds to `doomed` every descendant of its members.
fn descendants(table: &HashMap<pid_t, Proc>, doomed: &mut BTreeSet<pid_t>) {
    let mut children: HashMap<pid_t, Vec<pid_t>> = HashMap::new();
    for p in table.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut queue: Vec<pid_t> = doomed.iter().copied().collect();
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if doomed.insert(child) {
                queue.push(child);
            }
        }
    }
}

/// SIGKILLs the process `p` describes, and no other. A pid is reused once its process is
/// reaped: the engine's own children are not reaped but by it, so their pid is theirs; any
/// other is signalled through a pidfd, checked after it is opened to still be that process
/// (without pidfds, before Linux 5.3, it is killed once it becomes the engine's child).
fn kill_exactly(p: &Proc) {
    if p.ppid == own_pid() {
        let _ = nix::sys::signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        return;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid, 0) };
    let Ok(fd) = libc::c_int::try_from(fd) else {
        return;
    };
    if fd < 0 {
        return;
    }
    if read_proc(p.pid).is_some_and(|now| now.start == p.start) {
        // SAFETY: pidfd_send_signal on the descriptor just opened, no siginfo, no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
}

fn own_pid() -> pid_t {
    pid_t::try_from(std::process::id()).unwrap_or(pid_t::MAX)
}

/// What the engine needs to know of a process, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: pid_t,
    /// `Z` for a zombie.
    state: u8,
    ppid: pid_t,
    session: pid_t,
    /// When it started, in clock ticks since boot: with the pid, it names one process.
    start: u64,
}

/// Every process the engine can see, by pid.
fn process_table() -> HashMap<pid_t, Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<pid_t>().ok())
        .filter_map(read_proc)
        .map(|p| (p.pid, p))
        .collect()
}

/// Whether a child of this process (a spare supervisor) is neither stopped nor dead: one
/// `waitid` that reaps nothing, rather than a read of `/proc`.
pub(super) fn is_waiting(child: pid_t) -> bool {
    let flags =
        WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(
        nix::sys::wait::waitid(Id::Pid(Pid::from_raw(child)), flags),
        Ok(WaitStatus::StillAlive)
    )
}

/// Whether a process is stopped (by a signal, or by a tracer).
pub(super) fn is_stopped(pid: pid_t) -> bool {
    read_proc(pid).is_some_and(|p| matches!(p.state, b'T' | b't'))
}

fn read_proc(pid: pid_t) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &stat)
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses itself, so the fields are counted from the last `)`.
fn parse_stat(pid: pid_t, stat: &str) -> Option<Proc> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n of the file (counting from 1) is fields[n - 3].
    Some(Proc {
        pid,
        state: *fields.first()?.as_bytes().first()?,
        ppid: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_command_names() {
        let stat =
            "4242 (a) b (c)) S 1 4242 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let p = parse_stat(4242, stat).expect("parsed");
        assert_eq!(
            (p.state, p.ppid, p.session, p.start),
            (b'S', 1, 4240, 98765)
        );
        assert!(parse_stat(1, "1 (init) S 0").is_none());
    }
}
