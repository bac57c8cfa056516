//! The MapLibre GL style (v8) for our tiles: muted colours that keep units and incidents the
//! loudest things on the console map, and labels (street names, house numbers, places, points
//! of interest) drawn with glyphs this server renders from the fonts built into it.

use serde_json::{json, Value};

use super::basemap::{MapInfo, TILE_PATH};
use super::label_fonts::FONT_STACK;

/// Path of a glyph range, with the placeholders MapLibre fills in.
pub const GLYPHS_PATH: &str = "/api/map/fonts/{fontstack}/{range}";

/// Line widths by zoom for a road class group, as a MapLibre expression.
fn width(at12: f64, at18: f64) -> Value {
    json!([
        "interpolate",
        ["exponential", 1.5],
        ["zoom"],
        12,
        at12,
        18,
        at18
    ])
}

/// Road classes with their `_link` ramps (`primary`, `primary_link`, …).
fn with_links(classes: &[&str]) -> Vec<String> {
    classes
        .iter()
        .flat_map(|c| [(*c).to_owned(), format!("{c}_link")])
        .collect()
}

fn roads(id: &str, classes: &[&str], color: &str, w: Value, min_zoom: u8) -> Value {
    let classes = with_links(classes);
    json!({
        "id": id,
        "type": "line",
        "source": "dispatch",
        "source-layer": "roads",
        "minzoom": min_zoom,
        "filter": ["match", ["get", "class"], classes, true, false],
        "layout": { "line-cap": "round", "line-join": "round" },
        "paint": { "line-color": color, "line-width": w }
    })
}

/// A symbol layer drawing `field` of the features of `source_layer` that match `filter`.
fn text(
    id: &str,
    source_layer: &str,
    filter: Value,
    field: &str,
    size: Value,
    min_zoom: u8,
) -> Value {
    json!({
        "id": id,
        "type": "symbol",
        "source": "dispatch",
        "source-layer": source_layer,
        "minzoom": min_zoom,
        "filter": filter,
        "layout": {
            "text-field": ["get", field],
            "text-font": [FONT_STACK],
            "text-size": size,
            "text-max-width": 8,
        },
        "paint": { "text-color": "#3b3f45", "text-halo-color": "#ffffff", "text-halo-width": 1.5 }
    })
}

/// Street names along the line of their roads.
fn street_names(id: &str, classes: &[&str], min_zoom: u8) -> Value {
    let classes = with_links(classes);
    let mut layer = text(
        id,
        "roads",
        json!([
            "all",
            ["has", "name"],
            ["match", ["get", "class"], classes, true, false]
        ]),
        "name",
        json!(["interpolate", ["linear"], ["zoom"], 13, 10, 18, 14]),
        min_zoom,
    );
    layer["layout"]["symbol-placement"] = json!("line");
    layer
}

/// The label layers, in the order a dispatcher reads the map: places from the city view, main
/// streets from the district, every street and points of interest in the neighbourhood, house
/// numbers at street level.
fn labels() -> Vec<Value> {
    vec![
        street_names(
            "names-major",
            &["motorway", "trunk", "primary", "secondary", "tertiary"],
            13,
        ),
        street_names(
            "names-minor",
            &[
                "residential",
                "unclassified",
                "living_street",
                "road",
                "pedestrian",
                "service",
            ],
            15,
        ),
        text(
            "housenumbers",
            "buildings",
            json!(["has", "housenumber"]),
            "housenumber",
            json!(10),
            17,
        ),
        text(
            "address-points",
            "labels",
            json!(["==", ["get", "kind"], "housenumber"]),
            "name",
            json!(10),
            17,
        ),
        text(
            "pois",
            "labels",
            json!(["==", ["get", "kind"], "amenity"]),
            "name",
            json!(11),
            16,
        ),
        text(
            "places",
            "labels",
            json!(["==", ["get", "kind"], "place"]),
            "name",
            json!(["interpolate", ["linear"], ["zoom"], 11, 12, 16, 16]),
            11,
        ),
    ]
}

/// The style; `origin` (e.g. `https://dispatch.example:8443`) makes the tile URL absolute, as
/// MapLibre needs. With no origin the URL is relative and the console prefixes its own.
pub fn style(origin: Option<&str>, info: &MapInfo) -> Value {
    let tiles = format!("{}{TILE_PATH}", origin.unwrap_or(""));
    let mut style = json!({
        "version": 8,
        "name": "Dispatch basemap",
        "center": [info.center[0], info.center[1]],
        "zoom": info.center[2],
        "sources": {
            "dispatch": {
                "type": "vector",
                "tiles": [tiles],
                "minzoom": info.minzoom,
                "maxzoom": info.maxzoom,
                "bounds": info.bounds,
                "attribution": info.attribution,
            }
        },
        "layers": [
            { "id": "background", "type": "background", "paint": { "background-color": "#eceae6" } },
            { "id": "water", "type": "fill", "source": "dispatch", "source-layer": "water",
              "paint": { "fill-color": "#b8cbd6" } },
            { "id": "green", "type": "fill", "source": "dispatch", "source-layer": "green",
              "paint": { "fill-color": "#d5dfcc", "fill-opacity": 0.8 } },
            { "id": "buildings", "type": "fill", "source": "dispatch", "source-layer": "buildings",
              "minzoom": 13,
              "paint": { "fill-color": "#d9d4cc", "fill-outline-color": "#c8c2b8" } },
            roads("roads-path", &["footway", "path", "cycleway", "pedestrian", "steps", "track", "bridleway", "corridor"],
                  "#c9c4bb", width(0.5, 2.0), 14),
            roads("roads-minor", &["residential", "unclassified", "living_street", "road", "service"],
                  "#ffffff", width(1.0, 10.0), 13),
            roads("roads-major", &["secondary", "tertiary"], "#f4f0e6", width(1.5, 14.0), 10),
            roads("roads-primary", &["primary"], "#efe6cf", width(2.0, 16.0), 0),
            roads("roads-motorway", &["motorway", "trunk"], "#e6d7b5", width(2.5, 18.0), 0),
        ]
    });
    style["glyphs"] = json!(format!("{}{GLYPHS_PATH}", origin.unwrap_or("")));
    if let Some(layers) = style["layers"].as_array_mut() {
        layers.extend(labels());
    }
    style
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_geo::tiles::OSM_ATTRIBUTION;

    #[test]
    fn style_points_at_our_tiles_and_our_glyphs() {
        let info = MapInfo {
            source: "osm",
            bounds: [24.9, 60.1, 25.0, 60.2],
            center: [24.95, 60.15, 14.0],
            minzoom: 0,
            maxzoom: 18,
            attribution: OSM_ATTRIBUTION.into(),
            tiles: TILE_PATH,
            feature_counts: None,
        };
        let s = style(Some("https://127.0.0.1:8443"), &info);
        assert_eq!(
            s["sources"]["dispatch"]["tiles"][0],
            "https://127.0.0.1:8443/api/map/tiles/{z}/{x}/{y}"
        );
        assert_eq!(
            s["glyphs"],
            "https://127.0.0.1:8443/api/map/fonts/{fontstack}/{range}"
        );
        let layers = s["layers"].as_array().unwrap();
        assert_eq!(layers[5]["filter"][2][0], "residential");
        let symbols: Vec<&Value> = layers.iter().filter(|l| l["type"] == "symbol").collect();
        let ids: Vec<&str> = symbols.iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "names-major",
                "names-minor",
                "housenumbers",
                "address-points",
                "pois",
                "places"
            ]
        );
        assert!(symbols
            .iter()
            .all(|l| l["layout"]["text-font"] == json!([FONT_STACK])));
        assert_eq!(symbols[0]["layout"]["symbol-placement"], "line");
        assert_eq!(symbols[2]["minzoom"], 17, "house numbers at street level");
    }
}
