//! The devices' own services (see [`crate::pushjet_server::direct`]): `pushjet_direct_services`,
//! one row per device that something was published to.

use super::{Shared, unavailable};
use crate::database::SecretParam;
use crate::pushjet::{DeviceUuid, SecretKey};
use crate::pushjet_server::store::StoreError;

impl Shared {
    /// The secret of the device's own service, if it has one.
    pub(super) async fn direct_service(
        &self,
        device: &DeviceUuid,
    ) -> Result<Option<SecretKey>, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "SELECT secret FROM pushjet_direct_services WHERE device = $1",
                &[&device.as_str()],
            )
            .await
            .map_err(unavailable)?;
        row.map(|row| {
            SecretKey::parse(row.get(0)).map_err(|_| StoreError::Malformed("direct service secret"))
        })
        .transpose()
    }

    /// Remembers `secret` unless the remembered one is no longer `previous` (another replica was
    /// first); the secret remembered in the end.
    pub(super) async fn keep_direct_service(
        &self,
        device: &DeviceUuid,
        previous: Option<&SecretKey>,
        secret: &SecretKey,
    ) -> Result<SecretKey, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let (device_param, secret_param) = (device.as_str(), SecretParam(secret.expose()));
        match previous {
            None => {
                client
                    .execute(
                        "INSERT INTO pushjet_direct_services (device, secret) VALUES ($1, $2) \
                         ON CONFLICT (device) DO NOTHING",
                        &[&device_param, &secret_param],
                    )
                    .await
            }
            Some(previous) => {
                client
                    .execute(
                        "UPDATE pushjet_direct_services SET secret = $2 \
                         WHERE device = $1 AND secret = $3",
                        &[
                            &device_param,
                            &secret_param,
                            &SecretParam(previous.expose()),
                        ],
                    )
                    .await
            }
        }
        .map_err(unavailable)?;
        drop(client);
        self.direct_service(device)
            .await?
            .ok_or(StoreError::Malformed(
                "direct service row (deleted meanwhile)",
            ))
    }
}
