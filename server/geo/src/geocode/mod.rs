//! Offline geocoding from the agency's OpenStreetMap extract: addresses, streets and named
//! places, searchable by forgiving text and by position (nearest address or street).

mod import;
mod normalize;
mod reverse;
mod search;

use std::collections::HashMap;

use serde::Serialize;

pub use import::import_pbf;
pub use normalize::normalize;

use normalize::housenumber_key;
use reverse::Grid;

/// An addressed node or way (a way stands at the centroid of its nodes).
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub street: String,
    pub housenumber: String,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub lat: f64,
    pub lon: f64,
}

/// A named point of interest: a place, amenity, shop, building and the like.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: String,
    pub street: Option<String>,
    pub housenumber: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub lat: f64,
    pub lon: f64,
}

/// One named highway way as drawn on the map: its nodes' coordinates in order.
#[derive(Debug, Clone, PartialEq)]
pub struct StreetWay {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// What a hit is; addresses rank above streets, streets above places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    Address,
    Street,
    Place,
}

/// One search result, shaped for the console: a label to show and a position to fly to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GeocodeHit {
    pub kind: HitKind,
    pub label: String,
    pub street: Option<String>,
    pub housenumber: Option<String>,
    pub name: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// Match class (3 exact address, 2 address prefix, 1 street, 0 place) plus a text
    /// similarity below 1, so results sort by class first.
    pub score: f64,
}

/// The nearest address (or street) to a position.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReverseHit {
    #[serde(flatten)]
    pub hit: GeocodeHit,
    pub distance_m: f64,
}

/// A street: all same-named ways merged, with the addresses that name it.
#[derive(Debug)]
struct Street {
    name: String,
    key: String,
    /// A point on the street to show for a street hit.
    lat: f64,
    lon: f64,
    lines: Vec<Vec<(f64, f64)>>,
    addresses: Vec<u32>,
}

/// The search and reverse indexes over one extract. Immutable once built; share it in an `Arc`.
#[derive(Debug)]
pub struct Geocoder {
    addresses: Vec<Address>,
    /// Matching form of each address's house number, by address index.
    housenumbers: Vec<String>,
    streets: Vec<Street>,
    places: Vec<Place>,
    /// Matching form of each place's name, by place index.
    place_keys: Vec<String>,
    grid: Grid,
}

impl Geocoder {
    /// Indexes addresses, street ways (merged by name) and places.
    pub fn new(addresses: Vec<Address>, ways: Vec<StreetWay>, places: Vec<Place>) -> Self {
        let mut streets: Vec<Street> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut street_of = |name: &str, streets: &mut Vec<Street>| -> Option<usize> {
            let key = normalize(name);
            if key.is_empty() {
                return None;
            }
            Some(*by_key.entry(key.clone()).or_insert_with(|| {
                streets.push(Street {
                    name: name.to_owned(),
                    key,
                    lat: f64::NAN,
                    lon: f64::NAN,
                    lines: Vec::new(),
                    addresses: Vec::new(),
                });
                streets.len() - 1
            }))
        };
        for way in ways.into_iter().filter(|w| !w.points.is_empty()) {
            if let Some(s) = street_of(&way.name, &mut streets) {
                streets[s].lines.push(way.points);
            }
        }
        for (i, address) in addresses.iter().enumerate() {
            if let Some(s) = street_of(&address.street, &mut streets) {
                streets[s].addresses.push(i as u32);
            }
        }
        for street in &mut streets {
            (street.lat, street.lon) = representative_point(street, &addresses);
        }
        let housenumbers = addresses
            .iter()
            .map(|a| housenumber_key(&a.housenumber))
            .collect();
        let place_keys = places.iter().map(|p| normalize(&p.name)).collect();
        let grid = Grid::build(&addresses, &streets);
        Self {
            addresses,
            housenumbers,
            streets,
            places,
            place_keys,
            grid,
        }
    }

    pub fn address_count(&self) -> usize {
        self.addresses.len()
    }

    pub fn street_count(&self) -> usize {
        self.streets.len()
    }

    pub fn place_count(&self) -> usize {
        self.places.len()
    }

    /// Every indexed address, for checks that walk the whole extract.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    fn address_hit(&self, index: usize, score: f64) -> GeocodeHit {
        let a = &self.addresses[index];
        let mut label = format!("{} {}", a.street, a.housenumber);
        if let Some(city) = &a.city {
            label = format!("{label}, {city}");
        }
        GeocodeHit {
            kind: HitKind::Address,
            label,
            street: Some(a.street.clone()),
            housenumber: Some(a.housenumber.clone()),
            name: None,
            city: a.city.clone(),
            postcode: a.postcode.clone(),
            lat: a.lat,
            lon: a.lon,
            score,
        }
    }

    fn street_hit(&self, index: usize, (lat, lon): (f64, f64), score: f64) -> GeocodeHit {
        let s = &self.streets[index];
        let city = s
            .addresses
            .iter()
            .find_map(|a| self.addresses[*a as usize].city.clone());
        let label = match &city {
            Some(city) => format!("{}, {city}", s.name),
            None => s.name.clone(),
        };
        GeocodeHit {
            kind: HitKind::Street,
            label,
            street: Some(s.name.clone()),
            housenumber: None,
            name: None,
            city,
            postcode: None,
            lat,
            lon,
            score,
        }
    }

    fn place_hit(&self, index: usize, score: f64) -> GeocodeHit {
        let p = &self.places[index];
        let label = match (&p.street, &p.housenumber) {
            (Some(street), Some(number)) => format!("{}, {street} {number}", p.name),
            (Some(street), None) => format!("{}, {street}", p.name),
            _ => p.name.clone(),
        };
        GeocodeHit {
            kind: HitKind::Place,
            label,
            street: p.street.clone(),
            housenumber: p.housenumber.clone(),
            name: Some(p.name.clone()),
            city: p.city.clone(),
            postcode: p.postcode.clone(),
            lat: p.lat,
            lon: p.lon,
            score,
        }
    }
}

/// The middle node of the street's longest way, or its middle address when no way is mapped.
fn representative_point(street: &Street, addresses: &[Address]) -> (f64, f64) {
    if let Some(line) = street.lines.iter().max_by_key(|l| l.len()) {
        return line[line.len() / 2];
    }
    let a = &addresses[street.addresses[street.addresses.len() / 2] as usize];
    (a.lat, a.lon)
}

#[cfg(test)]
mod tests;
