//! The demo route's keys (its service's secret and its device): a row of `pushjet_demo`, shared
//! by every replica. On redb they are `demo.json` next to the file (`demo_file.rs`).

use super::{Shared, unavailable};
use crate::database::SecretParam;
use crate::pushjet::{DeviceUuid, SecretKey};
use crate::pushjet_server::store::{DemoKeys, StoreError};

/// The demo route's row in `pushjet_demo`.
const DEMO_ROW: &str = "demo";

impl Shared {
    pub(super) async fn demo(&self) -> Result<Option<DemoKeys>, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "SELECT secret, device FROM pushjet_demo WHERE name = $1",
                &[&DEMO_ROW],
            )
            .await
            .map_err(unavailable)?;
        row.map(|row| {
            let secret = SecretKey::parse(row.get(0))
                .map_err(|_| StoreError::Malformed("demo route secret"))?;
            let device = DeviceUuid::parse(row.get(1))
                .map_err(|_| StoreError::Malformed("demo route device"))?;
            Ok(DemoKeys { secret, device })
        })
        .transpose()
    }

    /// Inserts the row if there is none, or replaces it if it still holds `previous`; then
    /// reads what is there (another replica's keys when it was first).
    pub(super) async fn keep_demo(
        &self,
        previous: Option<&SecretKey>,
        keys: &DemoKeys,
    ) -> Result<DemoKeys, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let (secret, device) = (SecretParam(keys.secret.expose()), keys.device.as_str());
        match previous {
            None => {
                client
                    .execute(
                        "INSERT INTO pushjet_demo (name, secret, device) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO NOTHING",
                        &[&DEMO_ROW, &secret, &device],
                    )
                    .await
            }
            Some(previous) => {
                client
                    .execute(
                        "UPDATE pushjet_demo SET secret = $2, device = $3 \
                         WHERE name = $1 AND secret = $4",
                        &[&DEMO_ROW, &secret, &device, &SecretParam(previous.expose())],
                    )
                    .await
            }
        }
        .map_err(unavailable)?;
        drop(client);
        self.demo()
            .await?
            .ok_or(StoreError::Malformed("demo route row (deleted meanwhile)"))
    }
}
