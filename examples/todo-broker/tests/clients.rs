//! The official MCP SDKs as clients of the broker: `todo-broker` (its development identity
//! provider behind it) and the TypeScript SDK (`interop/ts_broker_client.mjs`) or the Python SDK
//! (`interop/py_broker_client.py`) registering dynamically, or the TypeScript SDK with a client
//! ID metadata document served over https. Each signs in through the consent page and the
//! provider, calls `get_todos`, meets the 403 step-up of `create_todo`, signs in again for the
//! wider scope, refreshes, and calls again.
//!
//! Needs Node.js and npm (`interop/node_modules` is installed from the lock file when missing)
//! and Python 3 with venv (`interop/.venv` is created when missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use support::{BrokerConfig, Expected, TempDir, check_sdk_run, run_script, start_broker};

/// The development provider's user, as the broker names it.
const DEV_SUBJECT: &str = "dev|dev-user";

/// A `todo-broker` in front of its development identity provider, on a store in `dir`.
async fn broker_with_dev_provider(dir: &TempDir, env: &[(&str, &str)]) -> support::TodoBroker {
    let mut config = BrokerConfig::new(&dir.path().join("broker-store"));
    for (name, value) in env {
        config = config.env(name, value);
    }
    start_broker(&config, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_registers_signs_in_steps_up_and_refreshes() {
    tokio::task::spawn_blocking(support::ensure_node_modules)
        .await
        .unwrap();
    let dir = TempDir::new("ts");
    let broker = broker_with_dev_provider(&dir, &[]).await;
    let mcp = broker.mcp.clone();
    let results = tokio::task::spawn_blocking(move || {
        run_script(&PathBuf::from("node"), "ts_broker_client.mjs", &[&mcp])
    })
    .await
    .unwrap();
    let dev = broker.dev_issuer.clone().unwrap();
    check_sdk_run(
        &results,
        &broker,
        &Expected {
            upstream_authorize: &format!("{dev}/authorize"),
            upstream_client: "todo-broker",
            subject: DEV_SUBJECT,
            metadata_document: None,
        },
    );
    assert_eq!(results["protocolVersion"], "2025-11-25");
    // The SDK answers the 403 by refreshing (same scope) and gives up, or signs in again; the
    // script signs in again in the first case. Either way the wider token came from a login.
    let step_up = results["stepUp"].as_str().unwrap();
    assert!(["sdk", "explicit"].contains(&step_up), "{results}");
    assert_eq!(results["refreshOutcome"], "AUTHORIZED");
    assert_eq!(
        results["usedRefreshedToken"], true,
        "the calls after the refresh carry the new access token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_registers_signs_in_steps_up_and_refreshes() {
    let python = tokio::task::spawn_blocking(support::python).await.unwrap();
    let dir = TempDir::new("py");
    let broker = broker_with_dev_provider(&dir, &[]).await;
    let mcp = broker.mcp.clone();
    let results =
        tokio::task::spawn_blocking(move || run_script(&python, "py_broker_client.py", &[&mcp]))
            .await
            .unwrap();
    let dev = broker.dev_issuer.clone().unwrap();
    check_sdk_run(
        &results,
        &broker,
        &Expected {
            upstream_authorize: &format!("{dev}/authorize"),
            upstream_client: "todo-broker",
            subject: DEV_SUBJECT,
            metadata_document: None,
        },
    );
    assert_eq!(results["protocolVersion"], "2025-11-25");
}

/// A certificate authority and a server certificate for `host` it issued: (CA PEM, server
/// certificate PEM, server key PEM).
fn certificates(host: &str) -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "todo-broker interop test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut server = CertificateParams::new(vec![host.to_owned()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, host);
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// The TypeScript SDK's client ID metadata document support (it takes https URLs only): the
/// script publishes the document at `https://client.localdev:<port>/client.json` with a
/// certificate from a CA of this test; the broker trusts that host on loopback
/// (`BROKER_CIMD_TRUST_HOST`) and that CA (`SSL_CERT_FILE`), fetches the document, and shows
/// its host as verified on the consent page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_signs_in_with_a_client_id_metadata_document() {
    tokio::task::spawn_blocking(support::ensure_node_modules)
        .await
        .unwrap();
    const HOST: &str = "client.localdev";
    let dir = TempDir::new("cimd");
    let (ca, cert, key) = certificates(HOST);
    let [ca_file, cert_file, key_file] = ["ca.pem", "client.pem", "client.key"]
        .map(|name| dir.path().join(name).to_str().unwrap().to_owned());
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    // The port in the document URL replaces this one.
    let trust = format!("{HOST}=127.0.0.1:443");
    let broker = broker_with_dev_provider(
        &dir,
        &[
            ("BROKER_CIMD_TRUST_HOST", &trust),
            ("SSL_CERT_FILE", &ca_file),
        ],
    )
    .await;
    let mcp = broker.mcp.clone();
    let results = tokio::task::spawn_blocking(move || {
        run_script(
            &PathBuf::from("node"),
            "ts_broker_client.mjs",
            &[
                &mcp,
                "--cimd-cert",
                &cert_file,
                "--cimd-key",
                &key_file,
                "--cimd-host",
                HOST,
            ],
        )
    })
    .await
    .unwrap();
    let document = results["cimd"]["documentUrl"].as_str().unwrap();
    assert!(
        document.starts_with(&format!("https://{HOST}:")) && document.ends_with("/client.json"),
        "{results}"
    );
    let dev = broker.dev_issuer.clone().unwrap();
    check_sdk_run(
        &results,
        &broker,
        &Expected {
            upstream_authorize: &format!("{dev}/authorize"),
            upstream_client: "todo-broker",
            subject: DEV_SUBJECT,
            metadata_document: Some(document),
        },
    );
    // The broker fetched the document (once: it is cached), as itself.
    let fetches = results["cimd"]["fetches"].as_array().unwrap();
    assert_eq!(fetches.len(), 1, "{results}");
    assert_eq!(fetches[0]["path"], "/client.json");
    assert!(
        fetches[0]["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("mcpauth/"),
        "{results}"
    );
}
