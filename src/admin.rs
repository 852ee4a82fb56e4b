//! The admin HTTP listener: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers), `/readyz` (every shard's primary answers a ping), `/status` (a page for people:
//! shards with health, throughput and latency charts, the busiest statements, the sessions),
//! `POST /reload` (re-read the config file and swap the topology, as SIGHUP does),
//! `POST /reparent?shard=ks/shard&to=host:port` (hand a shard's primary over to a replica),
//! `GET /migrations` (the online schema changes, JSON),
//! `POST /migrations/{cancel,retry,revert}?id=...`, and the branches', deploy requests' and
//! reshards' endpoints that the CLI uses (`/branches`, `/deploy-requests`, `/production`,
//! `/reshards`; JSON).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::stats::Point;
use crate::Gate;

#[derive(Clone)]
struct Admin {
    gate: Arc<Gate>,
    /// The file `/reload` re-reads; `None` when the proxy was started from a config in memory.
    config_path: Option<PathBuf>,
}

/// Serves the admin endpoints on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>, config_path: Option<PathBuf>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .route("/", get(status))
        .route("/reload", post(reload))
        .route("/reparent", post(reparent))
        .route("/migrations", get(migrations))
        .route("/migrations/{action}", post(migration_action))
        .route("/branches", get(branches).post(branch_create))
        .route(
            "/branches/vschema",
            get(branch_vschema).post(branch_set_vschema),
        )
        .route("/branches/{action}", post(branch_action))
        .route("/production", post(production))
        .route(
            "/deploy-requests",
            get(deploy_requests).post(deploy_request_create),
        )
        .route("/deploy-requests/{action}", post(deploy_request_action))
        .route("/reshards", get(reshards).post(reshard_start))
        .route("/reshards/{action}", post(reshard_action))
        .with_state(Admin { gate, config_path });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "admin listener stopped");
    }
}

/// Binds the admin address.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

async fn metrics(State(admin): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.gate.metrics_text(),
    )
        .into_response()
}

async fn ready(State(admin): State<Admin>) -> Response {
    let topo = admin.gate.topology();
    let mut down = Vec::new();
    for ks in topo.vschema.keyspaces() {
        for shard in &ks.shards {
            if !topo
                .backends
                .ping(&ks.name, &shard.name, Duration::from_secs(2))
                .await
            {
                down.push(format!("{}/{}", ks.name, shard.name));
            }
        }
    }
    if down.is_empty() {
        (StatusCode::OK, "ready\n".to_string()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: no answer from {}\n", down.join(", ")),
        )
            .into_response()
    }
}

async fn reload(State(admin): State<Admin>) -> Response {
    let Some(path) = &admin.config_path else {
        return (
            StatusCode::CONFLICT,
            "no config file to reload: the proxy was started without one\n",
        )
            .into_response();
    };
    match admin.gate.reload(path) {
        Ok(()) => (StatusCode::OK, "reloaded\n".to_string()).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ReparentArgs {
    shard: String,
    to: String,
}

/// `POST /reparent?shard=keyspace/shard&to=host:port`: answers once the new primary serves.
async fn reparent(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<ReparentArgs>,
) -> Response {
    match admin.gate.reparent(&args.shard, &args.to).await {
        Ok(report) => (StatusCode::OK, format!("{report}\n")).into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

/// `GET /migrations`: every migration's summary, oldest first, as JSON.
async fn migrations(State(admin): State<Admin>) -> Response {
    let topo = admin.gate.topology();
    match admin.gate.migrations.list(&topo, None).await {
        Ok(records) => {
            let all: Vec<crate::migration::Summary> = records.iter().map(|r| r.summary()).collect();
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&all).expect("summaries serialise"),
            )
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct MigrationArgs {
    id: String,
}

/// `POST /migrations/cancel|retry|revert?id=...`.
async fn migration_action(
    State(admin): State<Admin>,
    axum::extract::Path(action): axum::extract::Path<String>,
    axum::extract::Query(args): axum::extract::Query<MigrationArgs>,
) -> Response {
    let migrations = &admin.gate.migrations;
    let done = match action.as_str() {
        "cancel" => migrations.cancel(&admin.gate, &args.id).await,
        "retry" => migrations.retry(&admin.gate, &args.id).await,
        "revert" => migrations.revert(&args.id).await,
        other => return (StatusCode::NOT_FOUND, format!("no action {other}\n")).into_response(),
    };
    match done {
        Ok(()) => (StatusCode::OK, format!("{action}: {}\n", args.id)).into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

/// A JSON answer, or the error as text (409).
fn json<T: serde::Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Response {
    match result {
        Ok(value) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&value).expect("answers serialise"),
        )
            .into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

/// `GET /branches`: every branch.
async fn branches(State(admin): State<Admin>) -> Response {
    json(admin.gate.branches.list(&admin.gate).await)
}

#[derive(serde::Deserialize)]
struct BranchArgs {
    name: String,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    rows: Option<usize>,
}

/// `POST /branches?name=...&data=none|sample|full&rows=N`: a new branch and its first user.
async fn branch_create(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<BranchArgs>,
) -> Response {
    let data = args.data.as_deref().unwrap_or("none");
    let Some(data) = crate::branch::Data::parse(data, args.rows.unwrap_or(1000)) else {
        return (StatusCode::BAD_REQUEST, "data: none, sample or full\n").into_response();
    };
    json(
        admin
            .gate
            .branches
            .create(&admin.gate, &args.name, data)
            .await,
    )
}

/// `POST /branches/delete|password?name=...`.
async fn branch_action(
    State(admin): State<Admin>,
    axum::extract::Path(action): axum::extract::Path<String>,
    axum::extract::Query(args): axum::extract::Query<BranchArgs>,
) -> Response {
    let branches = &admin.gate.branches;
    match action.as_str() {
        "delete" => json(branches.delete(&admin.gate, &args.name).await),
        "password" => json(branches.password(&admin.gate, &args.name).await),
        other => (StatusCode::NOT_FOUND, format!("no action {other}\n")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct VSchemaArgs {
    name: String,
    keyspace: String,
    #[serde(default)]
    fragment: String,
}

/// `GET /branches/vschema?name=...&keyspace=...`: the keyspace's VSchema on the branch (TOML).
async fn branch_vschema(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<VSchemaArgs>,
) -> Response {
    let branches = &admin.gate.branches;
    json(
        branches
            .vschema(&admin.gate, &args.name, &args.keyspace)
            .await,
    )
}

/// `POST /branches/vschema?name=...&keyspace=...&fragment=...`: sets it.
async fn branch_set_vschema(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<VSchemaArgs>,
) -> Response {
    let branches = &admin.gate.branches;
    let set = branches.set_vschema(&admin.gate, &args.name, &args.keyspace, &args.fragment);
    json(set.await)
}

#[derive(serde::Deserialize)]
struct ProductionArgs {
    on: bool,
}

/// `POST /production?on=true|false`: whether main's schema changes only by deploy requests.
async fn production(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<ProductionArgs>,
) -> Response {
    json(
        admin
            .gate
            .branches
            .set_production(&admin.gate, args.on)
            .await,
    )
}

/// `GET /deploy-requests`: every deploy request.
async fn deploy_requests(State(admin): State<Admin>) -> Response {
    json(crate::branch::deploy::list(&admin.gate).await)
}

#[derive(serde::Deserialize)]
struct RequestArgs {
    #[serde(default)]
    branch: String,
    #[serde(default)]
    id: u64,
}

/// `POST /deploy-requests?branch=...`: a new deploy request into main.
async fn deploy_request_create(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<RequestArgs>,
) -> Response {
    json(crate::branch::deploy::create(&admin.gate, &args.branch).await)
}

/// `POST /deploy-requests/deploy|revert|close?id=N`.
async fn deploy_request_action(
    State(admin): State<Admin>,
    axum::extract::Path(action): axum::extract::Path<String>,
    axum::extract::Query(args): axum::extract::Query<RequestArgs>,
) -> Response {
    use crate::branch::deploy;
    match action.as_str() {
        "deploy" => json(deploy::deploy(&admin.gate, args.id).await),
        "revert" => json(deploy::revert(&admin.gate, args.id).await),
        "close" => json(deploy::close(&admin.gate, args.id).await),
        other => (StatusCode::NOT_FOUND, format!("no action {other}\n")).into_response(),
    }
}

/// `GET /reshards`: every keyspace's reshard.
async fn reshards(State(admin): State<Admin>) -> Response {
    json(admin.gate.reshards.list(&admin.gate).await)
}

#[derive(serde::Deserialize)]
struct ReshardArgs {
    keyspace: String,
    #[serde(default)]
    to: String,
    max_rows_per_sec: Option<u64>,
}

/// `POST /reshards?keyspace=...&to=-40,40-80,...`: starts moving the keyspace to those shards.
async fn reshard_start(
    State(admin): State<Admin>,
    axum::extract::Query(args): axum::extract::Query<ReshardArgs>,
) -> Response {
    let reshards = &admin.gate.reshards;
    let rate = args.max_rows_per_sec;
    json(
        reshards
            .start(&admin.gate, &args.keyspace, &args.to, rate)
            .await,
    )
}

/// `POST /reshards/verify|switch-reads|reverse-reads|switch|reverse|complete|cancel?keyspace=...`.
async fn reshard_action(
    State(admin): State<Admin>,
    axum::extract::Path(action): axum::extract::Path<String>,
    axum::extract::Query(args): axum::extract::Query<ReshardArgs>,
) -> Response {
    let Some(command) = crate::reshard::Command::parse(&action) else {
        return (StatusCode::NOT_FOUND, format!("no action {action}\n")).into_response();
    };
    let reshards = &admin.gate.reshards;
    json(reshards.command(&admin.gate, &args.keyspace, command).await)
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small line chart of `values` (oldest first), scaled to its own maximum.
fn sparkline(values: &[f64], color: &str) -> String {
    const W: f64 = 180.0;
    const H: f64 = 32.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let n = values.len();
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if n > 1 {
                i as f64 * W / (n - 1) as f64
            } else {
                W
            };
            let y = if max > 0.0 { H - v / max * H } else { H };
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        r#"<svg class="spark" width="{W}" height="{H}" viewBox="0 0 {W} {H}"><polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/></svg>"#,
        points.join(" ")
    )
}

fn millis(seconds: f64) -> String {
    if seconds.is_infinite() {
        "&gt; 10 s".into()
    } else if seconds >= 1.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{:.2} ms", seconds * 1000.0)
    }
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
p.meta { color: #57606a; margin: 0 0 16px; }
table { border-collapse: collapse; }
th { background: #1f4e79; color: #fff; text-align: left; font-weight: 600; }
th, td { padding: 6px 10px; border-bottom: 1px solid #d0d7de; vertical-align: middle; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.sql { font-family: ui-monospace, monospace; max-width: 720px; overflow-wrap: anywhere; }
.up { color: #1a7f37; font-weight: 600; }
.down { color: #cf222e; font-weight: 600; }
.unknown { color: #57606a; }
"#;

async fn status(State(admin): State<Admin>) -> Html<String> {
    let gate = &admin.gate;
    let topo = gate.topology();
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>shardgate status</title>\
         <meta http-equiv=\"refresh\" content=\"10\"><style>{STYLE}</style></head><body>\
         <h1>shardgate</h1><p class=\"meta\">up {} s · {} client sessions · samples every {} s, \
         charts cover the last 10 minutes</p>",
        gate.uptime().as_secs(),
        gate.session_count(),
        crate::stats::SAMPLE_EVERY.as_secs()
    );
    page.push_str(
        "<h2>Shards</h2><table id=\"shards\"><thead><tr><th>Keyspace</th><th>Shard</th>\
         <th>Primary</th><th>Health</th><th>Statements/s</th><th>p50</th><th>p99</th>\
         <th>Statements/s, 10 min</th><th>p99, 10 min</th></tr></thead><tbody>",
    );
    for ks in topo.vschema.keyspaces() {
        for shard in &ks.shards {
            let (points, healthy) = gate.activity.shard(&ks.name, &shard.name);
            let last = points.last().copied().unwrap_or_default();
            // p50/p99 over the last minute: the worst sample of it.
            let minute = &points[points.len().saturating_sub(12)..];
            let worst = |f: fn(&Point) -> f64| minute.iter().map(f).fold(0.0_f64, f64::max);
            let (class, word) = match healthy {
                Some(true) => ("up", "up"),
                Some(false) => ("down", "down"),
                None => ("unknown", "not checked yet"),
            };
            let qps: Vec<f64> = points.iter().map(|p| p.qps).collect();
            let p99: Vec<f64> = points.iter().map(|p| p.p99.min(10.0)).collect();
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}:{}</td><td class=\"{class}\">{word}</td>\
                 <td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                esc(&ks.name),
                esc(&shard.name),
                esc(&shard.primary.host),
                shard.primary.port,
                last.qps,
                millis(worst(|p| p.p50)),
                millis(worst(|p| p.p99)),
                sparkline(&qps, "#1f4e79"),
                sparkline(&p99, "#bc4c00"),
            );
        }
    }
    page.push_str("</tbody></table>");

    page.push_str(
        "<h2>Replicas</h2><table id=\"replicas\"><thead><tr><th>Shard</th><th>Replica</th>\
         <th>Lag</th><th>State</th></tr></thead><tbody>",
    );
    for ks in topo.vschema.keyspaces() {
        for shard in &ks.shards {
            for (addr, lag, serving, standing) in topo.backends.replica_lags(&ks.name, &shard.name)
            {
                let lag = lag.map_or("-".to_string(), |l| format!("{} s", l.as_secs()));
                let state = standing
                    .unwrap_or_else(|| if serving { "serving" } else { "not serving" }.to_string());
                let _ = write!(
                    page,
                    "<tr><td>{}/{}</td><td>{}:{}</td><td class=\"num\">{lag}</td><td>{}</td></tr>",
                    esc(&ks.name),
                    esc(&shard.name),
                    esc(&addr.host),
                    addr.port,
                    esc(&state)
                );
            }
        }
    }
    page.push_str("</tbody></table>");

    page.push_str(
        "<h2>Primary changes</h2><table id=\"failovers\"><thead><tr><th>Shard</th>\
         <th>Kind</th><th>Why</th><th>From</th><th>To</th><th>Held</th><th>Result</th>\
         </tr></thead><tbody>",
    );
    for c in gate.primary_changes().iter().rev() {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{} ms</td><td>{}</td></tr>",
            esc(&c.shard),
            c.kind,
            esc(&c.why),
            esc(&c.from),
            esc(&c.to),
            c.held.as_millis(),
            esc(&c.result)
        );
    }
    page.push_str("</tbody></table>");

    page.push_str(
        "<h2>Migrations</h2><table id=\"migrations\"><thead><tr><th>Id</th><th>Table</th>\
         <th>Statement</th><th>State</th><th>Shards</th><th>Copied</th><th>Progress</th>\
         <th>ETA</th><th>Lag</th><th>Message</th></tr></thead><tbody>",
    );
    let listed = tokio::time::timeout(Duration::from_secs(2), gate.migrations.list(&topo, None));
    if let Ok(Ok(records)) = listed.await {
        for m in records.iter().rev().map(|r| r.summary()) {
            let shards: Vec<String> = m
                .shards
                .iter()
                .map(|p| format!("{}: {}", p.shard, p.phase))
                .collect();
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}.{}</td><td class=\"sql\">{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{} / {}</td><td class=\"num\">{:.1}%</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{:.1} s</td><td>{}</td></tr>",
                esc(&m.id),
                esc(&m.keyspace),
                esc(&m.table),
                esc(&m.statement),
                esc(&m.state),
                esc(&shards.join("; ")),
                m.rows_copied,
                m.rows_total,
                m.progress,
                m.eta_secs.map_or(String::new(), |s| format!("{s} s")),
                m.lag_secs,
                esc(&m.message)
            );
        }
    }
    page.push_str("</tbody></table>");

    page.push_str(
        "<h2>Reshards</h2><table id=\"reshards\"><thead><tr><th>Keyspace</th><th>From</th>\
         <th>To</th><th>State</th><th>Copied</th><th>Progress</th><th>ETA</th><th>Lag</th>\
         <th>Switch held</th><th>Message</th></tr></thead><tbody>",
    );
    let listed = tokio::time::timeout(Duration::from_secs(2), gate.reshards.list(gate));
    if let Ok(Ok(records)) = listed.await {
        for r in records {
            let progress = match r.rows_total {
                0 => 100.0,
                n => (r.rows_copied() as f64 * 100.0 / n as f64).min(100.0),
            };
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{} / {}</td><td class=\"num\">{progress:.1}%</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{} ms</td><td class=\"num\">{}</td>\
                 <td>{}</td></tr>",
                esc(&r.keyspace),
                esc(&r.sources.join(",")),
                esc(&r.targets.join(",")),
                r.state.name(),
                r.rows_copied(),
                r.rows_total,
                r.eta_secs().map_or(String::new(), |s| format!("{s} s")),
                r.lag_ms(),
                r.stall_ms.map_or(String::new(), |ms| format!("{ms} ms")),
                esc(&r.message)
            );
        }
    }
    page.push_str("</tbody></table>");

    page.push_str(
        "<h2>Statements by total time</h2><table id=\"top\"><thead><tr><th>Statement \
         (normalised)</th><th>Runs</th><th>Total</th><th>Mean</th></tr></thead><tbody>",
    );
    for (text, runs, total) in gate.activity.top(15) {
        let mean = total.as_secs_f64() / runs.max(1) as f64;
        let _ = write!(
            page,
            "<tr><td class=\"sql\">{}</td><td class=\"num\">{runs}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&text),
            millis(total.as_secs_f64()),
            millis(mean)
        );
    }
    page.push_str("</tbody></table>");

    page.push_str(
        "<h2>Sessions</h2><table id=\"sessions\"><thead><tr><th>Id</th><th>User</th>\
         <th>Keyspace</th><th>Time</th><th>Statement</th></tr></thead><tbody>",
    );
    for p in gate.processes() {
        let _ = write!(
            page,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{} s</td>\
             <td class=\"sql\">{}</td></tr>",
            p.id,
            esc(&p.user),
            esc(p.keyspace.as_deref().unwrap_or("")),
            p.seconds,
            esc(p.statement.as_deref().unwrap_or("(idle)"))
        );
    }
    page.push_str("</tbody></table></body></html>");
    Html(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_charts_scale() {
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        let svg = sparkline(&[0.0, 5.0, 10.0], "#000");
        assert!(
            svg.contains("points=\"0.0,32.0 90.0,16.0 180.0,0.0\""),
            "{svg}"
        );
    }
}
