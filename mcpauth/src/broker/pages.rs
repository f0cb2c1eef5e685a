//! The broker's HTML: the consent page and error pages. Every value is escaped; pages cannot be
//! framed; no script runs.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// What the consent page shows and carries.
#[derive(Debug)]
pub(crate) struct ConsentView<'a> {
    pub(crate) client_name: &'a str,
    /// The host of a client ID metadata document; `None` for a client whose name is unverified.
    pub(crate) verified_host: Option<&'a str>,
    pub(crate) redirect_host: &'a str,
    pub(crate) redirect_is_loopback: bool,
    pub(crate) scopes: &'a [String],
    pub(crate) provider: &'a str,
    pub(crate) server_name: &'a str,
    pub(crate) action: &'a str,
    pub(crate) transaction: &'a str,
    pub(crate) csrf: &'a str,
}

/// Escapes text for HTML content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;\
padding:0 1rem;color:#1b1b1b;background:#fff}h1{font-size:1.4rem;line-height:1.3;margin:0 0 1rem}\
p{margin:.6rem 0}ul{margin:.4rem 0;padding-left:1.4rem}.box{border:1px solid #d0d0d0;\
border-radius:8px;padding:1rem 1.2rem;margin:1rem 0}.box>:first-child{margin-top:0}\
.box>:last-child{margin-bottom:0}.warn{background:#fff4ce;border-color:#e0b000;color:#3d2f00}\
.badge{display:inline-block;font-size:.8rem;line-height:1.4;padding:0 .45rem;border-radius:4px;\
background:#e5e5e5;vertical-align:.1em}.verified{background:#d7f0dd}code{font-family:ui-monospace,\
SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere}\
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}button{font:inherit;\
font-weight:600;padding:.5rem 1.4rem;border-radius:6px;border:1px solid #8c8c8c;background:#fff;\
color:#1b1b1b;cursor:pointer}button[value=approve]{background:#1f6feb;border-color:#1f6feb;\
color:#fff}button:focus-visible{outline:3px solid #79a6f6;outline-offset:2px}";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

pub(crate) fn consent_page(view: &ConsentView<'_>) -> String {
    let badge = match view.verified_host {
        Some(host) => format!(
            "<span class=\"badge verified\">verified: {}</span>",
            escape(host)
        ),
        None => "<span class=\"badge\">unverified</span>".to_owned(),
    };
    let loopback_warning = if view.redirect_is_loopback {
        "<div class=\"box warn\"><p><strong>Check that you started this.</strong> This \
application receives the answer on this computer. Allow only if you just started signing in \
from an application you trust.</p></div>"
    } else {
        ""
    };
    let scopes = if view.scopes.is_empty() {
        "<li>no specific permissions</li>".to_owned()
    } else {
        view.scopes
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", escape(s)))
            .collect()
    };
    let body = format!(
        "<h1>Allow <strong>{client}</strong> to use {server}?</h1>\
<div class=\"box\"><p>Application: <strong>{client}</strong> {badge}</p>\
<p>It will receive the answer at: <code>{redirect}</code></p>\
<p>Permissions on <strong>{server}</strong>:</p><ul>{scopes}</ul>\
<p>You will sign in with <strong>{provider}</strong> next.</p></div>{loopback_warning}\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"transaction\" value=\"{transaction}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><div class=\"actions\">\
<button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></div></form>",
        client = escape(view.client_name),
        server = escape(view.server_name),
        redirect = escape(view.redirect_host),
        provider = escape(view.provider),
        action = escape(view.action),
        transaction = escape(view.transaction),
        csrf = escape(view.csrf),
    );
    document(&format!("Allow {}?", view.client_name), &body)
}

pub(crate) fn error_page(title: &str, detail: &str) -> String {
    document(
        title,
        &format!(
            "<h1>{}</h1><div class=\"box\"><p>{}</p></div>",
            escape(title),
            escape(detail)
        ),
    )
}

/// An HTML response that cannot be framed, cached or leak its URL onwards.
pub(crate) fn page_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // No `form-action`: Chrome applies it to the whole redirect chain and would block the
    // final redirect to a custom-scheme callback.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let scopes = vec!["<b>".to_owned()];
        let html = consent_page(&ConsentView {
            client_name: "<script>alert(1)</script>",
            verified_host: Some("\"evil\""),
            redirect_host: "a'b",
            redirect_is_loopback: true,
            scopes: &scopes,
            provider: "P&Q",
            server_name: "S",
            action: "/consent",
            transaction: "t\"x",
            csrf: "c",
        });
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&quot;evil&quot;"));
        assert!(html.contains("a&#39;b"));
        assert!(html.contains("P&amp;Q"));
        assert!(html.contains("value=\"t&quot;x\""));
        assert_eq!(html.matches("<form").count(), 1);
        assert!(html.contains("name=\"decision\" value=\"approve\""));
        assert!(html.contains("name=\"decision\" value=\"deny\""));
    }
}
