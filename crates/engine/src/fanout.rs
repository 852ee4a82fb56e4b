//! One statement on several shards at once. Every shard runs concurrently and feeds its own small
//! bounded channel; consumers read the channels in whatever order they need (one after another to
//! concatenate, all at once to merge), so memory stays bounded whatever the row count: a shard
//! whose channel is full waits, held back by TCP flow control.

use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::compare::{leading_spans, RowView, Span};
use crate::{Column, EngineError, Executor, Outcome, RowSink, Value};

fn no_row() -> EngineError {
    EngineError::Bug("a shard stream was read without a current row".into())
}
use vschema::Keyspace;

/// Rows buffered per shard before its reader waits: batches of `BATCH_ROWS` (or `BATCH_BYTES`),
/// sent whole so that the channel's send, receive and wake-up are paid per batch, not per row.
const CHANNEL_ROWS: usize = 512;
const BATCH_ROWS: usize = 128;
const BATCH_BYTES: usize = 32 * 1024;

enum Item {
    Columns(Arc<[Column]>),
    Rows(Batch),
    /// The shard's statement ended; always the last item.
    Done(Result<Outcome, EngineError>),
}

/// A shard's rows on their way to the consumer: text rows as the shard sent them, or rows of
/// values from an executor that hands rows over decoded.
enum Batch {
    Text(TextRows),
    Values(Vec<Vec<Value>>),
}

/// Text-protocol row payloads back to back in one buffer; row `i` ends at `ends[i]`.
#[derive(Default)]
struct TextRows {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl TextRows {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// An empty batch with room for one like this: batches of a stream are alike, and growing
    /// each from nothing copies its rows over and over.
    fn like(&self) -> Self {
        TextRows {
            bytes: Vec::with_capacity(self.bytes.len()),
            ends: Vec::with_capacity(self.ends.len()),
        }
    }

    fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// One row of a shard's stream: values of its own, or a text row in the stream's buffer.
pub(crate) enum Row<'a> {
    Values(Vec<Value>),
    Text(&'a [u8]),
}

impl Row<'_> {
    pub fn into_values(self, columns: usize) -> Result<Vec<Value>, EngineError> {
        match self {
            Row::Values(values) => Ok(values),
            Row::Text(payload) => crate::decode_text_row(payload, columns),
        }
    }
}

struct ChannelSink {
    tx: mpsc::Sender<Item>,
    text: TextRows,
    values: Vec<Vec<Value>>,
}

impl RowSink for ChannelSink {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.send(Item::Columns(columns)).await
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        if self.text.len() > 0 {
            self.flush().await?;
        }
        self.values.push(row);
        if self.values.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }
    async fn text_row(&mut self, payload: &[u8], _columns: usize) -> Result<(), EngineError> {
        if !self.values.is_empty() {
            self.flush().await?;
        }
        self.text.bytes.extend_from_slice(payload);
        self.text.ends.push(self.text.bytes.len());
        if self.text.len() >= BATCH_ROWS || self.text.bytes.len() >= BATCH_BYTES {
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
        if self.text.len() > 0 {
            let next = self.text.like();
            let text = std::mem::replace(&mut self.text, next);
            self.send(Item::Rows(Batch::Text(text))).await?;
        }
        if !self.values.is_empty() {
            let values = std::mem::replace(&mut self.values, Vec::with_capacity(BATCH_ROWS));
            self.send(Item::Rows(Batch::Values(values))).await?;
        }
        Ok(())
    }
}

/// The batch a stream is reading.
enum Pending {
    Text { rows: TextRows, next: usize },
    Values(std::vec::IntoIter<Vec<Value>>),
}

/// The row [`ShardStream::advance`] moved to.
enum Current {
    None,
    /// A row of the text batch.
    Text(usize),
    Values(Vec<Value>),
}

/// The rows of one shard, read by a consumer.
pub(crate) struct ShardStream {
    pub shard: String,
    rx: mpsc::Receiver<Item>,
    columns: Option<Arc<[Column]>>,
    pending: Pending,
    current: Current,
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

    /// Moves to the next row (see [`ShardStream::take`]); false at the end. The shard's error if
    /// it failed.
    pub async fn advance(&mut self) -> Result<bool, EngineError> {
        loop {
            if self.advance_buffered() {
                return Ok(true);
            }
            self.current = Current::None;
            if self.outcome.is_some() {
                return Ok(false);
            }
            match self.recv().await? {
                Item::Columns(c) => self.columns = Some(c),
                Item::Rows(Batch::Text(rows)) => self.pending = Pending::Text { rows, next: 0 },
                Item::Rows(Batch::Values(rows)) => self.pending = Pending::Values(rows.into_iter()),
                Item::Done(r) => self.outcome = Some(r?),
            }
        }
    }

    /// Moves to the next row of the batch at hand, without waiting; false when the batch is
    /// used up (see [`ShardStream::advance`]).
    pub fn advance_buffered(&mut self) -> bool {
        match &mut self.pending {
            Pending::Text { rows, next } if *next < rows.len() => {
                self.current = Current::Text(*next);
                *next += 1;
                true
            }
            Pending::Values(rows) => match rows.next() {
                Some(row) => {
                    self.current = Current::Values(row);
                    true
                }
                None => false,
            },
            Pending::Text { .. } => false,
        }
    }

    /// Where the first `columns` values of the row [`ShardStream::advance`] moved to lie, for
    /// [`ShardStream::view`] (nothing for a row of values).
    pub fn spans(&self, columns: usize, out: &mut Vec<Span>) -> Result<(), EngineError> {
        match (&self.current, &self.pending) {
            (Current::Text(i), Pending::Text { rows, .. }) => {
                leading_spans(rows.row(*i), columns, out).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// The row [`ShardStream::advance`] moved to, to compare by; `spans` from
    /// [`ShardStream::spans`].
    pub fn view<'a>(&'a self, spans: &'a [Span]) -> Result<RowView<'a>, EngineError> {
        match (&self.current, &self.pending) {
            (Current::Values(values), _) => Ok(RowView::Values(values)),
            (Current::Text(i), Pending::Text { rows, .. }) => Ok(RowView::Text {
                payload: rows.row(*i),
                spans,
            }),
            _ => Err(no_row()),
        }
    }

    /// The row [`ShardStream::advance`] moved to; its values move out.
    pub fn take(&mut self) -> Result<Row<'_>, EngineError> {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Values(values) => Ok(Row::Values(values)),
            Current::Text(i) => match &self.pending {
                Pending::Text { rows, .. } => Ok(Row::Text(rows.row(i))),
                Pending::Values(_) => Err(no_row()),
            },
            Current::None => Err(no_row()),
        }
    }

    /// How many values a row has.
    pub fn width(&self) -> usize {
        self.columns.as_ref().map_or(0, |c| c.len())
    }

    /// Reads to the end and returns the shard's outcome.
    pub async fn finish(&mut self) -> Result<Outcome, EngineError> {
        while self.advance().await? {}
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
            pending: Pending::Values(Vec::new().into_iter()),
            current: Current::None,
            outcome: None,
        });
        producers.push(async move {
            let mut sink = ChannelSink {
                tx: tx.clone(),
                text: TextRows::default(),
                values: Vec::new(),
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
    // Polled one by one as they are woken (`join_all` of a few futures polls them all on
    // every wake-up of any).
    let all = producers
        .into_iter()
        .collect::<FuturesUnordered<_>>()
        .for_each(|()| async {});
    let (_, result) = tokio::join!(all, consume(streams));
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
    if let [(shard, sql)] = queries {
        // Nothing to run side by side: the shard's rows go straight to the sink.
        let shard = &keyspace.shards[*shard].name;
        return executor.execute(&keyspace.name, shard, sql, sink).await;
    }
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
            let width = stream.width();
            while stream.advance().await? {
                match stream.take()? {
                    Row::Text(payload) => sink.text_row(payload, width).await?,
                    Row::Values(values) => sink.row(values).await?,
                }
            }
            total.merge(stream.finish().await?);
        }
        Ok(total)
    })
    .await
}
