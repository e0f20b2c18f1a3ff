//! `AsyncWrite` pass-through for transport wrappers that change only how
//! their `inner` transport is read (or what happens around writes).
//!
//! What it does not do: wrap anything itself; each wrapper invokes these.

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

            $crate::runtime::transport::forward::forward_flush_and_shutdown!();
        }
    };
}

pub(crate) use {forward_async_write, forward_flush_and_shutdown};
