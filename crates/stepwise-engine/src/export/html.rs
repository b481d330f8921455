//! A run's export as one HTML file: no script, no link to anything, its style inline; every
//! recorded text escaped (a command's output is whatever the command printed).

use std::fmt::Write as _;

use stepwise_core::llm::format_usd;

use super::RunExport;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1d1d1f;max-width:72em}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f6}pre{background:#f7f7f9;padding:.6em;overflow-x:auto;white-space:pre-wrap;font-size:.85em}\
.add{color:#0a6b2e}.del{color:#a4161a}.hash{font-family:monospace;font-size:.85em;word-break:break-all}\
.ok{color:#0a6b2e;font-weight:600}.bad{color:#a4161a;font-weight:600}";

impl RunExport {
    /// The document as one self-contained HTML file.
    pub fn to_html(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let run = &self.run;
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Stepwise run {id}</title><style>{STYLE}</style></head><body>\n\
             <h1>Run {id}</h1>\n<table>\
             <tr><th>workflow</th><td>{name} ({path})<br><span class=\"hash\">{hash}</span></td></tr>\
             <tr><th>workspace</th><td>{ws}</td></tr>\
             <tr><th>started</th><td>by {by} via {trigger}, {at}</td></tr>\
             <tr><th>status</th><td>{status}</td></tr>\
             <tr><th>inputs</th><td><pre>{inputs}</pre></td></tr>\
             <tr><th>model cost</th><td>{cost}</td></tr></table>\n",
            id = escape(run.run_id.as_str()),
            name = escape(&run.workflow_name),
            path = escape(&run.workflow_path),
            hash = escape(&run.workflow_hash),
            ws = escape(&run.workspace),
            by = escape(&self.started_by),
            trigger = escape(&run.trigger),
            at = time(run.created_at_ms),
            status = escape(run.status.as_str()),
            inputs = escape(&self.inputs.to_string()),
            cost = format_usd(
                self.model_calls
                    .iter()
                    .fold(0, |sum, c| sum.saturating_add(c.cost_micro_usd))
            ),
        );
        self.chain_section(&mut out);
        self.decisions_section(&mut out);
        self.changes_section(&mut out);
        self.commands_section(&mut out);
        self.models_section(&mut out);
        self.timeline_section(&mut out);
        let _ = write!(
            out,
            "<h2>Workflow</h2><pre>{}</pre>\n</body></html>\n",
            escape(&self.workflow_source)
        );
        out
    }

    fn chain_section(&self, out: &mut String) {
        let chain = &self.chain;
        let verdict = if chain.is_intact() {
            "<span class=\"ok\">intact</span>".to_string()
        } else {
            format!(
                "<span class=\"bad\">NOT intact</span>: broken at event {}, {} bad blob(s)",
                chain.broken_at.map_or("-".into(), |s| s.to_string()),
                chain.bad_blobs.len()
            )
        };
        let _ = writeln!(
            out,
            "<h2>Integrity</h2><p>When this was written the log was {verdict}: {} events, {} blobs. \
             Its last link is what <code>stepwise verify {}</code> prints for the same, unaltered log:</p>\
             <p class=\"hash\" id=\"last-link\">{}</p>",
            chain.events,
            chain.blobs,
            escape(self.run.run_id.as_str()),
            escape(chain.last_link.as_deref().unwrap_or("(no events)")),
        );
    }

    fn decisions_section(&self, out: &mut String) {
        out.push_str("<h2>Decisions</h2><table><tr><th>event</th><th>when</th><th>step</th><th>decision</th><th>by</th><th>how</th><th>hash of what was approved</th><th>words</th></tr>\n");
        for d in &self.decisions {
            let how = match &d.rule {
                Some(rule) => format!("rule: {}", escape(rule)),
                None => "manual".into(),
            };
            let decision = match (d.approved, d.edited) {
                (true, true) => "approved, edited",
                (true, false) => "approved",
                (false, _) => "rejected",
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{decision}</td><td>{}</td><td>{how}</td><td class=\"hash\">{}</td><td>{}</td></tr>",
                d.seq,
                time(d.recorded_at_ms),
                escape(&d.step),
                escape(&d.by),
                escape(d.approved_hash.as_deref().unwrap_or(&d.proposal_hash)),
                escape(d.words.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</table>\n");
    }

    fn changes_section(&self, out: &mut String) {
        out.push_str("<h2>Changes to files</h2>\n");
        for op in &self.file_changes {
            for shown in &op.changes {
                let change = &shown.change;
                let _ = write!(
                    out,
                    "<h3>{} — {} {} (event {})</h3>",
                    escape(op.step.as_str()),
                    escape(&format!("{:?}", change.kind).to_lowercase()),
                    escape(&change.path),
                    op.seq
                );
                if let Some(diff) = &shown.diff {
                    out.push_str("<pre>");
                    for line in diff.lines() {
                        let class = match line.chars().next() {
                            Some('+') if !line.starts_with("+++") => " class=\"add\"",
                            Some('-') if !line.starts_with("---") => " class=\"del\"",
                            _ => "",
                        };
                        let _ = writeln!(out, "<span{class}>{}</span>", escape(line));
                    }
                    out.push_str("</pre>\n");
                }
            }
        }
    }

    fn commands_section(&self, out: &mut String) {
        out.push_str("<h2>Commands</h2>\n");
        for c in &self.commands {
            let ended = match (c.exit_code, c.signal, c.timed_out) {
                (_, _, true) => "killed when its time ran out".to_string(),
                (Some(code), _, _) => format!("exit code {code}"),
                (None, signal, _) => format!("killed by signal {}", signal.unwrap_or(0)),
            };
            let _ = write!(
                out,
                "<h3>{} — <code>{}</code> (event {}): {ended}</h3>",
                escape(&c.step),
                escape(&c.command),
                c.seq
            );
            if !c.files.is_empty() {
                let _ = write!(out, "<p>files: {}</p>", escape(&c.files));
            }
            let _ = writeln!(
                out,
                "<pre>{}</pre><pre>{}</pre>",
                escape(&c.stdout),
                escape(&c.stderr)
            );
        }
    }

    fn models_section(&self, out: &mut String) {
        out.push_str("<h2>Model calls</h2><table><tr><th>event</th><th>step</th><th>model</th><th>tokens in</th><th>tokens out</th><th>cost</th><th>took</th></tr>\n");
        for m in &self.model_calls {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td></tr>",
                m.seq,
                escape(&m.step),
                escape(&m.model),
                if m.simulated { " (simulated)" } else { "" },
                m.input_tokens,
                m.output_tokens,
                format_usd(m.cost_micro_usd),
                m.latency_ms
            );
        }
        out.push_str("</table>\n");
    }

    fn timeline_section(&self, out: &mut String) {
        out.push_str("<h2>Timeline</h2><table><tr><th>event</th><th>when</th><th>type</th><th>step</th><th>what</th></tr>\n");
        for e in &self.timeline {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"hash\">{}</td></tr>",
                e.seq,
                time(e.recorded_at_ms),
                escape(&e.event_type),
                escape(e.step.as_deref().unwrap_or("")),
                escape(&e.summary)
            );
        }
        out.push_str("</table>\n");
    }
}

/// Milliseconds since the epoch, as UTC time (RFC 3339); a time no calendar date can say (a
/// tampered row's, past the year 9999) as its number.
fn time(ms: i64) -> String {
    /// 10000-01-01T00:00:00Z.
    const LAST_MS: i64 = 253_402_300_800_000;
    if !(0..LAST_MS).contains(&ms) {
        return format!("{ms} ms after 1970");
    }
    let ms = u64::try_from(ms).unwrap_or(0);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Text as HTML shows it, never as markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_recorded_text_is_shown_as_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_765_030_000_123), "2025-12-06T14:06:40.123Z");
        assert_eq!(time(i64::MAX), format!("{} ms after 1970", i64::MAX));
        assert_eq!(time(-5), "-5 ms after 1970");
    }
}
