//! The server's end of a stream's WebSocket (ntfy's `/<uuid>/ws` and the connector's
//! `/pushjet/ws`): what it sends is bounded in bytes, and it can end the connection without a
//! close frame.
//!
//! - [`Outgoing::text`] counts the bytes handed to the connection against the bytes the HTTP
//!   server has taken from it for the socket; a client that does not read leaves them unsent,
//!   and once more than [`MAX_UNSENT_BYTES`] would wait (or a frame waits [`SEND_WAIT`] for room)
//!   the client is too slow ([`NotSent::TooSlow`]): the caller drops the connection, which frees
//!   what waited for it at once, or closes it within [`CLOSE_GRACE`].
//! - [`Outgoing::drop_connection`] shuts the TCP connection down without a WebSocket close
//!   frame. That is how ntfy's server ends its subscribers' connections, and the only end after
//!   which ntfy's web app reconnects (it retries when the browser reports a close that was not
//!   clean). A close frame waiting behind unsent bytes would never reach a client that does not
//!   read either.
//!
//! The connection's socket is found through [`remember_socket`], which the HTTP server calls for
//! every connection it accepts.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::Extensions;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseReason, MessageStream, Session};

/// The most bytes that may wait for a WebSocket client to read them before it is dropped as too
/// slow (a message larger than this is still sent when nothing else waits).
pub const MAX_UNSENT_BYTES: usize = 256 * 1024;

/// The longest a frame may wait for room in the connection's queue before the client is dropped
/// as too slow.
pub const SEND_WAIT: Duration = Duration::from_secs(10);

/// How long a close frame may wait for a slow client to take it before the connection is
/// dropped ([`Outgoing::close_or_drop`]).
pub const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// The largest frame read from a client.
const MAX_CLIENT_FRAME_BYTES: usize = 4096;

/// The socket of a connection, as the HTTP server accepted it.
#[derive(Debug, Clone, Copy)]
struct ConnectionSocket(RawFd);

/// Remembers the connection's socket (`HttpServer::on_connect`), so that a WebSocket served on
/// it can drop it.
pub fn remember_socket(connection: &dyn std::any::Any, data: &mut Extensions) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(ConnectionSocket(stream.as_raw_fd()));
    }
}

/// The request's connection, to shut down (a socket of its own on the same connection).
fn connection_of(request: &HttpRequest) -> Option<std::net::TcpStream> {
    let ConnectionSocket(fd) = *request.conn_data::<ConnectionSocket>()?;
    // SAFETY: the descriptor belongs to the connection this request arrived on, which is open
    // while its request is being handled (now): the HTTP server closes it only after the
    // request's handler and response are done. It is duplicated at once, so what is kept does
    // not depend on the server's descriptor afterwards.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from)
}

/// Bytes handed to the connection and bytes the HTTP server took for the socket.
#[derive(Debug, Default)]
struct Counts {
    handed: AtomicUsize,
    taken: AtomicUsize,
}

impl Counts {
    fn unsent(&self) -> usize {
        self.handed
            .load(Ordering::Relaxed)
            .saturating_sub(self.taken.load(Ordering::Relaxed))
    }
}

/// The response body: actix-ws's, counting what the server takes from it.
struct CountedBody {
    inner: BoxBody,
    counts: Arc<Counts>,
}

impl MessageBody for CountedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.counts.taken.fetch_add(bytes.len(), Ordering::Relaxed);
        }
        polled
    }
}

/// Why a frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// The connection is closed.
    Closed,
    /// The client reads too slowly: the connection was dropped.
    TooSlow,
}

/// The sending half of a stream's WebSocket.
pub struct Outgoing {
    session: Session,
    counts: Arc<Counts>,
    connection: Option<std::net::TcpStream>,
}

/// Upgrades `request` to a WebSocket: the answer, the sending half and the client's frames
/// (each at most 4 KiB).
pub fn upgrade(
    request: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, Outgoing, MessageStream), actix_web::Error> {
    let (response, session, messages) = actix_ws::handle(request, body)?;
    let counts = Arc::new(Counts::default());
    let counted = counts.clone();
    let response = response
        .map_body(|_, inner| CountedBody {
            inner,
            counts: counted,
        })
        .map_into_boxed_body();
    let outgoing = Outgoing {
        session,
        counts,
        connection: connection_of(request),
    };
    Ok((
        response,
        outgoing,
        messages.max_frame_size(MAX_CLIENT_FRAME_BYTES),
    ))
}

/// What a send that may wait at most [`SEND_WAIT`] says.
fn sent(
    outcome: Result<Result<(), actix_ws::Closed>, tokio::time::error::Elapsed>,
) -> Result<(), NotSent> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err(NotSent::Closed),
        Err(_waited) => Err(NotSent::TooSlow),
    }
}

impl Outgoing {
    /// Sends a text frame, unless the client is too slow for it.
    pub async fn text(&mut self, text: impl Into<String>) -> Result<(), NotSent> {
        let text: String = text.into();
        let unsent = self.counts.unsent();
        if unsent > 0 && unsent.saturating_add(text.len()) > MAX_UNSENT_BYTES {
            return Err(NotSent::TooSlow);
        }
        self.counts.handed.fetch_add(text.len(), Ordering::Relaxed);
        sent(actix_web::rt::time::timeout(SEND_WAIT, self.session.text(text)).await)
    }

    /// Pings the client.
    pub async fn ping(&mut self) -> Result<(), NotSent> {
        sent(actix_web::rt::time::timeout(SEND_WAIT, self.session.ping(b"")).await)
    }

    /// Answers a client's ping.
    pub async fn pong(&mut self, bytes: &[u8]) -> Result<(), NotSent> {
        sent(actix_web::rt::time::timeout(SEND_WAIT, self.session.pong(bytes)).await)
    }

    /// Closes with `reason` if the client takes the close frame within [`CLOSE_GRACE`] (reading
    /// what waits before it), else drops the connection; `messages` tells when it is closed.
    pub async fn close_or_drop(mut self, reason: CloseReason, messages: &mut MessageStream) {
        let connection = self.connection.take();
        let closed = async {
            if self.session.close(Some(reason)).await.is_ok() {
                while messages.recv().await.is_some() {}
            }
        };
        if actix_web::rt::time::timeout(CLOSE_GRACE, closed)
            .await
            .is_err()
            && let Some(connection) = connection
        {
            let _gone_already = connection.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Ends the WebSocket with a close frame (the connector protocol's documented ends, and the
    /// answer to a client's own close).
    pub async fn close(self, reason: Option<CloseReason>) {
        let Self {
            session,
            connection,
            ..
        } = self;
        if actix_web::rt::time::timeout(SEND_WAIT, session.close(reason))
            .await
            .is_err()
            && let Some(connection) = connection
        {
            let _gone_already = connection.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Drops the TCP connection without a close frame; what waited to be sent is let go of.
    pub fn drop_connection(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _gone_already = connection.shutdown(std::net::Shutdown::Both);
        }
    }
}
