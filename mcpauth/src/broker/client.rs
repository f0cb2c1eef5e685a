//! Client records, and the validation of what clients say about themselves: RFC 7591 dynamic
//! registration requests and client ID metadata documents (CIMD, draft-ietf-oauth-client-id-
//! metadata-document).
//!
//! The broker registers public clients only (`token_endpoint_auth_method` `none`): it issues no
//! client secrets, and PKCE protects the code. Everything a client sends is checked before it is
//! stored or shown, because the consent page displays it and redirects go to it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::cimd::CimdError;
use super::now_unix;
use super::redirect_uri::{
    RawParts, RedirectUri, RedirectUriError, has_stray_character, written_host_is_canonical,
};

/// The most redirect URIs one client may have: real clients list one to four.
pub(crate) const MAX_REDIRECT_URIS: usize = 10;
/// The longest `client_name`, in characters: it is shown on the consent page.
pub(crate) const MAX_CLIENT_NAME_CHARS: usize = 200;

/// Where a client's record comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClientSource {
    /// Dynamic client registration (RFC 7591).
    Registered,
    /// A client ID metadata document, fetched from the URL that is the client id.
    MetadataDocument,
    /// Configured by the operator.
    Configured,
}

/// The OpenID Connect `application_type`: which redirect URIs a client may use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ApplicationType {
    /// Runs on a web server: https redirect URIs on non-loopback hosts only.
    Web,
    /// Runs on the user's device: loopback http and private-use schemes allowed too.
    Native,
}

impl ApplicationType {
    /// The registration metadata value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Native => "native",
        }
    }
}

/// A client the broker knows, whatever its source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ClientRecord {
    pub(crate) client_id: String,
    pub(crate) client_name: Option<String>,
    /// Each one passed [`RedirectUri::parse`] when the record was made.
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) source: ClientSource,
    pub(crate) application_type: ApplicationType,
    pub(crate) client_uri: Option<String>,
    pub(crate) logo_uri: Option<String>,
    /// Space-separated scope tokens the client asked for at registration.
    pub(crate) scope: Option<String>,
    /// Unix seconds: when it was registered, fetched or configured.
    pub(crate) registered_at: u64,
}

impl ClientRecord {
    /// A client configured by the operator: a public client with these redirect URIs (checked
    /// by the same rules as registered ones).
    pub(crate) fn configured(
        client_id: &str,
        redirect_uris: &[String],
        name: Option<String>,
    ) -> Result<Self, RedirectUriError> {
        let mut native = false;
        for uri in redirect_uris {
            let parsed = RedirectUri::parse(uri)?;
            native |= !parsed.is_https() || parsed.is_loopback();
        }
        Ok(Self {
            client_id: client_id.to_owned(),
            client_name: name,
            redirect_uris: redirect_uris.to_vec(),
            source: ClientSource::Configured,
            application_type: if native {
                ApplicationType::Native
            } else {
                ApplicationType::Web
            },
            client_uri: None,
            logo_uri: None,
            scope: None,
            registered_at: now_unix(),
        })
    }

    /// The redirect URI to use for an authorization request naming `requested`: `requested`
    /// itself if one registered URI matches it (exactly, or a loopback one but for the port),
    /// else none. Without `requested`, the registered URI if there is exactly one (RFC 6749
    /// §3.1.2.3). Registered URIs are checked again: a record may predate a rule.
    pub(crate) fn redirect_uri_for(&self, requested: Option<&str>) -> Option<String> {
        match requested {
            Some(requested) => self
                .redirect_uris
                .iter()
                .filter_map(|registered| RedirectUri::parse(registered).ok())
                .any(|registered| registered.matches(requested))
                .then(|| requested.to_owned()),
            None => match self.redirect_uris.as_slice() {
                [only] => RedirectUri::parse(only)
                    .ok()
                    .map(|uri| uri.as_str().to_owned()),
                _ => None,
            },
        }
    }
}

/// The RFC 7591 §3.2.2 error codes registration answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegistrationErrorCode {
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl RegistrationErrorCode {
    /// The `error` member of the response.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

/// A registration request the broker refuses (answered 400 with `error` and
/// `error_description`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub(crate) struct RegistrationError {
    pub(crate) code: RegistrationErrorCode,
    pub(crate) description: String,
}

/// What is wrong with client metadata, before it is told as a registration error or a CIMD
/// error.
#[derive(Debug)]
enum Problem {
    RedirectUri(String),
    Metadata(String),
}

impl From<Problem> for RegistrationError {
    fn from(problem: Problem) -> Self {
        match problem {
            Problem::RedirectUri(description) => Self {
                code: RegistrationErrorCode::InvalidRedirectUri,
                description,
            },
            Problem::Metadata(description) => Self {
                code: RegistrationErrorCode::InvalidClientMetadata,
                description,
            },
        }
    }
}

impl From<Problem> for CimdError {
    fn from(problem: Problem) -> Self {
        match problem {
            Problem::RedirectUri(description) | Problem::Metadata(description) => {
                Self::Invalid(description)
            }
        }
    }
}

fn metadata(description: impl Into<String>) -> Problem {
    Problem::Metadata(description.into())
}

/// The members of a JSON object, read with type checks.
struct Members(Map<String, Value>);

impl Members {
    fn parse(body: &[u8], what: &str) -> Result<Self, Problem> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(members)) => Ok(Self(members)),
            Ok(other) => Err(metadata(format!(
                "the {what} must be a JSON object, not a JSON {}",
                crate::http_client::json_kind(&other)
            ))),
            Err(error) => Err(metadata(format!("the {what} is not valid JSON: {error}"))),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn string(&self, name: &str) -> Result<Option<&str>, Problem> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(metadata(format!("`{name}` must be a string"))),
        }
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<&str>>, Problem> {
        let not_strings = || metadata(format!("`{name}` must be an array of strings"));
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| v.as_str().ok_or_else(not_strings))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(not_strings()),
        }
    }
}

/// The members both kinds of metadata share, checked.
struct Common {
    redirect_uris: Vec<RedirectUri>,
    application_type: Option<ApplicationType>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    scope: Option<String>,
}

impl Common {
    fn read(members: &Members) -> Result<Self, Problem> {
        let redirect_uris = redirect_uris(members)?;
        let application_type = match members.string("application_type")? {
            None => None,
            Some("web") => Some(ApplicationType::Web),
            Some("native") => Some(ApplicationType::Native),
            Some(other) => {
                return Err(metadata(format!(
                    "`application_type` must be `web` or `native`, not {other:?}"
                )));
            }
        };
        // A blank name is no name: the consent page then says the client is unnamed.
        let client_name = match members.string("client_name")? {
            Some(name) if !name.trim().is_empty() => Some(client_name(name)?),
            _ => None,
        };
        Ok(Self {
            redirect_uris,
            application_type,
            client_name,
            client_uri: https_member(members, "client_uri")?,
            logo_uri: https_member(members, "logo_uri")?,
            scope: scope(members)?,
        })
    }

    /// The application type given, or else the one the redirect URIs imply; checked against
    /// the redirect URIs either way.
    fn application_type(
        &self,
        default: Option<ApplicationType>,
    ) -> Result<ApplicationType, Problem> {
        let all_web = self
            .redirect_uris
            .iter()
            .all(|uri| uri.is_https() && !uri.is_loopback());
        let application_type = self.application_type.or(default).unwrap_or(if all_web {
            ApplicationType::Web
        } else {
            ApplicationType::Native
        });
        if application_type == ApplicationType::Web
            && let Some(uri) = self
                .redirect_uris
                .iter()
                .find(|uri| !uri.is_https() || uri.is_loopback())
        {
            return Err(Problem::RedirectUri(format!(
                "redirect URI {:?} is not allowed for `application_type` `web`: web clients \
                 use https on a host that is not loopback (register as `native` for loopback \
                 or custom-scheme redirects)",
                uri.as_str()
            )));
        }
        Ok(application_type)
    }

    fn into_record(
        self,
        client_id: String,
        source: ClientSource,
        application_type: ApplicationType,
    ) -> ClientRecord {
        ClientRecord {
            client_id,
            client_name: self.client_name,
            redirect_uris: self
                .redirect_uris
                .into_iter()
                .map(|uri| uri.as_str().to_owned())
                .collect(),
            source,
            application_type,
            client_uri: self.client_uri,
            logo_uri: self.logo_uri,
            scope: self.scope,
            registered_at: now_unix(),
        }
    }
}

fn redirect_uris(members: &Members) -> Result<Vec<RedirectUri>, Problem> {
    let Some(raw) = members.strings("redirect_uris").map_err(|_| {
        Problem::RedirectUri("`redirect_uris` must be an array of strings".to_owned())
    })?
    else {
        return Err(Problem::RedirectUri(
            "`redirect_uris` is required: list the client's redirect URIs".to_owned(),
        ));
    };
    if raw.is_empty() {
        return Err(Problem::RedirectUri(
            "`redirect_uris` is empty: list at least one redirect URI".to_owned(),
        ));
    }
    if raw.len() > MAX_REDIRECT_URIS {
        return Err(Problem::RedirectUri(format!(
            "`redirect_uris` lists {} URIs; at most {MAX_REDIRECT_URIS} are allowed",
            raw.len()
        )));
    }
    let mut uris: Vec<RedirectUri> = Vec::with_capacity(raw.len());
    for s in raw {
        let uri = RedirectUri::parse(s).map_err(|e| Problem::RedirectUri(e.to_string()))?;
        if !uris.contains(&uri) {
            uris.push(uri);
        }
    }
    Ok(uris)
}

/// Characters that reorder or hide text (bidirectional overrides and isolates): a client name
/// with them can display as another client's name on the consent page.
fn is_display_trick(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn client_name(name: &str) -> Result<String, Problem> {
    if name.chars().count() > MAX_CLIENT_NAME_CHARS {
        return Err(metadata(format!(
            "`client_name` is longer than {MAX_CLIENT_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(|c| c.is_control() || is_display_trick(c)) {
        return Err(metadata(
            "`client_name` contains a control or bidirectional-formatting character",
        ));
    }
    Ok(name.to_owned())
}

/// An optional URL member that must be https (it is shown or linked on the consent page, and
/// `jwks_uri` would be fetched).
fn https_member(members: &Members, name: &str) -> Result<Option<String>, Problem> {
    let Some(raw) = members.string(name)? else {
        return Ok(None);
    };
    let refused = |why: &str| metadata(format!("`{name}` {raw:?} {why}"));
    let url = mcpauth_rules::url::parse_secure_url(raw)
        .map_err(|e| metadata(format!("`{name}`: {e}")))?;
    if url.scheme() != "https" {
        return Err(refused("must be an https URL"));
    }
    Ok(Some(raw.to_owned()))
}

/// `scope`: space-separated RFC 6749 scope tokens, kept with single spaces.
fn scope(members: &Members) -> Result<Option<String>, Problem> {
    let Some(raw) = members.string("scope")? else {
        return Ok(None);
    };
    let mut tokens: Vec<&str> = Vec::new();
    for token in raw.split(' ').filter(|t| !t.is_empty()) {
        if let Some(problem) = mcpauth_rules::scope::scope_token_problem(token) {
            return Err(metadata(format!(
                "`scope` token {token:?} is invalid: {problem}"
            )));
        }
        if !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    Ok((!tokens.is_empty()).then(|| tokens.join(" ")))
}

/// Checks an RFC 7591 registration request (its size is the caller's to bound) and makes the
/// record to store; the caller fills in the `client_id` it issues.
///
/// Refused: anything but a JSON object; missing, empty, more than [`MAX_REDIRECT_URIS`] or
/// invalid `redirect_uris`; `application_type` `web` with a redirect URI that is not https on
/// a non-loopback host; a `token_endpoint_auth_method` other than `none` (the broker issues no
/// secrets; absent means `none` here, not RFC 7591's `client_secret_basic`); `grant_types`
/// beyond `authorization_code` and `refresh_token` or without `authorization_code`;
/// `response_types` other than `code`; a member of the wrong type; a bad `client_name`,
/// `client_uri`, `logo_uri` or `scope`. An omitted `application_type` means `native`: MCP
/// clients mostly are, and OpenID's default (`web`) would refuse their loopback redirects.
pub(crate) fn validate_registration(body: &[u8]) -> Result<ClientRecord, RegistrationError> {
    let members = Members::parse(body, "registration request")?;
    let common = Common::read(&members)?;
    match members.string("token_endpoint_auth_method")? {
        None | Some("none") => {}
        Some(other) => {
            return Err(metadata(format!(
                "`token_endpoint_auth_method` {other:?} is not supported: this server registers \
                 public clients only (`none`, with PKCE) and issues no client secrets"
            ))
            .into());
        }
    }
    if let Some(grant_types) = members.strings("grant_types")? {
        if let Some(other) = grant_types
            .iter()
            .find(|g| !matches!(**g, "authorization_code" | "refresh_token"))
        {
            return Err(metadata(format!(
                "grant type {other:?} is not supported: only `authorization_code` and \
                 `refresh_token`"
            ))
            .into());
        }
        if !grant_types.contains(&"authorization_code") {
            return Err(metadata("`grant_types` must include `authorization_code`").into());
        }
    }
    if let Some(response_types) = members.strings("response_types")? {
        if let Some(other) = response_types.iter().find(|r| **r != "code") {
            return Err(metadata(format!(
                "response type {other:?} is not supported: only `code`"
            ))
            .into());
        }
        if response_types.is_empty() {
            return Err(metadata("`response_types` must include `code`").into());
        }
    }
    for name in [
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "software_id",
        "software_version",
    ] {
        members.string(name)?;
    }
    members.strings("contacts")?;
    let application_type = common.application_type(Some(ApplicationType::Native))?;
    Ok(common.into_record(String::new(), ClientSource::Registered, application_type))
}

/// Members of a JWK that hold private key material: a document that publishes them has leaked
/// its key.
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks a client ID metadata document fetched from `client_id` (its size is the fetcher's
/// to bound) and makes the client's record.
///
/// Required: a JSON object whose `client_id` is `client_id` (simple string comparison), a
/// non-empty `client_name`, and `redirect_uris` (the same rules as registration; without
/// `application_type` the URIs decide: all https on non-loopback hosts make a `web` client).
/// Refused: `client_secret` or `client_secret_expires_at` (a document is public), a
/// `token_endpoint_auth_method` other than `none` (shared secrets are meaningless in a public
/// document, and `private_key_jwt` is not implemented), private key members in `jwks`, and a
/// `client_uri`, `logo_uri`, `tos_uri`, `policy_uri` or `jwks_uri` that is not https.
/// `grant_types` and `response_types`, when present, must include `authorization_code` and
/// `code`; other values are ignored, since one document serves every server a client uses.
pub(crate) fn validate_metadata_document(
    client_id: &str,
    body: &[u8],
) -> Result<ClientRecord, CimdError> {
    let members = Members::parse(body, "client metadata document")?;
    match members.string("client_id")? {
        Some(id) if id == client_id => {}
        Some(id) => {
            return Err(CimdError::Invalid(format!(
                "the document's `client_id` {id:?} is not the URL it was fetched from \
                 ({client_id:?})"
            )));
        }
        None => {
            return Err(CimdError::Invalid(
                "the document has no `client_id`".to_owned(),
            ));
        }
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if members.has(secret) {
            return Err(CimdError::Invalid(format!(
                "the document has `{secret}`: a metadata document is public and must not \
                 carry a secret"
            )));
        }
    }
    match members.string("token_endpoint_auth_method")? {
        None | Some("none") => {}
        Some("private_key_jwt") => {
            return Err(CimdError::Invalid(
                "`token_endpoint_auth_method` `private_key_jwt` is not supported by this \
                 server: only public clients (`none`, with PKCE)"
                    .to_owned(),
            ));
        }
        Some(other) => {
            return Err(CimdError::Invalid(format!(
                "`token_endpoint_auth_method` {other:?} is not allowed in a metadata document: \
                 use `none`"
            )));
        }
    }
    check_jwks(&members)?;
    let common = Common::read(&members)?;
    if common
        .client_name
        .as_deref()
        .is_none_or(|n| n.trim().is_empty())
    {
        return Err(CimdError::Invalid(
            "the document needs a non-empty `client_name`".to_owned(),
        ));
    }
    for name in ["tos_uri", "policy_uri", "jwks_uri"] {
        https_member(&members, name)?;
    }
    if let Some(grant_types) = members.strings("grant_types")?
        && !grant_types.contains(&"authorization_code")
    {
        return Err(CimdError::Invalid(
            "`grant_types` must include `authorization_code`".to_owned(),
        ));
    }
    if let Some(response_types) = members.strings("response_types")?
        && !response_types.contains(&"code")
    {
        return Err(CimdError::Invalid(
            "`response_types` must include `code`".to_owned(),
        ));
    }
    let application_type = common.application_type(None)?;
    Ok(common.into_record(
        client_id.to_owned(),
        ClientSource::MetadataDocument,
        application_type,
    ))
}

fn check_jwks(members: &Members) -> Result<(), CimdError> {
    let Some(jwks) = members.0.get("jwks") else {
        return Ok(());
    };
    let invalid = |why: &str| Err(CimdError::Invalid(format!("`jwks` {why}")));
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return invalid("must be a JSON Web Key Set (an object with a `keys` array)");
    };
    for key in keys {
        let Some(key) = key.as_object() else {
            return invalid("has a key that is not a JSON object");
        };
        if let Some(member) = PRIVATE_JWK_MEMBERS.iter().find(|m| key.contains_key(**m)) {
            return invalid(&format!(
                "has a key with the private member `{member}`: publish public keys only"
            ));
        }
    }
    Ok(())
}

/// Whether `client_id` is meant as a metadata document URL: it starts with `https:` (ASCII
/// case-insensitively). Registered and configured client ids never do, so such an id is
/// resolved as a document, and [`parse_metadata_document_url`] says what is wrong with it.
pub(crate) fn is_metadata_document_url(client_id: &str) -> bool {
    client_id
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https:"))
}

/// Checks a metadata document URL (CIMD §3): https, with a path other than `/`, no fragment, no
/// userinfo, no `.`/`..` segment (raw or percent-encoded), no whitespace or control
/// character, a host written as parsed; a port and a query are allowed. (The fetcher applies
/// the https rule itself, as it also takes http for trusted hosts.)
#[cfg(test)]
pub(crate) fn parse_metadata_document_url(client_id: &str) -> Result<Url, CimdError> {
    let url = parse_document_url(client_id)?;
    if url.scheme() != "https" {
        return Err(CimdError::Invalid(format!(
            "client id {client_id:?} is not an https URL"
        )));
    }
    Ok(url)
}

/// [`parse_metadata_document_url`] without the scheme rule beyond http(s): the fetcher also
/// takes http for the hosts it is told to trust.
pub(crate) fn parse_document_url(client_id: &str) -> Result<Url, CimdError> {
    let invalid = |why: &str| {
        Err(CimdError::Invalid(format!(
            "client id {client_id:?} is not a valid metadata document URL: {why}"
        )))
    };
    if has_stray_character(client_id) {
        return invalid("it contains whitespace or a control character");
    }
    if client_id.contains('\\') {
        return invalid("it contains a backslash");
    }
    let url = match Url::parse(client_id) {
        Ok(url) => url,
        Err(error) => return invalid(&format!("it is not an absolute URL ({error})")),
    };
    if !matches!(url.scheme(), "https" | "http") {
        return invalid("it must be an https URL");
    }
    let parts = RawParts::split(client_id);
    if parts.has_fragment {
        return invalid("it has a fragment");
    }
    let Some(authority) = parts.authority else {
        return invalid("it has no host");
    };
    if authority.contains('@') || !url.username().is_empty() || url.password().is_some() {
        return invalid("it carries user information");
    }
    if let Err(written) = written_host_is_canonical(&url, &parts) {
        return invalid(&format!(
            "its host is written as {written:?}, not as {:?}",
            url.host_str().unwrap_or_default()
        ));
    }
    if parts.has_dot_segment() {
        return invalid("it has a `.` or `..` path segment");
    }
    if parts.path.is_empty() || parts.path == "/" {
        return invalid("it needs a path (the document's location, not the site root)");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn register(body: Value) -> Result<ClientRecord, RegistrationError> {
        validate_registration(body.to_string().as_bytes())
    }

    fn registration_error(body: Value) -> RegistrationError {
        match register(body.clone()) {
            Ok(record) => panic!("{body} should be refused, got {record:?}"),
            Err(error) => error,
        }
    }

    fn assert_metadata_error(body: Value, needle: &str) {
        let error = registration_error(body);
        assert_eq!(
            error.code,
            RegistrationErrorCode::InvalidClientMetadata,
            "{error}"
        );
        assert!(error.description.contains(needle), "{error}");
    }

    fn assert_redirect_error(body: Value, needle: &str) {
        let error = registration_error(body);
        assert_eq!(
            error.code,
            RegistrationErrorCode::InvalidRedirectUri,
            "{error}"
        );
        assert!(error.description.contains(needle), "{error}");
    }

    #[test]
    fn vs_code_style_registration() {
        let record = register(json!({
            "client_name": "Visual Studio Code",
            "client_uri": "https://code.visualstudio.com",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [
                "https://insiders.vscode.dev/redirect",
                "https://vscode.dev/redirect",
                "http://127.0.0.1/",
                "http://127.0.0.1:33418/"
            ],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "scope": "read  write read"
        }))
        .unwrap();
        assert_eq!(record.client_id, "");
        assert_eq!(record.source, ClientSource::Registered);
        assert_eq!(record.application_type, ApplicationType::Native);
        assert_eq!(record.client_name.as_deref(), Some("Visual Studio Code"));
        assert_eq!(record.redirect_uris.len(), 4);
        assert_eq!(record.scope.as_deref(), Some("read write"));
        assert!(record.registered_at > 1_700_000_000);
        assert_eq!(
            record.redirect_uri_for(Some("http://127.0.0.1:51234/")),
            Some("http://127.0.0.1:51234/".to_owned())
        );
        assert_eq!(
            record.redirect_uri_for(Some("http://localhost:51234/")),
            None
        );
        assert_eq!(record.redirect_uri_for(None), None, "several registered");
    }

    #[test]
    fn minimal_registration_is_native_and_public() {
        let record = register(json!({"redirect_uris": ["http://localhost/cb"]})).unwrap();
        assert_eq!(record.application_type, ApplicationType::Native);
        assert_eq!(record.application_type.as_str(), "native");
        assert_eq!(ApplicationType::Web.as_str(), "web");
        assert_eq!(record.client_name, None);
        assert_eq!(
            record.redirect_uri_for(None),
            Some("http://localhost/cb".to_owned())
        );
        let custom =
            register(json!({"redirect_uris": ["cursor://anysphere.cursor-retrieval/cb"]})).unwrap();
        assert_eq!(custom.application_type, ApplicationType::Native);
    }

    #[test]
    fn records_round_trip_through_serde() {
        let record = register(json!({
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "application_type": "web",
            "client_name": "Claude"
        }))
        .unwrap();
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["source"], "registered");
        assert_eq!(json["application_type"], "web");
        let back: ClientRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn the_body_must_be_a_json_object() {
        for body in [&b"[]"[..], b"\"x\"", b"null", b"{", b"", b"\xff"] {
            let error = validate_registration(body).unwrap_err();
            assert_eq!(error.code, RegistrationErrorCode::InvalidClientMetadata);
        }
    }

    #[test]
    fn redirect_uris_are_required_bounded_and_valid() {
        assert_redirect_error(json!({}), "required");
        assert_redirect_error(json!({"redirect_uris": []}), "empty");
        assert_redirect_error(json!({"redirect_uris": "https://a.example/cb"}), "array");
        assert_redirect_error(json!({"redirect_uris": [1]}), "array");
        let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        assert_redirect_error(json!({"redirect_uris": eleven}), "at most 10");
        assert_redirect_error(
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "javascript",
        );
        assert_redirect_error(
            json!({"redirect_uris": ["http://example.com/cb"]}),
            "loopback",
        );
        assert_redirect_error(
            json!({"redirect_uris": ["https://a.example/cb#"]}),
            "fragment",
        );
        let error = registration_error(json!({"redirect_uris": [" https://a.example/cb"]}));
        assert_eq!(error.code.as_str(), "invalid_redirect_uri");
        // Duplicates are kept once.
        let record =
            register(json!({"redirect_uris": ["https://a.example/cb", "https://a.example/cb"]}))
                .unwrap();
        assert_eq!(record.redirect_uris, ["https://a.example/cb"]);
    }

    #[test]
    fn web_clients_use_https_on_remote_hosts_only() {
        register(json!({"redirect_uris": ["https://a.example/cb"], "application_type": "web"}))
            .unwrap();
        for uri in [
            "http://localhost/cb",
            "https://localhost/cb",
            "http://127.0.0.1:9/cb",
            "cursor://cb",
        ] {
            assert_redirect_error(
                json!({"redirect_uris": [uri], "application_type": "web"}),
                "application_type",
            );
        }
        assert_metadata_error(
            json!({"redirect_uris": ["https://a.example/cb"], "application_type": "desktop"}),
            "application_type",
        );
        assert_metadata_error(
            json!({"redirect_uris": ["https://a.example/cb"], "application_type": 1}),
            "must be a string",
        );
    }

    #[test]
    fn only_public_clients_register() {
        for method in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
        ] {
            assert_metadata_error(
                json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": method}),
                "public clients only",
            );
        }
        register(json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none"}))
            .unwrap();
    }

    #[test]
    fn grant_and_response_types() {
        let uris = json!(["https://a.example/cb"]);
        register(json!({"redirect_uris": uris, "grant_types": ["authorization_code"]})).unwrap();
        assert_metadata_error(
            json!({"redirect_uris": uris, "grant_types": ["authorization_code", "implicit"]}),
            "implicit",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "grant_types": ["refresh_token"]}),
            "must include `authorization_code`",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "grant_types": []}),
            "must include",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "grant_types": "authorization_code"}),
            "array of strings",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "response_types": ["code", "token"]}),
            "token",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "response_types": []}),
            "include `code`",
        );
    }

    #[test]
    fn descriptive_members() {
        let uris = json!(["https://a.example/cb"]);
        assert_metadata_error(
            json!({"redirect_uris": uris, "client_name": 7}),
            "must be a string",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "client_name": "x".repeat(201)}),
            "longer than 200",
        );
        register(json!({"redirect_uris": uris, "client_name": "é".repeat(200)})).unwrap();
        assert_metadata_error(
            json!({"redirect_uris": uris, "client_name": "Good\u{7}"}),
            "control",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "client_name": "Claude\u{202e}edualC"}),
            "bidirectional",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "client_uri": "http://a.example"}),
            "client_uri",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "logo_uri": "javascript:alert(1)"}),
            "logo_uri",
        );
        assert_metadata_error(
            json!({"redirect_uris": uris, "logo_uri": "http://localhost/logo.png"}),
            "https",
        );
        assert_metadata_error(json!({"redirect_uris": uris, "scope": "a \"b\""}), "scope");
        assert_metadata_error(
            json!({"redirect_uris": uris, "scope": ["a"]}),
            "must be a string",
        );
        assert_metadata_error(json!({"redirect_uris": uris, "tos_uri": 3}), "tos_uri");
        assert_metadata_error(json!({"redirect_uris": uris, "contacts": "me"}), "contacts");
        let record = register(json!({
            "redirect_uris": uris,
            "client_uri": "https://a.example",
            "logo_uri": "https://a.example/logo.png",
            "scope": "",
            "contacts": ["ops@a.example"]
        }))
        .unwrap();
        assert_eq!(
            record.logo_uri.as_deref(),
            Some("https://a.example/logo.png")
        );
        assert_eq!(record.scope, None);
        let blank = register(json!({"redirect_uris": uris, "client_name": " "})).unwrap();
        assert_eq!(blank.client_name, None);
    }

    #[test]
    fn error_codes_are_the_rfc_7591_names() {
        assert_eq!(
            RegistrationErrorCode::InvalidRedirectUri.as_str(),
            "invalid_redirect_uri"
        );
        assert_eq!(
            RegistrationErrorCode::InvalidClientMetadata.as_str(),
            "invalid_client_metadata"
        );
        let error = registration_error(json!({"redirect_uris": []}));
        assert!(error.to_string().starts_with("invalid_redirect_uri: "));
    }

    const CLAUDE_CODE: &str = "https://claude.ai/oauth/claude-code-client-metadata";

    fn claude_code_document() -> Value {
        json!({
            "client_id": CLAUDE_CODE,
            "client_name": "Claude Code",
            "client_uri": "https://claude.ai",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none"
        })
    }

    fn document_error(mut change: impl FnMut(&mut Map<String, Value>)) -> String {
        let mut document = claude_code_document();
        change(document.as_object_mut().unwrap());
        match validate_metadata_document(CLAUDE_CODE, document.to_string().as_bytes()) {
            Ok(record) => panic!("{document} should be refused, got {record:?}"),
            Err(CimdError::Invalid(reason)) => reason,
            Err(other) => panic!("{other} is not an invalid-document error"),
        }
    }

    #[test]
    fn a_claude_code_document_is_a_native_client() {
        let body = claude_code_document().to_string();
        let record = validate_metadata_document(CLAUDE_CODE, body.as_bytes()).unwrap();
        assert_eq!(record.client_id, CLAUDE_CODE);
        assert_eq!(record.source, ClientSource::MetadataDocument);
        assert_eq!(record.application_type, ApplicationType::Native);
        assert_eq!(record.client_name.as_deref(), Some("Claude Code"));
        assert_eq!(
            record
                .redirect_uri_for(Some("http://localhost:49152/callback"))
                .as_deref(),
            Some("http://localhost:49152/callback")
        );
        assert_eq!(
            record.redirect_uri_for(Some("http://localhost:49152/other")),
            None
        );
    }

    #[test]
    fn a_document_with_https_redirects_only_is_a_web_client() {
        let url = "https://app.example/client.json";
        let body = json!({
            "client_id": url,
            "client_name": "App",
            "redirect_uris": ["https://app.example/cb"]
        });
        let record = validate_metadata_document(url, body.to_string().as_bytes()).unwrap();
        assert_eq!(record.application_type, ApplicationType::Web);
    }

    #[test]
    fn documents_are_refused_for_each_broken_rule() {
        assert!(
            document_error(|d| {
                d.insert("client_id".into(), json!("https://claude.ai/oauth/other"));
            })
            .contains("not the URL")
        );
        assert!(
            document_error(|d| {
                d.insert("client_id".into(), json!(format!("{CLAUDE_CODE}/")));
            })
            .contains("not the URL")
        );
        assert!(
            document_error(|d| {
                d.remove("client_id");
            })
            .contains("no `client_id`")
        );
        assert!(
            document_error(|d| {
                d.remove("client_name");
            })
            .contains("client_name")
        );
        assert!(
            document_error(|d| {
                d.insert("client_name".into(), json!("  "));
            })
            .contains("client_name")
        );
        assert!(
            document_error(|d| {
                d.remove("redirect_uris");
            })
            .contains("redirect_uris")
        );
        assert!(
            document_error(|d| {
                d.insert("redirect_uris".into(), json!([]));
            })
            .contains("empty")
        );
        assert!(
            document_error(|d| {
                d.insert("redirect_uris".into(), json!(["javascript:alert(1)"]));
            })
            .contains("javascript")
        );
        assert!(
            document_error(|d| {
                d.insert("client_secret".into(), json!("s3cret"));
            })
            .contains("client_secret")
        );
        assert!(
            document_error(|d| {
                d.insert("client_secret_expires_at".into(), json!(0));
            })
            .contains("client_secret_expires_at")
        );
        assert!(
            document_error(|d| {
                d.insert(
                    "token_endpoint_auth_method".into(),
                    json!("private_key_jwt"),
                );
            })
            .contains("private_key_jwt` is not supported")
        );
        assert!(
            document_error(|d| {
                d.insert(
                    "token_endpoint_auth_method".into(),
                    json!("client_secret_basic"),
                );
            })
            .contains("not allowed")
        );
        for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            let reason = document_error(|d| {
                d.insert(
                    "jwks".into(),
                    json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", member: "secret"}]}),
                );
            });
            assert!(reason.contains(&format!("`{member}`")), "{reason}");
        }
        assert!(
            document_error(|d| {
                d.insert("jwks".into(), json!([1]));
            })
            .contains("jwks")
        );
        for member in [
            "client_uri",
            "logo_uri",
            "tos_uri",
            "policy_uri",
            "jwks_uri",
        ] {
            let reason = document_error(|d| {
                d.insert(member.into(), json!("http://claude.ai/x"));
            });
            assert!(reason.contains(member), "{reason}");
            let reason = document_error(|d| {
                d.insert(member.into(), json!("javascript:alert(1)"));
            });
            assert!(reason.contains(member), "{reason}");
        }
        assert!(
            document_error(|d| {
                d.insert("grant_types".into(), json!(["refresh_token"]));
            })
            .contains("authorization_code")
        );
        assert!(
            document_error(|d| {
                d.insert("response_types".into(), json!(["token"]));
            })
            .contains("code")
        );
        assert!(
            document_error(|d| {
                d.insert("application_type".into(), json!("web"));
            })
            .contains("application_type")
        );
    }

    #[test]
    fn documents_must_be_json_objects() {
        for body in [&b"[]"[..], b"1", b"not json", b""] {
            assert!(matches!(
                validate_metadata_document(CLAUDE_CODE, body),
                Err(CimdError::Invalid(_))
            ));
        }
    }

    #[test]
    fn public_keys_and_extra_grant_types_are_fine_in_documents() {
        let mut document = claude_code_document();
        let d = document.as_object_mut().unwrap();
        d.insert(
            "jwks".into(),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}),
        );
        d.insert(
            "grant_types".into(),
            json!([
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:device_code"
            ]),
        );
        validate_metadata_document(CLAUDE_CODE, document.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn metadata_document_urls() {
        assert!(is_metadata_document_url(CLAUDE_CODE));
        assert!(is_metadata_document_url("HTTPS://x"));
        assert!(!is_metadata_document_url("http://x.example/doc"));
        assert!(!is_metadata_document_url("k3Qz-random-client-id"));
        assert!(!is_metadata_document_url("https"));
        assert!(!is_metadata_document_url(""));

        for ok in [
            CLAUDE_CODE,
            "https://app.example:8443/client.json",
            "https://app.example/client?v=1",
        ] {
            parse_metadata_document_url(ok).unwrap();
        }
        for bad in [
            "https://app.example",
            "https://app.example/",
            "https://app.example/client#x",
            "https://app.example/client#",
            "https://user@app.example/client",
            "https://user:pw@app.example/client",
            "https://app.example/a/../client",
            "https://app.example/a/%2E%2e/client",
            "https://app.example/./client",
            "https://app.example/client ",
            " https://app.example/client",
            "https://app.example/cli\tent",
            "https://app.example\\client",
            "http://app.example/client",
            "ftp://app.example/client",
            "https:app.example/client",
            "https://0x7f.1/client",
            "not a url",
        ] {
            assert!(
                matches!(parse_metadata_document_url(bad), Err(CimdError::Invalid(_))),
                "{bad:?}"
            );
        }
        // http passes the structural check only; the fetcher allows it for trusted hosts.
        parse_document_url("http://client.test/doc").unwrap();
    }
}
