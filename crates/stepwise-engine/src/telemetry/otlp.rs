//! Spans out over OTLP/HTTP (protobuf), with the `opentelemetry` crates' exporter: our spans
//! become the SDK's `SpanData` (ids, times and parents as the log says, not as a tracer would
//! make them), sent through the engine's own reqwest client, which follows no redirect (spans
//! go to the configured host only) and reads a bounded answer.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

use super::spans::{Span, Value};

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a collector's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends batches of spans to one collector.
pub(crate) struct Otlp {
    exporter: opentelemetry_otlp::SpanExporter,
    /// What names the collector in the database: its URL's hash (the URL may hold a
    /// password).
    pub(crate) collector: String,
}

impl Otlp {
    /// An exporter to `traces_url` (the full URL, `…/v1/traces`).
    /// `env_headers`: the `OTEL_EXPORTER_OTLP_*HEADERS` the exporter reads may be sent (only
    /// when the URL came from the same environment: a key meant for one collector must never
    /// reach another).
    pub(crate) fn new(traces_url: &str, env_headers: bool) -> Result<Otlp, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("the telemetry HTTP client: {e}"))?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Client {
                http: client,
                env_headers,
            })
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .with_endpoint(traces_url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("the telemetry exporter: {e}"))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_attributes([
                    KeyValue::new("service.name", "stepwise"),
                    KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                ])
                .build(),
        );
        Ok(Otlp {
            exporter,
            collector: stepwise_core::hash::content_hash(traces_url.as_bytes()),
        })
    }

    /// Sends the spans of one run (its trace) as one request; an error says why it failed.
    pub(crate) async fn export(&self, trace: [u8; 16], spans: &[Span]) -> Result<(), String> {
        let batch = spans.iter().map(|span| span_data(trace, span)).collect();
        self.exporter.export(batch).await.map_err(|e| e.to_string())
    }
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn span_data(trace: [u8; 16], span: &Span) -> SpanData {
    let context = SpanContext::new(
        TraceId::from_bytes(trace),
        SpanId::from_bytes(span.span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    SpanData {
        span_context: context,
        parent_span_id: span.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: false,
        span_kind: if span.client {
            SpanKind::Client
        } else {
            SpanKind::Internal
        },
        name: Cow::Owned(span.name.clone()),
        start_time: at(span.start_ms),
        end_time: at(span.end_ms),
        attributes: span
            .attributes
            .iter()
            .map(|(key, value)| match value {
                Value::Text(text) => KeyValue::new(*key, text.clone()),
                Value::Int(n) => KeyValue::new(*key, *n),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match &span.error {
            Some(message) => Status::error(message.clone()),
            None => Status::Ok,
        },
        instrumentation_scope: InstrumentationScope::builder("stepwise")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    }
}

/// The exporter's HTTP client: the workspace's reqwest, no redirects, a bounded answer, and
/// no header but the body's own unless headers from the environment may go (the exporter
/// adds `OTEL_EXPORTER_OTLP_HEADERS` itself).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    env_headers: bool,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let headers: http::HeaderMap = if self.env_headers {
            parts.headers
        } else {
            parts
                .headers
                .iter()
                .filter(|(name, _)| {
                    matches!(
                        name.as_str(),
                        "content-type" | "content-encoding" | "user-agent"
                    )
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        };
        let mut response = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_ANSWER_BYTES.saturating_sub(answer.len());
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        let mut built = http::Response::builder().status(status);
        if let Some(all) = built.headers_mut() {
            *all = headers;
        }
        Ok(built.body(bytes::Bytes::from(answer))?)
    }
}
