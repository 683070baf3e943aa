//! The redb file's upgrade to device UUIDs in lower case (an older version kept a UUID's case as
//! the device sent it), run in the transaction that opens the file.

use redb::{ReadableTable, WriteTransaction};

use super::{SUBSCRIBERS, SUBSCRIPTIONS, SubscriptionRecord, decode};
use crate::pushjet_server::store::StoreError;

/// Keys device UUIDs in lower case, as [`crate::pushjet::DeviceUuid`] parses them: a
/// subscription stored in another case by an older version is re-keyed (the first one made is
/// kept when both cases of a UUID subscribed to one service).
pub(super) fn lower_case_devices(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
    let mut subscribers = txn.open_table(SUBSCRIBERS)?;
    let mut mixed: Vec<(String, String, Vec<u8>)> = Vec::new();
    for entry in subscriptions.iter()? {
        let (key, value) = entry?;
        let (device, public) = key.value();
        if device.bytes().any(|byte| byte.is_ascii_uppercase()) {
            mixed.push((device.to_owned(), public.to_owned(), value.value().to_vec()));
        }
    }
    mixed.sort_by_key(|(_, _, record)| {
        decode::<SubscriptionRecord>(record).map_or(u64::MAX, |record| record.order)
    });
    for (device, public, record) in mixed {
        let lower = device.to_ascii_lowercase();
        subscriptions.remove((device.as_str(), public.as_str()))?;
        subscribers.remove((public.as_str(), device.as_str()))?;
        if subscriptions
            .get((lower.as_str(), public.as_str()))?
            .is_none()
        {
            subscriptions.insert((lower.as_str(), public.as_str()), record.as_slice())?;
            subscribers.insert((public.as_str(), lower.as_str()), ())?;
        }
    }
    Ok(())
}
