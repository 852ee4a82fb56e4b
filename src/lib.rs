//! shardgate: a MySQL sharding proxy. This crate is the glue between the wire protocol
//! (`frontend`), the planner, the engine and the backend pools, plus the command line
//! (`main.rs`). Its modules, in the order a statement meets them:
//!
//! - this file: starting a proxy from its config ([`start`]), reloading it.
//! - `topology`: the reloadable snapshot served from: keyspace map, pools, shard meters, columns.
//! - `gate`: client sessions, and each statement from the wire to the engine and back (its
//!   submodules are listed in `gate/mod.rs`).
//! - `session`: a connection's settings; `sysvars`: driver chatter the proxy answers itself.
//! - `prepared`, `plan_cache`: prepared statements, and plans cached by normalised text.
//! - `transaction`, `twopc`: transactions over several shards and their commit protocols;
//!   `deadlock`: finds and breaks lock cycles that span shards.
//! - `error`: the one place MySQL error codes are chosen.
//! - `metrics`, `stats`, `admin`: Prometheus metrics, the status page's numbers, the admin HTTP.
//! - `demo`: `shardgate demo`, local shards with sample data.

pub mod admin;
pub mod branch;
pub mod deadlock;
pub mod demo;
pub mod error;
pub mod etcd;
pub mod gate;
pub mod metrics;
pub mod migration;
pub mod plan_cache;
pub mod prepared;
pub mod reshard;
pub mod session;
mod sidecar;
pub mod stats;
pub mod sysvars;
pub mod topology;
pub mod transaction;
pub mod twopc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use vschema::Config;

pub use gate::Gate;

/// A proxy serving in the background of the current tokio runtime.
pub struct Running {
    pub addr: SocketAddr,
    /// Where the admin HTTP listener answers, when the config asks for one.
    pub admin: Option<SocketAddr>,
    pub gate: Arc<Gate>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    draining: watch::Sender<bool>,
    /// The admin listener and the status page's sampler.
    helpers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn stop(mut self) {
        self.stop_accepting().await;
    }

    async fn stop_accepting(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        for helper in &self.helpers {
            helper.abort();
        }
    }

    /// Graceful shutdown: stops accepting, lets each session finish its statement and its open
    /// transaction (sessions outside one end at once, with ER_SERVER_SHUTDOWN), and after
    /// `timeout` ends the rest: their transactions roll back. Returns the sessions that had to
    /// be ended that way.
    pub async fn shutdown(mut self, timeout: Duration) -> usize {
        self.stop_accepting().await;
        let _ = self.draining.send(true);
        let deadline = Instant::now() + timeout;
        while self.gate.session_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let forced = self.gate.session_count();
        if forced > 0 {
            tracing::warn!(
                sessions = forced,
                "shutdown deadline passed: rolling back their transactions"
            );
            self.gate.kill_all();
            let grace = Instant::now() + Duration::from_secs(5);
            while self.gate.session_count() > 0 && Instant::now() < grace {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        forced
    }
}

/// Binds `listen` (port 0 picks a free one) and serves `config` until stopped.
pub async fn start(config: &Config, listen: &str) -> std::io::Result<Running> {
    start_from(config, listen, None).await
}

/// [`start`], with the file the config came from: `POST /reload` re-reads it.
pub async fn start_from(
    config: &Config,
    listen: &str,
    config_path: Option<PathBuf>,
) -> std::io::Result<Running> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    // Proxies sharing a topology serve etcd's keyspaces and primaries.
    let mut shared = None;
    let joined;
    let config = match (&config.topology, &config_path) {
        (Some(topology), Some(path)) => {
            let (s, c, revision) = etcd::Shared::join(topology, path, addr.port())
                .await
                .map_err(std::io::Error::other)?;
            shared = Some((s, revision));
            joined = c;
            &joined
        }
        (Some(_), None) => {
            return Err(std::io::Error::other(
                "[topology] etcd needs the proxy started from its config file",
            ))
        }
        (None, _) => config,
    };
    let gate = Arc::new(Gate::new(config, addr.port()));
    // Before anything resumes: a reshard resumes only under this proxy's claim in etcd.
    if let Some((shared, _)) = &shared {
        gate.set_shared(shared.clone());
    }
    if let Some(path) = &config_path {
        gate.set_config_path(path.clone());
    }
    let topo = gate.topology();
    // Prepared twopc transactions this instance left behind (a crash, on the same port).
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        twopc::resolve(&topo.backends, &topo.vschema, &gate.xid_prefix),
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
    // Branch users log in from the start.
    let mut branches = 0;
    match tokio::time::timeout(Duration::from_secs(5), gate.branches.load(&gate)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => {
            tracing::info!(branches = n, "serving the recorded branches");
            branches = n;
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "could not load the recorded branches"),
        Err(_) => tracing::warn!("loading the recorded branches timed out"),
    }
    // Branches other proxies make or delete, served here too.
    let refresher = Arc::downgrade(&gate);
    tokio::spawn(async move {
        for tick in 1u64.. {
            tokio::time::sleep(BRANCH_REFRESH).await;
            let Some(gate) = refresher.upgrade() else {
                return;
            };
            // Without branches, a tenth as often.
            if branches == 0 && tick % 10 != 0 {
                continue;
            }
            match gate.branches.load(&gate).await {
                Ok(n) => branches = n,
                Err(e) => tracing::debug!(error = %e, "could not refresh the branches"),
            }
        }
    });
    // Migrations a stopped proxy left running go on here.
    let resumer = gate.clone();
    tokio::spawn(async move {
        // A deploy's migrations wait for the deploy to cut them over. Without a sidecar
        // keyspace there are no deploys.
        let deploys = crate::branch::deploy::deploying_migrations(&resumer).await;
        let held = deploys.as_ref().cloned().unwrap_or_default();
        if let Err(e) = resumer.migrations.resume(&resumer, &held).await {
            tracing::warn!(error = %e, "could not resume the recorded migrations");
        }
        if deploys.is_ok() {
            if let Err(e) = crate::branch::deploy::resume(&resumer).await {
                tracing::warn!(error = %e, "could not resume the recorded deploys");
            }
            if let Err(e) = resumer.reshards.resume(&resumer).await {
                tracing::warn!(error = %e, "could not resume the recorded reshards");
            }
        }
    });
    let tls = match &config.server.tls {
        Some(files) => Some(Arc::new(tls_acceptor(files)?)),
        None => None,
    };
    let (draining, drain_signal) = watch::channel(false);
    let options = frontend::ServerOptions {
        max_packet_size: config.server.max_packet_size,
        bytes: gate.metrics.client_bytes.clone(),
        tls,
        draining: drain_signal,
        idle_timeout: (config.server.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(config.server.idle_timeout_ms)),
        ..Default::default()
    };
    for user in &config.users {
        if matches!(&user.secret, vschema::Secret::Password(p) if !p.is_empty()) {
            tracing::warn!(
                user = %user.name,
                "the config holds this user's password in plain text; give its password_hash instead (shardgate passwd prints it)"
            );
        }
    }
    let mut helpers = vec![tokio::spawn(periodically(
        Arc::downgrade(&gate),
        HEALTH_EVERY,
        check_health,
    ))];
    helpers.push(tokio::spawn(deadlock::serve(
        gate.deadlocks.clone(),
        Arc::downgrade(&gate),
    )));
    if let Some((shared, revision)) = shared {
        helpers.push(tokio::spawn(shared.watch(Arc::downgrade(&gate), revision)));
    }
    let mut admin = None;
    if let Some(addr) = &config.server.admin {
        let (listener, local) = admin::bind(addr).await?;
        helpers.push(tokio::spawn(periodically(
            Arc::downgrade(&gate),
            stats::SAMPLE_EVERY,
            sample,
        )));
        helpers.push(tokio::spawn(admin::serve(
            listener,
            gate.clone(),
            config_path,
        )));
        admin = Some(local);
    }
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
        admin,
        gate,
        stop: Some(stop),
        task,
        draining,
        helpers,
    })
}

/// How often every shard's primary is pinged, and how long it has to answer.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// How often the proxy re-reads the recorded branches and their users.
const BRANCH_REFRESH: Duration = Duration::from_secs(2);

/// Pings every shard each second, on a connection outside its pool. A shard that misses two
/// pings in a row is marked down: statements to it fail at once, naming it, and the statements
/// waiting on it are abandoned. The first answered ping marks it up again. Each replica is
/// asked how far behind it is: one past its keyspace's `max_replica_lag_ms`, or not
/// replicating, answers no reads until it catches up.
async fn check_health(gate: Arc<Gate>) {
    let topo = gate.topology();
    let mut pings = tokio::task::JoinSet::new();
    for ks in topo.vschema.keyspaces() {
        for shard in &ks.shards {
            let (topo, ks, shard) = (topo.clone(), ks.name.clone(), shard.name.clone());
            pings.spawn(async move {
                let up = topo.backends.ping(&ks, &shard, HEALTH_EVERY).await;
                (ks, shard, up)
            });
        }
    }
    // Measured alongside: how far behind each replica is.
    let replicas = topo.clone();
    let lags = tokio::spawn(async move { replicas.backends.measure_replicas(HEALTH_EVERY).await });
    while let Some(Ok((ks, shard, up))) = pings.join_next().await {
        match topo.meter(&ks, &shard).and_then(|m| m.checked(up)) {
            Some(false) => {
                tracing::warn!(keyspace = %ks, shard = %shard, "shard marked down: no answer to health checks");
                gate.abandon_statements_on(&ks, &shard);
            }
            Some(true) => tracing::info!(keyspace = %ks, shard = %shard, "shard answers again"),
            None => {}
        }
        // Tried at each check while the shard is down: a failover that found no replica fit
        // to promote may find one later.
        let down = topo.meter(&ks, &shard).is_some_and(|m| !m.healthy());
        if down && !up && topo.backends.auto_failover(&ks, &shard) {
            let gate = gate.clone();
            tokio::spawn(async move {
                if let Err(e) = gate.fail_over(&ks, &shard).await {
                    tracing::error!(keyspace = %ks, shard = %shard, error = %e, "failover failed");
                }
            });
        }
    }
    let _ = lags.await;
}

/// The TLS acceptor for clients, from the config's PEM certificate chain and key.
fn tls_acceptor(files: &vschema::TlsFiles) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad("reading the TLS certificate", &files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("reading the TLS certificate", &files.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad("reading the TLS key", &files.key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| std::io::Error::other(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad("using the TLS certificate", &files.cert, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Feeds the status page: a sample of every shard each few seconds.
async fn sample(gate: Arc<Gate>) {
    gate.activity.sample(&gate.topology()).await;
}

/// Runs `job` every `period` while the gate lives.
async fn periodically<F: std::future::Future<Output = ()>>(
    gate: std::sync::Weak<Gate>,
    period: Duration,
    job: impl Fn(Arc<Gate>) -> F,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(gate) = gate.upgrade() else {
            return;
        };
        job(gate).await;
    }
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
