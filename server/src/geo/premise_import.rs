//! Premise information from the agency's files: CSV (one point per row) and GeoJSON (points and
//! polygons). A file is taken whole or not at all; the first bad row or feature is named.

use serde::Deserialize;

use super::premise::{NewPremise, PremiseShape};
use crate::domain::Invalid;

/// Most entries one file may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// One CSV row: `label,text,severity,lat,lon[,radius_m][,expires]` by header name; `expires` is
/// RFC 3339 (or empty: never).
#[derive(Debug, Deserialize)]
struct CsvRow {
    label: String,
    text: String,
    severity: String,
    lat: f64,
    lon: f64,
    #[serde(default)]
    radius_m: Option<f64>,
    #[serde(default)]
    expires: Option<String>,
}

/// Entries of a CSV file with a header row.
///
/// # Errors
/// The first row that cannot be read or fails validation, by its line number.
pub fn from_csv(text: &str) -> Result<Vec<NewPremise>, Invalid> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut entries = Vec::new();
    for (n, row) in reader.deserialize::<CsvRow>().enumerate() {
        let line = n + 2; // the header is line 1
        let row = row.map_err(|e| Invalid(format!("line {line}: {}", csv_problem(&e))))?;
        let at_line = |e: Invalid| Invalid(format!("line {line}: {}", e.0));
        let shape = PremiseShape::point(row.lat, row.lon, row.radius_m).map_err(at_line)?;
        let expires = expiry(row.expires.as_deref()).map_err(at_line)?;
        entries.push(
            NewPremise::parse(&row.label, &row.text, &row.severity, shape, expires)
                .map_err(at_line)?,
        );
        bounded(entries.len())?;
    }
    Ok(entries)
}

fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(field) => format!("column {}: {}", field + 1, err.kind()),
            None => err.to_string(),
        },
        _ => e.to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct FeatureCollection {
    #[serde(rename = "type")]
    kind: String,
    features: Vec<Feature>,
}

#[derive(Debug, Deserialize)]
struct Feature {
    geometry: Geometry,
    properties: Properties,
}

/// GeoJSON geometry; positions are `[lon, lat]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Geometry {
    Point { coordinates: [f64; 2] },
    Polygon { coordinates: Vec<Vec<[f64; 2]>> },
}

#[derive(Debug, Deserialize)]
struct Properties {
    label: String,
    text: String,
    severity: String,
    #[serde(default)]
    radius_m: Option<f64>,
    #[serde(default)]
    expires: Option<String>,
}

/// Entries of a GeoJSON `FeatureCollection` of `Point` (with an optional `radius_m`) and
/// `Polygon` (its outer ring) features, each with `label`, `text` and `severity` properties.
///
/// # Errors
/// Malformed GeoJSON, or the first feature that fails validation, by its index.
pub fn from_geojson(text: &str) -> Result<Vec<NewPremise>, Invalid> {
    let collection: FeatureCollection =
        serde_json::from_str(text).map_err(|e| Invalid(format!("not GeoJSON we read: {e}")))?;
    if collection.kind != "FeatureCollection" {
        return Err(Invalid(format!(
            "the GeoJSON must be a FeatureCollection (got {:?})",
            collection.kind
        )));
    }
    bounded(collection.features.len())?;
    collection
        .features
        .into_iter()
        .enumerate()
        .map(|(n, f)| {
            let at_feature = |e: Invalid| Invalid(format!("feature {n}: {}", e.0));
            let p = f.properties;
            let shape = match f.geometry {
                Geometry::Point {
                    coordinates: [lon, lat],
                } => PremiseShape::point(lat, lon, p.radius_m),
                Geometry::Polygon { coordinates } => {
                    let outer = coordinates.into_iter().next().unwrap_or_default();
                    PremiseShape::polygon(outer.into_iter().map(|[lon, lat]| (lat, lon)).collect())
                }
            }
            .map_err(at_feature)?;
            let expires = expiry(p.expires.as_deref()).map_err(at_feature)?;
            NewPremise::parse(&p.label, &p.text, &p.severity, shape, expires).map_err(at_feature)
        })
        .collect()
}

/// An RFC 3339 expiry as milliseconds; blank or absent means none.
fn expiry(value: Option<&str>) -> Result<Option<i64>, Invalid> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|e| Invalid::field("expires", format_args!("must be RFC 3339 ({e}): {v:?}"))),
    }
}

fn bounded(n: usize) -> Result<(), Invalid> {
    if n > MAX_ENTRIES {
        return Err(Invalid(format!(
            "a file holds at most {MAX_ENTRIES} entries"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::premise::PremiseSeverity;

    #[test]
    fn csv_rows_by_header_name() {
        let entries = from_csv(
            "label,text,severity,lat,lon,radius_m,expires\n\
             Dog,\"Aggressive dog, \"\"Rex\"\"\",danger,60.17,24.94,40,\n\
             Gate,Code 1234,info,60.18,24.95,,2099-01-01T00:00:00Z\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].text, "Aggressive dog, \"Rex\"");
        assert_eq!(entries[0].severity, PremiseSeverity::Danger);
        assert_eq!(
            entries[1].shape,
            PremiseShape::point(60.18, 24.95, None).unwrap()
        );
        assert_eq!(entries[1].expires_at_ms, Some(4_070_908_800_000));
    }

    #[test]
    fn a_bad_csv_row_is_named_by_its_line() {
        let e =
            from_csv("label,text,severity,lat,lon\nA,b,info,60,24\nB,c,info,abc,24\n").unwrap_err();
        assert!(e.0.starts_with("line 3: column 4"), "{e}");
        let e = from_csv("label,text,severity,lat,lon\nA,b,bad,60,24\n").unwrap_err();
        assert!(e.0.starts_with("line 2: `severity`"), "{e}");
        let e = from_csv("label,text,severity,lat\nA,b,info,60\n").unwrap_err();
        assert!(e.0.contains("lon"), "{e}");
    }

    #[test]
    fn geojson_points_and_polygons_in_lon_lat_order() {
        let entries = from_geojson(
            r#"{"type":"FeatureCollection","features":[
              {"type":"Feature","geometry":{"type":"Point","coordinates":[24.94,60.17]},
               "properties":{"label":"Dog","text":"Aggressive dog","severity":"danger","radius_m":25}},
              {"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[24.9,60.1],[25.0,60.1],[25.0,60.2],[24.9,60.2],[24.9,60.1]]]},
               "properties":{"label":"Estate","text":"Gate code 4321","severity":"info"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            entries[0].shape,
            PremiseShape::point(60.17, 24.94, Some(25.0)).unwrap()
        );
        assert!(entries[1].shape.holds(60.15, 24.95));
        let e = from_geojson(r#"{"type":"Feature","features":[]}"#).unwrap_err();
        assert!(e.0.contains("FeatureCollection"), "{e}");
        let e = from_geojson(
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[24.94,99]},"properties":{"label":"x","text":"y","severity":"info"}}]}"#,
        )
        .unwrap_err();
        assert!(e.0.starts_with("feature 0: `lat`"), "{e}");
    }
}
