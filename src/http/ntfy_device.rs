//! Publishing to a device UUID as ntfy's topic (`PUT /` with the UUID as the JSON message's
//! `topic`, or `PUT`/`POST /<uuid>`): the message goes to that device alone, its mailbox on the
//! embedded Pushjet API and its live streams, through [`DeviceMailbox`]. The UUID is the
//! credential, as for reading; writes are limited per client address like the embedded API's.
//!
//! ntfy's title, message, priority and click become the Pushjet message's title, text, level and
//! link (an empty message is ntfy's `triggered`); tags, icons and actions have no Pushjet field.
//! The answer is ntfy's: 200 with the message, or ntfy's error object.

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use crate::pushjet::{DeviceUuid, Importance, MessageText, Title};
use crate::pushjet_server::{DeviceMailbox, DirectError, Link, NewMessage, StoreError};
use crate::streams::ntfy::error;

/// ntfy's message for an empty publish.
const EMPTY_MESSAGE: &str = "triggered";

/// Stores `message` (ntfy's JSON message, already read and checked) for `device` and answers
/// as ntfy does.
pub(super) async fn publish(
    request: &HttpRequest,
    device: &DeviceUuid,
    mut message: Map<String, Value>,
    mailbox: Option<&DeviceMailbox>,
) -> HttpResponse {
    let Some(mailbox) = mailbox else {
        return error(
            StatusCode::NOT_FOUND,
            40401,
            "a device UUID as topic needs the embedded Pushjet API (PUSHJET_BRIDGE_PUSHJET_URL \
             is set, so devices live elsewhere)",
        );
    };
    let new = match pushjet_message(&message) {
        Ok(new) => new,
        Err(too_long) => {
            return error(
                StatusCode::BAD_REQUEST,
                40017,
                &format!("invalid request: the {too_long} is too long for a Pushjet message"),
            );
        }
    };
    let peer = request.peer_addr().map(|address| address.ip());
    match mailbox.send(peer, device, &new).await {
        Ok(()) => {
            tracing::info!("an ntfy client published to a device");
            message.insert("topic".into(), device.as_str().into());
            HttpResponse::Ok().json(super::ntfy::answer(message))
        }
        Err(DirectError::RateLimited { retry_after }) => {
            let mut refused = error(
                StatusCode::TOO_MANY_REQUESTS,
                42901,
                "limit reached: too many requests from this address, please be nice",
            );
            if let Ok(value) = retry_after.as_secs().max(1).to_string().parse() {
                refused.headers_mut().insert(RETRY_AFTER, value);
            }
            refused
        }
        Err(DirectError::Store(failure)) => {
            tracing::warn!("cannot store a message published to a device: {failure}");
            match failure {
                StoreError::Unavailable(_) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    50301,
                    "the Pushjet store is unavailable; try again shortly",
                ),
                StoreError::Full => error(
                    StatusCode::INSUFFICIENT_STORAGE,
                    50701,
                    "the Pushjet store is full",
                ),
                _ => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    50001,
                    "internal server error",
                ),
            }
        }
    }
}

/// The Pushjet message for ntfy's message, or the field too long for one.
fn pushjet_message(message: &Map<String, Value>) -> Result<NewMessage, &'static str> {
    let field = |key: &str| message.get(key).and_then(Value::as_str).unwrap_or_default();
    let text = match field("message") {
        "" => EMPTY_MESSAGE,
        text => text,
    };
    let level = message
        .get("priority")
        .and_then(Value::as_u64)
        .and_then(|level| u8::try_from(level).ok())
        .and_then(|level| Importance::new(level).ok())
        .unwrap_or(Importance::DEFAULT);
    Ok(NewMessage {
        text: MessageText::new(text).map_err(|_| "message")?,
        title: Title::new(field("title")),
        link: Link::new(field("click")).map_err(|_| "click link")?,
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ntfy_fields_become_the_pushjet_message() {
        let message = json!({"message": "Backup done", "title": "nas", "priority": 5, "click": "https://nas.example/", "tags": ["ok"]});
        let new = pushjet_message(message.as_object().unwrap()).unwrap();
        assert_eq!(new.text.as_str(), "Backup done");
        assert_eq!(new.title.as_str(), "nas");
        assert_eq!(new.link.as_str(), "https://nas.example/");
        assert_eq!(new.level.get(), 5);
        let empty = pushjet_message(&Map::new()).unwrap();
        assert_eq!(empty.text.as_str(), EMPTY_MESSAGE);
        assert_eq!(empty.level, Importance::DEFAULT);
        let long = json!({"message": "x".repeat(70_000)});
        let refused = pushjet_message(long.as_object().unwrap()).unwrap_err();
        assert_eq!(refused, "message");
    }
}
