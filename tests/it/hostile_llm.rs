//! A hostile model provider on loopback, over raw TCP so that it can send what no HTTP library
//! would let a server send: a body that never ends, a line that never ends, silence. And a way
//! to run `stepwise` against it measuring its peak memory, within a bounded time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The word hostile bodies are made of, to look for in the database afterwards.
pub const FILL: &str = "HOSTILE ";

/// How long a silent connection is held open at most (the client is expected to give up long
/// before).
const HOLD: Duration = Duration::from_secs(120);

/// What the server answers every request with.
#[derive(Clone)]
pub enum Behaviour {
    /// A 200 JSON reply of `bytes` bytes, its length declared in `Content-Length` or not (the
    /// body then ends when the connection closes).
    HugeJson { bytes: u64, declared: bool },
    /// An error with `status` and a JSON body of `bytes` bytes.
    HugeError { status: u16, bytes: u64 },
    /// The same piece of an event stream (`data: ...\n\n`, or a comment), again and again, as
    /// fast as the client reads.
    EndlessEvents(String),
    /// One `data:` line that never ends.
    EndlessLine,
    /// Reads the request and never answers.
    SilentBeforeHeaders,
    /// Sends the headers of a stream and one event, then nothing, the connection held open.
    SilentAfterEvent(String),
    /// A keep-alive comment every `gap`, forever: never silent, never done.
    Trickle(Duration),
}

/// A running hostile server; stops accepting when dropped.
pub struct HostileServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileServer {
    pub fn start(behaviour: Behaviour) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("an address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let behaviour = behaviour.clone();
                std::thread::spawn(move || {
                    // A client gone is the end of the answer: write errors are expected.
                    let _ = serve(stream, &behaviour);
                });
            }
        });
        HostileServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, behaviour: &Behaviour) -> std::io::Result<()> {
    stream.set_read_timeout(Some(HOLD))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    read_request(&mut reader)?;
    let mut out = stream;
    match behaviour {
        Behaviour::HugeJson { bytes, declared } => {
            let length = if *declared {
                format!("Content-Length: {bytes}\r\n")
            } else {
                "Connection: close\r\n".to_string()
            };
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n"
            )?;
            let head = r#"{"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":""#;
            fill(&mut out, head, *bytes)
        }
        Behaviour::HugeError { status, bytes } => {
            write!(
                out,
                "HTTP/1.1 {status} Oops\r\nContent-Type: application/json\r\nContent-Length: {bytes}\r\n\r\n"
            )?;
            fill(&mut out, r#"{"error":{"message":""#, *bytes)
        }
        Behaviour::EndlessEvents(event) => {
            stream_head(&mut out)?;
            let batch = event.repeat((64 * 1024 / event.len().max(1)).max(1));
            loop {
                out.write_all(batch.as_bytes())?;
            }
        }
        Behaviour::EndlessLine => {
            stream_head(&mut out)?;
            fill(&mut out, "data: ", u64::MAX)
        }
        Behaviour::SilentBeforeHeaders => hold(&mut reader),
        Behaviour::SilentAfterEvent(event) => {
            stream_head(&mut out)?;
            write!(out, "data: {event}\n\n")?;
            out.flush()?;
            hold(&mut reader)
        }
        Behaviour::Trickle(gap) => {
            stream_head(&mut out)?;
            loop {
                out.write_all(b": still thinking\n\n")?;
                out.flush()?;
                std::thread::sleep(*gap);
            }
        }
    }
}

/// Reads a request's head and body (by its `Content-Length`).
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)
}

fn stream_head(out: &mut TcpStream) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    )?;
    out.flush()
}

/// Writes `head`, then [`FILL`] until `total` bytes are written or the client goes away.
fn fill(out: &mut TcpStream, head: &str, total: u64) -> std::io::Result<()> {
    out.write_all(head.as_bytes())?;
    let batch = FILL.repeat(8 * 1024);
    let mut left = total.saturating_sub(head.len() as u64);
    while left > 0 {
        let n = usize::try_from(left.min(batch.len() as u64)).unwrap_or(batch.len());
        out.write_all(&batch.as_bytes()[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// Holds the connection open, sending nothing, until the client closes it (or [`HOLD`]).
fn hold(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    let mut sink = [0u8; 1024];
    while reader.read(&mut sink)? > 0 {}
    Ok(())
}

/// How a `stepwise` process ended.
pub struct Measured {
    pub code: i32,
    /// Its peak resident memory, in KiB (`ru_maxrss` of the child, reaped with `wait4`).
    pub peak_kib: i64,
    pub elapsed: Duration,
}

/// Runs `command` to its end, waiting at most `limit` (then it is killed and `None` comes
/// back), and measures its peak memory: `wait4` on that one child, so other tests' processes
/// do not count.
#[allow(unsafe_code)]
pub fn run_measured(mut command: std::process::Command, limit: Duration) -> Option<Measured> {
    let child = command.spawn().expect("start stepwise");
    let pid = i32::try_from(child.id()).expect("a pid");
    // Reaped by wait4 below: the handle must not wait again.
    std::mem::forget(child);
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: wait4 on our own child, with a zeroed rusage and status to fill.
        let (status, usage) = unsafe {
            let mut status = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::wait4(pid, &mut status, 0, &mut usage);
            (status, usage)
        };
        let _ = tx.send((status, usage.ru_maxrss));
    });
    let ended = rx.recv_timeout(limit);
    if ended.is_err() {
        // SAFETY: a plain kill of our own child, which the thread above then reaps.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = rx.recv_timeout(Duration::from_secs(10));
        return None;
    }
    let (status, peak_kib) = ended.ok()?;
    Some(Measured {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        peak_kib,
        elapsed: started.elapsed(),
    })
}
