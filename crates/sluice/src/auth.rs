//! Publish authentication: static stream keys and `on_publish`/`on_unpublish` webhooks
//! (the nginx-rtmp / SRS convention). Decided before `NetStream.Publish.Start` is sent.
//! Stream keys never reach logs, metrics, the API or playlists.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::AuthConfig;

/// Why a publish was refused; also the `reason` label of `sluice_publish_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingKey,
    WrongKey,
    WebhookDenied,
    WebhookUnavailable,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MissingKey => "missing_key",
            Refusal::WrongKey => "wrong_key",
            Refusal::WebhookDenied => "webhook_denied",
            Refusal::WebhookUnavailable => "webhook_unavailable",
        }
    }
}

#[derive(Serialize)]
struct HookBody<'a> {
    action: &'a str,
    app: &'a str,
    stream: &'a str,
    params: serde_json::Map<String, serde_json::Value>,
    client_addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<u64>,
}

pub struct Authorizer {
    /// `"publish"`, or `"play"` for the play authorizer (the webhook's `action`).
    action: &'static str,
    keys: Vec<String>,
    on_publish: Option<String>,
    on_unpublish: Option<String>,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    timeout: Duration,
    max_body_bytes: usize,
}

/// Compares secrets (stream keys, the admin token) in time independent of how much of them
/// matched (`subtle`; only the length may show).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

impl Authorizer {
    pub fn new(cfg: &AuthConfig) -> Result<Self> {
        let timeout = Duration::from_millis(cfg.webhook_timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the webhook HTTP client")?;
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        Ok(Self {
            action: "publish",
            keys: cfg.publish_keys.clone(),
            on_publish: non_empty(&cfg.on_publish_url),
            on_unpublish: non_empty(&cfg.on_unpublish_url),
            client,
            permits: Arc::new(Semaphore::new(cfg.webhook_max_concurrency)),
            timeout,
            max_body_bytes: cfg.webhook_max_body_bytes,
        })
    }

    /// The same checks for RTMP play: `play.keys` and the `play.on_play_url` webhook (action
    /// `"play"`), with the `[auth]` webhook limits.
    pub fn for_play(keys: &[String], on_play_url: &str, cfg: &AuthConfig) -> Result<Self> {
        let mut a = Self::new(&AuthConfig {
            publish_keys: keys.to_vec(),
            on_publish_url: on_play_url.to_string(),
            on_unpublish_url: String::new(),
            ..cfg.clone()
        })?;
        a.action = "play";
        Ok(a)
    }

    /// Checks the static keys, then asks the webhook. Fails closed.
    pub async fn authorize(
        &self,
        app: &str,
        stream: &str,
        params: &[(String, String)],
        peer: SocketAddr,
    ) -> Result<(), Refusal> {
        if !self.keys.is_empty() {
            let Some((_, key)) = params.iter().find(|(k, _)| k == "key") else {
                return Err(Refusal::MissingKey);
            };
            if !self
                .keys
                .iter()
                .any(|k| constant_time_eq(k.as_bytes(), key.as_bytes()))
            {
                return Err(Refusal::WrongKey);
            }
        }
        let Some(url) = &self.on_publish else {
            return Ok(());
        };
        let action = self.action;
        let body = hook_body(action, app, stream, params, peer, None);
        match self.post(url, &body).await {
            Ok(status) if status.is_success() => Ok(()),
            Ok(status) => {
                tracing::info!(app, stream, %peer, %status, action, "webhook refused");
                Err(Refusal::WebhookDenied)
            }
            Err(e) => {
                tracing::warn!(app, stream, %peer, error = %e, action, "webhook failed; refusing (fail closed)");
                Err(Refusal::WebhookUnavailable)
            }
        }
    }

    /// Fire-and-forget notification that a stream ended.
    pub fn notify_unpublish(
        self: &Arc<Self>,
        app: &str,
        stream: &str,
        params: &[(String, String)],
        peer: SocketAddr,
        duration_ms: u64,
        bytes_received: u64,
    ) {
        let Some(url) = self.on_unpublish.clone() else {
            return;
        };
        let mut body = hook_body("unpublish", app, stream, params, peer, Some(duration_ms));
        body["bytes_received"] = bytes_received.into();
        let this = self.clone();
        let (app, stream) = (app.to_string(), stream.to_string());
        tokio::spawn(async move {
            if let Err(e) = this.post(&url, &body).await {
                tracing::warn!(%app, %stream, error = %e, "on_unpublish webhook failed");
            }
        });
    }

    async fn post(&self, url: &str, body: &serde_json::Value) -> Result<reqwest::StatusCode> {
        let _permit = tokio::time::timeout(self.timeout, self.permits.acquire())
            .await
            .context("webhook concurrency limit (auth.webhook_max_concurrency) reached")?
            .context("semaphore closed")?;
        let mut resp = self.client.post(url).json(body).send().await?;
        let status = resp.status();
        // Drain a bounded amount of the body so the connection can be reused; never more.
        let mut read = 0usize;
        while read < self.max_body_bytes {
            match tokio::time::timeout(self.timeout, resp.chunk()).await {
                Ok(Ok(Some(c))) => read += c.len(),
                _ => break,
            }
        }
        Ok(status)
    }
}

fn hook_body(
    action: &str,
    app: &str,
    stream: &str,
    params: &[(String, String)],
    peer: SocketAddr,
    duration_ms: Option<u64>,
) -> serde_json::Value {
    let params = params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::to_value(HookBody {
        action,
        app,
        stream,
        params,
        client_addr: peer.to_string(),
        duration_ms,
        bytes_received: None,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(keys: &[&str]) -> AuthConfig {
        AuthConfig {
            publish_keys: keys.iter().map(|s| s.to_string()).collect(),
            ..AuthConfig::default()
        }
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn static_keys() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let open = Authorizer::new(&cfg(&[])).unwrap();
        assert_eq!(open.authorize("live", "s", &[], peer).await, Ok(()));
        let locked = Authorizer::new(&cfg(&["k1", "k2"])).unwrap();
        assert_eq!(
            locked.authorize("live", "s", &[], peer).await,
            Err(Refusal::MissingKey)
        );
        assert_eq!(
            locked
                .authorize("live", "s", &p(&[("key", "nope")]), peer)
                .await,
            Err(Refusal::WrongKey)
        );
        assert_eq!(
            locked
                .authorize("live", "s", &p(&[("key", "k2")]), peer)
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn webhook_fails_closed_when_unreachable() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let c = AuthConfig {
            on_publish_url: "http://127.0.0.1:9/hook".into(),
            webhook_timeout_ms: 500,
            ..AuthConfig::default()
        };
        let a = Authorizer::new(&c).unwrap();
        assert_eq!(
            a.authorize("live", "s", &[], peer).await,
            Err(Refusal::WebhookUnavailable)
        );
    }
}
