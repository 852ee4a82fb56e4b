//! Where a merged SELECT's rows come from: the shard streams, concatenated or merged k-way. A
//! merge looks at one row per shard, the head of each stream, with its sort keys decoded once
//! into keys of its own; text rows stay in their streams' buffers until they are handed on.

use std::cmp::Ordering;

use crate::compare::{Comparator, SortKeys, Span};
use crate::fanout::{Row, ShardStream};
use crate::EngineError;

pub(crate) enum Source {
    Concat {
        streams: Vec<ShardStream>,
        current: usize,
    },
    Merge {
        streams: Vec<ShardStream>,
        /// Each stream's current row's keys, reused from row to row.
        heads: Vec<SortKeys>,
        /// The streams that have a current row, the smallest head last.
        order: Vec<usize>,
        primed: bool,
        /// The stream whose head was handed out last: it moves on at the next call.
        refill: Option<usize>,
        spans: Vec<Span>,
        cmp: Comparator,
    },
}

impl Source {
    pub fn concat(streams: Vec<ShardStream>) -> Self {
        Source::Concat {
            streams,
            current: 0,
        }
    }

    pub fn merge(streams: Vec<ShardStream>, cmp: Comparator) -> Self {
        Source::Merge {
            heads: streams.iter().map(|_| SortKeys::default()).collect(),
            order: Vec::with_capacity(streams.len()),
            streams,
            primed: false,
            refill: None,
            spans: Vec::new(),
            cmp,
        }
    }

    /// The next row, borrowed from its stream until the next call; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Row<'_>>, EngineError> {
        match self {
            Source::Concat { streams, current } => {
                while let Some(stream) = streams.get_mut(*current) {
                    if stream.advance().await? {
                        return streams[*current].take().map(Some);
                    }
                    *current += 1;
                }
                Ok(None)
            }
            Source::Merge {
                streams,
                heads,
                order,
                primed,
                refill,
                spans,
                cmp,
            } => {
                // Moves stream `i` on and puts its new head in order: after every head that
                // sorts before it, and on ties after the earlier shards', so that equal rows keep
                // shard order.
                let count = streams.len();
                let read = cmp.columns_read();
                let mut fill = async |i: usize| -> Result<(), EngineError> {
                    let stream = &mut streams[i];
                    if !(stream.advance_buffered() || stream.advance().await?) {
                        return Ok(());
                    }
                    stream.spans(read, spans)?;
                    cmp.decode_keys(stream.view(spans)?, &mut heads[i]);
                    let later = |j: usize| {
                        cmp.compare_keys(&heads[j], &heads[i]).then(j.cmp(&i)) == Ordering::Greater
                    };
                    let at = order.partition_point(|&j| later(j));
                    order.insert(at, i);
                    Ok(())
                };
                if !*primed {
                    for i in 0..count {
                        fill(i).await?;
                    }
                    *primed = true;
                }
                if let Some(i) = refill.take() {
                    fill(i).await?;
                }
                let Some(i) = order.pop() else {
                    return Ok(None);
                };
                *refill = Some(i);
                streams[i].take().map(Some)
            }
        }
    }

    /// Every shard's warnings, once all streams are read to the end.
    pub async fn outcome(&mut self) -> Result<crate::Outcome, EngineError> {
        let streams = match self {
            Source::Concat { streams, .. } | Source::Merge { streams, .. } => streams,
        };
        let mut total = crate::Outcome::default();
        for s in streams {
            let o = s.finish().await?;
            total.warnings = total.warnings.saturating_add(o.warnings);
            total.warning_rows.extend(o.warning_rows);
        }
        Ok(total)
    }
}
