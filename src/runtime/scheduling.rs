//! The scheduling class of the server's own threads.
//!
//! What it does not do: create threads (the tokio runtime in `server` and the
//! pool's monitor in `pool` call it on theirs).

/// Put the calling thread in the `SCHED_BATCH` class (Linux; elsewhere, and if
/// the kernel refuses, nothing changes).
///
/// The I/O threads and the pool's monitor use it. A `SCHED_BATCH` thread that
/// is woken does not preempt the thread running on its CPU: when a Python
/// thread hands a response to a sleeping I/O thread on the same CPU, it goes on
/// to the next queued request instead of being switched out, and the I/O
/// thread, when it runs (at the latest at the end of the running thread's time
/// slice, or when it waits), writes a batch of responses and reads a batch of
/// requests for one pair of context switches instead of one pair per request.
/// It changes nothing where the woken thread has an idle CPU to run on. The
/// cost: on a busy CPU, network work waits for the running thread's slice
/// (a few milliseconds at most) instead of preempting it. See docs/internals/performance.md.
pub(crate) fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads `param`; pid 0 is the calling thread.
        let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if done != 0 {
            log::debug!(target: "propylon.server", "SCHED_BATCH refused: {}", std::io::Error::last_os_error());
        }
    }
}
