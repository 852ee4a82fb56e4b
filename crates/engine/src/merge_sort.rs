//! Where a merged SELECT's rows come from: the shard streams, concatenated or merged k-way. A
//! merge holds one row per shard: the head of each stream.

use std::cmp::Ordering;

use crate::compare::Comparator;
use crate::fanout::ShardStream;
use crate::{EngineError, Value};

pub(crate) enum Source {
    Concat {
        streams: Vec<ShardStream>,
        current: usize,
    },
    Merge {
        streams: Vec<ShardStream>,
        heads: Vec<Option<Vec<Value>>>,
        primed: bool,
        refill: Option<usize>,
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
        let heads = streams.iter().map(|_| None).collect();
        Source::Merge {
            streams,
            heads,
            primed: false,
            refill: None,
            cmp,
        }
    }

    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, EngineError> {
        match self {
            Source::Concat { streams, current } => {
                while let Some(stream) = streams.get_mut(*current) {
                    if let Some(row) = stream.next_row().await? {
                        return Ok(Some(row));
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
                if !*primed {
                    for (stream, head) in streams.iter_mut().zip(heads.iter_mut()) {
                        *head = stream.next_row().await?;
                    }
                    *primed = true;
                }
                if let Some(i) = refill.take() {
                    heads[i] = streams[i].next_row().await?;
                }
                // The smallest head; on ties the earlier shard, so equal rows keep shard order.
                let mut best: Option<usize> = None;
                for (i, head) in heads.iter().enumerate() {
                    let Some(row) = head else { continue };
                    best = match best {
                        Some(b)
                            if cmp.compare(row, heads[b].as_deref().unwrap_or_default())
                                != Ordering::Less =>
                        {
                            Some(b)
                        }
                        _ => Some(i),
                    };
                }
                Ok(best.and_then(|i| {
                    *refill = Some(i);
                    heads[i].take()
                }))
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
