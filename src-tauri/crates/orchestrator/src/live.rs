//! The tasks the orchestrator holds in memory — every task not yet in a terminal status —
//! with running tallies of their statuses, so `/health`, `/status` and the metrics loop
//! count them in O(1) instead of walking (under the lock every submit needs) a set that
//! backpressure lets grow to `SUTAZAI_MAX_PENDING_TASKS`.
//!
//! Invariant: [`LiveSet::tally`] always equals a count over the entries. Entries change
//! only through [`LiveSet::insert`], [`LiveSet::remove`] and the [`LiveMut`] guard of
//! [`LiveSet::get_mut`], which takes the entry out of the tally when it is created and
//! puts it back as it then is when it drops.
//!
//! Entries are boxed: growing the map moves a pointer per task, not the task, which keeps
//! the (rare) resize of a set of 100,000s of tasks within milliseconds.

use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sutazai_core::{Step, Task, TaskStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A task the orchestrator holds in memory.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) task: Task,
    /// Cancelled by `DELETE /tasks/{id}` or the deadline.
    pub(crate) cancel: CancellationToken,
    /// What `wait_for` callers watch; made by the first of them (most tasks have none,
    /// and a queue of 100,000s of tasks should not carry a channel each).
    pub(crate) watchers: Option<Watchers>,
    /// Loaded from the journal at start-up: its finished steps must be looked up.
    pub(crate) resumed: bool,
    /// It was running when the last process stopped (killed, crashed or shut down).
    pub(crate) interrupted: bool,
    /// When it was last queued: a task that waited re-selects its agents at start.
    pub(crate) queued_at: Instant,
    /// Its final state is being journaled; nothing else may finish it.
    pub(crate) finishing: bool,
    /// Its steps as last recorded (journal order: `seq`, then `key`), ahead of the
    /// journal by at most the writes still queued, so `GET /tasks/{id}` of a live task
    /// needs no read. `None` while this process does not hold them all: a task loaded
    /// from the journal, until its run reads its steps back. Shared so a reader clones an
    /// `Arc` under the lock, not the prompts and outputs.
    pub(crate) steps: Option<Arc<Vec<Step>>>,
}

impl Live {
    /// A task just submitted (`resumed == false`) or loaded from the journal.
    pub(crate) fn new(task: Task, resumed: bool, interrupted: bool) -> Live {
        Live {
            task,
            cancel: CancellationToken::new(),
            watchers: None,
            resumed,
            interrupted,
            queued_at: Instant::now(),
            finishing: false,
            steps: (!resumed).then(|| Arc::new(Vec::new())),
        }
    }

    /// The task's watchers, made now if it has none yet.
    pub(crate) fn watch(&mut self) -> &Watchers {
        let status = self.task.status;
        self.watchers.get_or_insert_with(|| Watchers {
            status: watch::Sender::new(status),
            ended: Arc::new(OnceLock::new()),
        })
    }

    /// Tells the watchers, if any, the task's new status.
    pub(crate) fn announce(&self, status: TaskStatus) {
        if let Some(watchers) = &self.watchers {
            watchers.status.send_replace(status);
        }
    }
}

/// Those who wait for a task to end.
#[derive(Debug)]
pub(crate) struct Watchers {
    /// The task's status, sent on every change.
    pub(crate) status: watch::Sender<TaskStatus>,
    /// The task as it ended, set just before the terminal status is sent, so waiters get
    /// it without reading the journal back.
    pub(crate) ended: Arc<OnceLock<Task>>,
}

/// How many live tasks are in the statuses the API reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) running: usize,
    pub(crate) awaiting_approval: usize,
    /// Tasks that were running when the last process stopped, until they end.
    pub(crate) interrupted: usize,
}

impl Tally {
    fn add(&mut self, entry: &Live) {
        self.running += usize::from(entry.task.status == TaskStatus::Running);
        self.awaiting_approval += usize::from(entry.task.status == TaskStatus::AwaitingApproval);
        self.interrupted += usize::from(entry.interrupted);
    }

    fn sub(&mut self, entry: &Live) {
        fn take(count: &mut usize, one: bool) {
            debug_assert!(*count >= usize::from(one), "live tally below zero");
            *count = count.saturating_sub(usize::from(one));
        }
        take(&mut self.running, entry.task.status == TaskStatus::Running);
        take(
            &mut self.awaiting_approval,
            entry.task.status == TaskStatus::AwaitingApproval,
        );
        take(&mut self.interrupted, entry.interrupted);
    }
}

/// The live tasks by id, with their [`Tally`].
#[derive(Debug, Default)]
pub(crate) struct LiveSet {
    map: HashMap<String, Box<Live>>,
    tally: Tally,
}

impl LiveSet {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn tally(&self) -> Tally {
        self.tally
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Live> {
        self.map.get(id).map(|b| &**b)
    }

    /// The entry, to change: the tally follows when the guard drops.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<LiveMut<'_>> {
        let entry = self.map.get_mut(id)?;
        self.tally.sub(entry);
        Some(LiveMut {
            entry,
            tally: &mut self.tally,
        })
    }

    /// Adds (or replaces) the entry under its task's id.
    pub(crate) fn insert(&mut self, entry: Live) {
        self.tally.add(&entry);
        if let Some(old) = self.map.insert(entry.task.id.clone(), Box::new(entry)) {
            self.tally.sub(&old);
        }
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Live> {
        let entry = self.map.remove(id)?;
        self.tally.sub(&entry);
        Some(*entry)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Live> {
        self.map.values().map(|b| &**b)
    }
}

/// The last [`Ended::CAPACITY`] tasks that ended, with their steps: `GET /tasks/{id}` of
/// a task that just finished — what a polling client asks next — reads no journal. An
/// ended task never changes, so the copy stays true; older ones are read from the journal.
#[derive(Debug, Default)]
pub(crate) struct Ended {
    tasks: HashMap<String, (Task, Arc<Vec<Step>>)>,
    /// Ids, oldest first: the next to be dropped.
    order: VecDeque<String>,
}

impl Ended {
    pub(crate) const CAPACITY: usize = 256;

    pub(crate) fn get(&self, id: &str) -> Option<(Task, Arc<Vec<Step>>)> {
        self.tasks
            .get(id)
            .map(|(task, steps)| (task.clone(), Arc::clone(steps)))
    }

    pub(crate) fn insert(&mut self, task: Task, steps: Arc<Vec<Step>>) {
        let id = task.id.clone();
        if self.tasks.insert(id.clone(), (task, steps)).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.tasks.remove(&oldest);
            }
        }
    }
}

/// A live entry borrowed for change; see the module's invariant.
#[derive(Debug)]
pub(crate) struct LiveMut<'a> {
    entry: &'a mut Live,
    tally: &'a mut Tally,
}

impl Deref for LiveMut<'_> {
    type Target = Live;
    fn deref(&self) -> &Live {
        self.entry
    }
}

impl DerefMut for LiveMut<'_> {
    fn deref_mut(&mut self) -> &mut Live {
        self.entry
    }
}

impl Drop for LiveMut<'_> {
    fn drop(&mut self) {
        self.tally.add(self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sutazai_core::{Constraints, CoordinationPattern, Priority, TaskRequest};

    fn task(id: &str, status: TaskStatus) -> Task {
        Task {
            id: id.to_owned(),
            session_id: format!("s-{id}"),
            request: TaskRequest {
                name: id.to_owned(),
                description: String::new(),
                task_type: String::new(),
                priority: Priority::Normal,
                requirements: Vec::new(),
                coordination_pattern: CoordinationPattern::Pipeline,
                payload: serde_json::Value::Null,
                constraints: Constraints::default(),
            },
            status,
            assigned_agents: Vec::new(),
            approvals: Vec::new(),
            result: None,
            error: None,
            created_at: chrono::Utc::now(),
            started_at: None,
            completed_at: None,
        }
    }

    fn counted(set: &LiveSet) -> Tally {
        let mut tally = Tally::default();
        for entry in set.values() {
            tally.add(entry);
        }
        tally
    }

    #[test]
    fn the_tally_follows_every_change() {
        let mut set = LiveSet::default();
        set.insert(Live::new(task("a", TaskStatus::Queued), false, false));
        set.insert(Live::new(
            task("b", TaskStatus::AwaitingApproval),
            false,
            false,
        ));
        set.insert(Live::new(task("c", TaskStatus::Queued), true, true));
        assert_eq!(
            set.tally(),
            Tally {
                running: 0,
                awaiting_approval: 1,
                interrupted: 1
            }
        );
        set.get_mut("a").unwrap().task.status = TaskStatus::Running;
        set.get_mut("c").unwrap().task.status = TaskStatus::Running;
        {
            let mut b = set.get_mut("b").unwrap();
            b.task.status = TaskStatus::Queued;
        }
        assert_eq!(
            set.tally(),
            Tally {
                running: 2,
                awaiting_approval: 0,
                interrupted: 1
            }
        );
        assert_eq!(set.tally(), counted(&set));
        // Replacing an entry counts the new one only.
        set.insert(Live::new(
            task("a", TaskStatus::AwaitingApproval),
            false,
            false,
        ));
        assert_eq!(set.tally(), counted(&set));
        assert!(set.remove("c").is_some());
        assert!(set.remove("c").is_none());
        assert_eq!(
            set.tally(),
            Tally {
                running: 0,
                awaiting_approval: 1,
                interrupted: 0
            }
        );
        assert_eq!(set.tally(), counted(&set));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn ended_tasks_keep_the_newest_only() {
        let mut ended = Ended::default();
        for i in 0..Ended::CAPACITY + 10 {
            ended.insert(
                task(&format!("t{i}"), TaskStatus::Completed),
                Arc::default(),
            );
        }
        assert!(ended.get("t0").is_none() && ended.get("t9").is_none());
        assert!(ended.get("t10").is_some());
        let last = format!("t{}", Ended::CAPACITY + 9);
        assert_eq!(ended.get(&last).unwrap().0.id, last);
        // Inserting an id again does not count it twice.
        ended.insert(task(&last, TaskStatus::Failed), Arc::default());
        assert_eq!(ended.get(&last).unwrap().0.status, TaskStatus::Failed);
        assert_eq!(ended.tasks.len(), Ended::CAPACITY);
        assert_eq!(ended.order.len(), Ended::CAPACITY);
    }
}
