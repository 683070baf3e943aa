//! `pushjet-bridge healthcheck`: asks a running service whether it is healthy, for container
//! images that have no curl.

use std::time::Duration;

use clap::Args;

/// `healthcheck` and its options.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to ask; by default `/healthz` on the port of PUSHJET_BRIDGE_LISTEN (8080).
    #[arg(long)]
    pub url: Option<String>,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Why the service is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// No answer.
    #[error("no answer from {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// An answer other than 200.
    #[error("{url} answered HTTP {status}")]
    Unhealthy {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
    },
}

/// The default URL: `/healthz` on loopback at the port the service listens on.
pub fn default_url(listen: Option<&str>) -> String {
    let port = listen
        .and_then(|listen| listen.rsplit_once(':'))
        .and_then(|(_, port)| port.trim().parse::<u16>().ok())
        .unwrap_or(8080);
    format!("http://127.0.0.1:{port}/healthz")
}

/// Asks the service; `Ok` when it answered 200.
pub async fn run(args: HealthcheckArgs) -> Result<String, HealthcheckError> {
    let url = args
        .url
        .unwrap_or_else(|| default_url(crate::config::listen_from_env().as_deref()));
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .finish();
    let response =
        client
            .get(&url)
            .send()
            .await
            .map_err(|error| HealthcheckError::Unreachable {
                url: url.clone(),
                reason: error.to_string(),
            })?;
    match response.status().as_u16() {
        200 => Ok(format!("{url}: healthy")),
        status => Err(HealthcheckError::Unhealthy { url, status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_follows_the_listen_port() {
        assert_eq!(default_url(None), "http://127.0.0.1:8080/healthz");
        assert_eq!(
            default_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/healthz"
        );
        assert_eq!(
            default_url(Some("[::]:9001")),
            "http://127.0.0.1:9001/healthz"
        );
        assert_eq!(
            default_url(Some("garbage")),
            "http://127.0.0.1:8080/healthz"
        );
    }
}
