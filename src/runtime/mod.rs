//! The HTTP runtime: tokio, hyper and hyper-util. No Python here.
//!
//! `server` binds and accepts, `service` turns a request into a `Call` for an
//! `exchange::Application` and its reply into a response, `body` reads request
//! bodies, `response` holds the response body types, `pool` runs blocking
//! application work, `access_log` writes one line per response.

/// `poll_flush` and `poll_shutdown` for an `AsyncWrite` wrapper whose
/// transport is its `inner` field: passed straight through.
macro_rules! forward_flush_and_shutdown {
    () => {
        fn poll_flush(
            self: ::std::pin::Pin<&mut Self>,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<::std::io::Result<()>> {
            ::std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }

        fn poll_shutdown(
            self: ::std::pin::Pin<&mut Self>,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<::std::io::Result<()>> {
            ::std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
        }
    };
}

/// An `AsyncWrite` for `$wrapper<I>` that passes every write to its `inner`
/// field (a wrapper that only changes how the transport is read).
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<I: ::tokio::io::AsyncWrite + Unpin> ::tokio::io::AsyncWrite for $wrapper<I> {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            forward_flush_and_shutdown!();
        }
    };
}

pub mod access_log;
pub mod activity;
pub mod body;
pub mod config;
pub mod detect;
pub mod exchange;
pub mod first;
pub mod h1;
pub mod h2c;
pub mod h2guard;
pub mod h2streams;
pub mod linger;
pub mod pool;
pub mod response;
pub mod sendfile;
pub mod server;
pub mod service;
pub mod socket_body;
pub mod tls;

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
