//! `load-reference`: the reference servers of the load benchmark (`benches/load/run.sh`), and
//! the token minter it uses.
//!
//! ```text
//! load-reference serve ISSUER RESOURCE         # prints `plain http://…`, `cached http://…`,
//!                                              # `uncached http://…` and `jwt http://…`
//! load-reference tokens ISSUER RESOURCE COUNT  # prints COUNT fresh access tokens, one a line
//! load-reference broker COUNT DIR              # the broker rows' servers and tokens
//! load-reference logins ISSUER LOGINS REFRESHES PID [STORE_PID]  # sign-ins and refreshes at a broker
//! ```
//!
//! `serve` answers `GET /notes` on four loopback ports with the `notes` example's own handler
//! (lock the notebook, keep the caller's notes, serialise them with the caller's subject), so
//! that the servers differ only in how the caller is authenticated:
//! - `plain`: no authentication, the benchmark's reference: the handler gets no `AuthInfo` and
//!   answers for the subject the tokens carry, so every server sends the same body;
//! - `cached`: the handler behind `mcpauth`'s bearer layer (`read:notes` required, the
//!   verified-token cache on, as in `notes`);
//! - `uncached`: the same with the verified-token cache off: every request checks a signature;
//! - `jwt`: the "bare axum + `jsonwebtoken`" handler: the RS256 key is fetched from the issuer's
//!   JWKS and decoded once at start-up, then every request is verified with
//!   `jsonwebtoken::decode` (aws-lc backend) with the checks mcpauth makes for `notes`: RS256
//!   only, `iss`, `aud` = the resource, `exp` required, `nbf`, 60 s leeway, `read:notes` in
//!   `scope`. 401 on failure. No cache, no key lookup by `kid`: the cheapest honest verifier.
//!
//! The `plain`, `cached` and `uncached` routers have the same shape as `notes`' (the route, then
//! the resource's metadata router merged in); `cached` and `uncached` are `mcpauth` resource
//! servers for RESOURCE trusting ISSUER, so they accept the tokens minted for `notes`.
//!
//! `tokens` asks the issuer's token endpoint (client credentials, `scope=read:notes`,
//! `resource=RESOURCE`) for COUNT tokens, a few requests at a time; every answer is a freshly
//! signed token, so all are distinct.
//!
//! `broker` and `logins` are described in the `broker` module.
//!
//! It is a benchmark tool: any start-up failure ends it with one line on standard error.

mod broker;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth::{
    AuthInfo, AuthServer, AuthServerType, McpAuth, ProtectedResource, TokenCacheOptions,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The client ID the tokens are minted for; it becomes their `sub`, so the `plain` server
/// answers for it too and all servers send the same body.
const CLIENT_ID: &str = "load-bench";

/// The scope `GET /notes` needs.
const READ_SCOPE: &str = "read:notes";

/// How many token requests are in flight at once while minting.
const MINT_CONCURRENCY: usize = 8;

/// Why the tool stopped.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(
        "usage: load-reference serve ISSUER RESOURCE | load-reference tokens ISSUER RESOURCE COUNT \
         | load-reference broker COUNT DIR | load-reference logins ISSUER LOGINS REFRESHES PID [STORE_PID]"
    )]
    Usage,
    #[error("{0:?} is not a number")]
    Count(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot fetch {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("unexpected answer from {url}: {source}")]
    Body {
        url: String,
        source: serde_json::Error,
    },
    #[error("the JWKS at {0} has no RS256 key")]
    NoRsaKey(String),
    #[error("cannot decode the RS256 key: {0}")]
    Key(jsonwebtoken::errors::Error),
    #[error("cannot set up mcpauth: {0}")]
    Config(#[from] mcpauth::ConfigError),
    #[error("cannot discover the authorization server: {0}")]
    Discovery(#[from] mcpauth::discovery::DiscoveryError),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error("a minting task failed: {0}")]
    Join(tokio::task::JoinError),
    #[error("cannot read or write a file: {0}")]
    Io(std::io::Error),
    #[error("cannot start a development authorization server: {0}")]
    DevServer(mcpauth::dev::DevServerError),
    #[error("cannot set up the broker: {0}")]
    Broker(mcpauth::broker::BrokerError),
    #[error("unexpected answer in the sign-in, at {0}")]
    Flow(String),
}

/// The parts of the issuer's OpenID Connect metadata this tool needs.
#[derive(Debug, Deserialize)]
struct IssuerMetadata {
    jwks_uri: String,
    token_endpoint: String,
}

/// The claims the `jwt` handler reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: String,
}

/// What the `jwt` handler verifies with, built once.
#[derive(Debug)]
struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// One note, owned by the subject that wrote it (as in `notes`).
#[derive(Debug, Clone, Serialize)]
struct Note {
    id: usize,
    owner: String,
    text: String,
}

/// The notebook (as in `notes`).
type Notes = Arc<Mutex<Vec<Note>>>;

/// `notes`' `GET /notes` answer: the caller's notes.
fn list_notes(notes: &Notes, subject: &str) -> Json<Value> {
    let notes = notes.lock().unwrap_or_else(PoisonError::into_inner);
    let mine: Vec<&Note> = notes.iter().filter(|n| n.owner == subject).collect();
    Json(json!({ "subject": subject, "notes": mine }))
}

/// `GET /notes` for the `plain`, `cached` and `uncached` servers: `notes`' handler, which takes
/// the caller from the bearer layer when there is one.
async fn notes_handler(State(notes): State<Notes>, auth: Option<AuthInfo>) -> Json<Value> {
    let subject = auth.as_ref().map_or(CLIENT_ID, AuthInfo::subject);
    list_notes(&notes, subject)
}

/// The `jwt` server's state.
#[derive(Debug, Clone)]
struct JwtState {
    verifier: Arc<Verifier>,
    notes: Notes,
}

/// `GET /notes` behind a bare `jsonwebtoken::decode`.
async fn jwt(State(state): State<JwtState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let verifier = &state.verifier;
    match jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation) {
        Ok(data) if data.claims.scope.split(' ').any(|s| s == READ_SCOPE) => {
            list_notes(&state.notes, &data.claims.sub).into_response()
        }
        Ok(_) => StatusCode::FORBIDDEN.into_response(),
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// `notes`' router for RESOURCE with the notes handler: behind the bearer layer of `auth`
/// (`read:notes` required) or, with `None`, unprotected.
fn notes_router(auth: &McpAuth, resource: &str, protected: bool) -> Result<Router, Error> {
    let route = get(notes_handler);
    let route = if protected {
        route.route_layer(auth.bearer_auth(resource)?.required_scopes([READ_SCOPE])?)
    } else {
        route
    };
    Ok(Router::new()
        .route("/notes", route)
        .with_state(Notes::default())
        .merge(auth.resource_metadata_router()))
}

/// An `mcpauth` resource server for RESOURCE trusting ISSUER, its metadata fetched now.
async fn resource_server(
    issuer: &str,
    resource: &str,
    cache: TokenCacheOptions,
) -> Result<McpAuth, Error> {
    let auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new(resource)
                .authorization_server(AuthServer::discover(issuer, AuthServerType::Oidc))
                .scopes([READ_SCOPE, "write:notes"]),
        )
        .token_cache(cache)
        .build()?;
    auth.discover_all().await?;
    Ok(auth)
}

async fn get_json<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<T, Error> {
    json_answer(url, client.get(url).send().await).await
}

/// The JSON body of a successful answer from `url`.
async fn json_answer<T: DeserializeOwned>(
    url: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, Error> {
    let fetch = |source| Error::Fetch {
        url: url.to_owned(),
        source,
    };
    let response = sent.map_err(fetch)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::Status {
            url: url.to_owned(),
            status,
        });
    }
    let body = response.bytes().await.map_err(fetch)?;
    serde_json::from_slice(&body).map_err(|source| Error::Body {
        url: url.to_owned(),
        source,
    })
}

async fn issuer_metadata(client: &reqwest::Client, issuer: &str) -> Result<IssuerMetadata, Error> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    get_json(client, &url).await
}

/// Fetches the issuer's JWKS and decodes its RS256 key, once.
async fn verifier(
    client: &reqwest::Client,
    issuer: &str,
    resource: &str,
) -> Result<Verifier, Error> {
    let metadata = issuer_metadata(client, issuer).await?;
    let jwks: JwkSet = get_json(client, &metadata.jwks_uri).await?;
    let jwk = jwks
        .keys
        .iter()
        .find(|jwk| {
            matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
                && jwk
                    .common
                    .key_algorithm
                    .is_none_or(|alg| alg == KeyAlgorithm::RS256)
        })
        .ok_or_else(|| Error::NoRsaKey(metadata.jwks_uri.clone()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(Error::Key)?;
    // `Validation::new` allows only the given algorithm, requires `exp` and has a 60 s leeway,
    // as mcpauth does.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[resource]);
    validation.validate_nbf = true;
    Ok(Verifier { key, validation })
}

async fn listen() -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(Error::Bind)?;
    let addr = listener.local_addr().map_err(Error::Bind)?;
    Ok((listener, addr))
}

#[allow(clippy::print_stdout)] // the addresses are this command's output
async fn serve(client: reqwest::Client, issuer: &str, resource: &str) -> Result<(), Error> {
    let verifier = Arc::new(verifier(&client, issuer, resource).await?);
    let cached = resource_server(issuer, resource, TokenCacheOptions::default()).await?;
    let uncached = resource_server(issuer, resource, TokenCacheOptions::disabled()).await?;
    let apps = [
        ("plain", notes_router(&cached, resource, false)?),
        ("cached", notes_router(&cached, resource, true)?),
        ("uncached", notes_router(&uncached, resource, true)?),
        (
            "jwt",
            Router::new()
                .route("/notes", get(jwt))
                .with_state(JwtState {
                    verifier,
                    notes: Notes::default(),
                }),
        ),
    ];
    let mut servers = tokio::task::JoinSet::new();
    for (name, app) in apps {
        let (listener, addr) = listen().await?;
        println!("{name} http://{addr}");
        servers.spawn(axum::serve(listener, app).into_future());
    }
    while let Some(served) = servers.join_next().await {
        served.map_err(Error::Join)?.map_err(Error::Serve)?;
    }
    Ok(())
}

/// One access token from the token endpoint (client credentials).
async fn mint(client: &reqwest::Client, endpoint: &str, resource: &str) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("scope", READ_SCOPE),
        ("resource", resource),
    ];
    let sent = client.post(endpoint).form(&form).send().await;
    let token: TokenResponse = json_answer(endpoint, sent).await?;
    Ok(token.access_token)
}

async fn tokens(
    client: reqwest::Client,
    issuer: &str,
    resource: &str,
    count: usize,
) -> Result<(), Error> {
    let endpoint: Arc<str> = issuer_metadata(&client, issuer)
        .await?
        .token_endpoint
        .into();
    let resource: Arc<str> = resource.into();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..MINT_CONCURRENCY {
        // Spread `count` over the workers; the first `count % MINT_CONCURRENCY` take one more.
        let share = count / MINT_CONCURRENCY + usize::from(worker < count % MINT_CONCURRENCY);
        let (client, endpoint, resource) = (client.clone(), endpoint.clone(), resource.clone());
        workers.spawn(async move {
            let mut minted = Vec::with_capacity(share);
            for _ in 0..share {
                minted.push(mint(&client, &endpoint, &resource).await?);
            }
            Ok::<_, Error>(minted)
        });
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(minted) = workers.join_next().await {
        for token in minted.map_err(Error::Join)?? {
            writeln!(out, "{token}").map_err(Error::Stdout)?;
        }
    }
    out.flush().map_err(Error::Stdout)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, Error> {
    text.parse().map_err(|_| Error::Count(text.to_owned()))
}

async fn run(args: Vec<String>) -> Result<(), Error> {
    let client = reqwest::Client::builder().build().map_err(Error::Client)?;
    match args.as_slice() {
        [command, issuer, resource] if command == "serve" => serve(client, issuer, resource).await,
        [command, issuer, resource, count] if command == "tokens" => {
            tokens(client, issuer, resource, number(count)?).await
        }
        [command, count, dir] if command == "broker" => {
            broker::serve(number(count)?, std::path::Path::new(dir)).await
        }
        [command, issuer, logins, refreshes, pid, store_pid @ ..]
            if command == "logins" && store_pid.len() <= 1 =>
        {
            let store_pid = store_pid.first().map(|pid| number(pid)).transpose()?;
            broker::logins(
                issuer,
                number(logins)?,
                number(refreshes)?,
                number(pid)?,
                store_pid,
            )
            .await
        }
        _ => Err(Error::Usage),
    }
}

fn main() -> ExitCode {
    // The aws-lc backend, explicitly: `jsonwebtoken` panics at the first signature when feature
    // unification enabled both backends. `Err` means one is installed already; keep it.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A multi-threaded runtime as in `notes`: pinned to one core it has one worker, like `notes`.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("load-reference: error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("load-reference: error: {error}");
            ExitCode::FAILURE
        }
    }
}
