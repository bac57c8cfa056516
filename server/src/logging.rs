//! The log on standard error, as text or JSON lines, written so that no logged value can
//! forge a line: every control character (C0, DEL, C1, and the Unicode line and paragraph
//! separators) anywhere in an event but its final newline is written escaped.
//!
//! The escaping is done on the finished line, not field by field: tracing-subscriber asks for
//! a writer once per event and writes the formatted event to it, and that writer holds the
//! bytes until it is flushed or dropped, then escapes and writes them in one call. So values
//! from any source (span fields such as a login's username, error messages, formatted
//! messages) are covered without every call site having to remember.

use std::io::{self, Write};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable: time, level, spans and fields on one line per event.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info,tower_http=warn`), lines go
/// to standard error in `format`, without terminal colours (their escape codes would be
/// escaped like any other).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || EscapingWriter::new(io::stderr(), format));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Collects one event's bytes and writes them to `inner`, escaped, when flushed or dropped.
struct EscapingWriter<W: Write> {
    inner: W,
    format: LogFormat,
    line: Vec<u8>,
}

impl<W: Write> EscapingWriter<W> {
    fn new(inner: W, format: LogFormat) -> Self {
        Self {
            inner,
            format,
            line: Vec::new(),
        }
    }

    /// Writes what was collected, escaped, and starts afresh.
    fn emit(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let escaped = escape_line(&String::from_utf8_lossy(&self.line), self.format);
        self.line.clear();
        self.inner.write_all(escaped.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for EscapingWriter<W> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

/// Whether `c` could end a line or drive a terminal.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `line` with every character of [`needs_escape`] escaped, except one final newline: in text as
/// `\n`, `\r`, `\t` or `\u{1b}`, in JSON as `\u001b` (serde_json already escapes C0 inside
/// strings; what is left, DEL and C1, can only be inside strings, where the escape is valid).
fn escape_line(line: &str, format: LogFormat) -> String {
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    let mut out = String::with_capacity(line.len());
    for c in body.chars() {
        if !needs_escape(c) {
            out.push(c);
            continue;
        }
        match (format, c) {
            (LogFormat::Text, '\n') => out.push_str("\\n"),
            (LogFormat::Text, '\r') => out.push_str("\\r"),
            (LogFormat::Text, '\t') => out.push_str("\\t"),
            (LogFormat::Text, c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            (LogFormat::Json, c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
        }
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_the_final_newline_stays() {
        let forged = "login{username=x\r\n2026-01-01T00:00:00Z  INFO forged\x1b[31m\u{9b}\u{7f}\u{2028}\t}\n";
        let text = escape_line(forged, LogFormat::Text);
        assert_eq!(
            text,
            "login{username=x\\r\\n2026-01-01T00:00:00Z  INFO forged\\u{1b}[31m\\u{9b}\\u{7f}\\u{2028}\\t}\n"
        );
        assert_eq!(text.lines().count(), 1);
        assert!(!text.trim_end_matches('\n').chars().any(needs_escape));
        assert_eq!(
            escape_line("no newline\n\n", LogFormat::Text),
            "no newline\\n\n"
        );
        assert_eq!(escape_line("plain äö", LogFormat::Text), "plain äö");
    }

    /// In JSON, the escapes keep the line valid and decode to the original value.
    #[test]
    fn json_lines_stay_valid_and_keep_the_value() {
        let value = "x\u{9b}[31m\u{7f}\u{2028}y";
        let line = format!("{}\n", serde_json::json!({ "username": value }));
        let escaped = escape_line(&line, LogFormat::Json);
        assert!(!escaped.trim_end_matches('\n').chars().any(needs_escape));
        let parsed: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(parsed["username"], value);
    }

    /// However a formatter splits an event into writes, it comes out as one escaped line.
    #[test]
    fn the_writer_escapes_the_whole_event_once() {
        let mut out = Vec::new();
        {
            let mut w = EscapingWriter::new(&mut out, LogFormat::Text);
            w.write_all(b"a\n").unwrap();
            w.write_all(b"b\x1b\n").unwrap();
        }
        assert_eq!(out, b"a\\nb\\u{1b}\n");
    }
}
