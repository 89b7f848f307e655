//! Incremental Server-Sent Events parsing, as OpenAI-compatible servers stream completions.
//!
//! Follows the WHATWG event-stream rules that matter for completions: lines end in `\n`,
//! `\r\n` or `\r` (even when the `\r` and `\n` of one terminator arrive in different
//! chunks); `data:` lines accumulate until a blank line dispatches the event; lines starting
//! with `:` are comments (keep-alives) and are skipped; `event:` names the event; unknown
//! fields are ignored. Chunk boundaries may fall anywhere, UTF-8 sequences included.

use crate::LlmError;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, when the server named the event.
    pub(crate) event: Option<String>,
    /// The `data:` lines of the event, joined with `\n`.
    pub(crate) data: String,
}

/// Accumulates body bytes and hands out complete events.
#[derive(Debug)]
pub(crate) struct SseParser {
    /// Received bytes not yet split into lines (from `start`).
    buf: Vec<u8>,
    /// Index of the first byte of the current, unfinished line.
    start: usize,
    /// Largest line, and largest event, accepted.
    max_len: usize,
    /// `data` of the event being assembled.
    data: String,
    /// Whether any `data:` line was seen for the event being assembled (an event with
    /// only comments or an `event:` line is not dispatched, per the spec).
    has_data: bool,
    /// `event:` of the event being assembled.
    event: Option<String>,
    /// Whether the stream's first line was checked for a byte-order mark.
    bom_checked: bool,
}

impl SseParser {
    /// A parser that rejects lines or events larger than `max_len` bytes.
    pub(crate) fn new(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len,
            data: String::new(),
            has_data: false,
            event: None,
            bom_checked: false,
        }
    }

    /// Appends a chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event; `None` means more bytes are needed.
    pub(crate) fn next_event(&mut self) -> Result<Option<SseEvent>, LlmError> {
        while let Some(line) = self.next_line(false)? {
            if let Some(event) = self.process_line(&line)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// At end of body: the last event, even if the server did not end it with a blank
    /// line (lenient, as several servers close the stream right after `data: [DONE]`).
    pub(crate) fn finish(&mut self) -> Result<Option<SseEvent>, LlmError> {
        while let Some(line) = self.next_line(true)? {
            if let Some(event) = self.process_line(&line)? {
                return Ok(Some(event));
            }
        }
        Ok(self.dispatch())
    }

    /// Splits off the next line. A trailing lone `\r` waits for the next chunk (it may be
    /// the first half of `\r\n`) unless `at_end`.
    fn next_line(&mut self, at_end: bool) -> Result<Option<String>, LlmError> {
        let pending = &self.buf[self.start..];
        let Some(pos) = pending.iter().position(|&b| b == b'\n' || b == b'\r') else {
            if pending.len() > self.max_len {
                return Err(LlmError::Protocol(format!(
                    "SSE line longer than {} bytes",
                    self.max_len
                )));
            }
            if at_end && !pending.is_empty() {
                let line = decode(pending)?;
                self.start = self.buf.len();
                return Ok(Some(line));
            }
            return Ok(None);
        };
        let terminator_len = if pending[pos] == b'\r' {
            match pending.get(pos + 1) {
                Some(b'\n') => 2,
                Some(_) => 1,
                None if at_end => 1,
                None => return Ok(None),
            }
        } else {
            1
        };
        let mut line = decode(&pending[..pos])?;
        self.start += pos + terminator_len;
        if !self.bom_checked {
            self.bom_checked = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_owned();
            }
        }
        Ok(Some(line))
    }

    fn process_line(&mut self, line: &str) -> Result<Option<SseEvent>, LlmError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_len {
                    return Err(LlmError::Protocol(format!(
                        "SSE event larger than {} bytes",
                        self.max_len
                    )));
                }
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` only matter to reconnecting EventSource clients.
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

fn decode(bytes: &[u8]) -> Result<String, LlmError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|e| LlmError::Protocol(format!("SSE line is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_two(body: &[u8], cut: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new(4096);
        let mut events = Vec::new();
        for part in [&body[..cut], &body[cut..]] {
            parser.push(part);
            while let Ok(Some(event)) = parser.next_event() {
                events.push(event);
            }
        }
        if let Ok(Some(event)) = parser.finish() {
            events.push(event);
        }
        events
    }

    fn data(s: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: s.to_owned(),
        }
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let body = ": keep-alive\n\ndata: {\"c\":\"é\"}\n\ndata: a\r\ndata: b\r\n\r\nevent: done\ndata:[DONE]\r\r";
        for cut in 0..=body.len() {
            let events = parse_in_two(body.as_bytes(), cut);
            assert_eq!(
                events,
                vec![
                    data("{\"c\":\"é\"}"),
                    data("a\nb"),
                    SseEvent {
                        event: Some("done".into()),
                        data: "[DONE]".into()
                    },
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn cr_lf_split_between_chunks_is_one_terminator() {
        let mut parser = SseParser::new(64);
        parser.push(b"data: x\r");
        assert_eq!(parser.next_event().ok(), Some(None));
        parser.push(b"\n\r\n");
        assert_eq!(parser.next_event().ok(), Some(Some(data("x"))));
        assert_eq!(parser.next_event().ok(), Some(None));
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let body = b":ping\nid: 7\nretry: 1000\nfoo: bar\n\ndata\n\n";
        let events = parse_in_two(body, 3);
        // A bare `data` line is a data field with an empty value.
        assert_eq!(events, vec![data("")]);
    }

    #[test]
    fn unterminated_last_event_is_delivered_at_end() {
        let events = parse_in_two(b"data: [DONE]", 5);
        assert_eq!(events, vec![data("[DONE]")]);
    }

    #[test]
    fn leading_bom_is_stripped() {
        let events = parse_in_two("\u{feff}data: 1\n\n".as_bytes(), 1);
        assert_eq!(events, vec![data("1")]);
    }

    #[test]
    fn oversized_line_is_a_protocol_error() {
        let mut parser = SseParser::new(4);
        parser.push(b"data: 123456");
        assert!(matches!(parser.next_event(), Err(LlmError::Protocol(_))));
    }
}
