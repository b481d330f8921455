//! The launcher itself: the loop of the long-lived process that forks every command's
//! supervisor.
//!
//! It is forked from the engine's process, at the start of `main` where the embedding process
//! calls [`super::start`] (one thread, little memory), or else from the engine when its first
//! command runs (many threads). So it is written for the second case: only async-signal-safe
//! calls, no allocation (its buffers are `mmap`ed), no locks, no panics. It never execs: a
//! fork of it is a supervisor at once, with nothing to load.

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use libc::c_int;

use super::wire::{ANSWER_LEN, HEADER_LEN, Header, decode};
use crate::exec::supervisor::child::{Child, supervise};
use crate::exec::supervisor::sys::{close_all_but, errno, reset_signals};

/// Its name in `ps` and `/proc/PID/comm` (at most 15 bytes).
const NAME: &[u8] = b"stepwise-launch\0";

/// The memory kept for requests; a larger one is mapped for itself and unmapped after.
const KEPT: usize = 64 * 1024;

/// Serves requests on `socket` until the engine's end closes (the engine exited or died),
/// then exits. Never returns.
///
/// # Safety
/// Must be called in a freshly forked child; `socket` and `null` (`/dev/null`, read-write) are
/// its own.
pub(super) unsafe fn serve(socket: RawFd, null: RawFd) -> ! {
    // SAFETY (for the whole function): system calls on this process's own descriptors and
    // memory; nothing is allocated.
    unsafe {
        reset_signals();
        // Out of the engine's session and process group: no signal meant for the engine's
        // terminal (Ctrl-C, a hang-up) reaches it; it ends when the engine does.
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr(), 0, 0, 0);
        // Above the standard descriptors first (a process may start with them closed, so the
        // two could be among them), then those become /dev/null: a supervisor's standard input
        // (and the command's), and nothing of the engine's terminal or pipes is held here.
        let socket = libc::fcntl(socket, libc::F_DUPFD_CLOEXEC, 3);
        let null = libc::fcntl(null, libc::F_DUPFD_CLOEXEC, 3);
        if socket < 0 || null < 0 {
            libc::_exit(1);
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        close_all_but(&[socket]);
        let mut kept = Region::map(KEPT);
        loop {
            let mut header = [0u8; HEADER_LEN];
            let mut fds: [RawFd; 4] = [-1; 4];
            match receive_header(socket, &mut header, &mut fds) {
                Received::Request => {}
                Received::End => libc::_exit(0),
                Received::Garbled => {
                    close_all(&fds);
                    libc::_exit(1);
                }
            }
            let Some(header) = Header::parse(&header) else {
                close_all(&fds);
                libc::_exit(1);
            };
            let mut own = if header.room() > KEPT {
                Region::map(header.room())
            } else {
                None
            };
            let answer = match own.as_mut().or(kept.as_mut()) {
                Some(region) => {
                    let room = region.slice();
                    if !read_exact(socket, room.get_mut(..header.body).unwrap_or_default()) {
                        libc::_exit(0);
                    }
                    match decode(&header, room) {
                        Some(request) => fork_supervisor(&Child {
                            program: request.program,
                            argv: request.argv,
                            envp: request.envp,
                            cwd: request.cwd,
                            lock: request.lock,
                            stdout: fds[0],
                            stderr: fds[1],
                            report: fds[2],
                            control: fds[3],
                        }),
                        None => libc::_exit(1),
                    }
                }
                None => {
                    if !discard(socket, header.body) {
                        libc::_exit(0);
                    }
                    (libc::ENOMEM, 0)
                }
            };
            close_all(&fds);
            drop(own);
            let mut bytes = [0u8; ANSWER_LEN];
            bytes[..4].copy_from_slice(&answer.0.to_le_bytes());
            bytes[4..].copy_from_slice(&answer.1.to_le_bytes());
            if !send_all(socket, &bytes) {
                libc::_exit(0);
            }
        }
    }
}

/// Forks the supervisor as a child of the engine (`CLONE_PARENT`), not of the launcher: the
/// engine reaps it, watches it (a pidfd), kills it if it is stopped, and receives what it
/// leaves if it is killed (the engine is then a child subreaper), exactly as if the engine
/// had forked it itself. Returns (0, its pid), or (errno, 0).
unsafe fn fork_supervisor(child: &Child) -> (c_int, libc::pid_t) {
    // SAFETY: a fork (no new stack: the child runs on its copy of this one), as `fork` does
    // but for the parent; the child never returns from `supervise`. glibc's `fork` wrapper
    // is not used, so glibc's idea of the thread id stays the launcher's in the child: nothing
    // the supervisor calls (raw system calls, `posix_spawn`) reads it.
    unsafe {
        let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
        let pid = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
        if pid == 0 {
            supervise(child);
        }
        match libc::pid_t::try_from(pid) {
            Ok(pid) if pid > 0 => (0, pid),
            _ => (errno(), 0),
        }
    }
}

enum Received {
    Request,
    /// The engine's end is closed.
    End,
    /// Not four descriptors, or not a whole header.
    Garbled,
}

/// Reads a header and the four descriptors sent with it.
unsafe fn receive_header(
    socket: RawFd,
    header: &mut [u8; HEADER_LEN],
    fds: &mut [RawFd; 4],
) -> Received {
    // Room for more descriptors than expected, so that extra ones are received (and closed)
    // rather than silently dropped; u64 for the alignment `cmsghdr` needs.
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: header.as_mut_ptr().cast(),
        iov_len: HEADER_LEN,
    };
    // SAFETY: msghdr zeroed, then pointed at the buffers above, which outlive the call.
    let (got, truncated, count) = unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        let got = loop {
            let got = libc::recvmsg(socket, &mut message, libc::MSG_CMSG_CLOEXEC);
            if got >= 0 || errno() != libc::EINTR {
                break got;
            }
        };
        let mut count = 0;
        let mut cmsg = libc::CMSG_FIRSTHDR(&message);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = data.add(i).read_unaligned();
                    match fds.get_mut(count) {
                        Some(slot) => *slot = fd,
                        None => {
                            libc::close(fd);
                        }
                    }
                    count += 1;
                }
            }
            cmsg = libc::CMSG_NXTHDR(&message, cmsg);
        }
        (got, message.msg_flags & libc::MSG_CTRUNC != 0, count)
    };
    if got == 0 && count == 0 {
        return Received::End;
    }
    let Ok(got) = usize::try_from(got) else {
        return Received::End;
    };
    // SAFETY: reading into the rest of the header, which this function borrows.
    let whole = unsafe { read_exact(socket, header.get_mut(got..).unwrap_or_default()) };
    if !whole || truncated || count != fds.len() {
        return Received::Garbled;
    }
    Received::Request
}

/// Reads exactly `buffer.len()` bytes; `false` at the end of the stream or on an error.
unsafe fn read_exact(socket: RawFd, buffer: &mut [u8]) -> bool {
    let mut done = 0;
    while let Some(rest) = buffer.get_mut(done..).filter(|rest| !rest.is_empty()) {
        // SAFETY: a read into a buffer this function borrows.
        let n = unsafe { libc::read(socket, rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) => return false,
            Ok(n) => done += n,
            Err(_) if errno() == libc::EINTR => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads and drops `len` bytes (the body of a request there was no memory for).
unsafe fn discard(socket: RawFd, mut len: usize) -> bool {
    let mut sink = [0u8; 4096];
    while len > 0 {
        let take = len.min(sink.len());
        // SAFETY: as in `read_exact`.
        if !unsafe { read_exact(socket, sink.get_mut(..take).unwrap_or_default()) } {
            return false;
        }
        len -= take;
    }
    true
}

unsafe fn send_all(socket: RawFd, bytes: &[u8]) -> bool {
    let mut done = 0;
    while let Some(rest) = bytes.get(done..).filter(|rest| !rest.is_empty()) {
        // SAFETY: a send of a buffer this function borrows; no SIGPIPE if the engine is gone.
        let n = unsafe { libc::send(socket, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        match usize::try_from(n) {
            Ok(n) => done += n,
            Err(_) if errno() == libc::EINTR => {}
            Err(_) => return false,
        }
    }
    true
}

unsafe fn close_all(fds: &[RawFd]) {
    for &fd in fds.iter().filter(|&&fd| fd >= 0) {
        // SAFETY: descriptors this process received and owns.
        unsafe { libc::close(fd) };
    }
}

/// Anonymous memory mapped for requests (the launcher may not use the allocator).
struct Region {
    base: *mut u8,
    len: usize,
}

impl Region {
    fn map(len: usize) -> Option<Region> {
        // SAFETY: an anonymous private mapping, owned by the returned value.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (base != libc::MAP_FAILED).then_some(Region {
            base: base.cast(),
            len,
        })
    }

    fn slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, owned by `self`, which
        // this borrows mutably.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping what `map` mapped, once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
