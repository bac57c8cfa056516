//! The basemap over HTTP for the console: vector tiles, a MapLibre style that points at them,
//! the glyphs its labels are drawn with, and a summary of the map. Operators only; without a
//! map every route but the glyphs answers 409 `no_map`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiPath};
use super::extract::{Authorized, OperatorRole};
use super::openapi::{self, Conflict, InputErrors, NotFound, SessionErrors};
use crate::app::AppState;
use crate::geo::basemap::{MapInfo, TileSource};
use crate::geo::label_fonts::{glyph_range, FONT_STACK};
use crate::geo::map_style;
use dispatch_geo::tiles::{parse_range, TileId};

/// The media type of Mapbox Vector Tiles.
const MVT: &str = "application/vnd.mapbox-vector-tile";
/// The media type of glyph ranges.
const PROTOBUF: &str = "application/x-protobuf";

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(tile))
        .routes(routes!(style))
        .routes(routes!(info))
        .routes(routes!(glyphs))
}

/// A glyph range's 200: binary protobuf.
struct Glyphs;

impl utoipa::IntoResponses for Glyphs {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let response = ResponseBuilder::new()
            .description(
                "Signed distance fields of the range's characters (24 px em, 3 px buffer) in \
                 MapLibre's glyph protobuf; characters the fonts lack are left out.",
            )
            .content(PROTOBUF, ContentBuilder::new().build())
            .build();
        BTreeMap::from([("200".to_owned(), response.into())])
    }
}

/// A tile's 200: binary, so its content has a media type and no JSON schema.
struct Tile;

impl utoipa::IntoResponses for Tile {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let response = ResponseBuilder::new()
            .description(
                "A Mapbox vector tile (gzip-encoded when the source stores it so: \
                 `Content-Encoding: gzip`).",
            )
            .content(MVT, ContentBuilder::new().build())
            .build();
        BTreeMap::from([("200".to_owned(), response.into())])
    }
}

fn source(state: &AppState) -> Result<&Arc<TileSource>, ApiError> {
    state.tiles.as_ref().ok_or_else(|| ApiError::Conflict {
        code: "no_map",
        message: "no basemap is configured: set `map`, `tiles_mbtiles` or `tiles_pmtiles`".into(),
    })
}

/// One tile, z/x/y in the XYZ scheme without a file extension. Tiles stored gzip-compressed in
/// an MBTiles or PMTiles file are sent as they are, with `Content-Encoding: gzip`.
#[utoipa::path(
    get, path = "/api/map/tiles/{z}/{x}/{y}", tag = "map",
    params(("z" = u8, Path, description = "Zoom level."), ("x" = u32, Path), ("y" = u32, Path)),
    responses(
        Tile,
        InputErrors,
        Conflict,
        SessionErrors,
    )
)]
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

/// A MapLibre style v8 without `glyphs` or text layers: nothing for the browser to fetch
/// beyond our own tiles. The tile URL is absolute at the configured public origin (MapLibre
/// does not resolve relative vector tile URLs itself), never at the request's `Host`, which
/// anyone can forge; relative when no origin could be derived (the console completes it).
#[utoipa::path(
    get, path = "/api/map/style.json", tag = "map",
    responses(
        (status = 200, body = Object, description = "The MapLibre style of the basemap."),
        Conflict,
        SessionErrors,
    )
)]
async fn style(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let info = source(&state)?.info();
    Ok(Json(map_style::style(
        state.config.public_url.as_deref(),
        &info,
    )))
}

#[utoipa::path(
    get, path = "/api/map/info", tag = "map",
    responses((status = 200, body = MapInfo), Conflict, SessionErrors)
)]
async fn info(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<MapInfo>, ApiError> {
    Ok(Json(source(&state)?.info()))
}

/// The glyphs of 256 code points for map labels, as the style's `glyphs` URL asks for them:
/// `fontstack` is the style's one font stack, `range` is `START-END` (`0-255`, `44032-44287`;
/// no file extension). Rendered from the fonts built into the server, so it answers with or
/// without a basemap.
#[utoipa::path(
    get, path = "/api/map/fonts/{fontstack}/{range}", tag = "map",
    params(
        ("fontstack" = String, Path, description = "`Noto Sans Regular`, the style's font stack."),
        ("range" = String, Path, description = "`START-END`: START a multiple of 256 up to 65280, END = START + 255."),
    ),
    responses(Glyphs, InputErrors, NotFound, SessionErrors)
)]
async fn glyphs(
    _: Authorized<OperatorRole>,
    ApiPath((fontstack, range)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    if fontstack != FONT_STACK {
        return Err(ApiError::NotFound(format!(
            "font stack {fontstack:?} (this server has {FONT_STACK:?})"
        )));
    }
    let start = parse_range(&range)?;
    let data = tokio::task::spawn_blocking(move || glyph_range(start))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    // The cached range itself, not a copy of it per request.
    Ok((
        [
            (CONTENT_TYPE, PROTOBUF),
            (CACHE_CONTROL, "private, max-age=86400"),
        ],
        axum::body::Bytes::from_owner(data),
    )
        .into_response())
}
