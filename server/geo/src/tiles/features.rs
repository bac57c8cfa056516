//! The basemap's layers and features, and which OpenStreetMap tags put an object in which
//! layer at which zoom. Geometry is held in world coordinates (see `mercator`).

use super::mercator::World;

/// A vector-tile layer, in drawing order (first is drawn at the bottom).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Water,
    Green,
    Buildings,
    Roads,
    Labels,
}

impl Layer {
    pub const ALL: [Self; 5] = [
        Self::Water,
        Self::Green,
        Self::Buildings,
        Self::Roads,
        Self::Labels,
    ];

    /// The layer's name in tiles and in the style.
    pub fn name(self) -> &'static str {
        match self {
            Self::Water => "water",
            Self::Green => "green",
            Self::Buildings => "buildings",
            Self::Roads => "roads",
            Self::Labels => "labels",
        }
    }
}

/// One ring of an area, open (the first point is not repeated).
#[derive(Debug, Clone)]
pub struct Ring {
    pub points: Vec<World>,
    /// Outer rings come first, each followed by its holes.
    pub outer: bool,
}

#[derive(Debug, Clone)]
pub enum Shape {
    Point(World),
    Line(Vec<World>),
    Area(Vec<Ring>),
}

/// A feature ready to cut into tiles.
#[derive(Debug, Clone)]
pub struct Feature {
    pub shape: Shape,
    /// String properties, e.g. `class` and `name`.
    pub props: Vec<(&'static str, String)>,
    /// World bounding box `[min_x, min_y, max_x, max_y]`, to skip features off a tile quickly.
    pub bbox: [f64; 4],
    /// Below this zoom the feature is left out: small streets and buildings clutter a city view.
    pub min_zoom: u8,
}

impl Feature {
    pub fn new(shape: Shape, props: Vec<(&'static str, String)>, min_zoom: u8) -> Self {
        let mut bbox = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        let mut grow = |p: &World| {
            bbox = [
                bbox[0].min(p[0]),
                bbox[1].min(p[1]),
                bbox[2].max(p[0]),
                bbox[3].max(p[1]),
            ];
        };
        match &shape {
            Shape::Point(p) => grow(p),
            Shape::Line(points) => points.iter().for_each(&mut grow),
            Shape::Area(rings) => rings.iter().flat_map(|r| &r.points).for_each(&mut grow),
        }
        Self {
            shape,
            props,
            bbox,
            min_zoom,
        }
    }

    pub fn intersects(&self, b: &[f64; 4]) -> bool {
        self.bbox[0] <= b[2] && self.bbox[2] >= b[0] && self.bbox[1] <= b[3] && self.bbox[3] >= b[1]
    }
}

/// The layer and `class` of a way or multipolygon from its tags: buildings first, then water
/// and green areas, then roads (not for `area=yes` squares). `None` for anything else.
pub fn classify<'a>(tags: &[(&'a str, &'a str)]) -> Option<(Layer, &'a str)> {
    let get = |key: &str| tags.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if let Some(b) = get("building").filter(|v| *v != "no") {
        return Some((Layer::Buildings, b));
    }
    for (key, value) in tags {
        let layer = match (*key, *value) {
            ("natural", "water") | ("waterway", "riverbank") | ("landuse", "basin") => Layer::Water,
            ("leisure", "park")
            | ("landuse", "grass" | "forest" | "meadow" | "recreation_ground")
            | ("natural", "wood") => Layer::Green,
            _ => continue,
        };
        return Some((layer, value));
    }
    match (get("highway"), get("area")) {
        (Some(h), area) if area != Some("yes") => Some((Layer::Roads, h)),
        _ => None,
    }
}

/// The lowest zoom at which a feature of `layer` and `class` is drawn.
pub fn min_zoom(layer: Layer, class: &str) -> u8 {
    match layer {
        Layer::Water | Layer::Green => 0,
        Layer::Buildings => 13,
        Layer::Roads => match class.trim_end_matches("_link") {
            "motorway" | "trunk" | "primary" => 0,
            "secondary" | "tertiary" => 10,
            "residential" | "unclassified" | "living_street" | "road" | "service"
            | "pedestrian" => 13,
            _ => 14,
        },
        Layer::Labels => 15,
    }
}

/// The label of a named node, as `(kind, class, name)`: places and amenities.
pub fn label<'a>(tags: &[(&'a str, &'a str)]) -> Option<(&'static str, &'a str, &'a str)> {
    let name = tags.iter().find(|(k, _)| *k == "name")?.1;
    tags.iter().find_map(|(k, v)| match *k {
        "place" => Some(("place", *v, name)),
        "amenity" => Some(("amenity", *v, name)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_to_layers() {
        assert_eq!(
            classify(&[("highway", "primary"), ("name", "Mannerheimintie")]),
            Some((Layer::Roads, "primary"))
        );
        assert_eq!(
            classify(&[("building", "yes"), ("amenity", "school")]),
            Some((Layer::Buildings, "yes"))
        );
        assert_eq!(
            classify(&[("type", "multipolygon"), ("natural", "water")]),
            Some((Layer::Water, "water"))
        );
        assert_eq!(
            classify(&[("landuse", "grass")]),
            Some((Layer::Green, "grass"))
        );
        assert_eq!(
            classify(&[("highway", "pedestrian"), ("area", "yes")]),
            None
        );
        assert_eq!(classify(&[("building", "no")]), None);
        assert_eq!(classify(&[("natural", "coastline")]), None);
        assert_eq!(
            label(&[("name", "Kamppi"), ("place", "quarter")]),
            Some(("place", "quarter", "Kamppi"))
        );
        assert_eq!(label(&[("amenity", "cafe")]), None);
    }

    #[test]
    fn zooms_by_class() {
        assert_eq!(min_zoom(Layer::Roads, "primary_link"), 0);
        assert_eq!(min_zoom(Layer::Roads, "residential"), 13);
        assert_eq!(min_zoom(Layer::Roads, "footway"), 14);
        assert_eq!(min_zoom(Layer::Buildings, "yes"), 13);
    }
}
