//! What a command could change in its supervisor, and the next command would inherit.
//!
//! A command knows its supervisor (`$PPID`) and runs as the same user, so it can lower the
//! supervisor's resource limits (`prlimit --pid`), raise its nice value or its OOM score, pin
//! it to a CPU, change its I/O priority or scheduling policy, or move it to another cgroup of
//! the user's. A kept supervisor passes all of that on to its next command. So a supervisor
//! notes these when it is forked and, after each command, compares: one that changed is not
//! kept (it says so in its report, then exits). Async-signal-safe: raw system calls into
//! fixed buffers, nothing allocated.

#![allow(unsafe_code)]

use libc::c_int;

/// How many resource limits Linux has (`RLIMIT_CPU` … `RLIMIT_RTTIME`).
const LIMITS: usize = 16;

/// The most of a `/proc/self` file compared (a cgroup path longer than this is compared by
/// its first bytes and its length).
const TEXT: usize = 512;

/// A snapshot of what a command could change in its supervisor.
pub(super) struct Inherited {
    limits: [libc::rlimit; LIMITS],
    nice: c_int,
    io_priority: c_int,
    policy: c_int,
    affinity: libc::cpu_set_t,
    oom: Text,
    cgroup: Text,
}

/// The first bytes of a small file, and how many it had.
struct Text {
    bytes: [u8; TEXT],
    len: usize,
}

impl Inherited {
    /// This process's, now.
    pub(super) fn now() -> Inherited {
        // SAFETY: system calls that fill structures on this stack frame.
        unsafe {
            let mut limits = [libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            }; LIMITS];
            for (resource, limit) in limits.iter_mut().enumerate() {
                libc::prlimit(0, resource as _, std::ptr::null(), limit);
            }
            let mut affinity: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut affinity);
            Inherited {
                limits,
                nice: libc::getpriority(libc::PRIO_PROCESS, 0),
                // IOPRIO_WHO_PROCESS, this process.
                io_priority: libc::syscall(libc::SYS_ioprio_get, 1, 0) as c_int,
                policy: libc::sched_getscheduler(0),
                affinity,
                oom: Text::read(c"/proc/self/oom_score_adj"),
                cgroup: Text::read(c"/proc/self/cgroup"),
            }
        }
    }

    /// Whether `self` and `other` are the same in all that a command inherits.
    pub(super) fn same_as(&self, other: &Inherited) -> bool {
        let limits = self
            .limits
            .iter()
            .zip(&other.limits)
            .all(|(a, b)| a.rlim_cur == b.rlim_cur && a.rlim_max == b.rlim_max);
        limits
            && self.nice == other.nice
            && self.io_priority == other.io_priority
            && self.policy == other.policy
            && bytes_of(&self.affinity) == bytes_of(&other.affinity)
            && self.oom.same_as(&other.oom)
            && self.cgroup.same_as(&other.cgroup)
    }
}

/// The bytes of a plain structure, to compare it whole.
fn bytes_of<T>(value: &T) -> &[u8] {
    // SAFETY: a plain C structure (no padding in `cpu_set_t`), read as bytes for its size.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
}

impl Text {
    unsafe fn read(path: &std::ffi::CStr) -> Text {
        let mut text = Text {
            bytes: [0; TEXT],
            len: 0,
        };
        // SAFETY: open, read into the buffer above and close.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return text;
            }
            loop {
                let mut chunk = [0u8; 256];
                let n = libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len());
                let Ok(n) = usize::try_from(n) else { break };
                if n == 0 {
                    break;
                }
                for &b in &chunk[..n] {
                    if let Some(slot) = text.bytes.get_mut(text.len) {
                        *slot = b;
                    }
                    text.len = text.len.saturating_add(1);
                }
            }
            libc::close(fd);
        }
        text
    }

    fn same_as(&self, other: &Text) -> bool {
        self.len == other.len && self.bytes == other.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_limit_is_seen_and_nothing_else_differs() {
        let before = Inherited::now();
        assert!(
            before.same_as(&Inherited::now()),
            "two looks at nothing changed"
        );
        // In a child, so that this test process keeps its limits.
        // SAFETY: fork in a test; the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child: lower a soft limit, look again, exit with the answer.
            unsafe {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                limit.rlim_cur = limit.rlim_cur.saturating_sub(1).max(16);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                libc::_exit(i32::from(before.same_as(&Inherited::now())));
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the lowered limit went unseen"
        );
    }
}
