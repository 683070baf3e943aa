//! The Rust client against the embedded server, call by call.

use pushjet_bridge::pushjet::{
    DeviceUuid, Error, Importance, Link, MessageText, NewMessage, Title,
};

use crate::common::spawn_app;

fn uuid(n: u8) -> DeviceUuid {
    DeviceUuid::parse(&format!("{n:08x}-0000-4000-8000-00000000000{}", n % 10)).unwrap()
}

fn message(text: &str) -> NewMessage {
    NewMessage::text(MessageText::new(text).unwrap())
}

#[actix_web::test]
async fn created_service_has_keys_icon_and_creation_time() {
    let app = spawn_app().await;
    let service = app
        .pushjet()
        .create_service("Bridge test", Some("http://example.com/i.png"))
        .await
        .unwrap();
    let secret = service
        .secret_key()
        .expect("a created service holds its secret");
    assert_eq!(service.public_key(), &secret.public_key());
    assert_eq!(service.info().name, "Bridge test");
    assert_eq!(
        service.info().icon.as_deref(),
        Some("http://example.com/i.png")
    );
    assert!(service.info().created > 1_700_000_000);
}

#[actix_web::test]
async fn service_opens_by_secret_read_write_and_by_public_key_read_only() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let created = api.create_service("Open me", None).await.unwrap();
    let by_secret = api
        .service_by_secret(created.secret_key().unwrap().clone())
        .await
        .unwrap();
    assert_eq!(by_secret.info(), created.info());
    assert_eq!(by_secret.info().icon, None);
    let by_public = api
        .service_by_public_key(created.public_key())
        .await
        .unwrap();
    assert_eq!(by_public.info(), created.info());
    assert!(by_public.secret_key().is_none());
}

#[actix_web::test]
async fn read_only_service_refuses_send_edit_delete_without_a_request() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let created = api.create_service("Read only", None).await.unwrap();
    let mut read_only = api
        .service_by_public_key(created.public_key())
        .await
        .unwrap();
    assert!(matches!(
        read_only.send(&message("hi")).await,
        Err(Error::Access("send"))
    ));
    assert!(matches!(
        read_only.edit(Some("x"), None).await,
        Err(Error::Access("edit"))
    ));
    assert!(matches!(
        read_only.delete().await,
        Err(Error::Access("delete"))
    ));
}

#[actix_web::test]
async fn sent_message_reaches_a_subscribed_device_with_every_field() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Sender", None).await.unwrap();
    let device = api.device(uuid(1));
    let subscribed_to = device.subscribe(&service).await.unwrap();
    assert_eq!(&subscribed_to.public_key, service.public_key());
    service
        .send(&NewMessage {
            message: MessageText::new("Deployed 🚀 v1.2").unwrap(),
            title: Title::new("  deploy done  "),
            link: Some(Link::parse("https://example.com/deploys/12").unwrap()),
            importance: Importance::new(5).unwrap(),
        })
        .await
        .unwrap();
    let messages = device.messages().await.unwrap();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.message, "Deployed 🚀 v1.2");
    assert_eq!(received.title.as_deref(), Some("deploy done"));
    assert_eq!(
        received.link.as_deref(),
        Some("https://example.com/deploys/12")
    );
    assert_eq!(received.importance.get(), 5);
    assert_eq!(received.service.public_key, *service.public_key());
    assert!(received.time_sent > 1_700_000_000);
}

#[actix_web::test]
async fn reading_messages_is_destructive() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Once", None).await.unwrap();
    let device = api.device(uuid(2));
    device.subscribe(service.public_key()).await.unwrap();
    service.send(&message("first")).await.unwrap();
    service.send(&message("second")).await.unwrap();
    let texts: Vec<String> = device
        .messages()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(texts, ["first", "second"]);
    assert!(device.messages().await.unwrap().is_empty());
}

#[actix_web::test]
async fn mark_read_empties_the_unread_list() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Mark", None).await.unwrap();
    let device = api.device(uuid(3));
    device.subscribe(&service).await.unwrap();
    service.send(&message("unread")).await.unwrap();
    device.mark_read().await.unwrap();
    assert!(device.messages().await.unwrap().is_empty());
}

#[actix_web::test]
async fn a_new_subscription_starts_after_the_newest_message() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Late", None).await.unwrap();
    let early = api.device(uuid(4));
    early.subscribe(&service).await.unwrap();
    service.send(&message("before")).await.unwrap();
    let late = api.device(uuid(5));
    late.subscribe(&service).await.unwrap();
    service.send(&message("after")).await.unwrap();
    let late_texts: Vec<String> = late
        .messages()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(late_texts, ["after"]);
    assert_eq!(early.messages().await.unwrap().len(), 2);
}

#[actix_web::test]
async fn a_send_with_no_subscribers_is_accepted_and_dropped() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Nobody", None).await.unwrap();
    service.send(&message("into the void")).await.unwrap();
    let device = api.device(uuid(6));
    device.subscribe(&service).await.unwrap();
    assert!(device.messages().await.unwrap().is_empty());
}

#[actix_web::test]
async fn subscriptions_list_the_service_and_times() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Listed", None).await.unwrap();
    let device = api.device(uuid(7));
    device.subscribe(&service).await.unwrap();
    let subscriptions = device.subscriptions().await.unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].service.public_key, *service.public_key());
    assert_eq!(subscriptions[0].device_uuid, uuid(7));
    assert!(subscriptions[0].time_subscribed > 1_700_000_000);
}

#[actix_web::test]
async fn double_subscribe_and_double_unsubscribe_are_subscription_errors() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Twice", None).await.unwrap();
    let device = api.device(uuid(8));
    device.subscribe(&service).await.unwrap();
    assert!(matches!(
        device.subscribe(&service).await,
        Err(Error::Subscription { id: 4, .. })
    ));
    device.unsubscribe(&service).await.unwrap();
    assert!(matches!(
        device.unsubscribe(&service).await,
        Err(Error::Subscription { id: 11, .. })
    ));
    assert!(device.subscriptions().await.unwrap().is_empty());
}

#[actix_web::test]
async fn edit_changes_name_and_clears_icon_and_refresh_reads_it_back() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let mut service = api
        .create_service("Old", Some("http://example.com/old.png"))
        .await
        .unwrap();
    service.edit(Some("New name"), Some("")).await.unwrap();
    assert_eq!(service.info().name, "New name");
    assert_eq!(service.info().icon, None);
    let mut other = api
        .service_by_public_key(service.public_key())
        .await
        .unwrap();
    other.refresh().await.unwrap();
    assert_eq!(other.info().name, "New name");
    assert_eq!(other.info().icon, None);
}

#[actix_web::test]
async fn deleting_a_service_cascades_and_makes_it_nonexistent() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let mut service = api.create_service("Doomed", None).await.unwrap();
    let device = api.device(uuid(9));
    device.subscribe(&service).await.unwrap();
    service.send(&message("unread")).await.unwrap();
    service.delete().await.unwrap();

    assert!(matches!(
        service.refresh().await,
        Err(Error::Nonexistent { id: 6, .. })
    ));
    assert!(matches!(
        service.send(&message("x")).await,
        Err(Error::Nonexistent { id: 6, .. })
    ));
    assert!(matches!(
        service.delete().await,
        Err(Error::Nonexistent { id: 6, .. })
    ));
    assert!(matches!(
        service.edit(Some("x"), None).await,
        Err(Error::Nonexistent { id: 6, .. })
    ));
    assert!(matches!(
        device.subscribe(&service).await,
        Err(Error::Nonexistent { id: 6, .. })
    ));
    assert!(matches!(
        api.service_by_secret(service.secret_key().unwrap().clone())
            .await,
        Err(Error::Nonexistent { .. })
    ));
    assert!(device.subscriptions().await.unwrap().is_empty());
    assert!(device.messages().await.unwrap().is_empty());
}

#[actix_web::test]
async fn unknown_public_key_is_nonexistent() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let stranger = pushjet_bridge::pushjet::SecretKey::generate()
        .unwrap()
        .public_key();
    assert!(matches!(
        api.service_by_public_key(&stranger).await,
        Err(Error::Nonexistent { id: 6, .. })
    ));
    assert!(matches!(
        api.device(uuid(1)).subscribe(&stranger).await,
        Err(Error::Nonexistent { .. })
    ));
}

#[actix_web::test]
async fn unreachable_server_is_a_request_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let api = pushjet_bridge::pushjet::Api::new(&format!("http://127.0.0.1:{port}/")).unwrap();
    let error = api.create_service("x", None).await.unwrap_err();
    assert!(matches!(error, Error::Request(_)), "{error:?}");
    assert!(error.is_transient());
}

#[actix_web::test]
async fn a_wrong_api_path_is_reported_as_not_the_protocol() {
    let app = spawn_app().await;
    let api = pushjet_bridge::pushjet::Api::new(&app.url("/not-pushjet/")).unwrap();
    let error = api.create_service("x", None).await.unwrap_err();
    assert!(
        matches!(error, Error::Server { status: 404, .. }),
        "{error:?}"
    );
}
