//! Premise information: what the agency knows about a place before anyone calls from it (a
//! hazard such as a dangerous dog or a violent occupant, or a note such as a gate code), kept as
//! a point with a radius or as a polygon, with a severity and an optional expiry.

use serde::Serialize;

use crate::domain::{coordinates, optional_text, Invalid};
use dispatch_geo::fence::Fence;
use dispatch_geo::haversine_m;

/// Longest label and text.
const MAX_LABEL: usize = 200;
const MAX_TEXT: usize = 2000;
/// Radius of a point entry when none is given, and the largest allowed.
pub const DEFAULT_RADIUS_M: f64 = 30.0;
const MAX_RADIUS_M: f64 = 5000.0;

/// How much an officer must heed an entry; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PremiseSeverity {
    Info,
    Caution,
    Danger,
}

impl PremiseSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Caution => "caution",
            Self::Danger => "danger",
        }
    }

    /// # Errors
    /// When the text is not a known severity.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "info" => Ok(Self::Info),
            "caution" => Ok(Self::Caution),
            "danger" => Ok(Self::Danger),
            _ => Err(Invalid::field(
                "severity",
                format_args!("must be info, caution or danger (got {s:?})"),
            )),
        }
    }
}

/// Where an entry applies.
#[derive(Debug, Clone, PartialEq)]
pub enum PremiseShape {
    /// Within `radius_m` of a point.
    Point { lat: f64, lon: f64, radius_m: f64 },
    /// Inside a polygon of `(lat, lon)` vertices (closed implicitly).
    Polygon(Vec<(f64, f64)>),
}

impl PremiseShape {
    /// # Errors
    /// A coordinate out of range, a radius that is not 1 to 5000 m, or a polygon the geofence
    /// code refuses.
    pub fn point(lat: f64, lon: f64, radius_m: Option<f64>) -> Result<Self, Invalid> {
        let (lat, lon) = coordinates(lat, lon)?;
        let radius_m = radius_m.unwrap_or(DEFAULT_RADIUS_M);
        if !(1.0..=MAX_RADIUS_M).contains(&radius_m) {
            return Err(Invalid::field(
                "radius_m",
                format_args!("must be 1 to {MAX_RADIUS_M} (got {radius_m})"),
            ));
        }
        Ok(Self::Point { lat, lon, radius_m })
    }

    /// # Errors
    /// As [`dispatch_geo::fence::Fence::new`].
    pub fn polygon(mut vertices: Vec<(f64, f64)>) -> Result<Self, Invalid> {
        // GeoJSON rings repeat the first vertex at the end.
        if vertices.len() > 3 && vertices.first() == vertices.last() {
            vertices.pop();
        }
        Fence::new(vertices.clone())?;
        Ok(Self::Polygon(vertices))
    }

    /// Whether `(lat, lon)` is in the shape.
    pub fn holds(&self, lat: f64, lon: f64) -> bool {
        match self {
            Self::Point {
                lat: plat,
                lon: plon,
                radius_m,
            } => haversine_m(*plat, *plon, lat, lon) <= *radius_m,
            Self::Polygon(vertices) => {
                Fence::new(vertices.clone()).is_ok_and(|fence| fence.contains(lat, lon))
            }
        }
    }

    /// South-west and north-east corners of a box holding the shape.
    pub fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        match self {
            Self::Point { lat, lon, radius_m } => {
                // A little more than the radius: the circle's widest longitude lies slightly
                // poleward of its centre, where longitude degrees are shorter.
                let (dlat, dlon) = dispatch_geo::degrees_spanned(*lat, radius_m * 1.01);
                ((lat - dlat, lon - dlon), (lat + dlat, lon + dlon))
            }
            Self::Polygon(vertices) => vertices.iter().fold(
                ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN)),
                |(lo, hi), &(lat, lon)| {
                    (
                        (lo.0.min(lat), lo.1.min(lon)),
                        (hi.0.max(lat), hi.1.max(lon)),
                    )
                },
            ),
        }
    }
}

/// A validated premise entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPremise {
    pub label: String,
    pub text: String,
    pub severity: PremiseSeverity,
    pub shape: PremiseShape,
    pub expires_at_ms: Option<i64>,
}

impl NewPremise {
    /// # Errors
    /// The first field that fails validation.
    pub fn parse(
        label: &str,
        text: &str,
        severity: &str,
        shape: PremiseShape,
        expires_at_ms: Option<i64>,
    ) -> Result<Self, Invalid> {
        let required = |name: &str, value: &str, max| {
            optional_text(name, Some(value.to_owned()), max)?
                .ok_or_else(|| Invalid::field(name, "must not be empty"))
        };
        Ok(Self {
            label: required("label", label, MAX_LABEL)?,
            text: required("text", text, MAX_TEXT)?,
            severity: PremiseSeverity::parse(severity.trim())?,
            shape,
            expires_at_ms,
        })
    }
}

/// A premise entry as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Premise {
    pub id: i64,
    pub label: String,
    pub text: String,
    pub severity: PremiseSeverity,
    /// A point entry's centre and radius.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub radius_m: Option<f64>,
    /// A polygon entry's vertices, `[lat, lon]`.
    pub polygon: Option<Vec<[f64; 2]>>,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

impl Premise {
    /// Where it applies.
    pub fn shape(&self) -> Option<PremiseShape> {
        match (&self.polygon, self.lat, self.lon, self.radius_m) {
            (Some(p), _, _, _) => Some(PremiseShape::Polygon(
                p.iter().map(|v| (v[0], v[1])).collect(),
            )),
            (None, Some(lat), Some(lon), Some(radius_m)) => {
                Some(PremiseShape::Point { lat, lon, radius_m })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_holds_what_is_within_its_radius() {
        let shape = PremiseShape::point(60.17, 24.94, Some(50.0)).unwrap();
        assert!(shape.holds(60.1703, 24.94)); // about 33 m north
        assert!(!shape.holds(60.1706, 24.94)); // about 67 m north
        let ((s, w), (n, e)) = shape.bounds();
        assert!(s < 60.1696 && n > 60.1704 && w < 24.9392 && e > 24.9408);
    }

    #[test]
    fn a_polygon_holds_its_inside_and_drops_a_closing_vertex() {
        let square = vec![
            (60.0, 24.0),
            (60.0, 24.1),
            (60.1, 24.1),
            (60.1, 24.0),
            (60.0, 24.0),
        ];
        let shape = PremiseShape::polygon(square).unwrap();
        let PremiseShape::Polygon(v) = &shape else {
            panic!("not a polygon")
        };
        assert_eq!(v.len(), 4);
        assert!(shape.holds(60.05, 24.05));
        assert!(!shape.holds(60.15, 24.05));
    }

    #[test]
    fn bad_entries_name_the_field() {
        let point = PremiseShape::point(60.0, 24.0, None).unwrap();
        let e = NewPremise::parse(" ", "x", "danger", point.clone(), None).unwrap_err();
        assert!(e.0.contains("`label`"), "{e}");
        let e = NewPremise::parse("Dog", "x", "severe", point, None).unwrap_err();
        assert!(e.0.contains("`severity`"), "{e}");
        let e = PremiseShape::point(60.0, 24.0, Some(0.0)).unwrap_err();
        assert!(e.0.contains("`radius_m`"), "{e}");
        let e = PremiseShape::polygon(vec![(60.0, 24.0), (60.1, 24.1)]).unwrap_err();
        assert!(e.0.contains("`polygon`"), "{e}");
    }
}
