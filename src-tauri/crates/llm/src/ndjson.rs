//! Incremental NDJSON framing: turns arbitrary HTTP body chunks into complete lines.
//!
//! Ollama streams one JSON object per line, but HTTP chunk boundaries fall anywhere: a line
//! may arrive in several chunks, one chunk may carry many lines, and a multi-byte UTF-8
//! character may be split. [`LineBuffer`] only ever yields whole lines, decoded once they
//! are complete, and bounds the memory a line without a terminator may take.

use crate::LlmError;

/// Accumulates body bytes and hands out complete, non-blank lines.
#[derive(Debug)]
pub(crate) struct LineBuffer {
    /// Received bytes not yet handed out (from `start`).
    buf: Vec<u8>,
    /// Index of the first byte of the current, unfinished line.
    start: usize,
    /// Index up to which `buf` is known to hold no `\n`, so a long line arriving in many
    /// chunks is scanned once, not once per chunk.
    scanned: usize,
    /// Largest line accepted; a stream that exceeds it is not NDJSON we can handle.
    max_line: usize,
}

impl LineBuffer {
    /// A buffer that rejects lines longer than `max_line` bytes.
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
        }
    }

    /// Appends a chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            // Compact once the consumed prefix dominates, keeping pushes amortised O(n).
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line without its terminator (`\n` or `\r\n`); blank lines are
    /// skipped. `None` means more bytes are needed.
    pub(crate) fn next_line(&mut self) -> Result<Option<String>, LlmError> {
        loop {
            let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max_line {
                    return Err(LlmError::Protocol(format!(
                        "NDJSON line longer than {} bytes",
                        self.max_line
                    )));
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            let line = decode(&self.buf[self.start..end])?;
            self.start = end + 1;
            self.scanned = self.start;
            if !line.trim().is_empty() {
                return Ok(Some(line));
            }
        }
    }

    /// At end of body: the last line if the server did not terminate it.
    pub(crate) fn finish(&mut self) -> Result<Option<String>, LlmError> {
        let line = decode(&self.buf[self.start..])?;
        self.start = self.buf.len();
        self.scanned = self.start;
        Ok((!line.trim().is_empty()).then_some(line))
    }
}

fn decode(bytes: &[u8]) -> Result<String, LlmError> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8(bytes.to_vec())
        .map_err(|e| LlmError::Protocol(format!("NDJSON line is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buf: &mut LineBuffer) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(line)) = buf.next_line() {
            out.push(line);
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_are_reassembled() {
        let body = "{\"a\":1}\n{\"b\":\"héllo\"}\r\n\n{\"c\":3}\n";
        // Every possible split point, including inside the two-byte 'é'.
        for cut in 0..=body.len() {
            let mut buf = LineBuffer::new(1024);
            let mut lines = Vec::new();
            buf.push(&body.as_bytes()[..cut]);
            lines.extend(drain(&mut buf));
            buf.push(&body.as_bytes()[cut..]);
            lines.extend(drain(&mut buf));
            assert_eq!(
                lines,
                vec!["{\"a\":1}", "{\"b\":\"héllo\"}", "{\"c\":3}"],
                "cut at {cut}"
            );
            assert_eq!(buf.finish().ok(), Some(None));
        }
    }

    #[test]
    fn byte_at_a_time_delivery_works() {
        let body = b"{\"x\":1}\n{\"y\":2}";
        let mut buf = LineBuffer::new(64);
        let mut lines = Vec::new();
        for b in body {
            buf.push(std::slice::from_ref(b));
            lines.extend(drain(&mut buf));
        }
        assert_eq!(lines, vec!["{\"x\":1}"]);
        assert_eq!(buf.finish().ok().flatten().as_deref(), Some("{\"y\":2}"));
    }

    #[test]
    fn overlong_line_is_a_protocol_error() {
        let mut buf = LineBuffer::new(8);
        buf.push(b"0123456789");
        assert!(matches!(buf.next_line(), Err(LlmError::Protocol(_))));
    }

    #[test]
    fn invalid_utf8_is_a_protocol_error() {
        let mut buf = LineBuffer::new(8);
        buf.push(b"\xff\xfe\n");
        assert!(matches!(buf.next_line(), Err(LlmError::Protocol(_))));
    }

    #[test]
    fn many_lines_in_one_chunk_then_compaction_keeps_state() {
        let mut buf = LineBuffer::new(64);
        buf.push(b"1\n2\n3\n4");
        assert_eq!(drain(&mut buf), vec!["1", "2", "3"]);
        buf.push(b"5\n6\n");
        assert_eq!(drain(&mut buf), vec!["45", "6"]);
    }
}
