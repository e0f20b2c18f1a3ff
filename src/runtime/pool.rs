//! The blocking-work pool: a fixed set of OS threads that run application code.
//!
//! What it does: runs boxed jobs on `threads` threads. New requests enter a
//! bounded queue (`try_submit` refuses past `queue_size`, which the server turns
//! into a 503); continuations of requests already in progress (the next chunk of a
//! response iterable, a `close()` call) enter a second queue that is never refused
//! and is served first, so work already started finishes before new work begins.
//!
//! Each thread runs a loop the embedder writes around a `Worker`: take a job
//! without waiting while there is one (`next(false)`), and wait for one only
//! when the queues are empty (`next(true)`). That lets the Python bridge keep a
//! thread attached to the interpreter across consecutive jobs and detach only
//! to wait, instead of handing the GIL over once per job.
//!
//! A new request's job may come with a `Queued` (`try_submit_queued`): if no
//! thread has taken it within the queue timeout, the monitor thread marks it
//! abandoned and drops it unrun, and the runtime answers 503. Checking the
//! queue's oldest entry on the monitor's ticks costs nothing per request but
//! reading the clock once; a timer per request cost about 5% of the HTTP/2
//! hello-world rate.
//!
//! What it does not do: it knows nothing about Python.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::watchdog::{Slots, Watch, Watchdog};

/// Work for a pool thread. A closure is one; so can be a type of its own,
/// whose data and job are then one allocation, run in place (`run` takes the
/// box, not the value: nothing is moved out of it).
pub(crate) trait Task: Send + 'static {
    fn run(self: Box<Self>);
}

impl<F: FnOnce() + Send + 'static> Task for F {
    fn run(self: Box<Self>) {
        (*self)()
    }
}

pub(crate) type Job = Box<dyn Task>;

/// Times an idle worker yields the CPU before it sleeps (see `Worker::next`).
const YIELDS_BEFORE_WAIT: u32 = 2;

/// How long queued work may wait, while every awake thread is busy and none
/// takes a job, before the monitor wakes another thread (see `Pool::wake_for`).
pub(crate) const STALL_TICK: Duration = Duration::from_millis(1);

/// The longest the monitor sleeps while no queued work needs watching: a
/// request past its queue timeout is answered within this (or a tenth of
/// the timeout, if that is shorter).
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// A call's place in the pool's queue, shared by the runtime, which waits
/// for the call's response, and the pool, which abandons a call no thread
/// has taken within `--queue-timeout` (`ServerConfig::queue_timeout`): it
/// marks the call abandoned, then drops it unrun, so the runtime, finding
/// the reply dropped, answers 503 instead of 500. A call a thread has taken
/// is never abandoned (the pool takes and abandons under one lock).
#[derive(Clone, Default)]
pub(crate) struct Queued(Arc<AtomicBool>);

impl Queued {
    pub(crate) fn new() -> Queued {
        Queued::default()
    }

    /// The pool gave up on the call: it waited too long for a thread.
    pub(crate) fn abandon(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs on each pool thread; must call `Worker::next` until it returns None.
pub(crate) type ThreadMain = Arc<dyn Fn(Worker) + Send + Sync>;

pub(crate) struct Pool {
    shared: Arc<Shared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<Queues>,
    work: Condvar,
    idle: Condvar,
    monitor: Condvar,
    queue_size: usize,
    threads: usize,
    /// How long a job submitted with a `Queued` may wait for a thread.
    queue_timeout: Duration,
    /// What each thread runs, for the watchdog.
    slots: Slots,
}

impl Shared {
    fn notify(&self, wake: Wake) {
        match wake {
            Wake::Nobody => {}
            Wake::Sleeper => self.work.notify_one(),
            Wake::Monitor => self.monitor.notify_one(),
        }
    }
}

/// A new request's job in the queue.
struct Fresh {
    job: Job,
    /// When it may no longer start, and how to tell its request so.
    expiry: Option<(Instant, Queued)>,
}

struct Queues {
    fresh: VecDeque<Fresh>,
    resumed: VecDeque<Job>,
    busy: usize,
    /// Of the busy ones, those waiting for the network inside `blocking`.
    blocked: usize,
    /// Threads blocked in `next(true)`.
    waiting: usize,
    /// Of those, the ones already notified (not yet back from the wait): a
    /// second notification for the same sleeper would be a wasted syscall.
    woken: usize,
    /// Jobs taken so far: the monitor's sign of progress.
    taken: u64,
    /// New requests' jobs taken so far (`--max-requests`).
    started: u64,
    /// The monitor is watching the queues (they held work while every awake
    /// thread was busy).
    armed: bool,
    stopping: bool,
}

impl Queues {
    fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.resumed.is_empty()
    }

    /// Sleeping threads nobody has notified yet.
    fn sleepers(&self) -> usize {
        self.waiting - self.woken
    }

    /// Who must hear of a job just queued (already in the queues), of
    /// `threads` in all. As many threads awake and not busy (between jobs, or
    /// notified and on their way) as there are queued jobs: nobody. No thread
    /// awake but busy ones waiting for the network (`blocking`), or none at
    /// all: wake one. Otherwise (a thread is running a job, or one awake
    /// thread is about to take an earlier job): wake nobody yet, and let the
    /// monitor wake a sleeper if no job is taken within a `STALL_TICK` (the
    /// busy threads are blocked, or running long). Short jobs (most requests)
    /// are then run back to back by the thread already running, as the GIL
    /// would serialise them anyway, instead of waking a thread per request to
    /// queue for the GIL.
    fn wake_for(&mut self, threads: usize) -> Wake {
        let idle_awake = threads - self.sleepers() - self.busy;
        let queued = self.fresh.len() + self.resumed.len();
        if idle_awake >= queued || self.sleepers() == 0 {
            Wake::Nobody
        } else if idle_awake == 0 && self.busy == self.blocked {
            self.woken += 1;
            Wake::Sleeper
        } else if !self.armed {
            self.armed = true;
            Wake::Monitor
        } else {
            Wake::Nobody
        }
    }
}

/// A pool thread's handle on the queues.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    /// This thread's slot in `Shared::slots`.
    index: usize,
    holding: bool,
}

impl Worker {
    /// The next job, resumed work first. With `wait`, blocks until there is one
    /// (None: the pool is shutting down); without, None when the queues are empty.
    pub(crate) fn next(&mut self, wait: bool) -> Option<Job> {
        let shared = &self.shared;
        let mut q = shared.state.lock().unwrap();
        if std::mem::take(&mut self.holding) {
            q.busy -= 1;
            shared.slots.done(self.index);
        }
        let mut yields = if wait { YIELDS_BEFORE_WAIT } else { 0 };
        loop {
            let next = match q.resumed.pop_front() {
                Some(job) => Some(job),
                None => q.fresh.pop_front().map(|f| {
                    q.started += 1;
                    f.job
                }),
            };
            if let Some(job) = next {
                q.busy += 1;
                q.taken += 1;
                shared.slots.took(self.index, q.taken);
                self.holding = true;
                return Some(job);
            }
            if q.busy == 0 && q.stopping {
                shared.idle.notify_all();
            }
            if !wait || q.stopping {
                return None;
            }
            if yields > 0 {
                // Let the I/O threads run first: they usually have more
                // requests ready, and taking them in one batch costs one
                // wake-up instead of one per request.
                yields -= 1;
                drop(q);
                std::thread::yield_now();
                q = shared.state.lock().unwrap();
                continue;
            }
            q.waiting += 1;
            q = shared.work.wait(q).unwrap();
            q.waiting -= 1;
            q.woken = q.woken.saturating_sub(1).min(q.waiting);
        }
    }

    /// Run a job so that a panic does not take the thread (and its queue) down.
    pub(crate) fn run(job: Job) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || job.run()));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.holding {
            let mut q = self.shared.state.lock().unwrap();
            q.busy -= 1;
            if q.busy == 0 {
                self.shared.idle.notify_all();
            }
        }
    }
}

thread_local! {
    /// The pool this thread belongs to, and its slot there (None outside
    /// pool threads).
    static POOL: std::cell::RefCell<Option<(Arc<Shared>, usize)>> = const { std::cell::RefCell::new(None) };
}

/// Run `wait`, a wait for the network (request body bytes, room for response
/// bytes), so that on a pool thread queued work does not wait for it: the
/// thread counts as blocked, and a sleeping thread is woken at once if jobs
/// are queued and no other awake thread is free or running. Off the pool it
/// only runs `wait`.
pub(crate) fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    struct Blocked(Arc<Shared>, usize);
    impl Drop for Blocked {
        fn drop(&mut self) {
            self.0.state.lock().unwrap().blocked -= 1;
            self.0.slots.set_waiting(self.1, false);
        }
    }
    let Some((shared, index)) = POOL.with(|p| p.borrow().clone()) else {
        return wait();
    };
    shared.slots.set_waiting(index, true);
    let wake = {
        let mut q = shared.state.lock().unwrap();
        q.blocked += 1;
        if q.is_empty() {
            Wake::Nobody
        } else {
            q.wake_for(shared.threads)
        }
    };
    shared.notify(wake);
    let _blocked = Blocked(shared, index);
    wait()
}

/// The loop for threads that need no setup: wait, run, repeat.
#[cfg(test)]
pub(crate) fn plain_thread_main() -> ThreadMain {
    Arc::new(|mut worker: Worker| {
        while let Some(job) = worker.next(true) {
            Worker::run(job);
        }
    })
}

/// Wakes a sleeping thread when queued work makes no progress: every awake
/// thread is busy (a long or blocking job) and none has taken a job for a
/// whole `STALL_TICK`. Ticks only while armed, and disarms itself at the
/// first tick that finds the queues empty.
///
/// With a `Watch`, it also runs the watchdog about once a second
/// (`watchdog::TICK`), and reports what it finds outside the lock.
fn monitor(shared: Arc<Shared>, mut watchdog: Option<Watchdog>) {
    // Its wake-ups (armed by a submission) need not preempt the thread running.
    super::scheduling::batch_scheduling();
    let mut expiry_tick = (shared.queue_timeout / 10).clamp(Duration::from_millis(10), EXPIRY_TICK);
    if watchdog.is_some() {
        expiry_tick = expiry_tick.min(super::watchdog::TICK);
    }
    let mut q = shared.state.lock().unwrap();
    loop {
        if q.stopping {
            return;
        }
        q = expire(&shared, q);
        if let Some(dog) = watchdog.as_mut() {
            let now = Instant::now();
            if dog.due(now) {
                let events = dog.look(&shared.slots, q.started, now);
                if !events.is_empty() {
                    drop(q);
                    dog.report(&events);
                    q = shared.state.lock().unwrap();
                }
            }
        }
        if !q.armed {
            q = shared.monitor.wait_timeout(q, expiry_tick).unwrap().0;
            continue;
        }
        let seen = q.taken;
        q = shared.monitor.wait_timeout(q, STALL_TICK).unwrap().0;
        if q.is_empty() {
            q.armed = false;
        } else if q.taken == seen && q.sleepers() > 0 {
            q.woken += 1;
            shared.work.notify_one();
        }
    }
}

/// Abandon the queued jobs past their expiry (the oldest are at the front),
/// then drop them, outside the lock: their requests are answered 503.
fn expire<'a>(
    shared: &'a Shared,
    mut q: std::sync::MutexGuard<'a, Queues>,
) -> std::sync::MutexGuard<'a, Queues> {
    let now = Instant::now();
    let mut expired = Vec::new();
    while let Some(Fresh {
        expiry: Some((at, _)),
        ..
    }) = q.fresh.front()
    {
        if *at > now {
            break;
        }
        expired.extend(q.fresh.pop_front());
    }
    if expired.is_empty() {
        return q;
    }
    drop(q);
    for fresh in expired {
        if let Some((_, queued)) = &fresh.expiry {
            queued.abandon();
        }
        drop(fresh.job);
    }
    shared.state.lock().unwrap()
}

/// What a submission asks of the other threads.
#[derive(Debug, PartialEq)]
enum Wake {
    Nobody,
    Sleeper,
    Monitor,
}

impl Pool {
    /// A job submitted with a `Queued` waits at most `queue_timeout`.
    #[cfg(test)]
    pub(crate) fn new(
        threads: usize,
        queue_size: usize,
        queue_timeout: Duration,
        thread_main: ThreadMain,
    ) -> std::io::Result<Pool> {
        Pool::watched(threads, queue_size, queue_timeout, thread_main, None)
    }

    /// As `new`, the threads watched as `watch` says (`watchdog`).
    pub(crate) fn watched(
        threads: usize,
        queue_size: usize,
        queue_timeout: Duration,
        thread_main: ThreadMain,
        watch: Option<Watch>,
    ) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(Queues {
                fresh: VecDeque::new(),
                resumed: VecDeque::new(),
                busy: 0,
                blocked: 0,
                waiting: 0,
                woken: 0,
                taken: 0,
                started: 0,
                armed: false,
                stopping: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            monitor: Condvar::new(),
            queue_size,
            threads,
            queue_timeout,
            slots: Slots::new(threads),
        });
        let mut handles = Vec::with_capacity(shared.threads + 1);
        for index in 0..shared.threads {
            let worker = Worker {
                shared: shared.clone(),
                index,
                holding: false,
            };
            let main = thread_main.clone();
            let handle = std::thread::Builder::new()
                .name(format!("propylon-worker-{index}"))
                .spawn(move || {
                    worker.shared.slots.register_current_thread(index);
                    POOL.with(|p| *p.borrow_mut() = Some((worker.shared.clone(), index)));
                    main(worker)
                })?;
            handles.push(handle);
        }
        let watched = shared.clone();
        let watchdog = watch.map(|w| Watchdog::new(w, threads));
        handles.push(
            std::thread::Builder::new()
                .name("propylon-pool".into())
                .spawn(move || monitor(watched, watchdog))?,
        );
        Ok(Pool {
            shared,
            handles: Mutex::new(handles),
        })
    }

    /// Queue a new request's first job; gives the job back when the queue is full.
    #[cfg(test)]
    pub(crate) fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.submit_fresh(Fresh { job, expiry: None })
    }

    /// Queue a new request's first job, to be abandoned (`Queued::abandon`)
    /// and dropped unrun if no thread takes it within the queue timeout;
    /// gives the job back when the queue is full.
    pub(crate) fn try_submit_queued(&self, job: Job, queued: Queued) -> Result<(), Job> {
        let expiry = Some((Instant::now() + self.shared.queue_timeout, queued));
        self.submit_fresh(Fresh { job, expiry })
    }

    fn submit_fresh(&self, fresh: Fresh) -> Result<(), Job> {
        let mut q = self.shared.state.lock().unwrap();
        let free_threads = self.shared.threads.saturating_sub(q.busy + q.resumed.len());
        if q.stopping || q.fresh.len() >= self.shared.queue_size + free_threads {
            return Err(fresh.job);
        }
        q.fresh.push_back(fresh);
        let wake = q.wake_for(self.shared.threads);
        drop(q);
        self.shared.notify(wake);
        Ok(())
    }

    /// observe: the pool's load for the metrics (`metrics::recorder`):
    /// new requests waiting for a thread, and threads running a job.
    pub(crate) fn load(&self) -> (usize, usize) {
        let q = self.shared.state.lock().unwrap();
        (q.fresh.len(), q.busy)
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Queue the continuation of work already admitted. Never refused.
    pub(crate) fn submit_resumed(&self, job: Job) {
        let mut q = self.shared.state.lock().unwrap();
        q.resumed.push_back(job);
        let wake = q.wake_for(self.shared.threads);
        drop(q);
        self.shared.notify(wake);
    }

    /// Stop the threads once the queues are empty. Returns true when every thread
    /// finished within `timeout` (false: some application code is still running).
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        {
            let mut q = self.shared.state.lock().unwrap();
            q.stopping = true;
            self.shared.work.notify_all();
            while q.busy > 0 || !q.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                q = self.shared.idle.wait_timeout(q, deadline - now).unwrap().0;
            }
            self.shared.work.notify_all();
            self.shared.monitor.notify_all();
        }
        for handle in self.handles.lock().unwrap().drain(..) {
            let _ = handle.join();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn an_abandoned_call_says_so_to_every_holder() {
        let q = Queued::new();
        let runtime = q.clone();
        assert!(!runtime.is_abandoned());
        q.abandon();
        assert!(runtime.is_abandoned());
    }

    /// A queue timeout no test reaches, where expiry is not what it tests.
    const TIMEOUT: Duration = Duration::from_secs(3600);

    /// Submit a job that holds a pool thread, and wait until it does; the
    /// thread is let go when the returned sender sends (or is dropped).
    fn occupy(pool: &Pool) -> mpsc::Sender<()> {
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.try_submit(Box::new(move || {
            started_tx.send(()).unwrap();
            let _ = block_rx.recv();
        }))
        .ok()
        .unwrap();
        started_rx.recv().unwrap();
        block_tx
    }

    #[test]
    fn the_watchdog_reports_a_job_running_past_the_timeout_and_every_thread_stuck() {
        use crate::runtime::watchdog::{Event, Watch};
        let (events_tx, events_rx) = mpsc::channel::<Event>();
        let events_tx = Mutex::new(events_tx);
        let watch = Watch {
            stuck_after: Some(Duration::from_millis(1500)),
            max_requests: Some(1),
            report: Arc::new(move |events: &[Event]| {
                for event in events {
                    let _ = events_tx.lock().unwrap().send(event.clone());
                }
            }),
        };
        let pool = Pool::watched(1, 4, TIMEOUT, plain_thread_main(), Some(watch)).unwrap();
        let release = occupy(&pool);
        let wait = Duration::from_secs(10);
        assert_eq!(events_rx.recv_timeout(wait).unwrap(), Event::RequestLimit);
        match events_rx.recv_timeout(wait).unwrap() {
            Event::Stuck { thread_id, running } => {
                assert_ne!(thread_id, 0);
                assert!(running >= Duration::from_millis(1500));
            }
            other => panic!("expected Stuck, got {other:?}"),
        }
        assert_eq!(events_rx.recv_timeout(wait).unwrap(), Event::AllStuck);
        drop(release);
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_queued_job_no_thread_takes_in_time_is_abandoned_unrun() {
        let pool = Pool::new(1, 4, Duration::from_millis(100), plain_thread_main()).unwrap();
        let block_tx = occupy(&pool);
        // The only thread is busy: this one waits, past its timeout.
        let (ran_tx, ran_rx) = mpsc::channel::<()>();
        let (dropped_tx, dropped_rx) = mpsc::channel::<bool>();
        let queued = Queued::new();
        let seen = queued.clone();
        struct OnDrop(Option<mpsc::Sender<bool>>, Queued);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                // Abandoned before it is dropped: the runtime sees both at once.
                let _ = self.0.take().unwrap().send(self.1.is_abandoned());
            }
        }
        let on_drop = OnDrop(Some(dropped_tx), queued.clone());
        pool.try_submit_queued(
            Box::new(move || {
                let _keep = on_drop;
                ran_tx.send(()).unwrap();
            }),
            queued,
        )
        .ok()
        .unwrap();
        assert!(dropped_rx.recv_timeout(Duration::from_secs(10)).unwrap());
        assert!(seen.is_abandoned());
        block_tx.send(()).unwrap();
        assert!(pool.shutdown(Duration::from_secs(5)));
        assert!(ran_rx.try_recv().is_err(), "the abandoned job never ran");
        // One taken in time runs, and is not abandoned.
        let pool = Pool::new(1, 4, Duration::from_millis(100), plain_thread_main()).unwrap();
        let queued = Queued::new();
        let (ran_tx, ran_rx) = mpsc::channel::<()>();
        pool.try_submit_queued(Box::new(move || ran_tx.send(()).unwrap()), queued.clone())
            .ok()
            .unwrap();
        ran_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(pool.shutdown(Duration::from_secs(5)));
        assert!(!queued.is_abandoned());
    }

    #[test]
    fn runs_jobs_and_refuses_past_the_queue() {
        let pool = Pool::new(1, 1, TIMEOUT, plain_thread_main()).unwrap();
        let block_tx = occupy(&pool);
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        let d = done_tx.clone();
        assert!(pool
            .try_submit(Box::new(move || d.send(1).unwrap()))
            .is_ok());
        assert!(
            pool.try_submit(Box::new(|| {})).is_err(),
            "queue of 1 is full"
        );
        // Continuations are never refused.
        pool.submit_resumed(Box::new(move || done_tx.send(2).unwrap()));
        block_tx.send(()).unwrap();
        // The continuation runs before the queued fresh job.
        assert_eq!(done_rx.recv().unwrap(), 2);
        assert_eq!(done_rx.recv().unwrap(), 1);
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_blocked_thread_does_not_hold_up_the_queue() {
        // The first job blocks until the second has run: the second must get
        // another thread although one was awake (busy) when it was queued.
        let pool = Pool::new(2, 4, TIMEOUT, plain_thread_main()).unwrap();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (second_tx, second_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        pool.try_submit(Box::new(move || {
            started_tx.send(()).unwrap();
            second_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            done_tx.send(()).unwrap();
        }))
        .ok()
        .unwrap();
        started_rx.recv().unwrap();
        pool.try_submit(Box::new(move || second_tx.send(()).unwrap()))
            .ok()
            .unwrap();
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the queued job ran on a second thread");
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    fn queues(busy: usize, waiting: usize) -> Queues {
        Queues {
            fresh: VecDeque::new(),
            resumed: VecDeque::new(),
            busy,
            blocked: 0,
            waiting,
            woken: 0,
            taken: 0,
            started: 0,
            armed: false,
            stopping: false,
        }
    }

    /// Queue one more (empty) job and ask who must hear of it.
    fn queue_one(q: &mut Queues, threads: usize) -> Wake {
        q.fresh.push_back(Fresh {
            job: Box::new(|| {}),
            expiry: None,
        });
        q.wake_for(threads)
    }

    #[test]
    fn a_job_wakes_a_thread_only_when_none_would_take_it() {
        // 4 threads, all asleep: the first job wakes one; the second finds
        // that one on its way to the first job: the monitor is armed.
        let mut q = queues(0, 4);
        assert_eq!(queue_one(&mut q, 4), Wake::Sleeper);
        assert_eq!(queue_one(&mut q, 4), Wake::Monitor);
        assert_eq!(queue_one(&mut q, 4), Wake::Nobody);
        // One thread between jobs (awake, not busy), three asleep: it takes
        // the job; nobody is woken.
        assert_eq!(queue_one(&mut queues(0, 3), 4), Wake::Nobody);
        // One thread busy, three asleep: the monitor is armed once, and a
        // burst of short jobs wakes nobody else.
        let mut q = queues(1, 3);
        assert_eq!(queue_one(&mut q, 4), Wake::Monitor);
        for _ in 0..63 {
            assert_eq!(queue_one(&mut q, 4), Wake::Nobody);
        }
        // Every thread busy: nobody to wake.
        assert_eq!(queue_one(&mut queues(4, 0), 4), Wake::Nobody);
        // The one busy thread waits for the network (`blocking`): wake a
        // sleeper at once, not a tick later.
        let mut q = queues(1, 3);
        q.blocked = 1;
        assert_eq!(queue_one(&mut q, 4), Wake::Sleeper);
        // Two busy, one of them running: the monitor.
        let mut q = queues(2, 2);
        q.blocked = 1;
        assert_eq!(queue_one(&mut q, 4), Wake::Monitor);
    }

    #[test]
    fn two_jobs_at_once_that_both_block_both_run() {
        // The race the h2 test found: two jobs queued back to back, the first
        // wakes a thread, which then blocks in the first job; the second
        // must still get a thread (the monitor's, a tick later).
        let pool = Pool::new(2, 4, TIMEOUT, plain_thread_main()).unwrap();
        let (tx, rx) = mpsc::channel::<u32>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for n in 0..2 {
            let tx = tx.clone();
            let release_rx = release_rx.clone();
            pool.try_submit(Box::new(move || {
                tx.send(n).unwrap();
                if n == 0 {
                    let _ = release_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(10));
                }
            }))
            .ok()
            .unwrap();
        }
        let mut started = [
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            rx.recv_timeout(Duration::from_secs(5))
                .expect("the second job ran"),
        ];
        started.sort();
        assert_eq!(started, [0, 1]);
        release_tx.send(()).unwrap();
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_job_waiting_for_the_network_lets_the_queue_go_on() {
        // The first job waits (inside `blocking`) for the second: the second
        // is handed to another thread when the first starts waiting.
        let pool = Pool::new(2, 4, TIMEOUT, plain_thread_main()).unwrap();
        let (second_tx, second_rx) = mpsc::channel::<()>();
        let (queued_tx, queued_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<usize>();
        pool.try_submit(Box::new(move || {
            queued_rx.recv().unwrap();
            let blocked = blocking(|| {
                second_rx.recv_timeout(Duration::from_secs(10)).unwrap();
                POOL.with(|p| p.borrow().as_ref().unwrap().0.state.lock().unwrap().blocked)
            });
            done_tx.send(blocked).unwrap();
        }))
        .ok()
        .unwrap();
        pool.try_submit(Box::new(move || second_tx.send(()).unwrap()))
            .ok()
            .unwrap();
        queued_tx.send(()).unwrap();
        let blocked = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(blocked, 1, "the waiting thread counted as blocked");
        assert_eq!(pool.shared.state.lock().unwrap().blocked, 0);
        assert!(pool.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_thread() {
        let pool = Pool::new(1, 4, TIMEOUT, plain_thread_main()).unwrap();
        pool.try_submit(Box::new(|| panic!("boom"))).ok().unwrap();
        let (tx, rx) = mpsc::channel();
        pool.try_submit(Box::new(move || tx.send(()).unwrap()))
            .ok()
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the thread survived the panic");
        assert!(pool.shutdown(Duration::from_secs(5)));
    }
}
