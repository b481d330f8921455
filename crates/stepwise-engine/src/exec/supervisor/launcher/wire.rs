//! What the engine sends the launcher and a spare, and what they answer, byte by byte.
//!
//! To the launcher, one byte, [`FORK_SPARE`]; it answers two little-endian `i32`, an errno (0
//! when the spare was forked) and the spare's pid, with the engine's end of the spare's socket
//! (`SCM_RIGHTS`).
//!
//! To a spare, its command: a header of five little-endian `u32` (a magic number, the body's
//! length, the number of arguments, of environment entries, and flags), sent together with
//! the write ends of the command's stdout and stderr pipes, then the body: the program, the
//! working directory, the lock file (if the flags say so), the arguments and the environment
//! entries, each ended by a NUL byte. What the supervisor reports then comes back on the same
//! socket (see `supervisor`).
//!
//! The engine's side ([`Request::new`]) allocates; the spare's ([`decode`]) may not (it may
//! have been forked from a multi-threaded process), so it lays the pointer arrays `execve`
//! wants out in memory it was given.

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use libc::c_char;

/// The one request the launcher serves.
pub(super) const FORK_SPARE: u8 = b'+';

const MAGIC: u32 = 0x314c_5753;
const HAS_LOCK: u32 = 1;

pub(super) const HEADER_LEN: usize = 20;
pub(super) const ANSWER_LEN: usize = 8;

/// The most a request's body may hold: far more than `execve` accepts (about a quarter of the
/// stack limit, 2 MiB by default), so that a request too large to send would never have run.
pub(super) const MAX_BODY: usize = 64 << 20;

/// A request, encoded: header and body.
pub(in crate::exec::supervisor) struct Request {
    bytes: Vec<u8>,
}

/// What a request asks for, in the engine's terms.
pub(in crate::exec::supervisor) struct Spawn<'a, A, E> {
    pub(in crate::exec::supervisor) program: &'a OsStr,
    pub(in crate::exec::supervisor) cwd: &'a OsStr,
    pub(in crate::exec::supervisor) lock: Option<&'a OsStr>,
    pub(in crate::exec::supervisor) argv: A,
    pub(in crate::exec::supervisor) env: E,
}

impl Request {
    /// Encodes a request. A string holding a NUL byte cannot be passed to `execve` (an
    /// `InvalidInput` error naming it); a request larger than [`MAX_BODY`] is `E2BIG`, as
    /// `execve` would say.
    pub(in crate::exec::supervisor) fn new<'a, A, E>(spawn: Spawn<'a, A, E>) -> io::Result<Request>
    where
        A: Iterator<Item = &'a OsStr>,
        E: Iterator<Item = (&'a OsStr, &'a OsStr)>,
    {
        let mut bytes = vec![0u8; HEADER_LEN];
        push(&mut bytes, spawn.program.as_bytes(), spawn.program)?;
        push(&mut bytes, spawn.cwd.as_bytes(), spawn.cwd)?;
        if let Some(lock) = spawn.lock {
            push(&mut bytes, lock.as_bytes(), lock)?;
        }
        let mut argc: u32 = 0;
        for arg in spawn.argv {
            push(&mut bytes, arg.as_bytes(), arg)?;
            argc = argc.saturating_add(1);
        }
        let mut envc: u32 = 0;
        for (name, value) in spawn.env {
            let start = bytes.len();
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(b'=');
            bytes.extend_from_slice(value.as_bytes());
            if bytes[start..].contains(&0) {
                let mut pair = name.to_os_string();
                pair.push("=");
                pair.push(value);
                return Err(nul_error(&pair));
            }
            bytes.push(0);
            envc = envc.saturating_add(1);
        }
        let body = bytes.len() - HEADER_LEN;
        if body > MAX_BODY {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        let flags = if spawn.lock.is_some() { HAS_LOCK } else { 0 };
        let body = u32::try_from(body).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
        for (i, word) in [MAGIC, body, argc, envc, flags].into_iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        Ok(Request { bytes })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn push(bytes: &mut Vec<u8>, text: &[u8], shown: &OsStr) -> io::Result<()> {
    if text.contains(&0) {
        return Err(nul_error(shown));
    }
    bytes.extend_from_slice(text);
    bytes.push(0);
    Ok(())
}

fn nul_error(text: &OsStr) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{}` contains a NUL byte", text.to_string_lossy()),
    )
}

/// A request's header, as the launcher reads it.
#[derive(Clone, Copy)]
pub(super) struct Header {
    pub(super) body: usize,
    argc: usize,
    envc: usize,
    has_lock: bool,
}

impl Header {
    /// `None` if these bytes are not a header (the launcher then stops: it cannot tell where
    /// the next request would begin).
    pub(super) fn parse(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(bytes.get(i * 4..i * 4 + 4)?);
            usize::try_from(u32::from_le_bytes(w)).ok()
        };
        let header = Header {
            body: word(1)?,
            argc: word(2)?,
            envc: word(3)?,
            has_lock: word(4)? & HAS_LOCK as usize != 0,
        };
        let strings = header.strings()?;
        (word(0)? == MAGIC as usize && header.body <= MAX_BODY && strings <= header.body)
            .then_some(header)
    }

    /// How many NUL-ended strings the body holds.
    fn strings(&self) -> Option<usize> {
        2usize
            .checked_add(usize::from(self.has_lock))?
            .checked_add(self.argc)?
            .checked_add(self.envc)
    }

    /// How much memory [`decode`] needs: the body, then room to align, then the two
    /// NULL-terminated pointer arrays.
    pub(super) fn room(&self) -> usize {
        let pointers = self.argc + 1 + self.envc + 1;
        self.body + std::mem::align_of::<usize>() + pointers * std::mem::size_of::<usize>()
    }
}

/// A request laid out for `posix_spawn`, pointing into the memory [`decode`] was given.
pub(super) struct Decoded {
    pub(super) program: *const c_char,
    pub(super) cwd: *const c_char,
    /// Null without a lock file.
    pub(super) lock: *const c_char,
    pub(super) argv: *const *mut c_char,
    pub(super) envp: *const *mut c_char,
}

/// Lays out a request whose body fills the first `header.body` bytes of `room` (at least
/// [`Header::room`] bytes), or `None` if the body does not match its header. Allocates nothing.
pub(super) fn decode(header: &Header, room: &mut [u8]) -> Option<Decoded> {
    if room.len() < header.room() {
        return None;
    }
    let (body, rest) = room.split_at_mut(header.body);
    // Every string ends with a NUL, the last byte included, and there are as many as said.
    if body.last() != Some(&0) || body.iter().filter(|&&b| b == 0).count() != header.strings()? {
        return None;
    }
    let base = body.as_mut_ptr();
    let align = rest.as_ptr().align_offset(std::mem::align_of::<usize>());
    let rest = rest.get_mut(align..)?;
    let count = header.argc + 1 + header.envc + 1;
    if rest.len() < count * std::mem::size_of::<usize>() {
        return None;
    }
    // SAFETY: `rest` is aligned for pointers above and long enough for `count` of them; the
    // slice borrows it mutably, so nothing else aliases it.
    let pointers: &mut [*mut c_char] =
        unsafe { std::slice::from_raw_parts_mut(rest.as_mut_ptr().cast(), count) };
    let mut starts = std::iter::once(0).chain(
        body.iter()
            .enumerate()
            .filter(|&(_, &b)| b == 0)
            .map(|(i, _)| i + 1),
    );
    let mut next = || -> Option<*mut c_char> {
        let start = starts.next()?;
        // SAFETY: `start` is at most the body's length (one past a NUL within it), so the
        // pointer is within the body or one past its end, never used there (counted above).
        Some(unsafe { base.add(start) }.cast())
    };
    let program = next()?;
    let cwd = next()?;
    let lock = if header.has_lock {
        next()?
    } else {
        std::ptr::null_mut()
    };
    let (argv, envp) = pointers.split_at_mut(header.argc + 1);
    for (slot, last) in [(argv, header.argc), (envp, header.envc)] {
        for pointer in slot.iter_mut().take(last) {
            *pointer = next()?;
        }
        *slot.get_mut(last)? = std::ptr::null_mut();
    }
    let (argv, envp) = pointers.split_at(header.argc + 1);
    Some(Decoded {
        program,
        cwd,
        lock,
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn strings(pointers: *const *mut c_char) -> Vec<String> {
        let mut out = Vec::new();
        let mut p = pointers;
        // SAFETY: a NULL-terminated array of C strings `decode` laid out.
        unsafe {
            while !(*p).is_null() {
                out.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                p = p.add(1);
            }
        }
        out
    }

    #[test]
    fn a_request_reads_back_as_it_was_sent() {
        let args = [OsStr::new("sh"), OsStr::new("-c"), OsStr::new("echo hi")];
        let env = [
            (OsStr::new("PATH"), OsStr::new("/bin")),
            (OsStr::new("X"), OsStr::new("")),
        ];
        for lock in [None, Some(OsStr::new("/l/op.lock"))] {
            let request = Request::new(Spawn {
                program: OsStr::new("/bin/sh"),
                cwd: OsStr::new("/ws"),
                lock,
                argv: args.iter().copied(),
                env: env.iter().copied(),
            })
            .unwrap();
            let bytes = request.bytes();
            let header = Header::parse(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
            let mut room = vec![0u8; header.room()];
            room[..header.body].copy_from_slice(&bytes[HEADER_LEN..]);
            let decoded = decode(&header, &mut room).unwrap();
            // SAFETY: pointers into `room`, NUL-terminated.
            let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap();
            assert_eq!(
                (text(decoded.program), text(decoded.cwd)),
                ("/bin/sh", "/ws")
            );
            assert_eq!(decoded.lock.is_null(), lock.is_none());
            if lock.is_some() {
                assert_eq!(text(decoded.lock), "/l/op.lock");
            }
            assert_eq!(strings(decoded.argv), ["sh", "-c", "echo hi"]);
            assert_eq!(strings(decoded.envp), ["PATH=/bin", "X="]);
        }
    }

    #[test]
    fn a_body_that_does_not_match_its_header_is_refused() {
        let request = Request::new(Spawn {
            program: OsStr::new("true"),
            cwd: OsStr::new("/"),
            lock: None,
            argv: [OsStr::new("true")].into_iter(),
            env: std::iter::empty(),
        })
        .unwrap();
        let bytes = request.bytes();
        let header = Header::parse(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
        let mut room = vec![0u8; header.room()];
        room[..header.body].copy_from_slice(&bytes[HEADER_LEN..]);
        room[0] = 0;
        assert!(decode(&header, &mut room).is_none(), "one string too many");
        let mut wrong = [0u8; HEADER_LEN];
        wrong.copy_from_slice(&bytes[..HEADER_LEN]);
        wrong[0] ^= 1;
        assert!(Header::parse(&wrong).is_none(), "not the magic number");
    }

    #[test]
    fn nul_bytes_are_named_and_huge_requests_refused_as_execve_would() {
        let nul = Request::new(Spawn {
            program: OsStr::new("a\0b"),
            cwd: OsStr::new("/"),
            lock: None,
            argv: std::iter::empty(),
            env: std::iter::empty(),
        });
        assert_eq!(nul.err().unwrap().to_string(), "`a\0b` contains a NUL byte");
        let big = "x".repeat(MAX_BODY);
        let huge = Request::new(Spawn {
            program: OsStr::new("true"),
            cwd: OsStr::new("/"),
            lock: None,
            argv: [OsStr::new(big.as_str())].into_iter(),
            env: std::iter::empty(),
        });
        assert_eq!(huge.err().unwrap().raw_os_error(), Some(libc::E2BIG));
    }
}
