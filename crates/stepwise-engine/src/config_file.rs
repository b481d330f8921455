//! Reading the small text files Stepwise is given (settings, policy, workflows) without being
//! led astray by what sits at their path: a FIFO would hang the read forever, a device or a
//! huge file would fill memory, and in a workspace, which comes with a project and not from
//! the user, a link could make Stepwise read (and quote in an error) any file the user can.
//!
//! So a file is opened without blocking, must be a plain file no larger than its ceiling (its
//! size is known before anything is read, and no more than the ceiling is read even if it
//! grows), must be UTF-8, and a workspace's file is never a link.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{bytes_in_words, io_reason};

/// Whether a link at the path is followed: a person's own files may be links (dotfiles kept
/// elsewhere), a workspace's may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Links {
    Follow,
    Refuse,
}

/// Why a file could not be read as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    Missing,
    Directory,
    Link,
    /// A FIFO, a socket, a device: anything but a plain file.
    NotPlain,
    TooLarge {
        limit: u64,
    },
    NotUtf8 {
        offset: usize,
    },
    Io(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Missing => f.write_str("does not exist"),
            Unreadable::Directory => f.write_str("is a directory, not a file"),
            Unreadable::Link => f.write_str(
                "is a symbolic link; a workspace's own files must be plain files, so that a project cannot make stepwise read a file elsewhere",
            ),
            Unreadable::NotPlain => {
                f.write_str("is not a plain file (a FIFO, a socket or a device)")
            }
            Unreadable::TooLarge { limit } => write!(
                f,
                "is larger than {}, the most such a file may be",
                bytes_in_words(*limit)
            ),
            Unreadable::NotUtf8 { offset } => write!(
                f,
                "is not UTF-8 text (the first invalid byte is at offset {offset})"
            ),
            Unreadable::Io(reason) => write!(f, "cannot be read: {reason}"),
        }
    }
}

/// The text of the file at `path`, at most `limit` bytes.
pub(crate) fn read_text(path: &Path, limit: u64, links: Links) -> Result<String, Unreadable> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Unreadable::Missing,
            Some(libc::ELOOP) if links == Links::Refuse => Unreadable::Link,
            Some(libc::ENXIO) => Unreadable::NotPlain,
            _ => Unreadable::Io(io_reason(&e)),
        })?;
    let meta = file.metadata().map_err(|e| Unreadable::Io(io_reason(&e)))?;
    if meta.is_dir() {
        return Err(Unreadable::Directory);
    }
    if !meta.is_file() {
        return Err(Unreadable::NotPlain);
    }
    if meta.len() > limit {
        return Err(Unreadable::TooLarge { limit });
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Unreadable::Io(io_reason(&e)))?;
    if bytes.len() as u64 > limit {
        return Err(Unreadable::TooLarge { limit });
    }
    String::from_utf8(bytes).map_err(|e| Unreadable::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_file_within_its_ceiling_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("settings.yaml");
        std::fs::write(&plain, "models: {}\n").expect("write");
        assert_eq!(
            read_text(&plain, 1024, Links::Refuse).as_deref(),
            Ok("models: {}\n")
        );
        assert_eq!(
            read_text(&plain, 4, Links::Follow),
            Err(Unreadable::TooLarge { limit: 4 })
        );

        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&plain, &link).expect("symlink");
        assert_eq!(read_text(&link, 1024, Links::Refuse), Err(Unreadable::Link));
        assert!(read_text(&link, 1024, Links::Follow).is_ok());

        // A FIFO with no writer: refused at once, where a plain open would wait forever.
        let fifo = dir.path().join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        assert_eq!(
            read_text(&fifo, 1024, Links::Follow),
            Err(Unreadable::NotPlain)
        );

        assert_eq!(
            read_text(dir.path(), 1024, Links::Follow),
            Err(Unreadable::Directory)
        );
        assert_eq!(
            read_text(&dir.path().join("none"), 1024, Links::Follow),
            Err(Unreadable::Missing)
        );
        std::fs::write(&plain, b"a\xffb").expect("write");
        assert_eq!(
            read_text(&plain, 1024, Links::Follow),
            Err(Unreadable::NotUtf8 { offset: 1 })
        );
    }
}
