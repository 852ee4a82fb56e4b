//! Transactions: opening one (explicitly, or by autocommit=0), savepoints, commit and
//! rollback on every shard the transaction touched.

use engine::EngineError;
use frontend::SqlError;

use crate::error;
use crate::transaction::{SavepointOp, Transaction, TxMode};

use super::registry::Ending;
use super::GateSession;

impl GateSession {
    /// Opens a transaction; `start` is how each shard starts its part.
    pub(super) fn begin(&mut self, start: &str) {
        let tx = self.new_transaction(start, self.session.effective_tx_mode());
        self.tx = Some(tx);
    }

    /// With autocommit=0, a statement outside a transaction opens one, as in MySQL. In
    /// autocommit the statement is a transaction of its own, which uses up the characteristics
    /// `SET TRANSACTION` gave the next one.
    pub(super) fn ensure_transaction(&mut self) {
        if self.tx.is_some() {
            return;
        }
        if self.session.autocommit {
            self.session.next_transaction = None;
        } else {
            self.begin("START TRANSACTION");
        }
    }

    /// Takes the open transaction to end it: from here on no deadlock check counts it.
    pub(super) fn take_tx(&mut self) -> Option<Transaction> {
        *self.entry.transaction.lock().expect("session entry") = None;
        self.tx.take()
    }

    pub(super) fn new_transaction(&mut self, start: &str, mode: TxMode) -> Transaction {
        self.session.transactions += 1;
        let dtid = format!(
            "{}{}-{}",
            self.gate.xid_prefix, self.session.conn_id, self.session.transactions
        );
        Transaction::new(start, mode, self.session.prelude(), dtid)
            .with_characteristics(self.session.next_transaction.take())
    }

    /// Ends the open transaction (if any) with COMMIT or ROLLBACK on every shard it touched.
    pub(super) async fn end_transaction(&mut self, commit: bool) -> Result<(), SqlError> {
        let Some(tx) = self.take_tx() else {
            return Ok(());
        };
        self.finish(tx, commit)
            .await
            .map_err(|e| error::from_engine(&e))
    }

    /// Commits or rolls back a transaction on every shard it touched, and counts it.
    pub(super) async fn finish(&self, tx: Transaction, commit: bool) -> Result<(), EngineError> {
        let mode = tx.mode().name();
        // Registered like a statement's backend queries, so that a shard marked down while it
        // ends the transaction abandons it rather than leaving the client waiting.
        let held = tx.participants();
        for t in &held {
            self.entry.register(&t.keyspace, &t.shard, t.thread);
        }
        self.entry.ending.set(if commit {
            Ending::Commit
        } else {
            Ending::Rollback
        });
        let result = if commit {
            tx.commit(&self.topo).await
        } else {
            tx.rollback(&self.topo).await
        };
        self.entry.ending.set(Ending::No);
        for t in &held {
            self.entry.unregister(&t.shard, t.thread);
        }
        let outcome = match (&result, commit) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "commit",
            (Ok(()), false) => "rollback",
        };
        self.gate
            .metrics
            .transactions
            .with_label_values(&[mode, outcome])
            .inc();
        result
    }

    pub(super) async fn savepoint(
        &mut self,
        sql: &str,
        name: &str,
        op: SavepointOp,
    ) -> Result<(), SqlError> {
        self.ensure_transaction();
        match &self.tx {
            Some(tx) => tx
                .savepoint(sql, name, op)
                .await
                .map_err(|e| error::from_engine(&e)),
            // Outside a transaction MySQL accepts SAVEPOINT and forgets it at once.
            None if op == SavepointOp::Set => Ok(()),
            None => Err(error::unknown_savepoint(name)),
        }
    }

    /// A deadlock rolls the whole transaction back, as in MySQL: the shard that chose this
    /// session as its victim has rolled back its part, so the other shards' parts must not
    /// survive to be committed by the client's next COMMIT or BEGIN.
    pub(super) async fn abort_transaction(&mut self) {
        if let Some(tx) = self.take_tx() {
            if let Err(e) = tx.rollback(&self.topo).await {
                tracing::warn!(error = %e, "rollback after a deadlock failed");
            }
        }
    }
}
