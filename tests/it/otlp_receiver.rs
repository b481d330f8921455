//! An OTLP/HTTP trace receiver on loopback for the tests: it decodes each export request's
//! protobuf (with the OpenTelemetry protocol's own generated types) and keeps every span it
//! received, as a collector would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::Value;

/// A span as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    /// 1 internal, 3 client.
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: BTreeMap<String, Value>,
    /// 1 ok, 2 error.
    pub status: i32,
    pub service: Option<String>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    pub port: u16,
    spans: Arc<Mutex<Vec<Received>>>,
    server: Arc<tiny_http::Server>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(v: Option<&any_value::Value>) -> Value {
    match v {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::IntValue(n)) => Value::from(*n),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        _ => Value::Null,
    }
}

impl Receiver {
    /// Listens on `port` (0: any free one).
    pub fn start(port: u16) -> Receiver {
        let server =
            Arc::new(tiny_http::Server::http(("127.0.0.1", port)).expect("listen for OTLP"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (serving, kept) = (Arc::clone(&server), Arc::clone(&spans));
        std::thread::spawn(move || {
            for mut request in serving.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                let decoded = (request.url() == "/v1/traces")
                    .then(|| ExportTraceServiceRequest::decode(body.as_slice()).ok())
                    .flatten();
                let Some(decoded) = decoded else {
                    let _ = request.respond(tiny_http::Response::empty(400));
                    continue;
                };
                let mut received = kept.lock().expect("the spans");
                for resource in decoded.resource_spans {
                    let service = resource.resource.as_ref().and_then(|r| {
                        r.attributes
                            .iter()
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| kv.value.as_ref())
                            .and_then(|v| value(v.value.as_ref()).as_str().map(str::to_string))
                    });
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            received.push(Received {
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent: hex(&span.parent_span_id),
                                name: span.name.clone(),
                                kind: span.kind,
                                start_ns: span.start_time_unix_nano,
                                end_ns: span.end_time_unix_nano,
                                attributes: span
                                    .attributes
                                    .iter()
                                    .map(|kv| {
                                        let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                                        (kv.key.clone(), value(v))
                                    })
                                    .collect(),
                                status: span.status.as_ref().map_or(0, |s| s.code),
                                service: service.clone(),
                            });
                        }
                    }
                }
                drop(received);
                let header =
                    tiny_http::Header::from_bytes("Content-Type", "application/x-protobuf")
                        .expect("a header");
                let _ =
                    request.respond(tiny_http::Response::from_data(Vec::new()).with_header(header));
            }
        });
        Receiver {
            port,
            spans,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("the spans").clone()
    }

    /// Waits (up to `limit`) until the spans satisfy `done`; the spans then.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}
