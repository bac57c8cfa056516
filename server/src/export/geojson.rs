//! The GeoJSON files of an export (RFC 7946, WGS 84, `[longitude, latitude]`):
//! `incidents.geojson` (a point per incident, for a GIS; not read back), `unit-tracks.geojson`
//! (a line per unit per UTC day with the time and accuracy of every fix) and
//! `premises.geojson` (premise warnings: a point with a radius, or a polygon). Each is one
//! FeatureCollection written a feature at a time, and read back the same way, so a year of
//! tracks needs no more memory than one unit's day.

use std::fmt;
use std::io::{Read, Write};
use std::marker::PhantomData;

use rusqlite::{params, Connection, Transaction};
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::records::Time;
use super::Window;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature<P> {
    #[serde(rename = "type")]
    pub kind: FeatureType,
    /// `[west, south, east, north]`, on premises (their lookup box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    pub geometry: Geometry,
    pub properties: P,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FeatureType {
    Feature,
}

/// The geometries the export uses; positions are `[longitude, latitude]`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Geometry {
    Point { coordinates: [f64; 2] },
    LineString { coordinates: Vec<[f64; 2]> },
    Polygon { coordinates: Vec<Vec<[f64; 2]>> },
}

/// Writes a FeatureCollection a feature at a time.
struct CollectionWriter<'a> {
    out: &'a mut dyn Write,
    count: u64,
}

impl<'a> CollectionWriter<'a> {
    fn start(out: &'a mut dyn Write) -> anyhow::Result<Self> {
        out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[")?;
        Ok(Self { out, count: 0 })
    }

    fn push<P: Serialize>(&mut self, feature: &Feature<P>) -> anyhow::Result<()> {
        self.out
            .write_all(if self.count == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *self.out, feature)?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<u64> {
        self.out.write_all(b"\n]}\n")?;
        Ok(self.count)
    }
}

/// An incident on the map (its full record is in `incidents.eido.jsonl`).
#[derive(Debug, Serialize)]
struct IncidentPoint {
    incident_id: i64,
    kind: String,
    priority: i64,
    status: String,
    address: Option<String>,
    created_at: Time,
    closed_at: Option<Time>,
    disposition: Option<String>,
}

pub fn write_incidents(
    db: &Connection,
    window: Window,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut stmt = db.prepare(
        "SELECT id, kind, priority, status, address, created_at, closed_at, disposition, lat, lon
         FROM incidents WHERE created_at >= ?1 AND created_at <= ?2 ORDER BY id",
    )?;
    let mut rows = stmt.query(params![window.start_ms(), window.end_ms()])?;
    let mut features = CollectionWriter::start(out)?;
    while let Some(r) = rows.next()? {
        features.push(&Feature {
            kind: FeatureType::Feature,
            bbox: None,
            geometry: Geometry::Point {
                coordinates: [r.get(9)?, r.get(8)?],
            },
            properties: IncidentPoint {
                incident_id: r.get(0)?,
                kind: r.get(1)?,
                priority: r.get(2)?,
                status: r.get(3)?,
                address: r.get(4)?,
                created_at: Time(r.get(5)?),
                closed_at: Time::opt(r.get(6)?),
                disposition: r.get(7)?,
            },
        })?;
    }
    features.finish()
}

/// One unit's fixes of one UTC day: `times[i]` and `accuracy_m[i]` belong to the i-th position.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackProperties {
    pub unit_id: i64,
    pub call_sign: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub times: Vec<Time>,
    pub accuracy_m: Vec<Option<f64>>,
}

const DAY_MS: i64 = 86_400_000;

pub fn write_tracks(db: &Connection, window: Window, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut stmt = db.prepare(
        "SELECT p.unit_id, u.call_sign, p.at, p.lat, p.lon, p.accuracy_m
         FROM unit_positions p JOIN units u ON u.id = p.unit_id
         WHERE p.at >= ?1 AND p.at <= ?2 ORDER BY p.unit_id, p.at",
    )?;
    let mut rows = stmt.query(params![window.start_ms(), window.end_ms()])?;
    let mut features = CollectionWriter::start(out)?;
    let mut track: Option<(i64, Vec<[f64; 2]>, TrackProperties)> = None;
    while let Some(r) = rows.next()? {
        let unit_id: i64 = r.get(0)?;
        let at: i64 = r.get(2)?;
        let day = at.div_euclid(DAY_MS);
        if track
            .as_ref()
            .is_some_and(|(d, _, p)| p.unit_id != unit_id || *d != day)
        {
            push_track(&mut features, track.take())?;
        }
        let (_, line, props) = track.get_or_insert_with(|| {
            let name = crate::domain::event::rfc3339(day * DAY_MS);
            (
                day,
                Vec::new(),
                TrackProperties {
                    unit_id,
                    call_sign: String::new(),
                    day: name.get(..10).unwrap_or_default().to_owned(),
                    times: Vec::new(),
                    accuracy_m: Vec::new(),
                },
            )
        });
        props.call_sign = r.get(1)?;
        line.push([r.get(4)?, r.get(3)?]);
        props.times.push(Time(at));
        props.accuracy_m.push(r.get(5)?);
    }
    push_track(&mut features, track)?;
    features.finish()
}

fn push_track(
    features: &mut CollectionWriter<'_>,
    track: Option<(i64, Vec<[f64; 2]>, TrackProperties)>,
) -> anyhow::Result<()> {
    let Some((_, mut line, properties)) = track else {
        return Ok(());
    };
    let geometry = if line.len() == 1 {
        Geometry::Point {
            coordinates: line.remove(0),
        }
    } else {
        Geometry::LineString { coordinates: line }
    };
    features.push(&Feature {
        kind: FeatureType::Feature,
        bbox: None,
        geometry,
        properties,
    })
}

/// Inserts one track's fixes into `unit_positions`.
pub fn insert_track(tx: &Transaction<'_>, track: Feature<TrackProperties>) -> anyhow::Result<()> {
    let positions = match track.geometry {
        Geometry::Point { coordinates } => vec![coordinates],
        Geometry::LineString { coordinates } => coordinates,
        Geometry::Polygon { .. } => anyhow::bail!("a track is a Point or a LineString"),
    };
    let p = track.properties;
    anyhow::ensure!(
        positions.len() == p.times.len() && positions.len() == p.accuracy_m.len(),
        "unit {} on {}: {} positions but {} times and {} accuracies",
        p.unit_id,
        p.day,
        positions.len(),
        p.times.len(),
        p.accuracy_m.len()
    );
    let mut insert = tx.prepare_cached(
        "INSERT INTO unit_positions (unit_id, at, lat, lon, accuracy_m) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for ((position, at), accuracy) in positions.iter().zip(&p.times).zip(&p.accuracy_m) {
        insert.execute(params![p.unit_id, at.0, position[1], position[0], accuracy])?;
    }
    Ok(())
}

/// A premise warning; the shape is the geometry (a point with `radius_m`, or a polygon).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PremiseProperties {
    pub id: i64,
    pub label: String,
    pub text: String,
    /// `info`, `caution` or `danger`.
    pub severity: String,
    pub radius_m: Option<f64>,
    pub expires_at: Option<Time>,
    pub created_by: Option<i64>,
    pub created_at: Time,
    pub removed_at: Option<Time>,
    pub removed_by: Option<i64>,
}

pub fn write_premises(db: &Connection, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut stmt = db.prepare(
        "SELECT id, label, text, severity, lat, lon, radius_m, polygon, min_lat, min_lon,
                max_lat, max_lon, expires_at, created_by, created_at, removed_at, removed_by
         FROM premises ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut features = CollectionWriter::start(out)?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let polygon: Option<String> = r.get(7)?;
        let geometry = match polygon {
            Some(text) => {
                let vertices: Vec<[f64; 2]> = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("premise {id}: stored polygon: {e}"))?;
                let mut ring: Vec<[f64; 2]> =
                    vertices.iter().map(|[lat, lon]| [*lon, *lat]).collect();
                if let (Some(first), Some(last)) = (ring.first().copied(), ring.last()) {
                    if first != *last {
                        ring.push(first);
                    }
                }
                Geometry::Polygon {
                    coordinates: vec![ring],
                }
            }
            None => Geometry::Point {
                coordinates: [r.get(5)?, r.get(4)?],
            },
        };
        features.push(&Feature {
            kind: FeatureType::Feature,
            bbox: Some([r.get(9)?, r.get(8)?, r.get(11)?, r.get(10)?]),
            geometry,
            properties: PremiseProperties {
                id,
                label: r.get(1)?,
                text: r.get(2)?,
                severity: r.get(3)?,
                radius_m: r.get(6)?,
                expires_at: Time::opt(r.get(12)?),
                created_by: r.get(13)?,
                created_at: Time(r.get(14)?),
                removed_at: Time::opt(r.get(15)?),
                removed_by: r.get(16)?,
            },
        })?;
    }
    features.finish()
}

pub fn insert_premise(
    tx: &Transaction<'_>,
    premise: Feature<PremiseProperties>,
) -> anyhow::Result<()> {
    let p = premise.properties;
    let Some([west, south, east, north]) = premise.bbox else {
        anyhow::bail!("premise {} has no bbox", p.id);
    };
    let (point, polygon) = match premise.geometry {
        Geometry::Point {
            coordinates: [lon, lat],
        } => (Some((lat, lon)), None),
        Geometry::Polygon { coordinates } => {
            let [ring] = coordinates.as_slice() else {
                anyhow::bail!("premise {}: a polygon without holes has one ring", p.id);
            };
            let mut vertices: Vec<[f64; 2]> = ring.iter().map(|[lon, lat]| [*lat, *lon]).collect();
            vertices.pop();
            (None, Some(serde_json::to_string(&vertices)?))
        }
        Geometry::LineString { .. } => anyhow::bail!("premise {} is a line", p.id),
    };
    tx.execute(
        "INSERT INTO premises (id, label, text, severity, lat, lon, radius_m, polygon, min_lat,
                               min_lon, max_lat, max_lon, expires_at, created_by, created_at,
                               removed_at, removed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            p.id,
            p.label,
            p.text,
            p.severity,
            point.map(|p| p.0),
            point.map(|p| p.1),
            p.radius_m,
            polygon,
            south,
            west,
            north,
            east,
            p.expires_at.map(|t| t.0),
            p.created_by,
            p.created_at.0,
            p.removed_at.map(|t| t.0),
            p.removed_by
        ],
    )?;
    Ok(())
}

/// Reads a FeatureCollection and hands each feature to `each` as it is parsed.
pub fn for_each_feature<P: DeserializeOwned>(
    input: impl Read,
    each: impl FnMut(Feature<P>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut state = Features {
        each,
        count: 0,
        error: None,
        _properties: PhantomData,
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let parsed = (&mut state).deserialize(&mut de);
    if let Some(error) = state.error {
        return Err(error);
    }
    parsed?;
    de.end()?;
    Ok(state.count)
}

struct Features<P, F> {
    each: F,
    count: u64,
    /// The first error of `each`, which stops the parse.
    error: Option<anyhow::Error>,
    _properties: PhantomData<P>,
}

impl<'de, P, F> DeserializeSeed<'de> for &mut Features<P, F>
where
    P: DeserializeOwned,
    F: FnMut(Feature<P>) -> anyhow::Result<()>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, P, F> Visitor<'de> for &mut Features<P, F>
where
    P: DeserializeOwned,
    F: FnMut(Feature<P>) -> anyhow::Result<()>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GeoJSON FeatureCollection")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut typed = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => {
                    let kind: String = map.next_value()?;
                    if kind != "FeatureCollection" {
                        return Err(serde::de::Error::custom(format!(
                            "type is {kind:?}, not \"FeatureCollection\""
                        )));
                    }
                    typed = true;
                }
                "features" => map.next_value_seed(FeatureList(&mut *self))?,
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "unexpected member {other:?} in the FeatureCollection"
                    )))
                }
            }
        }
        if typed {
            Ok(())
        } else {
            Err(serde::de::Error::custom(
                "no \"type\": \"FeatureCollection\"",
            ))
        }
    }
}

struct FeatureList<'s, P, F>(&'s mut Features<P, F>);

impl<'de, P, F> DeserializeSeed<'de> for FeatureList<'_, P, F>
where
    P: DeserializeOwned,
    F: FnMut(Feature<P>) -> anyhow::Result<()>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, P, F> Visitor<'de> for FeatureList<'_, P, F>
where
    P: DeserializeOwned,
    F: FnMut(Feature<P>) -> anyhow::Result<()>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(feature) = seq.next_element::<Feature<P>>()? {
            let n = self.0.count + 1;
            if let Err(e) = (self.0.each)(feature) {
                self.0.error = Some(e.context(format!("feature {n}")));
                return Err(serde::de::Error::custom("stopped"));
            }
            self.0.count = n;
        }
        Ok(())
    }
}
