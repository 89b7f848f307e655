//! The priority-ordered run queue behind `MAX_CONCURRENT_TASKS`: highest priority first,
//! first-come first-served within a priority. Work beyond the limit waits here; it is
//! never dropped.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use sutazai_core::Priority;
use tokio::sync::Notify;

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    priority: Priority,
    seq: u64,
    task_id: String,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The queue. Push from anywhere; one dispatcher pops.
#[derive(Debug, Default)]
pub struct RunQueue {
    heap: Mutex<(BinaryHeap<Entry>, u64)>,
    notify: Notify,
}

impl RunQueue {
    /// Enqueues a task.
    pub fn push(&self, task_id: String, priority: Priority) {
        {
            let mut guard = self.heap.lock().unwrap_or_else(|p| p.into_inner());
            let (heap, seq) = &mut *guard;
            *seq += 1;
            heap.push(Entry {
                priority,
                seq: *seq,
                task_id,
            });
        }
        self.notify.notify_one();
    }

    /// Takes the highest-priority task, waiting for one.
    pub async fn pop(&self) -> String {
        loop {
            let notified = self.notify.notified();
            if let Some(id) = self.try_pop() {
                return id;
            }
            notified.await;
        }
    }

    /// Takes the highest-priority task if there is one.
    pub fn try_pop(&self) -> Option<String> {
        let mut guard = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.pop().map(|e| e.task_id)
    }

    /// Tasks waiting.
    pub fn len(&self) -> usize {
        self.heap.lock().map(|g| g.0.len()).unwrap_or(0)
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn priority_then_fifo() {
        let q = RunQueue::default();
        q.push("n1".into(), Priority::Normal);
        q.push("l1".into(), Priority::Low);
        q.push("c1".into(), Priority::Critical);
        q.push("n2".into(), Priority::Normal);
        q.push("h1".into(), Priority::High);
        let mut order = Vec::new();
        while let Some(id) = q.try_pop() {
            order.push(id);
        }
        assert_eq!(order, ["c1", "h1", "n1", "n2", "l1"]);
        q.push("x".into(), Priority::Low);
        assert_eq!(q.pop().await, "x");
    }
}
