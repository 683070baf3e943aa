//! Stopping and starting the service on the same data directory keeps the embedded API's state.

use pushjet_bridge::pushjet::{DeviceUuid, MessageText, NewMessage};

use crate::common::{spawn_app, spawn_app_in};

#[actix_web::test]
async fn services_subscriptions_and_unread_messages_survive_a_restart() {
    let app = spawn_app().await;
    let api = app.pushjet();
    let service = api.create_service("Durable", None).await.unwrap();
    let secret = service.secret_key().unwrap().clone();
    let uuid = DeviceUuid::parse("12345678-1234-4234-8234-123456789abc").unwrap();
    api.device(uuid.clone()).subscribe(&service).await.unwrap();
    service
        .send(&NewMessage::text(MessageText::new("kept").unwrap()))
        .await
        .unwrap();
    let data_dir = app.data_dir.clone();
    let temp = app.stop().await;

    let again = spawn_app_in(&data_dir, &[]).await;
    let api = again.pushjet();
    let reopened = api.service_by_secret(secret).await.unwrap();
    assert_eq!(reopened.info().name, "Durable");
    let device = api.device(uuid);
    assert_eq!(device.subscriptions().await.unwrap().len(), 1);
    let texts: Vec<String> = device
        .messages()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(texts, ["kept"]);
    again.stop().await;
    drop(temp);
}
