//! One statement on several shards at once. Every shard runs concurrently and feeds its own small
//! bounded channel; consumers read the channels in whatever order they need (one after another to
//! concatenate, all at once to merge), so memory stays bounded whatever the row count: a shard
//! whose channel is full waits, held back by TCP flow control.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::{Column, EngineError, Executor, Outcome, RowSink, Value};
use vschema::Keyspace;

/// Rows buffered per shard before its reader waits: batches of `BATCH_ROWS`, sent whole so that
/// the channel's send, receive and wake-up are paid per batch, not per row.
const CHANNEL_ROWS: usize = 256;
const BATCH_ROWS: usize = 32;

enum Item {
    Columns(Arc<[Column]>),
    Rows(Vec<Vec<Value>>),
    /// The shard's statement ended; always the last item.
    Done(Result<Outcome, EngineError>),
}

struct ChannelSink {
    tx: mpsc::Sender<Item>,
    batch: Vec<Vec<Value>>,
}

impl RowSink for ChannelSink {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.send(Item::Columns(columns)).await
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }
}

impl ChannelSink {
    async fn send(&mut self, item: Item) -> Result<(), EngineError> {
        // The reader is gone when it has all it needs (a LIMIT was met) or already failed.
        self.tx.send(item).await.map_err(|_| EngineError::Abandoned)
    }

    async fn flush(&mut self) -> Result<(), EngineError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        self.send(Item::Rows(batch)).await
    }
}

/// The rows of one shard, read by a consumer.
pub(crate) struct ShardStream {
    pub shard: String,
    rx: mpsc::Receiver<Item>,
    columns: Option<Arc<[Column]>>,
    /// The rest of the batch being read.
    pending: std::vec::IntoIter<Vec<Value>>,
    outcome: Option<Outcome>,
}

impl ShardStream {
    async fn recv(&mut self) -> Result<Item, EngineError> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| EngineError::Bug(format!("shard {} ended without a result", self.shard)))
    }

    /// The shard's columns; `None` for a statement without a result set.
    pub async fn columns(&mut self) -> Result<Option<Arc<[Column]>>, EngineError> {
        if self.columns.is_none() && self.outcome.is_none() {
            match self.recv().await? {
                Item::Columns(c) => self.columns = Some(c),
                Item::Rows(_) => {
                    return Err(EngineError::Bug(format!(
                        "shard {} sent a row before its columns",
                        self.shard
                    )));
                }
                Item::Done(r) => self.outcome = Some(r?),
            }
        }
        Ok(self.columns.clone())
    }

    /// The next row, `None` at the end; the shard's error if it failed.
    pub async fn next_row(&mut self) -> Result<Option<Vec<Value>>, EngineError> {
        loop {
            if let Some(row) = self.pending.next() {
                return Ok(Some(row));
            }
            if self.outcome.is_some() {
                return Ok(None);
            }
            match self.recv().await? {
                Item::Columns(c) => self.columns = Some(c),
                Item::Rows(rows) => self.pending = rows.into_iter(),
                Item::Done(r) => self.outcome = Some(r?),
            }
        }
    }

    /// Reads to the end and returns the shard's outcome.
    pub async fn finish(&mut self) -> Result<Outcome, EngineError> {
        while self.next_row().await?.is_some() {}
        Ok(self.outcome.take().unwrap_or_default())
    }
}

/// Runs `queries` (shard index, SQL) concurrently and hands their streams, in the order given, to
/// `consume`. Returns what `consume` returns; a consumer that stops early simply drops the streams.
pub(crate) async fn with_streams<E, F, Fut, T>(
    keyspace: &Keyspace,
    queries: &[(usize, &str)],
    executor: &E,
    consume: F,
) -> Result<T, EngineError>
where
    E: Executor,
    F: FnOnce(Vec<ShardStream>) -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let mut streams = Vec::with_capacity(queries.len());
    let mut producers = Vec::with_capacity(queries.len());
    for &(shard, sql) in queries {
        let (tx, rx) = mpsc::channel(CHANNEL_ROWS / BATCH_ROWS);
        let name = &keyspace.shards[shard].name;
        streams.push(ShardStream {
            shard: name.clone(),
            rx,
            columns: None,
            pending: Vec::new().into_iter(),
            outcome: None,
        });
        producers.push(async move {
            let mut sink = ChannelSink {
                tx: tx.clone(),
                batch: Vec::new(),
            };
            let mut result = executor.execute(&keyspace.name, name, sql, &mut sink).await;
            // Rows still batched go before the outcome; a shard that failed sends only its error.
            if result.is_ok() {
                if let Err(e) = sink.flush().await {
                    result = Err(e);
                }
            }
            // Nobody may be listening any more; that is fine.
            let _ = tx.send(Item::Done(result)).await;
        });
    }
    if executor.in_key_order() {
        let one_by_one = async {
            for producer in producers {
                producer.await;
            }
        };
        let (_, result) = tokio::join!(one_by_one, consume(streams));
        return result;
    }
    let (_, result) = tokio::join!(join_all(producers), consume(streams));
    result
}

/// Concatenates the shards' rows into `sink` in the order given; outcomes are merged (affected
/// rows summed).
pub(crate) async fn concatenate<E: Executor, S: RowSink>(
    keyspace: &Keyspace,
    queries: &[(usize, &str)],
    executor: &E,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    with_streams(keyspace, queries, executor, |streams| async move {
        let mut total = Outcome::default();
        let mut columns_sent = false;
        for mut stream in streams {
            if let Some(columns) = stream.columns().await? {
                if !columns_sent {
                    columns_sent = true;
                    sink.columns(columns).await?;
                }
            }
            while let Some(row) = stream.next_row().await? {
                sink.row(row).await?;
            }
            total.merge(stream.finish().await?);
        }
        Ok(total)
    })
    .await
}
