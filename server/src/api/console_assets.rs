//! Serves the web console: embedded in release builds (one file to install), read from
//! `dispatcher-ui/dist` on disk in debug builds. Unknown non-API paths get `index.html` (the
//! console routes in the browser); every response carries a strict Content-Security-Policy.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// Only our own server: no inline script, no remote anything.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; \
    font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Where a debug build reads the console from.
fn dist_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dispatcher-ui/dist")
}

/// The router's fallback: API paths get a JSON 404, everything else the console.
pub async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::NotFound("route".into()).into_response();
    }
    serve(path).await
}

async fn serve(path: &str) -> Response {
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return ApiError::NotFound("file".into()).into_response();
    }
    let wanted = if path == "/" { "/index.html" } else { path };
    if let Some(bytes) = load(wanted).await {
        return file_response(wanted, bytes);
    }
    // A path with an extension is a missing file; anything else is a console route.
    let last = wanted.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return ApiError::NotFound(format!("file {wanted}")).into_response();
    }
    match load("/index.html").await {
        Some(bytes) => file_response("/index.html", bytes),
        None => not_built(),
    }
}

async fn load(path: &str) -> Option<Vec<u8>> {
    if let Some((_, bytes)) = embedded::EMBEDDED.iter().find(|(p, _)| *p == path) {
        return Some(bytes.to_vec());
    }
    if cfg!(debug_assertions) || embedded::EMBEDDED.is_empty() {
        let file = dist_dir().join(path.trim_start_matches('/'));
        return tokio::fs::read(file).await.ok();
    }
    None
}

fn file_response(path: &str, bytes: Vec<u8>) -> Response {
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut res = (
        [(CONTENT_TYPE, content_type(path)), (CACHE_CONTROL, cache)],
        bytes,
    )
        .into_response();
    secure(&mut res);
    res
}

/// The page shown when the console was never built.
fn not_built() -> Response {
    let html = "<!doctype html><meta charset=utf-8><title>Dispatch console not built</title>\
        <h1>Console not built; run make</h1>\
        <p>Build it with <code>make ui</code> (or <code>make build</code>), then reload.</p>\
        <p lang=ko>콘솔이 빌드되지 않았습니다. <code>make ui</code>를 실행하세요.</p>";
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    secure(&mut res);
    res
}

fn secure(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
}

/// Content type by file extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("/assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/assets/NotoSans-Regular-a1.ttf"), "font/ttf");
        assert_eq!(
            content_type("/assets/NotoSansKR-Regular-b2.otf"),
            "font/otf"
        );
        assert_eq!(content_type("/x.unknown"), "application/octet-stream");
    }

    #[test]
    fn policy_allows_only_self() {
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'self'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
    }

    #[tokio::test]
    async fn api_paths_never_fall_back_to_the_console() {
        let res = fallback(Uri::from_static("/api/nothing")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(res.headers().get("content-security-policy").is_none());
    }

    #[tokio::test]
    async fn hidden_and_parent_paths_are_refused() {
        let res = fallback(Uri::from_static("/../Cargo.toml")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = fallback(Uri::from_static("/.env")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
