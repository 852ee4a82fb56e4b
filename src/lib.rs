//! shardgate: a MySQL sharding proxy. This crate is the glue between the wire protocol
//! (`frontend`), the planner, the engine and the backend pools, plus the command line.
//!
//! - `gate`: each client statement → session handling or plan → engine → client.
//! - `session`: per-connection state.
//! - `sysvars`: driver chatter the proxy answers itself.
//! - `error`: the one place MySQL error codes are chosen.
//! - `demo`: `shardgate demo`, local shards with sample data.

pub mod demo;
pub mod error;
pub mod gate;
pub mod plan_cache;
pub mod prepared;
pub mod session;
pub mod sysvars;
pub mod transaction;
pub mod twopc;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vschema::Config;

pub use gate::Gate;

/// The keyspace of statements that name no table: the session's, or the first one.
pub(crate) fn select_default_keyspace<'a>(
    ctx: &planner::Context<'a>,
) -> Result<&'a vschema::Keyspace, planner::PlanError> {
    match ctx.keyspace {
        Some(ks) => ctx
            .vschema
            .keyspace(ks)
            .ok_or_else(|| planner::PlanError::UnknownKeyspace(ks.to_string())),
        None => ctx
            .vschema
            .keyspaces()
            .next()
            .ok_or(planner::PlanError::NoDatabase),
    }
}

/// A proxy serving in the background of the current tokio runtime.
pub struct Running {
    pub addr: SocketAddr,
    pub gate: Arc<Gate>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds `listen` (port 0 picks a free one) and serves `config` until stopped.
pub async fn start(config: &Config, listen: &str) -> std::io::Result<Running> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let gate = Arc::new(Gate::new(config, addr.port()));
    // Prepared twopc transactions this instance left behind (a crash, on the same port).
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        twopc::resolve(&gate.backends, &gate.vschema, &gate.xid_prefix),
    )
    .await
    {
        Ok(Ok(done)) if !done.committed.is_empty() || !done.rolled_back.is_empty() => {
            tracing::info!(committed = ?done.committed, rolled_back = ?done.rolled_back, "resolved prepared twopc transactions");
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not resolve prepared twopc transactions; run `shardgate resolve`")
        }
        Err(_) => tracing::warn!(
            "resolving prepared twopc transactions timed out; run `shardgate resolve`"
        ),
    }
    let options = frontend::ServerOptions {
        max_packet_size: config.server.max_packet_size,
        ..Default::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(frontend::serve(
        listener,
        Arc::new(gate::Sessions(gate.clone())),
        options,
        async {
            let _ = stopped.await;
        },
    ));
    Ok(Running {
        addr,
        gate,
        stop: Some(stop),
        task,
    })
}

/// Every client and backend connection is a file descriptor, and the usual soft limit (1024) is
/// far below what a proxy serves: raises it to the hard limit, as mysqld does. Returns the limit
/// in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = limit.rlim_max;
            limit.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!(wanted, "could not raise the open files limit");
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            }
        }
    }
    limit.rlim_cur
}
