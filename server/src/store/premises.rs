//! The agency's premise information: entries added one by one or imported in one transaction,
//! removed (kept for the record), and looked up by location for intake and for the orders and
//! updates the tablets receive.

use super::sql::{params, SqlRow, Statements};
use dispatch_protocol::Hazard;

use super::{append_event, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis};
use crate::geo::premise::{NewPremise, Premise, PremiseSeverity, PremiseShape};

const PREMISE_COLUMNS: &str =
    "id, label, text, severity, lat, lon, radius_m, polygon, expires_at, created_at";

/// Entries in force (not removed, not expired) whose box holds the location `?1, ?2` at `?3`.
const IN_FORCE_AT: &str = "removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)
    AND min_lat <= ?1 AND max_lat >= ?1 AND min_lon <= ?2 AND max_lon >= ?2";

/// One row as the shared mapping reads it, from either driver.
struct PremiseRow {
    id: i64,
    label: String,
    text: String,
    severity: String,
    lat: Option<f64>,
    lon: Option<f64>,
    radius_m: Option<f64>,
    polygon: Option<String>,
    expires_at: Option<i64>,
    created_at: i64,
}

impl PremiseRow {
    fn into_premise(self) -> Premise {
        Premise {
            id: self.id,
            label: self.label,
            text: self.text,
            severity: PremiseSeverity::parse(&self.severity).unwrap_or(PremiseSeverity::Info),
            lat: self.lat,
            lon: self.lon,
            radius_m: self.radius_m,
            polygon: self
                .polygon
                .and_then(|p| serde_json::from_str::<Vec<[f64; 2]>>(&p).ok()),
            expires_at_ms: self.expires_at,
            created_at_ms: self.created_at,
        }
    }
}

/// The entries of `candidates` whose shape holds `(lat, lon)`, most severe first.
fn holding(candidates: Vec<Premise>, lat: f64, lon: f64) -> Vec<Premise> {
    let mut found: Vec<Premise> = candidates
        .into_iter()
        .filter(|p| p.shape().is_some_and(|s| s.holds(lat, lon)))
        .collect();
    found.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    found
}

impl Store {
    /// Stores `entries` in one transaction (all or none) with one `premises_added` event;
    /// returns their ids.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn add_premises(&self, entries: Vec<NewPremise>, actor: &Actor) -> Result<Vec<i64>> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                let now = now_ms();
                let mut ids = Vec::with_capacity(entries.len());
                for entry in &entries {
                    ids.push(insert_premise(tx, entry, &actor, now)?);
                }
                append_event(
                    tx,
                    now,
                    "premises_added",
                    &actor,
                    EventRefs::default(),
                    &serde_json::json!({ "ids": ids }),
                )?;
                Ok(ids)
            })
            .await
    }

    /// Removes an entry from use (the row stays, with who removed it and when).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or already removed entry.
    pub async fn remove_premise(&self, id: i64, actor: &Actor) -> Result<()> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                let now = now_ms();
                let removed = tx.run(
                    "UPDATE premises SET removed_at = ?1, removed_by = ?2
                     WHERE id = ?3 AND removed_at IS NULL",
                    params![now, actor.operator_id(), id],
                )?;
                if removed == 0 {
                    return Err(Error::NotFound(format!("premise entry {id}")));
                }
                append_event(
                    tx,
                    now,
                    "premise_removed",
                    &actor,
                    EventRefs::default(),
                    &serde_json::json!({ "id": id }),
                )
            })
            .await
    }

    /// Every entry in force, newest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn premises(&self) -> Result<Vec<Premise>> {
        let rows = self
            .reader
            .select(
                &format!(
                    "SELECT {PREMISE_COLUMNS} FROM premises
             WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > $1)
             ORDER BY id DESC"
                ),
                params![now_ms()],
            )
            .await?;
        Ok(rows.iter().map(|r| premise_row(r).into_premise()).collect())
    }

    /// The entries in force whose point or area holds `(lat, lon)`, most severe first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn premises_at(&self, lat: f64, lon: f64) -> Result<Vec<Premise>> {
        let rows = self
            .reader
            .select(
                &format!(
                    "SELECT {PREMISE_COLUMNS} FROM premises WHERE {}",
                    IN_FORCE_AT.replace('?', "$")
                ),
                params![lat, lon, now_ms()],
            )
            .await?;
        let candidates = rows.iter().map(|r| premise_row(r).into_premise()).collect();
        Ok(holding(candidates, lat, lon))
    }
}

/// A row of [`PREMISE_COLUMNS`].
fn premise_row(r: &SqlRow) -> PremiseRow {
    PremiseRow {
        id: r.col("id"),
        label: r.col("label"),
        text: r.col("text"),
        severity: r.col("severity"),
        lat: r.col("lat"),
        lon: r.col("lon"),
        radius_m: r.col("radius_m"),
        polygon: r.col("polygon"),
        expires_at: r.col("expires_at"),
        created_at: r.col("created_at"),
    }
}

fn insert_premise(
    tx: &mut dyn Statements,
    entry: &NewPremise,
    actor: &Actor,
    now: Millis,
) -> Result<i64> {
    let ((min_lat, min_lon), (max_lat, max_lon)) = entry.shape.bounds();
    let (point, polygon) = match &entry.shape {
        PremiseShape::Point { lat, lon, radius_m } => (Some((*lat, *lon, *radius_m)), None),
        PremiseShape::Polygon(vertices) => {
            let ring: Vec<[f64; 2]> = vertices.iter().map(|&(lat, lon)| [lat, lon]).collect();
            (None, Some(serde_json::to_string(&ring).unwrap_or_default()))
        }
    };
    tx.insert(
        "INSERT INTO premises (label, text, severity, lat, lon, radius_m, polygon,
             min_lat, min_lon, max_lat, max_lon, expires_at, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            &entry.label,
            &entry.text,
            entry.severity.as_str(),
            point.map(|p| p.0),
            point.map(|p| p.1),
            point.map(|p| p.2),
            polygon.as_ref(),
            min_lat,
            min_lon,
            max_lat,
            max_lon,
            entry.expires_at_ms,
            actor.operator_id(),
            now
        ],
    )
}

/// The hazards an order or update tells the officer about a location, inside the running write.
pub(super) fn hazards_at(
    tx: &mut dyn Statements,
    lat: f64,
    lon: f64,
    now: Millis,
) -> Result<Vec<Hazard>> {
    let sql = format!("SELECT {PREMISE_COLUMNS} FROM premises WHERE {IN_FORCE_AT}");
    let candidates = tx
        .select(&sql, params![lat, lon, now])?
        .iter()
        .map(|r| premise_row(r).into_premise())
        .collect();
    Ok(holding(candidates, lat, lon)
        .into_iter()
        .map(|p| Hazard {
            id: p.id,
            label: p.label,
            text: p.text,
            severity: p.severity.as_str().to_owned(),
        })
        .collect())
}
