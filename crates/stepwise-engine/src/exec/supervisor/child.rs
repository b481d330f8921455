//! The supervisor itself: the process that runs a command and contains its tree.
//!
//! The launcher forks it ahead of time (see `launcher`), as a child of the engine's process,
//! from a copy of a process that may have had many threads: from the fork to its exit it may
//! only make async-signal-safe calls: no allocation, no locks, no `std` I/O, no panics. It
//! receives a command (`launcher::spare`), runs it here, with raw system calls only, and, once
//! the command's whole tree is dead and its end reported, waits for the next one: a command
//! never shares its supervisor with another running one, and finds nothing of the one before.

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use libc::{c_char, c_int, pid_t};

use super::inherited::Inherited;
use super::sys::errno;
use super::{EXEC_FAILED, EXITED, KILLED, RETIRING, SIGNALED, STARTED};

/// What the supervisor runs and the descriptors it was given.
pub(super) struct Child {
    pub(super) program: *const c_char,
    pub(super) argv: *const *mut c_char,
    pub(super) envp: *const *mut c_char,
    pub(super) cwd: *const c_char,
    /// Null without a lock file.
    pub(super) lock: *const c_char,
    pub(super) stdout: RawFd,
    pub(super) stderr: RawFd,
    /// The read end of the command's stdin pipe; -1 for none (its stdin is /dev/null).
    pub(super) stdin: RawFd,
    /// The socket the command came on, shared with the engine alone (it cannot be opened
    /// through `/proc`, as a pipe can, and the command does not inherit it): the supervisor
    /// writes its report there, and the engine's end closing (the engine asks for the tree to
    /// be killed, or it died) is the signal to kill the tree.
    pub(super) channel: RawFd,
}

/// What became of the supervisor after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// The command's tree is dead and its end reported: it may run another.
    Free,
    /// The engine asked it to kill the tree, or is gone, or the report could not be sent:
    /// it must exit.
    Done,
}

/// Runs one command. Returns once the command's whole tree is dead and how it ended is
/// reported. Its standard input, output and error are `/dev/null` (the launcher's) before and
/// after, its signal dispositions the launcher's. `forked` is what it inherited when it was
/// forked: if a command changed any of it, it is not free for another.
///
/// # Safety
/// Must be called in a supervisor (a forked child of the launcher), with `child` pointing into
/// memory that is valid for the call.
pub(super) unsafe fn supervise(child: &Child, forked: &Inherited) -> After {
    // SAFETY (for the whole function): raw system calls on descriptors and buffers this
    // process owns; no allocation.
    unsafe {
        // A session of its own, which the command's tree keeps (a process can leave a session
        // only for a new one of its own, never for the engine's): if this process is killed,
        // the engine tells what it left from its own processes by their session (`orphans`).
        // It also keeps the tree away from the engine's terminal (no Ctrl-C, no SIGHUP, no
        // reads from it). A supervisor that ran a command before leads its session already
        // (and the call fails, harmlessly).
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        // Held (shared with the run's other commands' supervisors) until the tree is dead (see
        // `finish`).
        let mut lock = -1;
        if !child.lock.is_null() {
            lock = libc::open(
                child.lock,
                libc::O_RDWR
                    | libc::O_CREAT
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_CLOEXEC,
                0o600,
            );
            if lock >= 0 {
                libc::fcntl(lock, libc::F_OFD_SETLK, &shared_whole_file_lock());
            }
        }
        // The command's output goes to the pipes, its input is /dev/null (descriptor 0), and
        // it inherits nothing else: what is left open above 2 is marked close-on-exec.
        let redirected = libc::dup2(child.stdout, 1) >= 0 && libc::dup2(child.stderr, 2) >= 0;
        let failed = errno();
        libc::close(child.stdout);
        libc::close(child.stderr);
        if !redirected {
            if child.stdin >= 0 {
                libc::close(child.stdin);
            }
            return finish(child, forked, lock, EXEC_FAILED, failed);
        }
        close_on_exec(&[child.channel]);
        if libc::chdir(child.cwd) != 0 {
            let failed = errno();
            if child.stdin >= 0 {
                libc::close(child.stdin);
            }
            return finish(child, forked, lock, EXEC_FAILED, failed);
        }
        // The engine may be gone already (its end closed): run nothing.
        if channel_closed(child.channel) {
            if child.stdin >= 0 {
                libc::close(child.stdin);
            }
            return finish(child, forked, lock, KILLED, 0);
        }
        // A command given a stdin pipe reads it as descriptor 0 while this process keeps
        // /dev/null aside (close-on-exec), to put back once the command is spawned.
        let mut null = -1;
        if child.stdin >= 0 {
            null = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
            let moved = null >= 0 && libc::dup2(child.stdin, 0) >= 0;
            let failed = errno();
            libc::close(child.stdin);
            if !moved {
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::close(null);
                }
                return finish(child, forked, lock, EXEC_FAILED, failed);
            }
        }
        let mut attributes: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut command: pid_t = 0;
        let spawned = match spawn_attributes(&mut attributes) {
            0 => libc::posix_spawn(
                &mut command,
                child.program,
                std::ptr::null(),
                &attributes,
                child.argv,
                child.envp,
            ),
            failed => failed,
        };
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        if spawned != 0 {
            return finish(child, forked, lock, EXEC_FAILED, spawned);
        }
        // The command's pid, at once: if this process is killed, the engine reaps the command
        // in its place and can say how it ended.
        // If the engine is gone, the poll below sees its end closed.
        let _ = send(child.channel, &encode(STARTED, command));
        // Only the command's tree holds its output pipes from now on: their end is its end.
        libc::dup2(0, 1);
        libc::dup2(0, 2);
        let pidfd = libc::syscall(libc::SYS_pidfd_open, command, 0) as c_int;
        let (kind, value) = loop {
            let mut fds = [
                libc::pollfd {
                    fd: child.channel,
                    events: libc::POLLIN | libc::POLLRDHUP,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Without a pidfd (old kernels), look for the command's end every 50 ms.
            let (count, timeout) = if pidfd >= 0 { (2, -1) } else { (1, 50) };
            libc::poll(fds.as_mut_ptr(), count, timeout);
            if fds[0].revents != 0 {
                // The engine asked (it closed its end), or died.
                kill_tree(command);
                break (KILLED, 0);
            }
            let mut status: c_int = 0;
            if libc::waitpid(command, &mut status, libc::WNOHANG) == command {
                // Whatever it left running goes with it.
                kill_tree(command);
                if libc::WIFSIGNALED(status) {
                    break (SIGNALED, libc::WTERMSIG(status));
                }
                break (EXITED, libc::WEXITSTATUS(status));
            }
        };
        if pidfd >= 0 {
            libc::close(pidfd);
        }
        finish(child, forked, lock, kind, value)
    }
}

/// How the command is started: in a process group of its own, with default signal handling
/// and an empty signal mask (it inherits the supervisor's descriptors 0 to 2 and its working
/// directory). glibc's `posix_spawnattr_*` only fill the structure in: nothing is allocated.
unsafe fn spawn_attributes(attributes: &mut libc::posix_spawnattr_t) -> c_int {
    // SAFETY: the structure is initialised before anything else touches it; the signal sets
    // are plain values on the stack.
    unsafe {
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETSIGMASK;
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        for rc in [
            libc::posix_spawnattr_init(attributes),
            libc::posix_spawnattr_setflags(attributes, flags as libc::c_short),
            libc::posix_spawnattr_setpgroup(attributes, 0),
            libc::posix_spawnattr_setsigdefault(attributes, &all),
            libc::posix_spawnattr_setsigmask(attributes, &none),
        ] {
            if rc != 0 {
                return rc;
            }
        }
        0
    }
}

/// Marks every descriptor above 2 close-on-exec (`close_range`, Linux 5.11), or at least
/// those in `fds`.
unsafe fn close_on_exec(fds: &[RawFd]) {
    // SAFETY: close_range with its CLOEXEC flag and fcntl on descriptor numbers.
    unsafe {
        let all = libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if all != 0 {
            for &fd in fds {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

/// SIGKILLs the command's group and every descendant, until none is left. As a subreaper the
/// supervisor inherits every orphan of the tree, so its children are, in time, all of it.
/// The kernel's list of children is not exact while processes fork and are re-parented, so
/// the supervisor never blocks waiting on one child: it kills, reaps and looks again, every
/// few milliseconds, until it has no child at all. With no child left (a command that ended
/// and left nothing, the usual case), there is nothing to kill and nothing to read.
unsafe fn kill_tree(group: pid_t) {
    // SAFETY: as in `supervise`.
    unsafe {
        let mut status: c_int = 0;
        if libc::waitpid(-1, &mut status, libc::WNOHANG) == -1 && errno() == libc::ECHILD {
            return;
        }
        let mut buffer = [0u8; 4096];
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000,
        };
        loop {
            libc::kill(-group, libc::SIGKILL);
            let read = read_children(&mut buffer);
            for pid in Pids(&buffer[..read]) {
                libc::kill(pid, libc::SIGKILL);
                libc::kill(-pid, libc::SIGKILL);
            }
            loop {
                let reaped = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if reaped > 0 {
                    continue;
                }
                if reaped == -1 && errno() == libc::ECHILD {
                    return;
                }
                break;
            }
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
}

/// Reads `/proc/self/task/<pid>/children` (the supervisor is single-threaded) into `buffer`;
/// the number of bytes read (0 if it cannot be read).
unsafe fn read_children(buffer: &mut [u8]) -> usize {
    // SAFETY: as in `supervise`.
    unsafe {
        let mut path = [0u8; 64];
        let prefix = b"/proc/self/task/";
        let suffix = b"/children\0";
        let mut len = 0;
        for &b in prefix {
            path[len] = b;
            len += 1;
        }
        let mut digits = [0u8; 12];
        let mut n = libc::getpid() as u32;
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while count > 0 {
            count -= 1;
            path[len] = digits[count];
            len += 1;
        }
        for &b in suffix {
            path[len] = b;
            len += 1;
        }
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        let mut total = 0;
        while total < buffer.len() {
            let n = libc::read(
                fd,
                buffer[total..].as_mut_ptr().cast(),
                buffer.len() - total,
            );
            if n <= 0 {
                break;
            }
            total += n as usize;
        }
        libc::close(fd);
        total
    }
}

/// The pids in a space-separated list.
struct Pids<'a>(&'a [u8]);

impl Iterator for Pids<'_> {
    type Item = pid_t;

    fn next(&mut self) -> Option<pid_t> {
        let start = self.0.iter().position(u8::is_ascii_digit)?;
        let rest = &self.0[start..];
        let end = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let mut pid: pid_t = 0;
        for &digit in &rest[..end] {
            pid = pid
                .saturating_mul(10)
                .saturating_add(pid_t::from(digit - b'0'));
        }
        self.0 = &rest[end..];
        Some(pid)
    }
}

/// The command's tree is dead (or was never started): lets go of the lock (a recovering engine
/// may go on), and writes how the command ended, the report's last record. The report is a
/// socket only this process can write to (a socket, unlike a pipe, cannot be opened through
/// `/proc`), so the engine takes this record at its word. A command killed at the engine's
/// word ends the supervisor: the engine has closed its end.
unsafe fn finish(child: &Child, forked: &Inherited, lock: RawFd, kind: u8, value: i32) -> After {
    // SAFETY: closing our own descriptors, a send of a stack buffer, a chdir.
    unsafe {
        // Nothing of the command's is held here any more: not its output, not its working
        // directory (which an idle supervisor would otherwise keep busy).
        libc::dup2(0, 1);
        libc::dup2(0, 2);
        libc::chdir(c"/".as_ptr());
        if lock >= 0 {
            libc::close(lock);
        }
        let free = kind != KILLED && Inherited::now().same_as(forked);
        if kind != KILLED && !free {
            let _ = send(child.channel, &encode(RETIRING, 0));
        }
        let sent = send(child.channel, &encode(kind, value));
        if sent && free {
            After::Free
        } else {
            After::Done
        }
    }
}

/// Sends records on the report socket (a few bytes: sent whole); no SIGPIPE if the engine is
/// gone. Whether they were sent.
unsafe fn send(report: RawFd, records: &[u8]) -> bool {
    // SAFETY: a send of a buffer borrowed for the call.
    let sent = unsafe {
        libc::send(
            report,
            records.as_ptr().cast(),
            records.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(sent) == Ok(records.len())
}

/// Whether the engine's end of the channel is closed (or anything was written to it, which
/// the engine never does after the request).
unsafe fn channel_closed(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut poll, 1, 0) > 0 && poll.revents != 0 }
}

fn shared_whole_file_lock() -> libc::flock {
    libc::flock {
        l_type: libc::F_RDLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// One record: its kind, then its value.
fn encode(kind: u8, value: i32) -> [u8; 5] {
    let v = value.to_le_bytes();
    [kind, v[0], v[1], v[2], v[3]]
}
