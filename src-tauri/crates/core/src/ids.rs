//! Opaque identifiers. Tasks, sessions, steps and messages are named by UUID strings at
//! every boundary (API, journal, bus) so that clients never depend on their structure.

/// A fresh identifier, as a lowercase hyphenated UUID v7 string.
///
/// Version 7 puts a millisecond timestamp first (the rest is random), so ids of newer
/// tasks sort after older ones. The journal relies on that: its indexes on task ids then
/// grow at one edge instead of dirtying pages all over the tree on every insert, which
/// is a large part of what lets it keep up with thousands of tasks a second.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
