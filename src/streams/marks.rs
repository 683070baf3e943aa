//! Read marks of the connector protocol: a message handed to a connector stream is marked read
//! for its device, as the Pushjet connector did after each message (§1.13). Marks are gathered
//! and written together, one store transaction for every device marked since the last one, so a
//! burst of messages to many streams costs a few writes rather than one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::Hub;
use crate::pushjet::DeviceUuid;
use crate::pushjet_server::Store;

/// The marks waiting to be written, newest id per device.
#[derive(Debug, Default)]
pub struct ReadMarks {
    pending: Mutex<HashMap<DeviceUuid, u64>>,
    wake: Notify,
}

impl ReadMarks {
    /// Marks the device's messages read up to `id` (soon: the writer takes it).
    pub fn mark(&self, device: &DeviceUuid, id: u64) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = pending.entry(device.clone()).or_default();
            *entry = (*entry).max(id);
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<(DeviceUuid, u64)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain().collect()
    }

    /// Writes the marks as they come, on the current actix runtime, until the hub closes; then
    /// writes what is left and lets go of the store.
    pub fn spawn_writer(self: &Arc<Self>, store: Arc<Store>, hub: Arc<Hub>) {
        let marks = self.clone();
        actix_web::rt::spawn(async move {
            loop {
                let last = tokio::select! {
                    () = marks.wake.notified() => false,
                    () = hub.closed() => true,
                };
                let batch = marks.take();
                if !batch.is_empty()
                    && let Err(error) = store.mark_read_up_to(&batch).await
                {
                    tracing::warn!(%error, "cannot mark streamed messages read");
                }
                if last {
                    return;
                }
            }
        });
    }
}
