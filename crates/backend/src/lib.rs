//! Connection pools to the shards (one mysql_async pool per shard primary) and the
//! [`engine::Executor`] that runs statements on them, streaming rows into the engine's sink.
//!
//! mysql_async traps handled here: no reset-on-return (we reset explicitly when session state
//! needs it), no `prefer_socket` (it swaps a loopback TCP address for the Unix socket), and an idle
//! TTL so returned connections are kept rather than closed.

use std::collections::HashMap;
use std::time::Duration;

use engine::{EngineError, Executor, Outcome, RowSink};
use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, Pool, PoolConstraints, PoolOpts};
use vschema::{Shard, VSchema};

/// How long a shard may take to hand out a connection before the statement fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One pool per shard, by (keyspace, shard) name.
pub struct Backends {
    pools: HashMap<(String, String), Pool>,
}

impl Backends {
    /// Creates the pools; connections are opened on first use.
    pub fn new(vschema: &VSchema) -> Self {
        let mut pools = HashMap::new();
        for ks in vschema.keyspaces() {
            for shard in &ks.shards {
                let constraints = PoolConstraints::new(ks.pool.min.min(ks.pool.max), ks.pool.max)
                    .unwrap_or_default();
                pools.insert(
                    (ks.name.clone(), shard.name.clone()),
                    pool_for(shard, constraints),
                );
            }
        }
        Backends { pools }
    }

    /// Closes every pool, waiting for connections in use to come back.
    pub async fn disconnect(self) {
        for (_, pool) in self.pools {
            let _ = pool.disconnect().await;
        }
    }

    fn pool(&self, keyspace: &str, shard: &str) -> Result<&Pool, EngineError> {
        self.pools
            .get(&(keyspace.to_string(), shard.to_string()))
            .ok_or_else(|| EngineError::Backend {
                shard: format!("{keyspace}/{shard}"),
                message: "[BUG] no pool for this shard".into(),
            })
    }
}

fn pool_for(shard: &Shard, constraints: PoolConstraints) -> Pool {
    let addr = &shard.primary;
    let pool_opts = PoolOpts::default()
        .with_constraints(constraints)
        .with_reset_connection(false)
        .with_inactive_connection_ttl(Duration::from_secs(60));
    let opts = OptsBuilder::default()
        .ip_or_hostname(addr.host.clone())
        .tcp_port(addr.port)
        .user(Some(addr.user.clone()))
        .pass(addr.password.clone())
        .db_name(Some(addr.database.clone()))
        .prefer_socket(false)
        .tcp_nodelay(true)
        .stmt_cache_size(0)
        .pool_opts(pool_opts);
    Pool::new(opts)
}

fn to_engine_error(shard: &str, e: mysql_async::Error) -> EngineError {
    match e {
        mysql_async::Error::Server(s) => EngineError::Server {
            shard: shard.to_string(),
            code: s.code,
            state: s.state,
            message: s.message,
        },
        other => EngineError::Backend {
            shard: shard.to_string(),
            message: other.to_string(),
        },
    }
}

impl Executor for Backends {
    async fn execute<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        let pool = self.pool(keyspace, shard)?;
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn()).await {
            Ok(conn) => conn.map_err(|e| to_engine_error(shard, e))?,
            Err(_) => {
                return Err(EngineError::Backend {
                    shard: shard.to_string(),
                    message: format!("no connection within {CONNECT_TIMEOUT:?}"),
                })
            }
        };
        let mut result = conn
            .query_iter(sql)
            .await
            .map_err(|e| to_engine_error(shard, e))?;
        if let Some(columns) = result.columns().filter(|c| !c.is_empty()) {
            sink.columns(columns).await?;
            while let Some(row) = result.next().await.map_err(|e| to_engine_error(shard, e))? {
                sink.row(row.unwrap()).await?;
            }
        }
        let outcome = Outcome {
            affected_rows: result.affected_rows(),
            last_insert_id: result.last_insert_id().unwrap_or(0),
            warnings: result.warnings(),
            info: result.info().into_owned(),
        };
        // Anything after the first result (a stored procedure's status) is read and dropped so the
        // connection goes back to the pool clean.
        result
            .drop_result()
            .await
            .map_err(|e| to_engine_error(shard, e))?;
        Ok(outcome)
    }
}
