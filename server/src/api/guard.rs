//! What every request and response passes through before any route: the same-origin rule for
//! browsers (cross-site request forgery) and the security headers.
//!
//! A state-changing request (any method but GET, HEAD and OPTIONS) and every WebSocket upgrade
//! must come from the console's own origin. A browser says where a request comes from: modern
//! ones in `Sec-Fetch-Site` (accepted: `same-origin`, `none`), all of them in `Origin` (accepted:
//! the scheme-less host and port equal to `Host`). A request with neither header is not from a
//! browser (the tablets, scripts): the session cookie, which such a client holds only if it
//! logged in itself, is the check. A page on another port of the same host is same-site but not
//! same-origin, and is refused.

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, HOST, ORIGIN, UPGRADE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// HSTS: browsers that reached the console once keep to HTTPS for a year.
const HSTS: &str = "max-age=31536000";

/// Middleware: refuses cross-origin state changes and WebSocket upgrades with 403
/// `cross_origin`, then adds the security headers to whatever is answered.
pub async fn same_origin_and_headers(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let mut response = match cross_origin(req.method(), req.headers()) {
        Some(why) => ApiError::CrossOrigin(why).into_response(),
        None => next.run(req).await,
    };
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("strict-transport-security"),
        HeaderValue::from_static(HSTS),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    if is_api && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why the request must be refused as cross-origin, if it must.
fn cross_origin(method: &Method, headers: &HeaderMap) -> Option<String> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe && !headers.contains_key(UPGRADE) {
        return None;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return (!matches!(site, "same-origin" | "none")).then(|| {
            format!("requests from other sites or origins are refused (Sec-Fetch-Site: {site})")
        });
    }
    let origin = text(ORIGIN.as_str())?;
    let host = text(HOST.as_str()).unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or_default();
    (origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host))
        .then(|| format!("requests from other origins are refused (origin {origin:?})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn state_changes_must_come_from_the_same_origin() {
        let post = Method::POST;
        let own = headers(&[
            ("host", "cad.local:8443"),
            ("origin", "https://cad.local:8443"),
        ]);
        assert_eq!(cross_origin(&post, &own), None);
        let other_port = headers(&[
            ("host", "cad.local:8443"),
            ("origin", "https://cad.local:9000"),
        ]);
        assert!(cross_origin(&post, &other_port).is_some());
        let null = headers(&[("host", "cad.local:8443"), ("origin", "null")]);
        assert!(cross_origin(&post, &null).is_some());
        let same_site = headers(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://cad.local:8443"),
            ("host", "cad.local:8443"),
        ]);
        assert!(
            cross_origin(&post, &same_site).is_some(),
            "Sec-Fetch-Site decides"
        );
        let same = headers(&[("sec-fetch-site", "same-origin")]);
        assert_eq!(cross_origin(&post, &same), None);
        assert_eq!(
            cross_origin(&post, &HeaderMap::new()),
            None,
            "not a browser"
        );
    }

    #[test]
    fn reads_pass_but_websockets_are_checked() {
        let other = headers(&[("host", "cad.local:8443"), ("origin", "https://evil.local")]);
        assert_eq!(cross_origin(&Method::GET, &other), None);
        let mut upgrade = other.clone();
        upgrade.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(cross_origin(&Method::GET, &upgrade).is_some());
    }
}
