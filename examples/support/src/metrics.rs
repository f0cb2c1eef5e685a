//! `METRICS_BIND=host:port`: the process's metrics (mcpauth's and any other crate's that uses the
//! `metrics` facade) in Prometheus's text format at `http://host:port/metrics`, on a listener of
//! its own so that the MCP port never exposes them. Unset: no recorder, nothing collected.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{StartupError, bind, invalid, setting};

/// How often histograms are folded into the summaries served (the exporter's upkeep).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder and serves `/metrics` when `METRICS_BIND` asks for it;
/// returns the address served.
pub async fn serve_from_env() -> Result<Option<SocketAddr>, StartupError> {
    let Some(value) = setting("METRICS_BIND") else {
        return Ok(None);
    };
    let addr: SocketAddr = value
        .parse()
        .map_err(|e| invalid("METRICS_BIND", &value, e))?;
    let (listener, bound) = bind(addr).await?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| invalid("METRICS_BIND", &value, e))?;
    tokio::spawn(upkeep(handle.clone()));
    let app = axum::Router::new().route("/metrics", get(move || render(handle.clone())));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    });
    Ok(Some(bound))
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}

async fn upkeep(handle: PrometheusHandle) {
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        interval.tick().await;
        handle.run_upkeep();
    }
}
