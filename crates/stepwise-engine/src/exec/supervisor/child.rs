//! The supervisor itself: the code that runs in the process forked from the engine.
//!
//! It is forked from a multi-threaded process, so from the fork to its exit it may only make
//! async-signal-safe calls: no allocation, no locks, no `std` I/O, no panics. Everything it
//! needs is prepared before the fork (see the parent module); it uses raw system calls only.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use libc::{c_char, c_int, pid_t};

use super::{EXEC_FAILED, EXITED, KILLED, SIGNALED, STARTED};

/// The raw view of `Prepared` and of the descriptors the forked processes use.
pub(super) struct Child {
    pub(super) program: *const c_char,
    pub(super) argv: *const *mut c_char,
    pub(super) envp: *const *mut c_char,
    pub(super) lock: *const c_char,
    pub(super) actions: *const libc::posix_spawn_file_actions_t,
    pub(super) attributes: *const libc::posix_spawnattr_t,
    pub(super) stdout: RawFd,
    pub(super) stderr: RawFd,
    pub(super) report: RawFd,
    pub(super) control: RawFd,
    pub(super) null: RawFd,
}

/// The supervisor. Never returns.
///
/// # Safety
/// Must be called in a freshly forked child, with `child` pointing into memory that was valid
/// in the parent at the fork.
pub(super) unsafe fn supervise(child: &Child) -> ! {
    // SAFETY (for the whole function): raw system calls on descriptors and buffers this
    // process owns; no allocation.
    unsafe {
        reset_signals();
        // A session of its own, which the command's tree keeps (a process can leave a session
        // only for a new one of its own, never for the engine's): if this process is killed,
        // the engine tells what it left from its own processes by their session (`orphans`).
        // It also keeps the tree away from the engine's terminal (no Ctrl-C, no SIGHUP, no
        // reads from it).
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        close_all_but(&[
            child.stdout,
            child.stderr,
            child.report,
            child.control,
            child.null,
        ]);
        if !child.lock.is_null() {
            let fd = libc::open(
                child.lock,
                libc::O_RDWR
                    | libc::O_CREAT
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_CLOEXEC,
                0o600,
            );
            if fd >= 0 {
                let lock = whole_file_lock();
                libc::fcntl(fd, libc::F_OFD_SETLK, &lock);
            }
        }
        // The engine may be gone already (its end of the control pipe closed): run nothing.
        if control_closed(child.control, 0) {
            report(child.report, KILLED, 0);
            libc::_exit(0);
        }
        let mut command: pid_t = 0;
        let spawned = libc::posix_spawn(
            &mut command,
            child.program,
            child.actions,
            child.attributes,
            child.argv,
            child.envp,
        );
        if spawned != 0 {
            report(child.report, EXEC_FAILED, spawned);
            libc::_exit(0);
        }
        // Its pid, at once: if this process is killed, the engine reaps the command in its
        // place and can say how it ended.
        record(child.report, STARTED, command);
        libc::close(child.stdout);
        libc::close(child.stderr);
        libc::close(child.null);
        let pidfd = libc::syscall(libc::SYS_pidfd_open, command, 0) as c_int;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: child.control,
                    events: libc::POLLIN,
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
                report(child.report, KILLED, 0);
                libc::_exit(0);
            }
            let mut status: c_int = 0;
            if libc::waitpid(command, &mut status, libc::WNOHANG) == command {
                // Whatever it left running goes with it.
                kill_tree(command);
                if libc::WIFSIGNALED(status) {
                    report(child.report, SIGNALED, libc::WTERMSIG(status));
                } else {
                    report(child.report, EXITED, libc::WEXITSTATUS(status));
                }
                libc::_exit(0);
            }
        }
    }
}

/// SIGKILLs the command's group and every descendant, until none is left. As a subreaper the
/// supervisor inherits every orphan of the tree, so its children are, in time, all of it.
/// The kernel's list of children is not exact while processes fork and are re-parented, so
/// the supervisor never blocks waiting on one child: it kills, reaps and looks again, every
/// few milliseconds, until it has no child at all.
unsafe fn kill_tree(group: pid_t) {
    // SAFETY: as in `supervise`.
    unsafe {
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
            let mut status: c_int = 0;
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

/// Writes the report and closes the pipe: the engine learns at once, not only once this
/// process has finished exiting (tearing down its copy of the engine's memory takes a while).
unsafe fn report(fd: RawFd, kind: u8, value: i32) {
    // SAFETY: a record written, then closing our own descriptor.
    unsafe {
        record(fd, kind, value);
        libc::close(fd);
    }
}

/// Writes one record to the report pipe.
unsafe fn record(fd: RawFd, kind: u8, value: i32) {
    let v = value.to_le_bytes();
    let record = [kind, v[0], v[1], v[2], v[3]];
    // SAFETY: a write of a stack buffer (5 bytes to a pipe are written whole or not at all).
    unsafe {
        libc::write(fd, record.as_ptr().cast(), record.len());
    }
}

/// Whether the control pipe shows its writer gone (or anything written), within `timeout` ms.
unsafe fn control_closed(fd: RawFd, timeout: c_int) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut poll, 1, timeout) > 0 && poll.revents != 0 }
}

/// Default dispositions (but for the stops it can ignore) and an empty mask: a forked child
/// inherits the engine's (a runtime's signal handlers would write to descriptors that are
/// closed or reused here). The command gets default dispositions (`SpawnPlan`).
unsafe fn reset_signals() {
    // SAFETY: sigaction and sigprocmask with valid, zeroed structures.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        // The stops that can be refused are: a command that stops its supervisor keeps it
        // from doing its work (the engine kills a supervisor that is stopped all the same).
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        for signal in 1..libc::SIGRTMAX() {
            let action = match signal {
                libc::SIGKILL | libc::SIGSTOP => continue,
                libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => &ignore,
                _ => &default,
            };
            libc::sigaction(signal, action, std::ptr::null_mut());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Closes every descriptor from 3 up except those in `keep`.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut sorted = [0 as RawFd; 8];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    let sorted = &mut sorted[..n];
    sorted.sort_unstable();
    let mut from: RawFd = 3;
    // SAFETY: close_range/close on descriptor numbers; closing a number that is not open is
    // harmless.
    unsafe {
        for &fd in sorted.iter() {
            if fd >= from {
                if fd > from {
                    close_range(from, fd - 1);
                }
                from = fd + 1;
            }
        }
        close_range(from, RawFd::MAX);
    }
}

unsafe fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: the close_range system call, or, where the kernel lacks it, close one by one up
    // to the limit on open descriptors.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) == 0 {
            return;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(65_536) as RawFd
        } else {
            1024
        };
        let mut fd = first;
        while fd <= last && fd < max {
            libc::close(fd);
            fd += 1;
        }
    }
}

fn whole_file_lock() -> libc::flock {
    libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
