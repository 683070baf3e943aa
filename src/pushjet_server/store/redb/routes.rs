//! The notifications routes deliver, announced for their streams (see
//! [`crate::pushjet_server::Store::announce_route`]): an id from the messages' sequence, the
//! streams' cache, then the listener, in commit order with everything else.

use redb::Durability;

use super::{LAST_MESSAGE_ID, META, RedbFile, read_counter, stream_cache};
use crate::pushjet::wire::MessageView;
use crate::pushjet_server::events::{RouteDelivered, StoredMessage, new_stream_id};
use crate::pushjet_server::store::StoreError;

impl RedbFile {
    /// Announces what `route` delivered; nothing to do when nobody listens.
    pub(super) fn announce_route(
        &self,
        route: String,
        message: MessageView,
    ) -> Result<(), StoreError> {
        let Some(events) = &self.events else {
            return Ok(());
        };
        let _in_order = self.announce_in_order();
        // Not synced on its own: the next durable commit of the file (a message, a subscription)
        // takes it along. A crash may lose the last announcements from the streams' cache; the
        // notification itself was delivered. Syncing each one held delivery to the disk's pace.
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(::redb::Error::from)?;
        let delivered = {
            let mut meta = txn.open_table(META)?;
            let id = read_counter(&meta, LAST_MESSAGE_ID)?.saturating_add(1);
            meta.insert(LAST_MESSAGE_ID, id)?;
            RouteDelivered {
                route,
                message: StoredMessage {
                    id,
                    stream_id: new_stream_id(),
                    devices: Vec::new(),
                    message,
                },
            }
        };
        let cached = stream_cache::Cached::Route(delivered.clone());
        stream_cache::keep(&txn, &cached, self.stream_cache)?;
        txn.commit()?;
        events.route_delivered(delivered);
        Ok(())
    }
}
