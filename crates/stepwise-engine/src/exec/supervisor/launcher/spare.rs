//! A spare: a supervisor forked ahead of time, waiting for its command. The engine sends the
//! command to it directly, so that no fork stands between a command's request and its start.

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use super::raw::{Received, Room, read_exact, receive};
use super::wire::{HEADER_LEN, Header, decode};
use crate::exec::supervisor::child::{After, Child, supervise};
use crate::exec::supervisor::inherited::Inherited;

/// The most request memory kept mapped between commands.
const ROOM_KEPT: usize = 1 << 20;
use crate::exec::supervisor::sys::close_all_but;

/// Its name in `ps` and `/proc/PID/comm` (at most 15 bytes), not the launcher's.
const NAME: &[u8] = b"stepwise-superv\0";

/// Waits on `socket` for a request (a command, with its stdout and stderr pipes), supervises
/// it on the same socket (see `child`), and again, until the engine's end closes or a command
/// is killed at its word. Never returns.
///
/// # Safety
/// Must be called in a freshly forked child of the launcher, `socket` its own.
pub(super) unsafe fn wait(socket: RawFd) -> ! {
    // SAFETY (for the whole function): system calls on this process's own descriptors and
    // memory; nothing is allocated.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr(), 0, 0, 0);
        close_all_but(&[socket]);
        // What its commands would inherit from it, as it was forked.
        let forked = Inherited::now();
        // Kept from one request to the next, and mapped again only when one needs more.
        let mut room = None;
        loop {
            if serve_one(socket, &mut room, &forked) == After::Done {
                libc::_exit(0);
            }
            // A large request's memory is not held while it waits.
            if room.as_ref().is_some_and(|room| room.len() > ROOM_KEPT) {
                room = None;
            }
        }
    }
}

/// Receives one request, laid out in `room` (mapped if it has too little), and supervises its
/// command.
unsafe fn serve_one(socket: RawFd, room: &mut Option<Room>, forked: &Inherited) -> After {
    // SAFETY: as in `wait`.
    unsafe {
        let mut header = [0u8; HEADER_LEN];
        // Its stdout and stderr, and its stdin when it has one (else /dev/null).
        let mut fds: [RawFd; 3] = [-1; 3];
        match receive(socket, &mut header, &mut fds) {
            Received::Whole(2 | 3) => {}
            Received::End => return After::Done,
            Received::Whole(_) | Received::Garbled => libc::_exit(1),
        }
        let Some(header) = Header::parse(&header) else {
            libc::_exit(1);
        };
        if room.as_ref().is_none_or(|room| room.len() < header.room()) {
            // The old one goes first: the two need not fit at once.
            *room = None;
            *room = Room::map(header.room());
        }
        let Some(room) = room.as_mut() else {
            libc::_exit(1);
        };
        if !read_exact(
            socket,
            room.bytes().get_mut(..header.body).unwrap_or_default(),
        ) {
            return After::Done;
        }
        let Some(request) = decode(&header, room.bytes()) else {
            libc::_exit(1);
        };
        supervise(
            &Child {
                program: request.program,
                argv: request.argv,
                envp: request.envp,
                cwd: request.cwd,
                lock: request.lock,
                stdout: fds[0],
                stderr: fds[1],
                stdin: fds[2],
                channel: socket,
            },
            forked,
        )
    }
}
