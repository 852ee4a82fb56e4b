//! One statement on several shards at once. Every shard runs concurrently; rows reach the client
//! shard by shard through small bounded channels, so memory stays bounded whatever the row count
//! (a shard waiting its turn is held back by TCP flow control).

use std::sync::Arc;

use futures_util::future::try_join_all;
use tokio::sync::mpsc;

use crate::{Column, EngineError, Executor, Outcome, RowSink, Value};
use vschema::Keyspace;

/// Rows buffered per shard before its reader waits.
const CHANNEL_ROWS: usize = 256;

enum Item {
    Columns(Arc<[Column]>),
    Row(Vec<Value>),
}

struct ChannelSink(mpsc::Sender<Item>);

impl RowSink for ChannelSink {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.send(Item::Columns(columns)).await
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.send(Item::Row(row)).await
    }
}

impl ChannelSink {
    async fn send(&mut self, item: Item) -> Result<(), EngineError> {
        // The receiver is gone only when the client side already failed; that error wins.
        self.0
            .send(item)
            .await
            .map_err(|_| EngineError::Client(std::io::Error::other("result abandoned")))
    }
}

/// Runs `queries` (shard index, SQL) concurrently and concatenates their rows into `sink` in the
/// order given. Outcomes are merged: affected rows summed.
pub(crate) async fn fan_out<E: Executor, S: RowSink>(
    keyspace: &Keyspace,
    queries: &[(usize, &str)],
    executor: &E,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    let mut receivers = Vec::with_capacity(queries.len());
    let producers = queries.iter().map(|&(shard, sql)| {
        let (tx, rx) = mpsc::channel(CHANNEL_ROWS);
        receivers.push(rx);
        let name = &keyspace.shards[shard].name;
        async move {
            let mut tx = ChannelSink(tx);
            executor.execute(&keyspace.name, name, sql, &mut tx).await
        }
    });
    let producers = try_join_all(producers.collect::<Vec<_>>());
    let consumer = async {
        let mut columns_sent = false;
        for mut rx in receivers {
            while let Some(item) = rx.recv().await {
                match item {
                    Item::Columns(c) if !columns_sent => {
                        columns_sent = true;
                        sink.columns(c).await?;
                    }
                    Item::Columns(_) => {}
                    Item::Row(r) => sink.row(r).await?,
                }
            }
        }
        Ok::<(), EngineError>(())
    };
    let (outcomes, ()) = tokio::try_join!(producers, consumer)?;
    let mut total = Outcome::default();
    outcomes.into_iter().for_each(|o| total.merge(o));
    Ok(total)
}
