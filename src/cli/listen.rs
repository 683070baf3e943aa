//! `pushjet-bridge client device listen --uuid U`: prints each message of a device as one JSON
//! line the moment it arrives, through the connector protocol at `<api>/ws` (`GET /pushjet/ws`
//! on the embedded API; see `crate::streams::connector`). It reconnects with backoff and then
//! gets what arrived meanwhile as the device's unread messages; Ctrl-C stops it. Against a
//! server without streams (the real Pushjet server answers 404) it polls `GET /message` instead
//! and says so on standard error.
//!
//! Like `device messages`, listening consumes the messages: they are marked read once sent.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::time::Duration;

use awc::ws::{Frame, Message as WsMessage};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use crate::pushjet::wire::MessageView;
use crate::pushjet::{Api, DeviceUuid, Error as PushjetError, Message};

/// The connector's acknowledgement.
const STATUS_OK: &str = "{'status': 'ok'}";
/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often `GET /message` is polled against a server without streams.
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// How many printed messages are remembered, so that one printed just before a connection broke
/// (and not yet marked read on the server) is not printed again when the server sends it again
/// as unread after the reconnect. Only that replay is checked: the first message after a
/// reconnect that was not printed ends it, and from then on every message is printed.
const REMEMBERED: usize = 256;

/// Why listening stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The API URL cannot carry a WebSocket.
    #[error("the API URL cannot be turned into a WebSocket URL: {0}")]
    Url(String),
    /// Polling failed.
    #[error(transparent)]
    Pushjet(#[from] PushjetError),
    /// Standard output was closed.
    #[error("cannot write to standard output: {0}")]
    Output(#[from] std::io::Error),
}

/// How one connection ended.
enum Ended {
    /// The server has no stream endpoint: poll instead.
    NoStreams(String),
    /// The connection failed or closed; try again after a pause.
    Broken(String),
    /// Ctrl-C.
    Stopped,
}

/// Prints messages, skipping those of a replay after a reconnect that were printed already.
#[derive(Default)]
struct Printed {
    recent: VecDeque<u64>,
    replaying: bool,
}

impl Printed {
    /// A new connection: what it sends first may have been printed before.
    fn reconnected(&mut self) {
        self.replaying = !self.recent.is_empty();
    }

    fn print(&mut self, message: &MessageView) -> Result<(), ListenError> {
        let mut hasher = DefaultHasher::new();
        serde_json::to_string(message)
            .unwrap_or_default()
            .hash(&mut hasher);
        let fingerprint = hasher.finish();
        if self.replaying && self.recent.contains(&fingerprint) {
            return Ok(());
        }
        self.replaying = false;
        if self.recent.len() == REMEMBERED {
            self.recent.pop_front();
        }
        self.recent.push_back(fingerprint);
        let line = serde_json::to_string(&Message::from(message.clone()))
            .map_err(|error| ListenError::Output(std::io::Error::other(error)))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }
}

/// Listens until Ctrl-C.
pub async fn listen(api: &Api, uuid: DeviceUuid) -> Result<(), ListenError> {
    let url = websocket_url(api)?;
    let mut printed = Printed::default();
    let mut backoff = FIRST_BACKOFF;
    loop {
        match connect_once(&url, &uuid, &mut printed).await? {
            Ended::Stopped => return Ok(()),
            Ended::NoStreams(why) => {
                eprintln!(
                    "the server offers no stream ({why}); polling GET /message every {}s instead",
                    POLL_EVERY.as_secs()
                );
                return poll(api, uuid).await;
            }
            Ended::Broken(why) => {
                let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
                eprintln!(
                    "the stream broke ({why}); reconnecting in {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    () = actix_web::rt::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// `<api>/ws` with the scheme `ws` or `wss`.
fn websocket_url(api: &Api) -> Result<String, ListenError> {
    let mut url = api
        .base_url()
        .join("ws")
        .map_err(|error| ListenError::Url(error.to_string()))?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| ListenError::Url(url.to_string()))?;
    Ok(url.to_string())
}

async fn connect_once(
    url: &str,
    uuid: &DeviceUuid,
    printed: &mut Printed,
) -> Result<Ended, ListenError> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let (response, mut socket) = match client.ws(url).max_frame_size(1 << 20).connect().await {
        Ok(connected) => connected,
        Err(awc::error::WsClientError::InvalidResponseStatus(status))
            if status.as_u16() == 404 || status.as_u16() == 405 =>
        {
            return Ok(Ended::NoStreams(format!("{url} answered {status}")));
        }
        Err(error) => return Ok(Ended::Broken(error.to_string())),
    };
    drop(response);
    if let Err(error) = socket
        .send(WsMessage::Text(uuid.as_str().to_owned().into()))
        .await
    {
        return Ok(Ended::Broken(error.to_string()));
    }
    let mut greeted = false;
    printed.reconnected();
    loop {
        let frame = tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let _closing_anyway = socket.send(WsMessage::Close(None)).await;
                return Ok(Ended::Stopped);
            }
            frame = socket.next() => frame,
        };
        let text = match frame {
            None => return Ok(Ended::Broken("the server closed the connection".to_owned())),
            Some(Err(error)) => return Ok(Ended::Broken(error.to_string())),
            Some(Ok(Frame::Ping(bytes))) => {
                if let Err(error) = socket.send(WsMessage::Pong(bytes)).await {
                    return Ok(Ended::Broken(error.to_string()));
                }
                continue;
            }
            Some(Ok(Frame::Close(reason))) => {
                let why = reason
                    .and_then(|reason| reason.description)
                    .unwrap_or_else(|| "closed by the server".to_owned());
                return Ok(Ended::Broken(why));
            }
            Some(Ok(Frame::Text(text))) => String::from_utf8_lossy(&text).into_owned(),
            Some(Ok(_)) => continue,
        };
        if !greeted {
            if text != STATUS_OK {
                return Ok(Ended::Broken(format!("unexpected greeting {text}")));
            }
            greeted = true;
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if let Some(message) = value.get("message") {
            match serde_json::from_value::<MessageView>(message.clone()) {
                Ok(message) => printed.print(&message)?,
                Err(error) => eprintln!("skipped a message that does not parse: {error}"),
            }
        }
    }
}

/// Polls `GET /message` until Ctrl-C.
async fn poll(api: &Api, uuid: DeviceUuid) -> Result<(), ListenError> {
    let device = api.device(uuid);
    loop {
        match device.messages().await {
            Ok(messages) => {
                for message in messages {
                    let line = serde_json::to_string(&message)
                        .map_err(|error| ListenError::Output(std::io::Error::other(error)))?;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
            }
            Err(error) => eprintln!("polling failed ({error}); trying again"),
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = actix_web::rt::time::sleep(POLL_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushjet::SecretKey;
    use crate::pushjet::wire::ServiceView;

    fn view(text: &str) -> MessageView {
        MessageView {
            level: crate::pushjet::Importance::DEFAULT,
            link: String::new(),
            message: text.to_owned(),
            service: ServiceView {
                created: 1,
                icon: String::new(),
                name: "s".to_owned(),
                public: SecretKey::generate().unwrap().public_key(),
                secret: None,
            },
            timestamp: 2,
            title: String::new(),
        }
    }

    #[test]
    fn only_a_replay_after_a_reconnect_is_skipped() {
        let mut printed = Printed::default();
        let same = view("same");
        printed.reconnected();
        printed.print(&same).unwrap();
        assert_eq!(printed.recent.len(), 1);
        printed.print(&same).unwrap();
        assert_eq!(
            printed.recent.len(),
            2,
            "a repeat on a live connection is printed"
        );
        printed.reconnected();
        printed.print(&same).unwrap();
        assert_eq!(
            printed.recent.len(),
            2,
            "the replay of a printed one is skipped"
        );
        printed.print(&view("new")).unwrap();
        printed.print(&same).unwrap();
        assert_eq!(
            printed.recent.len(),
            4,
            "after something new, the replay is over"
        );
    }
}
