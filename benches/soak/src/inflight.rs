//! `soak --inflight NOTES_BIN`: a reproduction of one behaviour the soak run shows, on its own.
//!
//! After a key rotation, the first request with a token of the new key makes notes refetch the
//! JWKS. A request with another token of the new key that arrives while that fetch is still
//! under way does not wait for it: notes' rate limit (a fetch started less than the minimum
//! refresh interval ago) answers it at once with 401 `invalid_token` (`unknown_key`, or
//! `invalid_signature` when the `kid` was reused), although the fetch in flight brings its key.
//! With an authorization server that answers in milliseconds the window is milliseconds; with
//! one that answers in seconds, every new-key request in those seconds is told its valid token
//! is invalid.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::timeline::{Behaviour, Timeline};
use crate::tokens::{CheckKind, Minter};
use crate::{BoxError, Rig, Settings};
use mcpauth::dev::KeyRotation;
use reqwest::header::AUTHORIZATION;
use serde_json::Value;

/// How long the slow authorization server takes to answer.
const DELAY_MS: u64 = 4000;

async fn send(client: &reqwest::Client, url: &str, token: &str) -> Result<String, BoxError> {
    let started = Instant::now();
    let response = client
        .get(url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reason = body.get("reason").and_then(Value::as_str).unwrap_or("");
    Ok(format!(
        "{status} {reason} after {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ))
}

async fn fresh(minter: &Minter) -> Result<String, BoxError> {
    match minter.check_token(CheckKind::ValidFresh, 0).await? {
        Some((_, Some(token))) => Ok(token),
        _ => Err("no token".into()),
    }
}

/// Runs the reproduction; whether notes waited for the fetch in flight (the behaviour one would
/// hope for).
pub(crate) async fn run(settings: &Settings) -> Result<bool, BoxError> {
    let mut settings = settings.clone();
    settings.slow_min_ms = DELAY_MS;
    settings.slow_max_ms = DELAY_MS;
    let timeline = Arc::new(Timeline::new(Duration::ZERO, Duration::ZERO));
    let Rig {
        proxy,
        notes,
        minter,
        ..
    } = Rig::start(&settings, &timeline, None).await?;
    let url = format!("{}/notes", notes.url);
    let client = reqwest::Client::builder().no_proxy().build()?;

    println!(
        "inflight: notes {url}, issuer {} (fault proxy)",
        proxy.issuer()
    );
    let warm = send(&client, &url, &fresh(&minter).await?).await?;
    println!("  1. a token of the current key: {warm} (notes fetched the JWKS)");
    proxy.set_mode(Behaviour::Slow).await?;
    minter.rotate(KeyRotation::NewKeyIds).await?;
    println!(
        "  2. the AS now answers after {} s, and rotated its keys (new kid); waiting 11 s, past \
         notes' 10 s minimum refresh interval",
        DELAY_MS / 1000
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (a, b) = (fresh(&minter).await?, fresh(&minter).await?);
    let first = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { send(&client, &url, &a).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = send(&client, &url, &b).await?;
    let first = first.await??;
    println!("  3. token A of the new key (starts the fetch):         {first}");
    println!("     token B of the new key, sent 300 ms after A:       {second}");
    let again = send(&client, &url, &b).await?;
    println!("  4. token B again, once the fetch has finished:        {again}");
    let waited = second.starts_with("200");
    println!(
        "  → {}",
        if waited {
            "B waited for the fetch in flight"
        } else {
            "B was refused while the fetch that brings its key was in flight"
        }
    );
    notes.stop().await;
    Ok(waited)
}
