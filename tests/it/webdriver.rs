//! Just enough of the W3C WebDriver protocol to drive the real app through tauri-driver
//! (which hands the session to WebKitWebDriver): a session on the app binary, scripts, keys,
//! clicks by visible text, and screenshots. Over reqwest, which the workspace already builds.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An X display for the window: the test's own Xvfb unless `DISPLAY` is set.
pub struct Display {
    pub name: String,
    xvfb: Option<Child>,
}

impl Display {
    pub fn start() -> Display {
        if let Ok(name) = std::env::var("DISPLAY")
            && !name.is_empty()
        {
            return Display { name, xvfb: None };
        }
        Display::xvfb("1280x800x24")
    }

    /// A display of the test's own with a screen of `size` (`WIDTHxHEIGHTxDEPTH`). The pointer
    /// starts in its middle: on a screen twice the window's size it is outside the window, which
    /// then is not the focused one.
    pub fn xvfb(size: &str) -> Display {
        let mut xvfb = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", size, "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb (apt-get install xvfb)");
        let mut stdout = xvfb.stdout.take().expect("Xvfb's stdout");
        let mut number = String::new();
        let mut byte = [0u8; 1];
        use std::io::Read as _;
        while stdout.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
            number.push(byte[0] as char);
        }
        assert!(!number.trim().is_empty(), "Xvfb printed no display number");
        Display {
            name: format!(":{}", number.trim()),
            xvfb: Some(xvfb),
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(xvfb) = &mut self.xvfb {
            let _ = xvfb.kill();
            let _ = xvfb.wait();
        }
    }
}

/// tauri-driver on free ports, with the environment the app should get.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start(display: &Display, env: &[(String, String)]) -> Driver {
        let port = free_port();
        let native = free_port();
        let mut command = Command::new(tauri_driver());
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &display.name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .expect("start tauri-driver (cargo install tauri-driver)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "tauri-driver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM, so that tauri-driver stops WebKitWebDriver too (SIGKILL orphans it).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn tauri_driver() -> PathBuf {
    if let Ok(path) = std::env::var("TAURI_DRIVER") {
        return PathBuf::from(path);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let installed = home.join("bin").join("tauri-driver");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("tauri-driver")
    }
}

/// One WebDriver session: the app's window.
pub struct Session {
    http: reqwest::Client,
    base: String,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    pub fn open(driver: &Driver, application: &Path) -> Session {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // A window that stops answering fails the test instead of hanging it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let body = json!({"capabilities": {"alwaysMatch": {
            "tauri:options": {"application": application.display().to_string()}
        }}});
        let url = format!("{}/session", driver.url);
        // The driver now and then closes the connection on a new session while WebKit's
        // driver starts (no reply at all): that is tried again, a few times; an answer that
        // is not a session fails the test at once.
        let mut attempts = 0;
        let reply: Value = loop {
            attempts += 1;
            match runtime.block_on(async { http.post(&url).json(&body).send().await?.json().await })
            {
                Ok(reply) => break reply,
                Err(e) if attempts < 3 && (e.is_request() || e.is_connect()) => {
                    eprintln!("opening a WebDriver session failed ({e}); trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => panic!("open a session: {e}"),
            }
        };
        let id = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        Session {
            http,
            base: format!("{}/session/{id}", driver.url),
            runtime,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let reply: Value = self
            .runtime
            .block_on(async {
                let mut request = self.http.request(method, &url);
                if let Some(body) = body {
                    request = request.json(&body);
                }
                request.send().await?.json().await
            })
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        if reply["value"]["error"].is_string() {
            panic!("{url}: {}", reply["value"]);
        }
        reply["value"].clone()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs an async script: it calls `arguments[arguments.length - 1](result)` when done.
    pub fn script_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// What a person reads in the window.
    pub fn text(&self) -> String {
        self.script(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until the window's text satisfies `check`; panics with the text after `limit`.
    pub fn wait_for_text(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let text = self.text();
            if check(&text) {
                return text;
            }
            if started.elapsed() > limit {
                panic!("waited {limit:?} for {what}; the window shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the first visible button or link whose text (or aria-label) is `label`.
    pub fn click(&self, label: &str) {
        let clicked = self.script(
            "const want = arguments[0]; \
             const all = [...document.querySelectorAll('button, a, [role=tab], [role=button]')]; \
             const hit = all.find(e => e.offsetParent !== null && (e.innerText.trim() === want || e.getAttribute('aria-label') === want)) \
               || all.find(e => e.offsetParent !== null && e.innerText.trim().startsWith(want)); \
             if (!hit) return false; hit.click(); return true;",
            vec![json!(label)],
        );
        assert_eq!(
            clicked,
            json!(true),
            "nothing to click labelled `{label}`:\n{}",
            self.text()
        );
    }

    /// Presses keys as a person would (each character, or a WebDriver key like "\u{E007}" for
    /// Enter), in the focused element.
    pub fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// Saves a PNG of the window, after two animation frames so that it has painted.
    pub fn screenshot(&self, path: &Path) {
        self.script_async(
            "const done = arguments[arguments.length - 1]; \
             requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
            vec![],
        );
        let data = self.call(reqwest::Method::GET, "/screenshot", None);
        let bytes = base64_decode(data.as_str().unwrap_or_default());
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, bytes).expect("write the screenshot");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let url = self.base.clone();
        let _ = self
            .runtime
            .block_on(async { self.http.delete(&url).send().await });
    }
}

/// Standard base64 (the screenshot), without another dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
