//! Human-readable output of the client commands: aligned text tables and the small
//! formatters (times, durations, truncation) they use. `--json` bypasses all of this.

use std::io::Write as _;

use chrono::{DateTime, Local, Utc};

/// Longest cell shown in a table column before it is cut with `…`, so one long name or
/// capability list cannot push every other column off the screen.
pub const MAX_CELL: usize = 60;

/// A table printed with columns padded to their widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; cells beyond the header count are dropped, missing ones are blank.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(|c| truncate(&c.replace(['\n', '\r', '\t'], " "), MAX_CELL))
            .collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = width.saturating_sub(cell.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to standard output and flushes it.
///
/// Unlike `print!`, a closed stdout (`sutazai task list | head -1`) is an error returned
/// to the caller, not a panic; [`crate::main_with`] ends such a command quietly.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// [`emit`] with a line break.
pub fn emit_line(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Whether `error` (or a cause of it) is a write to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A timestamp in the user's local time, to the second.
pub fn local_time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Seconds as `0.42s`, `12.3s`, `4m05s` or `2h03m`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".to_owned();
    }
    if secs < 10.0 {
        return format!("{secs:.2}s");
    }
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    // Whole seconds from here on; the float is finite and non-negative.
    let total = secs.round() as u64;
    if total < 3600 {
        format!("{}m{:02}s", total / 60, total % 60)
    } else {
        format!("{}h{:02}m", total / 3600, (total % 3600) / 60)
    }
}

/// A fraction (0 to 1) as a percentage, or `-` when unknown.
pub fn percent(fraction: Option<f64>) -> String {
    match fraction {
        Some(f) if f.is_finite() => format!("{:.0}%", f * 100.0),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_lines_have_no_trailing_spaces() {
        let mut table = Table::new(&["ID", "STATUS", "NAME"]);
        table.row(vec!["a".into(), "completed".into(), "first".into()]);
        table.row(vec!["bbbb".into(), "queued".into()]);
        assert_eq!(
            table.render(),
            "ID    STATUS     NAME\na     completed  first\nbbbb  queued\n"
        );
    }

    #[test]
    fn long_cells_are_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(0.4213), "0.42s");
        assert_eq!(duration(12.34), "12.3s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(7380.0), "2h03m");
        assert_eq!(duration(f64::NAN), "-");
    }

    #[test]
    fn percentages_round() {
        assert_eq!(percent(Some(0.916)), "92%");
        assert_eq!(percent(None), "-");
    }
}
