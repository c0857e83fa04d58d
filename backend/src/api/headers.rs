//! Protective headers on every response (the app's HTML, static files, the API, errors): a
//! Content-Security-Policy that lets the web app run and nothing else, no framing (so no
//! other site can trick a click on Feed), no MIME sniffing, no referrer to other sites, and
//! HSTS behind TLS. Plus the endpoint browsers report policy violations to.

use crate::error::AppError;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Where browsers send CSP violation reports.
pub const REPORT_PATH: &str = "/api/csp-reports";
/// Largest violation report read.
const MAX_REPORT: usize = 16 * 1024;

/// The headers every response carries, fixed at startup.
pub struct SecurityHeaders {
    /// The policy up to `connect-src`, which depends on the request's own origin.
    policy_head: String,
    policy_tail: String,
    hsts: bool,
}

impl SecurityHeaders {
    /// `index_html` is the web app's page: its inline scripts (Trunk's loader) are allowed
    /// by their hashes, never by `'unsafe-inline'`. `hsts` when the site is served over TLS.
    pub fn new(index_html: Option<&str>, hsts: bool) -> SecurityHeaders {
        let mut scripts = String::from("'self' 'wasm-unsafe-eval'");
        for hash in index_html.map(inline_script_hashes).unwrap_or_default() {
            scripts.push_str(&format!(" 'sha256-{hash}'"));
        }
        SecurityHeaders {
            policy_head: format!(
                "default-src 'self'; script-src {scripts}; style-src 'self'; \
                 img-src 'self' data:; object-src 'none'; connect-src 'self'"
            ),
            policy_tail: format!(
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; \
                 report-uri {REPORT_PATH}"
            ),
            hsts,
        }
    }

    /// The policy for a page served from `scheme://host`: its WebSocket origin is named
    /// besides `'self'`, for browsers whose `'self'` does not cover ws: and wss:.
    pub fn policy(&self, scheme: &str, host: &str) -> String {
        let ws = if scheme == "https" { "wss" } else { "ws" };
        // A Host with characters a header or a policy cannot carry gets no extra source.
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if host_ok {
            format!("{} {ws}://{host}; {}", self.policy_head, self.policy_tail)
        } else {
            format!("{}; {}", self.policy_head, self.policy_tail)
        }
    }
}

/// The base64 SHA-256 of each inline `<script>` (one without `src`) in an HTML page.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let open_tag = &after[..open_end];
        let body = &after[open_end + 1..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        if !open_tag.contains(" src=") {
            let digest = Sha256::digest(&body.as_bytes()[..close]);
            hashes.push(base64::engine::general_purpose::STANDARD.encode(digest));
        }
        rest = &body[close..];
    }
    hashes
}

/// Middleware: adds the headers to every response that does not set its own.
pub async fn add(
    headers: Arc<SecurityHeaders>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (scheme, host) = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.settings.request_origin(req.request()),
        None => ("http".to_string(), String::new()),
    };
    let mut res = next.call(req).await?;
    let policy = headers.policy(&scheme, &host);
    let set = res.headers_mut();
    let mut put = |name: HeaderName, value: HeaderValue| {
        if !set.contains_key(&name) {
            set.insert(name, value);
        }
    };
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        put(header::CONTENT_SECURITY_POLICY, policy);
    }
    put(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    put(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    put(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if headers.hsts {
        put(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    Ok(res)
}

/// `POST /api/csp-reports`: a browser reports content the policy blocked. Counted in
/// `livepet_csp_violations_total` and logged (a site that works never sends one).
pub async fn report(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    if body.len() > MAX_REPORT {
        return Err(AppError::PayloadTooLarge);
    }
    let report: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::InvalidJson(format!("the report is not JSON: {e}")))?;
    let r = &report["csp-report"];
    let field = |name: &str| -> String {
        r[name]
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(200)
            .filter(|c| !c.is_control())
            .collect()
    };
    state.metrics().csp_violations_total.inc();
    log::warn!(
        "content security policy violation: {} blocked {} on {}",
        field("violated-directive"),
        field("blocked-uri"),
        field("document-uri")
    );
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_only_inline_scripts() {
        let html =
            r#"<head><script src="/a.js"></script><script type="module">init()</script></head>"#;
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 1);
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"init()"));
        assert_eq!(hashes[0], expected);
    }

    #[test]
    fn the_policy_allows_the_app_and_nothing_else() {
        let h = SecurityHeaders::new(Some("<script>go()</script>"), false);
        let p = h.policy("http", "127.0.0.1:8080");
        assert!(p.starts_with("default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-"));
        assert!(!p.contains("unsafe-inline"));
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:8080;"));
        assert!(p.contains("frame-ancestors 'none'; base-uri 'none'; form-action 'self'"));
        assert!(h
            .policy("https", "pets.example")
            .contains("wss://pets.example;"));
        // A hostile Host header adds nothing to the policy.
        assert!(h
            .policy("http", "x; script-src *")
            .contains("connect-src 'self'; frame"));
    }
}
