//! Reads addresses, named streets and places from a `.osm.pbf` file in two passes (ways, then
//! nodes), so only the nodes of interesting ways are held in memory. Relations are skipped.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use osmpbf::{Element, ElementReader};

use super::{Address, Geocoder, Place, StreetWay};

/// Keys that make a named object worth finding by name.
const PLACE_KEYS: [&str; 7] = [
    "place", "amenity", "shop", "tourism", "leisure", "building", "office",
];

/// The tags the geocoder reads from one element; `None` when it has nothing to offer.
#[derive(Debug, Default, PartialEq)]
struct Tagged {
    street: Option<String>,
    housenumber: Option<String>,
    city: Option<String>,
    postcode: Option<String>,
    name: Option<String>,
    highway: bool,
    place: bool,
}

impl Tagged {
    fn read<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut t = Self::default();
        for (key, value) in tags {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key {
                "addr:street" => t.street = Some(value.to_owned()),
                "addr:housenumber" => t.housenumber = Some(value.to_owned()),
                "addr:city" => t.city = Some(value.to_owned()),
                "addr:postcode" => t.postcode = Some(value.to_owned()),
                "name" => t.name = Some(value.to_owned()),
                "highway" => t.highway = true,
                k if PLACE_KEYS.contains(&k) => t.place = true,
                _ => {}
            }
        }
        let addressed = t.street.is_some() && t.housenumber.is_some();
        let named = t.name.is_some() && (t.highway || t.place);
        (addressed || named).then_some(t)
    }

    /// Adds what this element contributes at `(lat, lon)`.
    fn add(&self, (lat, lon): (f64, f64), out: &mut Parts) {
        if let (Some(street), Some(housenumber)) = (&self.street, &self.housenumber) {
            out.addresses.push(Address {
                street: street.clone(),
                housenumber: housenumber.clone(),
                city: self.city.clone(),
                postcode: self.postcode.clone(),
                lat,
                lon,
            });
        }
        if let (Some(name), true) = (&self.name, self.place) {
            out.places.push(Place {
                name: name.clone(),
                street: self.street.clone(),
                housenumber: self.housenumber.clone(),
                city: self.city.clone(),
                postcode: self.postcode.clone(),
                lat,
                lon,
            });
        }
    }
}

#[derive(Debug, Default)]
struct Parts {
    addresses: Vec<Address>,
    places: Vec<Place>,
    ways: Vec<StreetWay>,
}

/// Builds the geocoder of a PBF file.
///
/// # Errors
/// When the file cannot be read.
pub fn import_pbf(path: &Path) -> anyhow::Result<Geocoder> {
    crate::osm_pbf::guarded(path, || import(path))
}

fn import(path: &Path) -> anyhow::Result<Geocoder> {
    let mut ways: Vec<(Tagged, Vec<i64>)> = Vec::new();
    ElementReader::from_path(path)
        .with_context(|| format!("opening {}", path.display()))?
        .for_each(|element| {
            if let Element::Way(w) = element {
                if let Some(tagged) = Tagged::read(w.tags()) {
                    ways.push((tagged, w.refs().collect()));
                }
            }
        })
        .with_context(|| format!("reading ways of {}", path.display()))?;
    let mut coordinates: HashMap<i64, (f64, f64)> = ways
        .iter()
        .flat_map(|(_, refs)| refs.iter().map(|id| (*id, (f64::NAN, f64::NAN))))
        .collect();
    let mut parts = Parts::default();
    let mut node = |id: i64, position: (f64, f64), tagged: Option<Tagged>, parts: &mut Parts| {
        if let Some(slot) = coordinates.get_mut(&id) {
            *slot = position;
        }
        if let Some(tagged) = tagged {
            tagged.add(position, parts);
        }
    };
    ElementReader::from_path(path)?
        .for_each(|element| match element {
            Element::DenseNode(n) => node(
                n.id(),
                (n.lat(), n.lon()),
                Tagged::read(n.tags()),
                &mut parts,
            ),
            Element::Node(n) => node(
                n.id(),
                (n.lat(), n.lon()),
                Tagged::read(n.tags()),
                &mut parts,
            ),
            _ => {}
        })
        .with_context(|| format!("reading nodes of {}", path.display()))?;
    for (tagged, refs) in ways {
        let points: Vec<(f64, f64)> = refs
            .iter()
            .filter_map(|id| coordinates.get(id).copied())
            .filter(|p| p.0.is_finite())
            .collect();
        let Some(centre) = centroid(&points) else {
            continue;
        };
        tagged.add(centre, &mut parts);
        if let (Some(name), true) = (&tagged.name, tagged.highway) {
            parts.ways.push(StreetWay {
                name: name.clone(),
                points,
            });
        }
    }
    Ok(Geocoder::new(parts.addresses, parts.ways, parts.places))
}

/// Mean of a way's node positions; a closed way's repeated first node counts once.
fn centroid(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let open = match points {
        [first, .., last] if first == last => &points[..points.len() - 1],
        _ => points,
    };
    if open.is_empty() {
        return None;
    }
    let n = open.len() as f64;
    let (lat, lon) = open.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    Some((lat / n, lon / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_useful_tags() {
        let t = Tagged::read(
            [
                ("addr:street", "Aleksanterinkatu"),
                ("addr:housenumber", "52"),
                ("building", "yes"),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(t.street.as_deref(), Some("Aleksanterinkatu"));
        assert!(t.place && t.name.is_none());
        assert!(Tagged::read([("building", "yes")].into_iter()).is_none());
        assert!(Tagged::read([("name", "X"), ("natural", "tree")].into_iter()).is_none());
        assert!(
            Tagged::read([("name", "Esplanadi"), ("highway", "footway")].into_iter()).is_some()
        );
    }

    #[test]
    fn centroid_of_a_closed_way_counts_each_corner_once() {
        let square = [(0.0, 0.0), (0.0, 2.0), (2.0, 2.0), (2.0, 0.0), (0.0, 0.0)];
        assert_eq!(centroid(&square), Some((1.0, 1.0)));
        assert_eq!(centroid(&[]), None);
    }
}
