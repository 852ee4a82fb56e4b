//! Where a merged SELECT's rows come from: the shard streams, concatenated or merged k-way. A
//! merge looks at one row per shard, the head of each stream, with its sort keys decoded once;
//! text rows stay in their streams' buffers until they are handed on.

use std::cmp::Ordering;

use crate::compare::{Comparator, Decoded, Span};
use crate::fanout::{Row, ShardStream};
use crate::EngineError;

pub(crate) enum Source {
    Concat {
        streams: Vec<ShardStream>,
        current: usize,
    },
    Merge {
        streams: Vec<ShardStream>,
        heads: Vec<Head>,
        primed: bool,
        /// The stream whose head was handed out last: it moves on at the next call.
        refill: Option<usize>,
        cmp: Comparator,
    },
}

/// What a merge knows of a stream's current row. The vectors are reused from row to row.
#[derive(Default)]
pub(crate) struct Head {
    live: bool,
    spans: Vec<Span>,
    keys: Vec<Decoded>,
}

impl Source {
    pub fn concat(streams: Vec<ShardStream>) -> Self {
        Source::Concat {
            streams,
            current: 0,
        }
    }

    pub fn merge(streams: Vec<ShardStream>, cmp: Comparator) -> Self {
        let heads = streams.iter().map(|_| Head::default()).collect();
        Source::Merge {
            streams,
            heads,
            primed: false,
            refill: None,
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
                primed,
                refill,
                cmp,
            } => {
                let count = heads.len();
                let mut fill = async |i: usize| -> Result<(), EngineError> {
                    let (stream, head) = (&mut streams[i], &mut heads[i]);
                    head.live = stream.advance().await?;
                    if head.live {
                        stream.spans(&mut head.spans)?;
                        cmp.decode_keys(stream.view(&head.spans)?, &mut head.keys);
                    }
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
                // The smallest head; on ties the earlier shard, so equal rows keep shard order.
                let mut best: Option<usize> = None;
                for (i, head) in heads.iter().enumerate() {
                    if !head.live {
                        continue;
                    }
                    best = match best {
                        Some(b) => {
                            let row = (streams[i].view(&head.spans)?, &head.keys[..]);
                            let other = (streams[b].view(&heads[b].spans)?, &heads[b].keys[..]);
                            if cmp.compare_keys(row, other) == Ordering::Less {
                                Some(i)
                            } else {
                                Some(b)
                            }
                        }
                        None => Some(i),
                    };
                }
                let Some(i) = best else {
                    return Ok(None);
                };
                *refill = Some(i);
                heads[i].live = false;
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
