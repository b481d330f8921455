//! System notifications. On Linux one method call to the desktop's notification service
//! (`org.freedesktop.Notifications` on the session bus) through GLib's D-Bus client, which the
//! window has loaded anyway; elsewhere Tauri's notification plugin. (On Linux the plugin would
//! bring a second D-Bus stack, zbus, for this one call: 2 MB more code in memory.)

/// The desktop's side of the notifications: at most one call to the service in flight, and the
/// newest notification waiting behind it (older ones it replaces are never sent), so a burst of
/// questions, or a service that answers slowly, costs one thread and two calls at most. Each
/// notification takes the place of the last on screen.
#[cfg(target_os = "linux")]
pub struct Desktop {
    state: std::sync::Mutex<DesktopState>,
}

#[cfg(target_os = "linux")]
struct DesktopState {
    /// The id of the notification on screen (0: none).
    shown: u32,
    /// The newest notification not sent yet.
    next: Option<(String, String)>,
    /// Whether a thread is sending.
    sending: bool,
}

#[cfg(target_os = "linux")]
impl Desktop {
    pub const fn new() -> Desktop {
        Desktop {
            state: std::sync::Mutex::new(DesktopState {
                shown: 0,
                next: None,
                sending: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DesktopState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `summary` and `body` in place of whatever waits, and sends from a thread of its
    /// own unless one is sending already; `bus` connects to the session bus.
    pub fn show<B>(&'static self, summary: String, body: String, bus: B)
    where
        B: Fn() -> Result<gio::DBusConnection, glib::Error> + Send + 'static,
    {
        {
            let mut state = self.state();
            state.next = Some((summary, body));
            if state.sending {
                return;
            }
            state.sending = true;
        }
        let sender = std::thread::Builder::new().name("notifications".into());
        let started = sender.spawn(move || {
            loop {
                let (summary, body, replaces) = {
                    let mut state = self.state();
                    match state.next.take() {
                        Some((summary, body)) => (summary, body, state.shown),
                        None => {
                            state.sending = false;
                            return;
                        }
                    }
                };
                match bus().and_then(|bus| notify(&bus, &summary, &body, replaces)) {
                    Ok(id) => self.state().shown = id,
                    Err(error) => tracing::info!("no notification shown: {error}"),
                }
            }
        });
        if let Err(error) = started {
            tracing::info!("no notification shown: no thread to send it: {error}");
            self.state().sending = false;
        }
    }
}

#[cfg(target_os = "linux")]
static DESKTOP: Desktop = Desktop::new();

/// Shows a notification in place of the last one, off the caller's thread; a desktop without a
/// notification service is logged, not an error anyone needs to see.
#[cfg(target_os = "linux")]
pub fn show<R: tauri::Runtime>(_app: &tauri::AppHandle<R>, summary: String, body: String) {
    DESKTOP.show(summary, body, || {
        gio::bus_get_sync(gio::BusType::Session, gio::Cancellable::NONE)
    });
}

#[cfg(not(target_os = "linux"))]
pub fn show<R: tauri::Runtime>(app: &tauri::AppHandle<R>, summary: String, body: String) {
    use tauri_plugin_notification::NotificationExt as _;
    let shown = app
        .notification()
        .builder()
        .title(summary)
        .body(body)
        .show();
    if let Err(error) = shown {
        tracing::info!("no notification shown: {error}");
    }
}

/// The plugin the notifications need on this system, if any.
pub fn plugin<R: tauri::Runtime>() -> Option<tauri::plugin::TauriPlugin<R>> {
    #[cfg(target_os = "linux")]
    return None;
    #[cfg(not(target_os = "linux"))]
    return Some(tauri_plugin_notification::init());
}

/// Asks the notification service on `bus` to show `summary` and `body`, in place of the
/// notification `replaces` (0: none); returns its id.
#[cfg(target_os = "linux")]
pub fn notify(
    bus: &gio::DBusConnection,
    summary: &str,
    body: &str,
    replaces: u32,
) -> Result<u32, glib::Error> {
    use glib::prelude::ToVariant as _;
    use std::collections::HashMap;

    // Notify(app_name, replaces_id, icon, summary, body, actions, hints, expire_timeout)
    let hints: HashMap<String, glib::Variant> = HashMap::new();
    let arguments = (
        "Stepwise",
        replaces,
        "dialog-question",
        summary,
        body,
        Vec::<String>::new(),
        hints,
        -1i32,
    )
        .to_variant();
    let reply = bus.call_sync(
        Some("org.freedesktop.Notifications"),
        "/org/freedesktop/Notifications",
        "org.freedesktop.Notifications",
        "Notify",
        Some(&arguments),
        None,
        gio::DBusCallFlags::NONE,
        5_000,
        gio::Cancellable::NONE,
    )?;
    Ok(reply.get::<(u32,)>().map_or(0, |(id,)| id))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use glib::prelude::ToVariant as _;

    const SERVICE: &str = r#"<node><interface name="org.freedesktop.Notifications">
      <method name="Notify">
        <arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
        <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
        <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/>
        <arg type="u" direction="out"/>
      </method>
    </interface></node>"#;

    /// A notification as the service saw it: app, the id it replaces, summary, body.
    type Seen = (String, u32, String, String);

    /// A private session bus (a real dbus-daemon), stopped when dropped.
    struct Bus(Child, String);

    impl Bus {
        fn start() -> Bus {
            let mut daemon = Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address"])
                .stdout(Stdio::piped())
                .spawn()
                .expect("dbus-daemon (apt-get install dbus-daemon)");
            let mut address = String::new();
            BufReader::new(daemon.stdout.take().expect("piped"))
                .read_line(&mut address)
                .expect("the bus address");
            Bus(daemon, address.trim().to_owned())
        }

        fn connect(&self) -> gio::DBusConnection {
            connect_to(&self.1).expect("connect to the private bus")
        }
    }

    fn connect_to(address: &str) -> Result<gio::DBusConnection, glib::Error> {
        let flags = gio::DBusConnectionFlags::AUTHENTICATION_CLIENT
            | gio::DBusConnectionFlags::MESSAGE_BUS_CONNECTION;
        gio::DBusConnection::for_address_sync(address, flags, None, gio::Cancellable::NONE)
    }

    impl Drop for Bus {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A notification service on `bus` that takes `delay` to answer and reports each
    /// notification's app, the id it replaces, summary and body.
    fn serve_notifications(bus: &Bus, delay: Duration) -> mpsc::Receiver<Seen> {
        let (seen_tx, seen_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let connection = bus.connect();
        std::thread::spawn(move || {
            let context = glib::MainContext::new();
            let served = context.with_thread_default(|| {
                let node = gio::DBusNodeInfo::for_xml(SERVICE).expect("introspection xml");
                let interface = node
                    .lookup_interface("org.freedesktop.Notifications")
                    .expect("the interface");
                let seen_tx = std::sync::Mutex::new(seen_tx);
                connection
                    .register_object(
                        "/org/freedesktop/Notifications",
                        &interface,
                        move |_, _, _, _, _, parameters, invocation| {
                            type Notify = (
                                String,
                                u32,
                                String,
                                String,
                                String,
                                Vec<String>,
                                HashMap<String, glib::Variant>,
                                i32,
                            );
                            let (app, replaces, _, summary, body, _, _, _) =
                                parameters.get::<Notify>().expect("Notify's arguments");
                            let _ = seen_tx
                                .lock()
                                .expect("lock")
                                .send((app, replaces, summary, body));
                            std::thread::sleep(delay);
                            // The service's id: the one replaced, else a new one.
                            let id = if replaces == 0 { 41u32 } else { replaces };
                            invocation.return_value(Some(&(id,).to_variant()));
                        },
                        |_, _, _, _, _| ().to_variant(),
                        |_, _, _, _, _, _| false,
                    )
                    .expect("register the service");
                connection
                    .call_sync(
                        Some("org.freedesktop.DBus"),
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus",
                        "RequestName",
                        Some(&("org.freedesktop.Notifications", 4u32).to_variant()),
                        None,
                        gio::DBusCallFlags::NONE,
                        5_000,
                        gio::Cancellable::NONE,
                    )
                    .expect("own the service's name");
                let _ = ready_tx.send(());
                glib::MainLoop::new(Some(&context), false).run();
            });
            served.expect("a main context for the service");
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the service is up");
        seen_rx
    }

    #[test]
    fn a_notification_reaches_the_desktop_service_with_its_words_and_replaces_the_last() {
        let bus = Bus::start();
        let seen = serve_notifications(&bus, Duration::ZERO);
        let client = bus.connect();
        let first = super::notify(
            &client,
            "Stepwise: approval needed",
            "fix-and-test: step `fix` waits for you",
            0,
        )
        .expect("the service answers");
        assert_eq!(first, 41, "the id the service gave back");
        let (app, replaces, summary, body) = seen
            .recv_timeout(Duration::from_secs(5))
            .expect("the service saw it");
        assert_eq!(app, "Stepwise");
        assert_eq!(replaces, 0, "the first replaces nothing");
        assert_eq!(summary, "Stepwise: approval needed");
        assert_eq!(body, "fix-and-test: step `fix` waits for you");

        let next = super::notify(&client, "Stepwise: approval needed", "two wait", first)
            .expect("the service answers");
        let (_, replaces, _, body) = seen
            .recv_timeout(Duration::from_secs(5))
            .expect("the service saw the next");
        assert_eq!(replaces, 41, "the next one takes the first one's place");
        assert_eq!(body, "two wait");
        assert_eq!(next, 41);
    }

    #[test]
    fn a_burst_against_a_slow_service_sends_two_at_most_the_newest_last() {
        static DESKTOP: super::Desktop = super::Desktop::new();
        let bus = Bus::start();
        let seen = serve_notifications(&bus, Duration::from_millis(300));
        for question in 1..=20 {
            let address = bus.1.clone();
            DESKTOP.show(
                "Stepwise: approval needed".into(),
                format!("question {question}"),
                move || connect_to(&address),
            );
        }
        let mut sent = Vec::new();
        while let Ok((_, replaces, _, body)) = seen.recv_timeout(Duration::from_secs(3)) {
            let newest = body == "question 20";
            sent.push((replaces, body));
            if newest {
                break;
            }
        }
        assert!(
            (1..=2).contains(&sent.len()),
            "one call in flight and the newest behind it: {sent:?}"
        );
        assert_eq!(
            sent.last().map(|(_, body)| body.as_str()),
            Some("question 20")
        );
        assert_eq!(sent[0].0, 0, "the first replaces nothing: {sent:?}");
        if let [_, (replaces, _)] = sent.as_slice() {
            assert_eq!(*replaces, 41, "the newest takes the first one's place");
        }
        assert!(
            seen.recv_timeout(Duration::from_millis(800)).is_err(),
            "nothing after the newest"
        );
    }

    #[test]
    fn a_desktop_without_a_notification_service_is_an_error() {
        let bus = Bus::start();
        let error = super::notify(&bus.connect(), "s", "b", 0).expect_err("nobody to show it");
        assert!(
            error.to_string().contains("org.freedesktop.Notifications"),
            "names the missing service: {error}"
        );
    }
}
