//! Forward search: splits a query into street words and a house number (either order), finds
//! streets by exact, prefix or fuzzy name, then ranks exact addresses over number prefixes,
//! streets and places.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::normalize::{housenumber_from_tokens, housenumber_key, normalize, similarity, tokens};
use super::{GeocodeHit, Geocoder, HitKind};

const EXACT_ADDRESS: f64 = 3.0;
const ADDRESS_PREFIX: f64 = 2.0;
const STREET: f64 = 1.0;
const PLACE: f64 = 0.0;
/// Streets considered per query; more only adds noise below the best names.
const STREET_CANDIDATES: usize = 20;

/// A query taken apart: street words, the house number and words after it (a city, say).
#[derive(Debug, PartialEq)]
struct Query {
    whole: String,
    street: String,
    number: Option<String>,
    locality: Vec<String>,
}

/// "52", "5a", "110": digits with a few ASCII letters at most. "12길" is a street word.
fn is_number(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_digit())
        && word.chars().all(|c| c.is_ascii_alphanumeric())
}

fn parse(raw: &str) -> Query {
    let whole = normalize(raw);
    let words = tokens(&whole);
    let Some(start) = words.iter().position(|w| is_number(w)) else {
        return Query {
            street: whole.clone(),
            whole,
            number: None,
            locality: Vec::new(),
        };
    };
    // A house number may go on with a letter or another number: "12 b", "5 7".
    let end = start
        + 1
        + words[start + 1..]
            .iter()
            .take_while(|w| {
                is_number(w) || (w.chars().count() == 1 && w.chars().all(char::is_alphabetic))
            })
            .count();
    let number = Some(housenumber_from_tokens(&words[start..end]));
    let (street, locality) = if start == 0 {
        (words[end..].join(" "), Vec::new())
    } else {
        let locality = words[end..].iter().map(|w| (*w).to_owned()).collect();
        (words[..start].join(" "), locality)
    };
    Query {
        whole: whole.clone(),
        street,
        number,
        locality,
    }
}

/// What makes two hits the same thing to an operator.
fn identity(hit: &GeocodeHit) -> (HitKind, String, String, String) {
    let text = |v: &Option<String>| v.as_deref().map(normalize).unwrap_or_default();
    (
        hit.kind,
        text(&hit.street),
        hit.housenumber
            .as_deref()
            .map(housenumber_key)
            .unwrap_or_default(),
        text(&hit.name),
    )
}

/// How well `query` names `key` (both normalised), in 0..1: equal, a prefix, a word prefix
/// inside, or a close spelling; `None` when it does not.
fn name_match(query: &str, key: &str) -> Option<f64> {
    if query.is_empty() {
        return None;
    }
    if query == key {
        return Some(1.0);
    }
    let ratio = query.chars().count() as f64 / key.chars().count() as f64;
    if key.starts_with(query) {
        return Some(0.7 + 0.25 * ratio);
    }
    if key.contains(&format!(" {query}")) {
        return Some(0.5 + 0.25 * ratio);
    }
    // A typo: only for words long enough to tell apart, starting alike and of similar length.
    let (q, k) = (query.chars().count(), key.chars().count());
    if q < 4 || q.abs_diff(k) * 4 > k || query.chars().next() != key.chars().next() {
        return None;
    }
    let s = similarity(query, key);
    (s >= 0.8).then_some(s * 0.8)
}

impl Geocoder {
    /// The best `limit` hits for a free-text query, best first.
    pub fn search(&self, raw: &str, limit: usize) -> Vec<GeocodeHit> {
        let query = parse(raw);
        if query.whole.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut hits = Vec::new();
        for (street, similarity) in self.matching_streets(&query.street) {
            let mut numbered = false;
            if let Some(number) = &query.number {
                for a in &self.streets[street].addresses {
                    let key = &self.housenumbers[*a as usize];
                    let (class, closeness) = if key == number {
                        (EXACT_ADDRESS, 1.0)
                    } else if key.starts_with(number.as_str()) {
                        (ADDRESS_PREFIX, number.len() as f64 / key.len() as f64)
                    } else {
                        continue;
                    };
                    numbered = true;
                    let local = f64::from(u8::from(self.in_locality(*a as usize, &query.locality)));
                    let score = class + 0.8 * similarity + 0.15 * closeness + 0.04 * local;
                    hits.push(self.address_hit(*a as usize, score));
                }
            }
            let s = &self.streets[street];
            let penalty = if query.number.is_some() && !numbered {
                0.1
            } else {
                0.0
            };
            hits.push(self.street_hit(street, (s.lat, s.lon), STREET + 0.9 * similarity - penalty));
        }
        for (i, key) in self.place_keys.iter().enumerate() {
            if let Some(similarity) = name_match(&query.whole, key) {
                hits.push(self.place_hit(i, PLACE + 0.9 * similarity));
            }
        }
        hits.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.label.len().cmp(&b.label.len()))
                .then_with(|| a.label.cmp(&b.label))
        });
        // The same address is often mapped twice (a building and an entrance node), and
        // spelt twice ("16 B", "16b").
        let mut seen = HashSet::new();
        hits.retain(|h| seen.insert(identity(h)));
        hits.truncate(limit);
        hits
    }

    /// Streets whose name the query's street words match, best first.
    fn matching_streets(&self, street: &str) -> Vec<(usize, f64)> {
        let mut found: Vec<(usize, f64)> = self
            .streets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| name_match(street, &s.key).map(|sim| (i, sim)))
            .collect();
        found.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));
        found.truncate(STREET_CANDIDATES);
        found
    }

    /// Whether the words after the number name the address's city or postcode.
    fn in_locality(&self, address: usize, words: &[String]) -> bool {
        let a = &self.addresses[address];
        let place = normalize(&format!(
            "{} {}",
            a.city.as_deref().unwrap_or(""),
            a.postcode.as_deref().unwrap_or("")
        ));
        !words.is_empty() && words.iter().all(|w| tokens(&place).contains(&w.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_orders() {
        let q = parse("Aleksanterinkatu 52");
        assert_eq!(
            (q.street.as_str(), q.number.as_deref()),
            ("aleksanterinkatu", Some("52"))
        );
        let q = parse("52 Aleksanterinkatu");
        assert_eq!(
            (q.street.as_str(), q.number.as_deref()),
            ("aleksanterinkatu", Some("52"))
        );
        let q = parse("Aleksanterinkatu 12 B, Helsinki");
        assert_eq!(q.number.as_deref(), Some("12b"));
        assert_eq!(q.locality, vec!["helsinki".to_owned()]);
        let q = parse("세종대로 110");
        assert_eq!(
            (q.street.as_str(), q.number.as_deref()),
            ("세종대로", Some("110"))
        );
        let q = parse("세종대로12길");
        assert_eq!((q.street.as_str(), q.number), ("세종대로12길", None));
    }

    #[test]
    fn name_match_orders_exact_prefix_fuzzy() {
        let exact = name_match("aleksanterinkatu", "aleksanterinkatu").unwrap();
        let prefix = name_match("aleksanterink", "aleksanterinkatu").unwrap();
        let fuzzy = name_match("aleksanterinaktu", "aleksanterinkatu").unwrap();
        assert!(exact > prefix && prefix > fuzzy, "{exact} {prefix} {fuzzy}");
        assert!(name_match("xyz", "aleksanterinkatu").is_none());
        assert!(name_match("", "aleksanterinkatu").is_none());
    }
}
