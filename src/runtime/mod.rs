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
pub mod h2c;
pub mod h2guard;
pub mod pool;
pub mod response;
pub mod sendfile;
pub mod server;
pub mod service;
pub mod tls;
