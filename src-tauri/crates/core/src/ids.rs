//! Opaque identifiers. Tasks, sessions, steps and messages are named by UUID v4 strings at
//! every boundary (API, journal, bus) so that clients never depend on their structure.

/// A fresh random identifier, as a lowercase hyphenated UUID v4 string.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Seconds since the Unix epoch as a float, the unit the API uses for times and durations.
pub fn duration_secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}
