//! Protective headers on every kind of response (the app's page, a static file, the API, an
//! error, operator routes), and the endpoint browsers report policy violations to.

use crate::helpers::{metric, TestApp};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A built web app in miniature: a page with an inline loader script, and a wasm file.
fn web_app(loader: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        format!(
            "<!DOCTYPE html><html><head><script type=\"module\">{loader}</script></head></html>"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    dir
}

#[actix_rt::test]
async fn every_response_carries_the_protective_headers_sqlite() {
    let loader = "import init from '/app.js'; await init('/app_bg.wasm');";
    let web = web_app(loader);
    let static_dir = web.path().to_path_buf();
    let app = TestApp::sqlite_with(|a| a.static_dir = static_dir).await;
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(loader));
    let c = app.client();
    for (path, status) in [
        ("/", 200),
        ("/pets/12", 200),
        ("/app_bg.wasm", 200),
        ("/api/me", 401),
        ("/api/species", 200),
        ("/api/no-such-thing", 404),
        ("/healthz", 200),
        ("/metrics", 200),
    ] {
        let res = c.get(path).await;
        assert_eq!(res.status(), status, "{path}");
        let h = res.headers();
        let header = |name: &str| {
            h.get(name)
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_str()
                .unwrap()
                .to_string()
        };
        let csp = header("content-security-policy");
        for part in [
            "default-src 'self'",
            &format!("script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}';"),
            &format!(
                "connect-src 'self' ws://{};",
                app.base().trim_start_matches("http://")
            ),
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "report-uri /api/csp-reports",
        ] {
            assert!(csp.contains(part), "{path}: `{part}` missing from {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "{path}: HSTS only behind TLS"
        );
    }
    let wasm = c.get("/app_bg.wasm").await;
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
}

#[actix_rt::test]
async fn secure_cookies_turn_on_strict_transport_security_sqlite() {
    let app = TestApp::sqlite_with(|a| a.secure_cookies = true).await;
    let res = app.client().get("/api/me").await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

#[actix_rt::test]
async fn violation_reports_are_counted_and_bad_ones_refused_sqlite() {
    let app = TestApp::sqlite().await;
    let c = app.client();
    let report = json!({"csp-report": {
        "document-uri": format!("{}/pets/1", app.base()),
        "violated-directive": "script-src-elem",
        "blocked-uri": "inline",
    }});
    let res = c
        .post_raw(
            "/api/csp-reports",
            "application/csp-report",
            report.to_string().into_bytes(),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        metric(&app.metrics().await, "livepet_csp_violations_total"),
        Some(1.0)
    );

    let res = c
        .post_raw(
            "/api/csp-reports",
            "application/csp-report",
            b"nope".to_vec(),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    let res = c
        .post_raw(
            "/api/csp-reports",
            "application/csp-report",
            vec![b' '; 20 * 1024],
        )
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        metric(&app.metrics().await, "livepet_csp_violations_total"),
        Some(1.0),
        "refused reports are not counted"
    );
}
