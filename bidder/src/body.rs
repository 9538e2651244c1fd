//! Response bodies: whole buffers, and the byte-by-byte trickle used by [`crate::Fault::Trickle`].

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Pause between two bytes of a trickled response.
pub const TRICKLE_INTERVAL: Duration = Duration::from_millis(20);

/// The body type of every response the bidder sends.
pub(crate) type ResponseBody = BoxBody<Bytes, Infallible>;

/// A body sent in one piece.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed()
}

/// A body fed from a channel: each received chunk becomes one data frame.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// A body that delivers `bytes` one byte at a time, `interval` apart.
///
/// A task feeds the channel; it stops as soon as the body is dropped (client gone,
/// connection closed, server shut down), because the send then fails.
pub(crate) fn trickle(bytes: Bytes, interval: Duration) -> ResponseBody {
    // Capacity 1: the feeder must not run ahead of the connection, or the pauses would
    // only happen in the channel, not on the wire.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..bytes.len() {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            if tx.send(bytes.slice(i..i + 1)).await.is_err() {
                return;
            }
        }
    });
    ChannelBody { rx }.boxed()
}
