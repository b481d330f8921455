//! Socket and memory calls for the launcher and the spares (and the engine's side of their
//! sockets): async-signal-safe, allocation free, never panicking (see `serve`).

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use crate::exec::supervisor::sys::errno;

/// The most descriptors a message carries.
const MAX_FDS: usize = 4;

/// Reads exactly `buffer.len()` bytes; `false` at the end of the stream or on an error.
pub(super) unsafe fn read_exact(socket: RawFd, buffer: &mut [u8]) -> bool {
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

/// One `sendmsg` of `bytes`, with the descriptors `fds` (at most four) attached; what it
/// returns (the bytes sent, or -1). No SIGPIPE.
pub(super) unsafe fn send_once(socket: RawFd, bytes: &[u8], fds: &[RawFd]) -> isize {
    let count = fds.len().min(MAX_FDS);
    // u64 for the alignment `cmsghdr` needs; room for one message of four descriptors.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: the msghdr points at `iov` and `control`, which outlive the call; the one
    // control message is laid out with the CMSG macros within `control` (CMSG_SPACE of four
    // descriptors is 32 bytes, `control` 64); sendmsg only reads what they point at.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        if count > 0 {
            let len = (count * std::mem::size_of::<RawFd>()) as u32;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = libc::CMSG_SPACE(len) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&message);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(len) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                count,
            );
        }
        libc::sendmsg(socket, &message, libc::MSG_NOSIGNAL)
    }
}

/// Sends `bytes` whole, the descriptors `fds` with the first of them; `false` on an error (the
/// peer is gone).
pub(super) unsafe fn send_with_fds(socket: RawFd, bytes: &[u8], fds: &[RawFd]) -> bool {
    let mut done = 0;
    while let Some(rest) = bytes.get(done..).filter(|rest| !rest.is_empty()) {
        let with = if done == 0 { fds } else { &[] };
        // SAFETY: see `send_once`.
        match usize::try_from(unsafe { send_once(socket, rest, with) }) {
            Ok(n) => done += n,
            Err(_) if errno() == libc::EINTR => {}
            Err(_) => return false,
        }
    }
    true
}

/// One `recvmsg` into `buffer`: what it returns (the bytes received, 0 at the end, or -1),
/// how many descriptors came with them (those beyond `fds`' length are closed, and counted),
/// and whether some were cut off.
pub(super) unsafe fn receive_once(
    socket: RawFd,
    buffer: &mut [u8],
    fds: &mut [RawFd],
) -> (isize, usize, bool) {
    // Room for more descriptors than expected, so that extra ones are received (and closed)
    // rather than silently dropped; u64 for the alignment `cmsghdr` needs.
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: msghdr zeroed, then pointed at the buffers above, which outlive the call; the
    // control messages are walked with the CMSG macros within what the kernel filled in.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        let got = libc::recvmsg(socket, &mut message, libc::MSG_CMSG_CLOEXEC);
        let mut count = 0;
        let mut cmsg = libc::CMSG_FIRSTHDR(&message);
        while got >= 0 && !cmsg.is_null() {
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
        (got, count, message.msg_flags & libc::MSG_CTRUNC != 0)
    }
}

/// What [`receive`] got.
pub(super) enum Received {
    /// `buffer` is full, and this many descriptors came with it (more than `fds` holds were
    /// closed, and counted).
    Whole(usize),
    /// The peer's end is closed.
    End,
    /// The stream ended inside the message, or its descriptors were cut off.
    Garbled,
}

/// Fills `buffer` from `socket` (blocking), and `fds` with the descriptors sent with its first
/// byte.
pub(super) unsafe fn receive(socket: RawFd, buffer: &mut [u8], fds: &mut [RawFd]) -> Received {
    let (got, count, truncated) = loop {
        // SAFETY: see `receive_once`.
        let received = unsafe { receive_once(socket, buffer, fds) };
        if received.0 >= 0 || errno() != libc::EINTR {
            break received;
        }
    };
    let Ok(got) = usize::try_from(got) else {
        return Received::End;
    };
    if got == 0 && count == 0 {
        return Received::End;
    }
    // SAFETY: reading into the rest of the buffer, which this function borrows.
    let whole = unsafe { read_exact(socket, buffer.get_mut(got..).unwrap_or_default()) };
    if !whole || truncated {
        return Received::Garbled;
    }
    Received::Whole(count)
}

/// Anonymous memory, mapped for one request (the allocator may not be used), unmapped when
/// dropped.
pub(super) struct Room {
    base: *mut libc::c_void,
    len: usize,
}

impl Room {
    /// `len` bytes, or `None` if they cannot be mapped.
    pub(super) fn map(len: usize) -> Option<Room> {
        // SAFETY: an anonymous private mapping, readable and writable, owned by the `Room`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (base != libc::MAP_FAILED).then_some(Room { base, len })
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The memory: borrowed from the `Room`, so nothing pointing into it outlives the mapping.
    pub(super) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, alive until `self` drops, and borrowed through
        // `self` alone.
        unsafe { std::slice::from_raw_parts_mut(self.base.cast(), self.len) }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base, self.len.max(1)) };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn socket_pair() -> (OwnedFd, OwnedFd) {
        let mut pair = [-1; 2];
        // SAFETY: socketpair fills the array with two new descriptors.
        assert_eq!(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) },
            0
        );
        // SAFETY: descriptors just created, owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) }
    }

    #[test]
    fn a_message_arrives_whole_with_its_descriptors_and_extra_ones_are_closed() {
        let (a, b) = socket_pair();
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let message = vec![7u8; 100_000];
        let sender = std::thread::spawn(move || {
            let fds = [write_end.as_raw_fd(), write_end.as_raw_fd()];
            // SAFETY: descriptors owned by this closure.
            assert!(unsafe { send_with_fds(a.as_raw_fd(), &message, &fds) });
            drop(a);
        });
        let mut buffer = vec![0u8; 100_000];
        let mut fds = [-1; 1];
        // SAFETY: descriptors owned by this test, buffers borrowed.
        let received = unsafe { receive(b.as_raw_fd(), &mut buffer, &mut fds) };
        sender.join().unwrap();
        assert!(matches!(received, Received::Whole(2)), "two sent, one kept");
        assert!(buffer.iter().all(|&b| b == 7));
        // SAFETY: the descriptor received, now this test's.
        let received = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        nix::unistd::write(&received, b"through").unwrap();
        drop(received);
        let mut read = [0u8; 16];
        let n = nix::unistd::read(&read_end, &mut read).unwrap();
        assert_eq!(&read[..n], b"through");
        // The one not kept was closed: nothing else holds the pipe open.
        assert_eq!(nix::unistd::read(&read_end, &mut read).unwrap(), 0);
        // SAFETY: as above.
        assert!(matches!(
            unsafe { receive(b.as_raw_fd(), &mut buffer, &mut fds) },
            Received::End
        ));
    }
}
