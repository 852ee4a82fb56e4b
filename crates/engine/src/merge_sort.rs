//! Where a merged SELECT's rows come from: the shard streams, concatenated or merged k-way. A
//! merge holds one row per shard: the head of each stream, with its sort keys decoded once.

use std::cmp::Ordering;

use crate::compare::{Comparator, Decoded};
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
        /// Each head's sort keys; the vectors are reused from row to row.
        keys: Vec<Vec<Decoded>>,
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
        let keys = streams.iter().map(|_| Vec::new()).collect();
        Source::Merge {
            streams,
            heads,
            keys,
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
                keys,
                primed,
                refill,
                cmp,
            } => {
                let count = heads.len();
                let mut fill = async |i: usize| -> Result<(), EngineError> {
                    heads[i] = streams[i].next_row().await?;
                    if let Some(row) = &heads[i] {
                        cmp.decode_keys(row, &mut keys[i]);
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
                let mut best: Option<(usize, &[Value])> = None;
                for (i, (head, key)) in heads.iter().zip(keys.iter()).enumerate() {
                    let Some(row) = head else { continue };
                    best = match best {
                        Some((b, best_row))
                            if cmp.compare_keys((row, key), (best_row, &keys[b]))
                                != Ordering::Less =>
                        {
                            Some((b, best_row))
                        }
                        _ => Some((i, row)),
                    };
                }
                let best = best.map(|(i, _)| i);
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
