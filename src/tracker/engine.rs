//! The one poll scheduler of the daemon (STYLE.md #7): every followed execution is a
//! [`Follow`] at rest in a single deadline queue (`tokio_util::time::DelayQueue`), not a task
//! each. One task wakes the due ones and hands each turn (a poll, the logs of an ended job)
//! to a bounded pool of in-flight platform calls: final log fetches first, then polls in the
//! order they fell due. A turn leaves the pool as soon as its call ends; its save (and, at
//! the end, the decision's) happens beside the pool, so that a slow store never holds back
//! other executions' polls (the turns saving are bounded too: [`SAVING_ROOM`]). Triggers (submits, reconciles) run beside the pool, each in a task of
//! its own while it lasts, so that no number of due polls delays a submit; the endpoints'
//! limits (rate, concurrency, separate budgets for submits) apply inside the platform as
//! everywhere.
//!
//! A poll can be asked for now from outside ([`Engine::poll_now`]: bk-job callbacks, Salt's
//! event stream). On shutdown the engine stops taking turns, lets the turns in flight end (a poll is
//! abandoned, its execution stays as last saved) and exits; everything at rest is in the
//! store, with `next_poll_at` as of its last change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::{DelayQueue, delay_queue};

use super::{ExecutionReport, Follow, Journal, Silent};
use crate::platform::JobRef;

/// Platform calls in flight at once (polls and log fetches together) when not configured.
pub const DEFAULT_POOL: usize = 256;

/// Turns whose call is done and which are saving (or deciding) beside the pool, at most: a
/// slow store holds these, never the pool's calls. Tasks in all: at most the pool plus this.
pub const SAVING_ROOM: usize = 1024;

/// Called with an execution the engine is done with: ended and saved with its logs (`true`),
/// or released unended ([`Engine::release`]: `false`).
pub type OnDone = Arc<dyn Fn(&ExecutionReport, bool) + Send + Sync>;

/// Which executions to let go, by key ([`key`]).
pub type Which = Arc<dyn Fn(u128) -> bool + Send + Sync>;

/// What the engine is asked to do.
enum Command {
    /// Follow this execution (its job is on the platform, its record saved).
    Follow(Box<Follow>),
    /// Poll this execution now (by [`key`] of its id).
    PollNow(u128, Option<JobRef>),
    /// An operator asked to terminate this execution's job (the token's name).
    Terminate(u128, String),
    /// Stop following these executions, without writing.
    Release(Which),
}

/// The handle: cheap to clone; the engine runs until the stop token is cancelled.
#[derive(Clone)]
pub struct Engine {
    commands: mpsc::UnboundedSender<Command>,
}

/// What a turn left.
enum Turned {
    /// Polled; at rest until its next poll.
    Rest(Box<Follow>),
    /// Ended and recorded; its logs are to be fetched.
    Logs(Box<Follow>),
    /// Done: ended with its logs, or left as saved by shutdown.
    Done(Box<Follow>, bool),
}

/// A turn to take.
#[derive(Clone, Copy)]
enum Turn {
    Poll,
    Logs,
}

/// The engine's key of an execution id ([`crate::model::shard::execution_key`]: a collision
/// of non-UUID ids could only cause an extra poll).
pub fn key(execution_id: &str) -> u128 {
    crate::model::shard::execution_key(execution_id)
}

impl Engine {
    /// Starts the engine task on `tasks`: turns save through `journal`; `on_done` is called
    /// for every execution that ended; at most `pool` turns are in flight (at least 1).
    pub fn start(
        journal: Arc<dyn Journal>,
        on_done: OnDone,
        stop: CancellationToken,
        tasks: &TaskTracker,
        pool: usize,
    ) -> Engine {
        let (commands, receiver) = mpsc::unbounded_channel();
        let scheduler = Scheduler {
            journal,
            on_done,
            stop,
            pool: pool.max(1),
            calls: Arc::new(Semaphore::new(pool.max(1))),
            queue: DelayQueue::new(),
            at_rest: HashMap::new(),
            ready_logs: VecDeque::new(),
            ready_polls: VecDeque::new(),
            in_flight: JoinSet::new(),
            in_turn: HashSet::new(),
            poll_soon: HashSet::new(),
            terminate_soon: HashMap::new(),
            releasing: HashSet::new(),
        };
        tasks.spawn(scheduler.run(receiver));
        Engine { commands }
    }

    /// Follows `follow` from now on (its first poll at [`Follow::next_poll`]). Dropped when
    /// the engine has stopped (the record is saved; the next start resumes it).
    pub fn follow(&self, follow: Follow) {
        let _ = self.commands.send(Command::Follow(Box::new(follow)));
    }

    /// Asks for a poll of `execution_id` now: at once when it is at rest, right after the
    /// turn in flight otherwise; nothing when the engine does not follow it, or when `job`
    /// is given and is not the followed job ([`JobRef::same_job`]: a callback or an event
    /// about another job changes nothing).
    pub fn poll_now(&self, execution_id: &str, job: Option<JobRef>) {
        let _ = self.commands.send(Command::PollNow(key(execution_id), job));
    }

    /// Asks to terminate `execution_id`'s job, for `by` (an operator's token name): its next
    /// poll — at once — asks the platform to stop the job, and the execution ends as the
    /// platform then reports it ([`Follow::terminate_asked`]). Nothing when the engine does
    /// not follow it.
    pub fn terminate(&self, execution_id: &str, by: &str) {
        let _ = self
            .commands
            .send(Command::Terminate(key(execution_id), by.to_owned()));
    }

    /// Stops following the executions `which` selects (their shard moved to another
    /// replica): those at rest or waiting at once, those whose turn is in flight when it
    /// ends, its result unwritten or refused. Each is handed to `on_done` as not ended.
    pub fn release(&self, which: Which) {
        let _ = self.commands.send(Command::Release(which));
    }
}

struct Scheduler {
    journal: Arc<dyn Journal>,
    on_done: OnDone,
    stop: CancellationToken,
    pool: usize,
    /// One permit per platform call in flight; a turn gives it back as its call ends.
    calls: Arc<Semaphore>,
    /// Executions at rest, by when their next poll is due.
    queue: DelayQueue<Box<Follow>>,
    /// Where each execution at rest is in the queue.
    at_rest: HashMap<u128, delay_queue::Key>,
    /// Ended executions whose logs wait for a turn.
    ready_logs: VecDeque<Box<Follow>>,
    /// Executions whose poll is due, in the order they fell due.
    ready_polls: VecDeque<Box<Follow>>,
    in_flight: JoinSet<Turned>,
    /// Executions whose turn is in flight.
    in_turn: HashSet<u128>,
    /// Asked to poll now while their turn was in flight.
    poll_soon: HashSet<u128>,
    /// Asked to terminate while their turn was in flight (by whom).
    terminate_soon: HashMap<u128, String>,
    /// Released while their turn was in flight: let go when it ends.
    releasing: HashSet<u128>,
}

impl Scheduler {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut stopping = false;
        loop {
            if !stopping {
                self.dispatch();
            }
            tokio::select! {
                biased;
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    // Nothing more is taken; what waits stays as saved.
                    self.ready_polls.clear();
                    self.ready_logs.clear();
                }
                // Everything due, at once: under a steady stream of completions and
                // commands, due polls taken one per turn of this loop fell behind (seen as
                // a detection tail of seconds while 1 700 jobs ended per second).
                Some(due) = std::future::poll_fn(|cx| self.queue.poll_expired(cx)), if !stopping && !self.queue.is_empty() => {
                    self.due(due.into_inner());
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    while let std::task::Poll::Ready(Some(due)) = self.queue.poll_expired(&mut cx) {
                        self.due(due.into_inner());
                    }
                }
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    self.done(done, stopping);
                    while let Some(done) = self.in_flight.try_join_next() {
                        self.done(done, stopping);
                    }
                }
                command = commands.recv(), if !stopping => match command {
                    Some(Command::Follow(f)) => self.rest(f),
                    Some(Command::PollNow(id, job)) => self.poll_now(id, job),
                    Some(Command::Terminate(id, by)) => {
                        self.terminate_soon.insert(id, by);
                        self.poll_now(id, None);
                    }
                    Some(Command::Release(which)) => self.release(&which),
                    None => stopping = true,
                },
                // The pool is full and work waits: a permit freed by a call ending starts it.
                permit = self.calls.clone().acquire_owned(), if !stopping && self.waiting() => {
                    if let Ok(permit) = permit {
                        self.start_turn(permit);
                    }
                }
            }
            if stopping && self.in_flight.is_empty() {
                return;
            }
        }
    }

    /// `f`'s poll fell due.
    fn due(&mut self, f: Box<Follow>) {
        self.at_rest.remove(&key(&f.report.execution_id));
        self.ready_polls.push_back(f);
    }

    /// A turn's task ended.
    fn done(&mut self, done: Result<Turned, tokio::task::JoinError>, stopping: bool) {
        match done {
            Ok(turned) => self.take_back(turned, stopping),
            Err(e) => {
                tracing::error!(error = %e, "A tracking turn failed; its execution is resumed at the next start.")
            }
        }
    }

    /// Whether a turn waits and there is room for its task.
    fn waiting(&self) -> bool {
        (!self.ready_logs.is_empty() || !self.ready_polls.is_empty())
            && self.in_flight.len() < self.pool + SAVING_ROOM
    }

    /// Starts turns while the pool has room: logs first, then polls.
    fn dispatch(&mut self) {
        while self.waiting() {
            let Ok(permit) = self.calls.clone().try_acquire_owned() else {
                return;
            };
            self.start_turn(permit);
        }
    }

    /// Starts the next waiting turn (logs first, then polls) with `permit`.
    fn start_turn(&mut self, permit: OwnedSemaphorePermit) {
        let (f, turn) = if let Some(f) = self.ready_logs.pop_front() {
            (f, Turn::Logs)
        } else if let Some(f) = self.ready_polls.pop_front() {
            (f, Turn::Poll)
        } else {
            return;
        };
        self.in_turn.insert(key(&f.report.execution_id));
        let journal = self.journal.clone();
        let stop = self.stop.clone();
        self.in_flight
            .spawn(take_turn(f, turn, journal, stop, permit));
    }

    fn take_back(&mut self, turned: Turned, stopping: bool) {
        let (Turned::Rest(f) | Turned::Logs(f) | Turned::Done(f, _)) = &turned;
        let id = key(&f.report.execution_id);
        self.in_turn.remove(&id);
        if self.releasing.remove(&id) {
            self.poll_soon.remove(&id);
            self.terminate_soon.remove(&id);
            let (Turned::Rest(f) | Turned::Logs(f) | Turned::Done(f, _)) = turned;
            (self.on_done)(&f.report, false);
            return;
        }
        match turned {
            Turned::Rest(f) if !stopping => self.rest(f),
            Turned::Logs(f) if !stopping => self.ready_logs.push_back(f),
            Turned::Rest(_) | Turned::Logs(_) => {}
            Turned::Done(f, ended) => {
                self.poll_soon.remove(&key(&f.report.execution_id));
                self.terminate_soon.remove(&key(&f.report.execution_id));
                if ended {
                    (self.on_done)(&f.report, true);
                }
            }
        }
    }

    /// Puts `f` at rest until its next poll (or at once, when a poll was asked for).
    fn rest(&mut self, f: Box<Follow>) {
        let id = key(&f.report.execution_id);
        if self.poll_soon.remove(&id) {
            let mut f = f;
            f.hinted();
            if let Some(by) = self.terminate_soon.remove(&id) {
                f.terminate_asked(by);
            }
            self.ready_polls.push_back(f);
            return;
        }
        let at = f.next_poll().max(Instant::now());
        let k = self.queue.insert_at(f, at);
        self.at_rest.insert(id, k);
    }

    fn release(&mut self, which: &Which) {
        let keys: Vec<u128> = self.at_rest.keys().copied().filter(|&k| which(k)).collect();
        for k in keys {
            if let Some(at) = self.at_rest.remove(&k) {
                let f = self.queue.remove(&at).into_inner();
                (self.on_done)(&f.report, false);
            }
        }
        for ready in [&mut self.ready_polls, &mut self.ready_logs] {
            let mut kept = VecDeque::with_capacity(ready.len());
            for f in ready.drain(..) {
                if which(key(&f.report.execution_id)) {
                    (self.on_done)(&f.report, false);
                } else {
                    kept.push_back(f);
                }
            }
            *ready = kept;
        }
        let in_turn: Vec<u128> = self.in_turn.iter().copied().filter(|&k| which(k)).collect();
        self.releasing.extend(in_turn);
    }

    fn poll_now(&mut self, id: u128, job: Option<JobRef>) {
        match self.at_rest.remove(&id) {
            Some(k) => {
                let expired = self.queue.remove(&k);
                let deadline = expired.deadline();
                let f = expired.into_inner();
                if let Some(j) = job.filter(|j| !f.job.same_job(j)) {
                    tracing::debug!(job = %j, followed = %f.job, "A poll asked for another job; ignored.");
                    let k = self.queue.insert_at(f, deadline);
                    self.at_rest.insert(id, k);
                    return;
                }
                let mut f = f;
                f.hinted();
                if let Some(by) = self.terminate_soon.remove(&id) {
                    f.terminate_asked(by);
                }
                self.ready_polls.push_front(f);
            }
            None if self.in_turn.contains(&id) => {
                self.poll_soon.insert(id);
            }
            // Already due, or not followed here.
            None => {}
        }
    }
}

/// One turn of one execution, in the pool.
async fn take_turn(
    mut f: Box<Follow>,
    turn: Turn,
    journal: Arc<dyn Journal>,
    stop: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> Turned {
    let called = move || drop(permit);
    match turn {
        Turn::Poll => {
            let mut silent = Silent;
            let polled = tokio::select! {
                end = f.poll_turn(&*journal, &mut silent, called) => Some(end),
                () = stop.cancelled() => None,
            };
            match polled {
                None => Turned::Done(f, false),
                Some(None) => Turned::Rest(f),
                Some(Some(end)) => {
                    if f.end_turn(&end, &*journal).await {
                        Turned::Logs(f)
                    } else {
                        Turned::Done(f, true)
                    }
                }
            }
        }
        Turn::Logs => {
            let mut silent = Silent;
            let fetched = tokio::select! {
                () = f.logs_turn(&*journal, &mut silent, called) => true,
                () = stop.cancelled() => false,
            };
            // Stopped mid-fetch: the end is recorded with `logs_pending`; the next start
            // closes it without those logs, saying so.
            Turned::Done(f, fetched)
        }
    }
}
