//! The blocking-work pool: a fixed set of OS threads that run application code.
//!
//! What it does: runs boxed jobs on `threads` threads. New requests enter a
//! bounded queue (`try_submit` refuses past `queue_size`, which the server turns
//! into a 503); continuations of requests already in progress (the next chunk of a
//! response iterable, a `close()` call) enter a second queue that is never refused
//! and is served first, so work already started finishes before new work begins.
//!
//! What it does not do: it knows nothing about Python. The bridge passes a
//! `thread_main` that wraps each thread's loop (to attach the thread to the
//! interpreter once, for the thread's whole life).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Wraps the body of every pool thread; receives the loop to run.
pub type ThreadMain = Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

pub struct Pool {
    shared: Arc<Shared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<Queues>,
    work: Condvar,
    idle: Condvar,
    queue_size: usize,
    threads: usize,
}

struct Queues {
    fresh: VecDeque<Job>,
    resumed: VecDeque<Job>,
    busy: usize,
    stopping: bool,
}

impl Pool {
    pub fn new(
        threads: usize,
        queue_size: usize,
        thread_main: ThreadMain,
    ) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queues {
                fresh: VecDeque::new(),
                resumed: VecDeque::new(),
                busy: 0,
                stopping: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            queue_size,
            threads: threads.max(1),
        });
        let mut handles = Vec::with_capacity(threads);
        for index in 0..shared.threads {
            let shared = shared.clone();
            let main = thread_main.clone();
            let handle = std::thread::Builder::new()
                .name(format!("propylon-worker-{index}"))
                .spawn(move || main(Box::new(move || worker_loop(&shared))))?;
            handles.push(handle);
        }
        Ok(Pool {
            shared,
            handles: Mutex::new(handles),
        })
    }

    /// Queue a new request's first job; gives the job back when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        let mut q = self.shared.state.lock().unwrap();
        let free_threads = self.shared.threads.saturating_sub(q.busy + q.resumed.len());
        if q.stopping || q.fresh.len() >= self.shared.queue_size + free_threads {
            return Err(job);
        }
        q.fresh.push_back(job);
        drop(q);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Queue the continuation of work already admitted. Never refused.
    pub fn submit_resumed(&self, job: Job) {
        let mut q = self.shared.state.lock().unwrap();
        q.resumed.push_back(job);
        drop(q);
        self.shared.work.notify_one();
    }

    /// Stop the threads once the queues are empty. Returns true when every thread
    /// finished within `timeout` (false: some application code is still running).
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        {
            let mut q = self.shared.state.lock().unwrap();
            q.stopping = true;
            self.shared.work.notify_all();
            while q.busy > 0 || !q.fresh.is_empty() || !q.resumed.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                q = self.shared.idle.wait_timeout(q, deadline - now).unwrap().0;
            }
        }
        for handle in self.handles.lock().unwrap().drain(..) {
            let _ = handle.join();
        }
        true
    }
}

fn worker_loop(shared: &Shared) {
    let mut q = shared.state.lock().unwrap();
    loop {
        let job = q.resumed.pop_front().or_else(|| q.fresh.pop_front());
        match job {
            Some(job) => {
                q.busy += 1;
                drop(q);
                // A panicking job must not take the thread (and its queue) down.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                q = shared.state.lock().unwrap();
                q.busy -= 1;
                if q.busy == 0 && q.fresh.is_empty() && q.resumed.is_empty() {
                    shared.idle.notify_all();
                }
            }
            None if q.stopping => return,
            None => q = shared.work.wait(q).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn plain() -> ThreadMain {
        Arc::new(|f: Box<dyn FnOnce() + Send>| f())
    }

    #[test]
    fn runs_jobs_and_refuses_past_the_queue() {
        let pool = Pool::new(1, 1, plain()).unwrap();
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.try_submit(Box::new(move || {
            started_tx.send(()).unwrap();
            block_rx.recv().unwrap();
        }))
        .ok()
        .unwrap();
        started_rx.recv().unwrap();
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
}
