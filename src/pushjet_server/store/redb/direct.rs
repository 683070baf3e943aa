//! The devices' own services (see [`crate::pushjet_server::direct`]) in the redb file: the
//! `direct_services` table, device UUID → the service's secret.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::RedbFile;
use crate::pushjet::{DeviceUuid, SecretKey};
use crate::pushjet_server::store::StoreError;

/// Device UUID → the secret of its own service.
pub(super) const DIRECT_SERVICES: TableDefinition<&str, &str> =
    TableDefinition::new("direct_services");

impl RedbFile {
    /// The secret of the device's own service, if it has one.
    pub(super) fn direct_service(
        &self,
        device: &DeviceUuid,
    ) -> Result<Option<SecretKey>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DIRECT_SERVICES)?;
        let secret = table.get(device.as_str())?;
        secret
            .map(|secret| {
                SecretKey::parse(secret.value())
                    .map_err(|_| StoreError::Malformed("direct service secret"))
            })
            .transpose()
    }

    /// Remembers `secret` unless the remembered one is no longer `previous`; the secret
    /// remembered in the end.
    pub(super) fn keep_direct_service(
        &self,
        device: &DeviceUuid,
        previous: Option<&SecretKey>,
        secret: &SecretKey,
    ) -> Result<SecretKey, StoreError> {
        let txn = self.db.begin_write()?;
        let kept = {
            let mut table = txn.open_table(DIRECT_SERVICES)?;
            let remembered = table
                .get(device.as_str())?
                .map(|value| value.value().to_owned());
            let replace = match (&remembered, previous) {
                (None, _) => true,
                (Some(remembered), Some(previous)) => remembered == previous.expose(),
                (Some(_), None) => false,
            };
            if replace {
                table.insert(device.as_str(), secret.expose())?;
                secret.clone()
            } else {
                let remembered = remembered.unwrap_or_default();
                SecretKey::parse(&remembered)
                    .map_err(|_| StoreError::Malformed("direct service secret"))?
            }
        };
        txn.commit()?;
        Ok(kept)
    }
}
