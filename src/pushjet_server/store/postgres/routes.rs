//! The notifications routes deliver, announced for their streams through the feed (see
//! [`crate::pushjet_server::Store::announce_routes`]): every replica's routes' streams get what
//! any replica delivered, and a replica that starts fills its cache with them.

use super::{Shared, feed, lock_feed, unavailable};
use crate::pushjet::wire::MessageView;
use crate::pushjet_server::events::{RouteDelivered, StoredMessage, new_stream_id};
use crate::pushjet_server::store::StoreError;

impl Shared {
    /// Announces what routes delivered, each under a new message id, in commit order (one
    /// transaction for all).
    pub(super) async fn announce_routes(
        &self,
        delivered: Vec<(String, MessageView)>,
    ) -> Result<(), StoreError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, false).await?;
        for (route, message) in delivered {
            let id: i64 = txn
                .query_one("SELECT nextval('pushjet_message_ids')", &[])
                .await
                .map_err(unavailable)?
                .get(0);
            let delivered = RouteDelivered {
                route,
                message: StoredMessage {
                    id: super::to_u64(id),
                    stream_id: new_stream_id(),
                    devices: Vec::new(),
                    message,
                },
            };
            feed::announce_route(&txn, &delivered).await?;
        }
        txn.commit().await.map_err(unavailable)
    }
}
