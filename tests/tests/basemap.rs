//! The self-served basemap end to end: tiles cut from the Helsinki extract must decode with a
//! third-party decoder (Python's `mapbox-vector-tile`), plus bad addresses, style, MBTiles,
//! PMTiles (written by Python's `pmtiles`), `no_map`.

use std::time::Instant;

use dispatch_tests::{helsinki_map, spawn_app, spawn_app_with, Operator};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::ConnectOptions;

/// Central Helsinki, by the railway station.
const CENTRE: (f64, f64) = (60.1699, 24.9384);
const EXTENT: f64 = 4096.0;
/// Tile units the server draws beyond each tile edge.
const BUFFER: f64 = 64.0;

/// The XYZ tile holding a point: the slippy-map formula, written apart from the server's.
fn tile_of((lat, lon): (f64, f64), z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = (lon + 180.0) / 360.0 * n;
    let y = (1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n;
    (x as u32, y as u32)
}

/// Status, headers and raw body of a GET.
async fn fetch(op: &Operator, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = op
        .http
        .get(format!("{}{path}", op.base))
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.unwrap().to_vec())
}

const DECODER: &str = r#"
import json, sys
try:
    import mapbox_vector_tile
except ImportError:
    sys.exit("the Python package mapbox-vector-tile is missing; install it with: "
             "python3 -m pip install mapbox-vector-tile (make test does this)")
tile = mapbox_vector_tile.decode(open(sys.argv[1], "rb").read(),
                                 default_options={"y_coord_down": True})
def points(c, out):
    if len(c) == 2 and all(isinstance(v, (int, float)) for v in c):
        out.append(c)
    else:
        for part in c:
            points(part, out)
    return out
report = {}
for name, layer in tile.items():
    pts = [p for f in layer["features"] for p in points(f["geometry"]["coordinates"], [])]
    report[name] = {
        "extent": layer["extent"],
        "features": len(layer["features"]),
        "types": sorted({f["geometry"]["type"] for f in layer["features"]}),
        "named": sum(1 for f in layer["features"] if f["properties"].get("name")),
        "classes": sorted({f["properties"].get("class", "") for f in layer["features"]}),
        "min": [min(p[0] for p in pts), min(p[1] for p in pts)] if pts else None,
        "max": [max(p[0] for p in pts), max(p[1] for p in pts)] if pts else None,
    }
print(json.dumps(report))
"#;

/// Decodes a tile with Python's `mapbox-vector-tile`: layer name → summary.
///
/// # Panics
/// With a clear message when python3 or the package is missing: the test fails, never skips.
fn decode(tile: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tile.mvt");
    std::fs::write(&path, tile).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(DECODER)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); it is needed to decode tiles"));
    assert!(
        out.status.success(),
        "the Python decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(report: &Value, layer: &str) -> u64 {
    report[layer]["features"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn tiles_decode_with_a_third_party_decoder() {
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let op = app.admin().await;
    for z in [14, 15, 16] {
        let (x, y) = tile_of(CENTRE, z);
        let path = format!("/api/map/tiles/{z}/{x}/{y}");
        let started = Instant::now();
        let (status, headers, body) = fetch(&op, &path).await;
        let first = started.elapsed();
        let started = Instant::now();
        let (_, _, again) = fetch(&op, &path).await;
        let cached = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            headers["content-type"],
            "application/vnd.mapbox-vector-tile"
        );
        assert_eq!(body, again, "a cached tile differs");
        let report = decode(&body);
        eprintln!(
            "z{z} tile {path}: {} bytes, first {first:?}, cached {cached:?}: {report}",
            body.len()
        );
        for layer in ["roads", "buildings"] {
            assert!(count(&report, layer) > 0, "z{z}: no {layer}: {report}");
        }
        assert!(
            count(&report, "water") + count(&report, "green") > 0,
            "z{z}: neither water nor green: {report}"
        );
        if z >= 15 {
            assert!(count(&report, "labels") > 0, "z{z}: no labels: {report}");
            assert!(report["labels"]["named"].as_u64() == Some(count(&report, "labels")));
        }
        assert!(report["roads"]["named"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["roads"]["types"][0], "LineString");
        assert_eq!(report["buildings"]["types"][0], "Polygon");
        for (name, layer) in report.as_object().unwrap() {
            assert_eq!(layer["extent"], 4096, "{name}");
            let (min, max) = (&layer["min"], &layer["max"]);
            for axis in 0..2 {
                let (lo, hi) = (min[axis].as_f64().unwrap(), max[axis].as_f64().unwrap());
                assert!(
                    lo >= -BUFFER && hi <= EXTENT + BUFFER,
                    "z{z} {name}: coordinates {lo}..{hi} outside the extent and its buffer"
                );
            }
        }
        // Labels sit inside the tile proper, so the console never draws one twice.
        let labels = &report["labels"];
        if count(&report, "labels") > 0 {
            assert!(labels["min"][0].as_f64().unwrap() >= 0.0);
            assert!(labels["max"][1].as_f64().unwrap() < EXTENT);
        }
    }
    // Far from the data: a valid, empty tile.
    let (status, _, body) = fetch(&op, "/api/map/tiles/15/0/0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(decode(&body), serde_json::json!({}));
    // At city-overview zoom the main roads remain and the small streets are dropped.
    let (x, y) = tile_of(CENTRE, 11);
    let (_, _, body) = fetch(&op, &format!("/api/map/tiles/11/{x}/{y}")).await;
    let report = decode(&body);
    assert!(count(&report, "roads") > 0, "{report}");
    assert!(
        !report["roads"]["classes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "footway"),
        "{report}"
    );
    assert_eq!(count(&report, "buildings"), 0, "{report}");
    app.stop().await;
}

#[tokio::test]
async fn style_and_info_point_at_our_own_tiles() {
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let op = app.admin().await;
    let (status, style) = op.get("/api/map/style.json").await;
    assert_eq!(status, StatusCode::OK, "{style}");
    assert_eq!(style["version"], 8);
    assert_eq!(
        style["glyphs"],
        format!("{}/api/map/fonts/{{fontstack}}/{{range}}", app.base),
        "labels are drawn with this server's glyphs"
    );
    let source = &style["sources"]["dispatch"];
    assert_eq!(source["type"], "vector");
    assert_eq!(
        source["tiles"][0],
        format!("{}/api/map/tiles/{{z}}/{{x}}/{{y}}", app.base)
    );
    assert_eq!(source["attribution"], "© OpenStreetMap contributors");
    // The tile URL comes from the configuration (here derived from the bound address), never
    // from the request's Host header.
    let forged = op
        .http
        .get(format!("{}/api/map/style.json", op.base))
        .header("host", "evil.example:443")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    let forged: Value = forged.json().await.unwrap();
    assert_eq!(forged["sources"]["dispatch"]["tiles"], source["tiles"]);
    assert!(!forged.to_string().contains("evil.example"), "{forged}");
    let layers = style["layers"].as_array().unwrap();
    for l in layers {
        if let Some(s) = l.get("source") {
            assert_eq!(s, "dispatch");
        }
        if l["type"] == "symbol" {
            assert_eq!(l["layout"]["text-font"][0], "Noto Sans Regular", "{l}");
        }
    }
    for labelled in ["roads", "buildings", "labels"] {
        assert!(
            layers
                .iter()
                .any(|l| l["type"] == "symbol" && l["source-layer"] == labelled),
            "no label drawn from {labelled}"
        );
    }
    for layer in ["water", "green", "buildings", "roads"] {
        assert!(
            layers.iter().any(|l| l["source-layer"] == layer),
            "no style layer draws {layer}"
        );
    }
    let (status, info) = op.get("/api/map/info").await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let b = &info["bounds"];
    let (w, s, e, n) = (
        b[0].as_f64().unwrap(),
        b[1].as_f64().unwrap(),
        b[2].as_f64().unwrap(),
        b[3].as_f64().unwrap(),
    );
    assert!(
        w < CENTRE.1 && CENTRE.1 < e && s < CENTRE.0 && CENTRE.0 < n,
        "{info}"
    );
    assert_eq!(info["maxzoom"], 18);
    for layer in ["roads", "buildings", "water", "green", "labels"] {
        assert!(
            info["feature_counts"][layer].as_u64().unwrap() > 0,
            "{info}"
        );
    }
    eprintln!("map info: {info}");
    // Operators only.
    let anonymous = Operator::anonymous(&app.base);
    assert_eq!(
        anonymous.get("/api/map/info").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn glyph_ranges_are_served_for_the_style_s_font_stack_only() {
    // Glyphs come from the fonts built into the server: no map needed.
    let app = spawn_app_with(|_| {}).await;
    let op = app.admin().await;
    let stack = "/api/map/fonts/Noto%20Sans%20Regular";
    for range in ["0-255", "44032-44287"] {
        let (status, headers, body) = fetch(&op, &format!("{stack}/{range}")).await;
        assert_eq!(status, StatusCode::OK, "{range}");
        assert_eq!(headers[CONTENT_TYPE], "application/x-protobuf");
        // glyphs { stacks (field 1, bytes) { name (field 1) = "Noto Sans Regular", … } }
        assert_eq!(body[0], 0x0a, "{range}: a fontstack message");
        let name = b"Noto Sans Regular";
        assert!(
            body.windows(name.len()).any(|w| w == name),
            "{range}: names its stack"
        );
        assert!(body.len() > 10_000, "{range}: {} bytes", body.len());
    }
    let (status, body) = op.get("/api/map/fonts/Arial%20Bold/0-255").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Arial Bold"),
        "{body}"
    );
    for range in ["0-256", "1-256", "65536-65791", "0-255.pbf", "a-b"] {
        let (status, body) = op.get(&format!("{stack}/{range}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{range}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("`range`"),
            "{body}"
        );
    }
    let anonymous = Operator::anonymous(&app.base);
    assert_eq!(
        anonymous.get(&format!("{stack}/0-255")).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_tile_addresses_are_named() {
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let op = app.admin().await;
    for (path, field) in [
        ("/api/map/tiles/19/0/0", "`z`"),
        ("/api/map/tiles/-1/0/0", "`z`"),
        ("/api/map/tiles/zoom/0/0", "`z`"),
        ("/api/map/tiles/2/4/0", "`x`"),
        ("/api/map/tiles/2/0/4", "`y`"),
        ("/api/map/tiles/15/18653/9484.mvt", "`y`"),
        ("/api/map/tiles/18/262144/0", "`x`"),
    ] {
        let (status, body) = op.get(path).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{path}: {message}");
    }
    app.stop().await;
}

#[tokio::test]
async fn without_a_map_the_basemap_answers_no_map() {
    let app = spawn_app().await;
    let op = app.admin().await;
    for path in [
        "/api/map/tiles/15/18653/9484",
        "/api/map/style.json",
        "/api/map/info",
    ] {
        let (status, body) = op.get(path).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert_eq!(body["error"]["code"], "no_map", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn mbtiles_file_is_served_with_the_tms_row_flip() {
    // A real tile from the generated basemap, stored in a one-tile MBTiles file.
    let generated = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let (x, y) = tile_of(CENTRE, 15);
    let path = format!("/api/map/tiles/15/{x}/{y}");
    let (_, _, tile) = fetch(&generated.admin().await, &path).await;
    generated.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agency.mbtiles");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE metadata (name TEXT, value TEXT)",
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
        "INSERT INTO metadata VALUES ('bounds', '24.92,60.16,24.96,60.18'), ('minzoom', '15'), ('maxzoom', '15'), ('attribution', '© OpenStreetMap contributors, Agency')",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let tms_row = (1i64 << 15) - 1 - i64::from(y);
    sqlx::query("INSERT INTO tiles VALUES (15, ?, ?, ?)")
        .bind(i64::from(x))
        .bind(tms_row)
        .bind(&tile)
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let app = spawn_app_with(|c| c.tiles_mbtiles = Some(file.clone())).await;
    let op = app.admin().await;
    let (status, headers, body) = fetch(&op, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/vnd.mapbox-vector-tile"
    );
    assert_eq!(body, tile, "the stored tile comes back as it is");
    assert!(count(&decode(&body), "roads") > 0);
    // The row below is not in the file: an empty tile, not an error.
    let (status, _, body) = fetch(&op, &format!("/api/map/tiles/15/{x}/{}", y + 1)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    let (_, info) = op.get("/api/map/info").await;
    assert_eq!(info["source"], "mbtiles");
    assert_eq!(info["minzoom"], 15);
    let (_, style) = op.get("/api/map/style.json").await;
    assert_eq!(
        style["sources"]["dispatch"]["attribution"],
        "© OpenStreetMap contributors, Agency"
    );
    app.stop().await;
}

/// Writes a PMTiles file with the `pmtiles` package's writer from a manifest of tiles
/// (`{"tiles": [{"z", "x", "y", "path"}], "run": {"path", "z", "x", "y", "count"}}`): the run
/// repeats one tile over `count` consecutive tile ids from z/x/y. Leaf directories of four
/// entries each are forced, as a large file would have. Prints the run's addresses.
const PMTILES_WRITER: &str = r#"
import json, sys
try:
    from pmtiles import writer
    from pmtiles.tile import Compression, TileType, tileid_to_zxy, zxy_to_tileid
except ImportError:
    sys.exit("the Python package pmtiles is missing; install it with: "
             "python3 -m pip install pmtiles (make test does this)")
manifest = json.load(open(sys.argv[1]))
writer.optimize_directories = lambda entries, target_len: writer.build_roots_leaves(entries, 4)
tiles = [(zxy_to_tileid(t["z"], t["x"], t["y"]), t["path"]) for t in manifest["tiles"]]
run = manifest["run"]
first = zxy_to_tileid(run["z"], run["x"], run["y"])
tiles += [(first + i, run["path"]) for i in range(run["count"])]
with writer.write(sys.argv[2]) as w:
    for tile_id, path in sorted(tiles):
        w.write_tile(tile_id, open(path, "rb").read())
    w.finalize(
        {
            "tile_type": TileType.MVT,
            "tile_compression": Compression.NONE,
            "min_lon_e7": 249200000, "min_lat_e7": 601600000,
            "max_lon_e7": 249600000, "max_lat_e7": 601800000,
            "center_zoom": 15, "center_lon_e7": 249384000, "center_lat_e7": 601699000,
        },
        {"attribution": "© OpenStreetMap contributors, Agency PMTiles"},
    )
print(json.dumps([tileid_to_zxy(first + i) for i in range(run["count"])]))
"#;

#[tokio::test]
async fn pmtiles_file_written_by_a_third_party_is_served_byte_for_byte() {
    // Real tiles from the generated basemap: the z14 tile over the centre and a 3×3 block at
    // z15 (those with features).
    let generated = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let op = generated.admin().await;
    let (cx, cy) = tile_of(CENTRE, 15);
    let mut addresses = vec![(14, cx / 2, cy / 2)];
    for dx in 0..3 {
        for dy in 0..3 {
            addresses.push((15, cx + dx - 1, cy + dy - 1));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tiles = Vec::new();
    let mut manifest = Vec::new();
    for (z, x, y) in addresses {
        let (status, _, body) = fetch(&op, &format!("/api/map/tiles/{z}/{x}/{y}")).await;
        assert_eq!(status, StatusCode::OK);
        // Tiles past the extract's edge are empty: nothing to store.
        if body.is_empty() {
            continue;
        }
        let path = dir.path().join(format!("{z}-{x}-{y}.mvt"));
        std::fs::write(&path, &body).unwrap();
        manifest.push(serde_json::json!({ "z": z, "x": x, "y": y, "path": path }));
        tiles.push(((z, x, y), body));
    }
    generated.stop().await;
    let centre_tile = tiles
        .iter()
        .find(|(at, _)| *at == (15, cx, cy))
        .expect("the centre tile has features")
        .1
        .clone();
    assert!(tiles.len() >= 4, "only {} tiles have features", tiles.len());
    let manifest_path = dir.path().join("manifest.json");
    let manifest = serde_json::json!({
        "tiles": manifest,
        "run": { "path": dir.path().join(format!("15-{cx}-{cy}.mvt")), "z": 16, "x": 2 * cx, "y": 2 * cy, "count": 3 },
    });
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let file = dir.path().join("agency.pmtiles");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(PMTILES_WRITER)
        .arg(&manifest_path)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); it is needed to write PMTiles"));
    assert!(
        out.status.success(),
        "the Python PMTiles writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Vec<(u8, u32, u32)> = serde_json::from_slice(&out.stdout).unwrap();

    let app = spawn_app_with(|c| c.tiles_pmtiles = Some(file.clone())).await;
    let op = app.admin().await;
    for ((z, x, y), tile) in &tiles {
        let (status, headers, body) = fetch(&op, &format!("/api/map/tiles/{z}/{x}/{y}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/vnd.mapbox-vector-tile"
        );
        assert!(headers.get("content-encoding").is_none());
        assert_eq!(&body, tile, "{z}/{x}/{y} differs from the tile written");
    }
    assert_eq!(run.len(), 3);
    for (z, x, y) in run {
        let (_, _, body) = fetch(&op, &format!("/api/map/tiles/{z}/{x}/{y}")).await;
        assert_eq!(body, centre_tile, "run member {z}/{x}/{y}");
    }
    assert!(count(&decode(&centre_tile), "roads") > 0);
    // Not in the file, or outside its zooms: an empty tile, not an error.
    for path in [
        format!("/api/map/tiles/15/{}/{cy}", cx + 5),
        format!("/api/map/tiles/13/{}/{}", cx / 4, cy / 4),
    ] {
        let (status, _, body) = fetch(&op, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.is_empty(), "{path}");
    }
    let (_, info) = op.get("/api/map/info").await;
    assert_eq!(info["source"], "pmtiles");
    assert_eq!(info["minzoom"], 14);
    assert_eq!(info["maxzoom"], 16);
    assert_eq!(
        info["bounds"],
        serde_json::json!([24.92, 60.16, 24.96, 60.18])
    );
    let (_, style) = op.get("/api/map/style.json").await;
    assert_eq!(
        style["sources"]["dispatch"]["attribution"],
        "© OpenStreetMap contributors, Agency PMTiles"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_basemap_file_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pmtiles");
    std::fs::write(&junk, vec![b'x'; 200]).unwrap();
    let config = |mbtiles: Option<std::path::PathBuf>| dispatch_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        tiles_pmtiles: Some(junk.clone()),
        tiles_mbtiles: mbtiles,
        ..dispatch_server::Config::default()
    };
    let err = dispatch_server::Application::build(config(None))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("not a PMTiles file"), "{err:#}");
    let err = dispatch_server::Application::build(config(Some(junk.clone())))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("both"), "{err:#}");
}

/// An extract the OpenStreetMap decoder panics on (a relation member of a type it does not
/// know: the fuzzer's reproducer) is refused at start with a reason naming it, not a crash.
#[tokio::test]
async fn a_map_the_decoder_chokes_on_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/pbf/osmpbf-unknown-member-type.osm.pbf");
    let config = dispatch_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        map: Some(map),
        ..dispatch_server::Config::default()
    };
    let err = dispatch_server::Application::build(config)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("osmpbf-unknown-member-type.osm.pbf")
            && text.contains("not a readable OpenStreetMap extract"),
        "{text}"
    );
}
