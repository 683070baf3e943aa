//! The notifications routes deliver, announced for their streams (see
//! [`crate::pushjet_server::Store::announce_routes`]): an id from the messages' sequence, the
//! streams' cache, then the listener, in commit order with everything else.

use redb::Durability;

use super::{LAST_MESSAGE_ID, META, RedbFile, read_counter, stream_cache};
use crate::pushjet::wire::MessageView;
use crate::pushjet_server::events::{RouteDelivered, StoredMessage, new_stream_id};
use crate::pushjet_server::store::StoreError;

impl RedbFile {
    /// Announces what routes delivered, in one transaction; nothing to do when nobody listens.
    pub(super) fn announce_routes(
        &self,
        delivered: Vec<(String, MessageView)>,
    ) -> Result<(), StoreError> {
        let Some(events) = &self.events else {
            return Ok(());
        };
        if delivered.is_empty() {
            return Ok(());
        }
        let _in_order = self.announce_in_order();
        // Not synced on its own: the next durable commit of the file (a message, a subscription)
        // takes it along. A crash may lose the last announcements from the streams' cache; the
        // notifications themselves were delivered. Syncing each one held delivery to the disk's
        // pace.
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(::redb::Error::from)?;
        let mut announced = Vec::with_capacity(delivered.len());
        {
            let mut meta = txn.open_table(META)?;
            let mut id = read_counter(&meta, LAST_MESSAGE_ID)?;
            let mut cache = stream_cache::Writer::open(&txn, self.stream_cache)?;
            for (route, message) in delivered {
                id = id.saturating_add(1);
                let one = RouteDelivered {
                    route,
                    message: StoredMessage {
                        id,
                        stream_id: new_stream_id(),
                        devices: Vec::new(),
                        message,
                    },
                };
                if let Some(cache) = cache.as_mut() {
                    cache.insert(stream_cache::CachedRef::Route(&one))?;
                }
                announced.push(one);
            }
            meta.insert(LAST_MESSAGE_ID, id)?;
            if let Some(cache) = cache {
                cache.finish()?;
            }
        }
        txn.commit()?;
        for one in announced {
            events.route_delivered(one);
        }
        Ok(())
    }
}
