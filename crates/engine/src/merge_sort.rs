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
    Merge(Merge),
}

pub(crate) struct Merge {
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
    /// The keys of the row [`Source::repeats`] last let through.
    last: Option<SortKeys>,
}

impl Source {
    pub fn concat(streams: Vec<ShardStream>) -> Self {
        Source::Concat {
            streams,
            current: 0,
        }
    }

    pub fn merge(streams: Vec<ShardStream>, cmp: Comparator) -> Self {
        Source::Merge(Merge {
            heads: streams.iter().map(|_| SortKeys::default()).collect(),
            order: Vec::with_capacity(streams.len()),
            streams,
            primed: false,
            refill: None,
            spans: Vec::new(),
            cmp,
            last: None,
        })
    }

    /// Moves on to the next row if that needs no waiting (most rows come from a batch at hand):
    /// true when [`Source::take`] has it. Otherwise [`Source::next`] waits for it.
    pub fn ready(&mut self) -> Result<bool, EngineError> {
        match self {
            Source::Concat { streams, current } => Ok(streams
                .get_mut(*current)
                .is_some_and(|s| s.advance_buffered())),
            Source::Merge(m) => {
                if !m.primed {
                    return Ok(false);
                }
                if let Some(i) = m.refill {
                    if !m.streams[i].advance_buffered() {
                        return Ok(false);
                    }
                    m.refill = None;
                    m.place(i)?;
                }
                Ok(!m.order.is_empty())
            }
        }
    }

    /// The row [`Source::ready`] moved to, borrowed from its stream until the next call.
    pub fn take(&mut self) -> Result<Row<'_>, EngineError> {
        match self {
            Source::Concat { streams, current } => streams[*current].take(),
            Source::Merge(m) => {
                let i = m.order.pop().ok_or_else(|| {
                    EngineError::Bug("a merge was read without a current row".into())
                })?;
                m.refill = Some(i);
                m.streams[i].take()
            }
        }
    }

    /// Whether the row [`Source::take`] would hand out next sorts equal to the last one this
    /// let through (a merge's DISTINCT, done on its decoded keys). A concatenation has no order:
    /// never.
    pub fn repeats(&mut self) -> bool {
        let Source::Merge(m) = self else {
            return false;
        };
        let Some(&i) = m.order.last() else {
            return false;
        };
        if let Some(last) = &m.last {
            if m.cmp.compare_keys(&m.heads[i], last) == Ordering::Equal {
                return true;
            }
        }
        // The head's keys are decoded afresh when its stream moves on: keep them, give it the
        // old ones' room.
        let last = m.last.get_or_insert_with(SortKeys::default);
        std::mem::swap(last, &mut m.heads[i]);
        false
    }

    /// Moves on to the next row, waiting for it if need be: false at the end.
    pub async fn advance(&mut self) -> Result<bool, EngineError> {
        match self {
            Source::Concat { streams, current } => {
                while let Some(stream) = streams.get_mut(*current) {
                    if stream.advance().await? {
                        return Ok(true);
                    }
                    *current += 1;
                }
                Ok(false)
            }
            Source::Merge(m) => {
                if !m.primed {
                    for i in 0..m.streams.len() {
                        if m.streams[i].advance().await? {
                            m.place(i)?;
                        }
                    }
                    m.primed = true;
                }
                if let Some(i) = m.refill.take() {
                    if m.streams[i].advance_buffered() || m.streams[i].advance().await? {
                        m.place(i)?;
                    }
                }
                Ok(!m.order.is_empty())
            }
        }
    }

    /// Every shard's warnings, once all streams are read to the end.
    pub async fn outcome(&mut self) -> Result<crate::Outcome, EngineError> {
        let streams = match self {
            Source::Concat { streams, .. } | Source::Merge(Merge { streams, .. }) => streams,
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

impl Merge {
    /// Puts stream `i`'s new head in order: after every head that sorts before it, and on ties
    /// after the earlier shards', so that equal rows keep shard order.
    fn place(&mut self, i: usize) -> Result<(), EngineError> {
        let stream = &self.streams[i];
        stream.spans(self.cmp.columns_read(), &mut self.spans)?;
        self.cmp
            .decode_keys(stream.view(&self.spans)?, &mut self.heads[i])?;
        let (heads, cmp) = (&self.heads, &self.cmp);
        let later = |&j: &usize| {
            cmp.compare_keys(&heads[j], &heads[i]).then(j.cmp(&i)) == Ordering::Greater
        };
        let at = self.order.partition_point(later);
        self.order.insert(at, i);
        Ok(())
    }
}
