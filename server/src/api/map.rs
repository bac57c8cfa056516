//! The basemap over HTTP for the console: vector tiles, a MapLibre style that points at them,
//! and a summary of the map. Operators only; without a map every route answers 409 `no_map`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::error::{ApiError, ApiPath};
use super::extract::{Authorized, OperatorRole};
use crate::app::AppState;
use crate::geo::tiles::{style as map_style, MapInfo, TileId, TileSource};

/// The media type of Mapbox Vector Tiles.
const MVT: &str = "application/vnd.mapbox-vector-tile";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/map/tiles/{z}/{x}/{y}", get(tile))
        .route("/api/map/style.json", get(style))
        .route("/api/map/info", get(info))
}

fn source(state: &AppState) -> Result<&Arc<TileSource>, ApiError> {
    state.tiles.as_ref().ok_or_else(|| ApiError::Conflict {
        code: "no_map",
        message: "no basemap is configured: set `map`, `tiles_mbtiles` or `tiles_pmtiles`".into(),
    })
}

/// One tile, z/x/y in the XYZ scheme without a file extension. Tiles stored gzip-compressed in
/// an MBTiles or PMTiles file are sent as they are, with `Content-Encoding: gzip`.
async fn tile(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath((z, x, y)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let id = TileId::parse(&z, &x, &y)?;
    let data = source(&state)?.tile(id).await?;
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let mut response = (
        [
            (CONTENT_TYPE, MVT),
            (CACHE_CONTROL, "private, max-age=3600"),
        ],
        data.to_vec(),
    )
        .into_response();
    if gzip {
        response.headers_mut().insert(
            CONTENT_ENCODING,
            "gzip"
                .parse()
                .map_err(|e: axum::http::header::InvalidHeaderValue| {
                    ApiError::Internal(e.into())
                })?,
        );
    }
    Ok(response)
}

/// The origin the console reached us at, for absolute tile URLs; `None` when the request does
/// not name a plausible host (the style then holds a relative URL the console completes).
fn origin(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let host = match uri.authority() {
        Some(a) => a.as_str().to_owned(),
        None => headers.get(HOST)?.to_str().ok()?.to_owned(),
    };
    let plausible = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plausible.then(|| format!("https://{host}"))
}

/// A MapLibre style v8 without `glyphs` or text layers: nothing for the browser to fetch
/// beyond our own tiles.
async fn style(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let info = source(&state)?.info();
    Ok(Json(map_style(origin(&uri, &headers).as_deref(), &info)))
}

async fn info(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<MapInfo>, ApiError> {
    Ok(Json(source(&state)?.info()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_from_host_header() {
        let mut h = HeaderMap::new();
        h.insert(HOST, "dispatch.local:8443".parse().unwrap());
        let uri: Uri = "/api/map/style.json".parse().unwrap();
        assert_eq!(
            origin(&uri, &h).as_deref(),
            Some("https://dispatch.local:8443")
        );
        h.insert(HOST, "evil\"/x".parse().unwrap());
        assert_eq!(origin(&uri, &h), None);
        assert_eq!(origin(&uri, &HeaderMap::new()), None);
    }
}
