//! Geocoder checks: ranking and reverse lookups on a small made-up map, and coverage of the
//! whole Helsinki extract (every address found by its own street and number, and back).

use super::normalize::housenumber_key;
use super::*;

fn address(street: &str, number: &str, lat: f64, lon: f64) -> Address {
    Address {
        street: street.into(),
        housenumber: number.into(),
        city: Some("Helsinki".into()),
        postcode: Some("00100".into()),
        lat,
        lon,
    }
}

fn small_map() -> Geocoder {
    let addresses = vec![
        address("Aleksanterinkatu", "52", 60.1690, 24.9400),
        address("Aleksanterinkatu", "5a", 60.1691, 24.9410),
        address("Aleksanterinkatu", "5", 60.1692, 24.9420),
        address("Mannerheimintie", "5", 60.1700, 24.9380),
        address("Töölöntori", "1", 60.1800, 24.9250),
        address("세종대로", "110", 60.1500, 24.9000),
    ];
    let ways = vec![
        StreetWay {
            name: "Aleksanterinkatu".into(),
            points: vec![(60.1690, 24.9390), (60.1692, 24.9430)],
        },
        StreetWay {
            name: "Aleksanterinkatu".into(),
            points: vec![(60.1692, 24.9430), (60.1694, 24.9470)],
        },
        StreetWay {
            name: "Esplanadi".into(),
            points: vec![(60.1670, 24.9400), (60.1670, 24.9500)],
        },
    ];
    let places = vec![Place {
        name: "Aleksanterin teatteri".into(),
        street: None,
        housenumber: None,
        city: None,
        postcode: None,
        lat: 60.1650,
        lon: 24.9300,
    }];
    Geocoder::new(addresses, ways, places)
}

fn labels(hits: &[GeocodeHit]) -> Vec<&str> {
    hits.iter().map(|h| h.label.as_str()).collect()
}

#[test]
fn exact_number_then_prefixes_then_street() {
    let g = small_map();
    let hits = g.search("Aleksanterinkatu 5", 10);
    assert_eq!(
        labels(&hits)[..4],
        [
            "Aleksanterinkatu 5, Helsinki",
            "Aleksanterinkatu 52, Helsinki",
            "Aleksanterinkatu 5a, Helsinki",
            "Aleksanterinkatu, Helsinki"
        ]
    );
    assert_eq!(hits[0].kind, HitKind::Address);
    assert_eq!(hits[3].kind, HitKind::Street);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn forgiving_queries() {
    let g = small_map();
    for q in [
        "aleksanterinkatu 52",
        "52 Aleksanterinkatu",
        "  ALEKSANTERINKATU,  52 ",
        "Aleksanterink 52",
        "Aleksanterinaktu 52",
        "Aleksanterinkatu 52, Helsinki",
    ] {
        let hits = g.search(q, 5);
        assert_eq!(hits[0].label, "Aleksanterinkatu 52, Helsinki", "{q}");
    }
    assert_eq!(
        g.search("toolontori 1", 1)[0].street.as_deref(),
        Some("Töölöntori")
    );
    assert_eq!(
        g.search("Tӧölöntori 1", 1)[0].street.as_deref(),
        Some("Töölöntori")
    );
    assert_eq!(
        g.search("세종대로 110", 1)[0].housenumber.as_deref(),
        Some("110")
    );
}

#[test]
fn streets_rank_above_places_and_merge() {
    let g = small_map();
    let hits = g.search("aleksanterin", 10);
    let kinds: Vec<HitKind> = hits.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [HitKind::Street, HitKind::Place]);
    assert_eq!(
        g.street_count(),
        5,
        "two Aleksanterinkatu ways are one street"
    );
    assert_eq!(g.search("esplanadi", 1)[0].kind, HitKind::Street);
    assert!(g.search("   ", 10).is_empty());
    assert!(g.search("zzzz", 10).is_empty());
}

#[test]
fn reverse_prefers_near_addresses_then_streets() {
    let g = small_map();
    let hit = g.reverse(60.16901, 24.94001).unwrap();
    assert_eq!(hit.hit.label, "Aleksanterinkatu 52, Helsinki");
    assert!(hit.distance_m < 2.0);
    // 200 m south of the addresses, 22 m north of the Esplanadi way.
    let hit = g.reverse(60.1672, 24.9450).unwrap();
    assert_eq!(hit.hit.kind, HitKind::Street);
    assert_eq!(hit.hit.street.as_deref(), Some("Esplanadi"));
    assert!((hit.distance_m - 22.2).abs() < 1.0, "{}", hit.distance_m);
    assert!(g.reverse(61.0, 25.0).is_none());
}

#[test]
fn broken_and_long_street_segments_stay_cheap_and_found() {
    // A node at 0,0 (a classic OSM error) and one off the globe in the same street: skipped,
    // instead of filing the segment under hundreds of millions of cells.
    let g = Geocoder::new(
        Vec::new(),
        vec![
            StreetWay {
                name: "Broken".into(),
                points: vec![(60.17, 24.94), (0.0, 0.0), (5000.0, 24.94)],
            },
            // 20 km due east: walked, not boxed, and still found anywhere along it.
            StreetWay {
                name: "Long road".into(),
                points: vec![(60.30, 24.80), (60.30, 25.16)],
            },
        ],
        Vec::new(),
    );
    let hit = g.reverse(60.3001, 24.98).unwrap();
    assert_eq!(hit.hit.street.as_deref(), Some("Long road"));
    assert!(hit.distance_m < 20.0, "{}", hit.distance_m);
    assert!(g.reverse(30.0, 12.0).is_none());
}

#[test]
fn helsinki_addresses_are_found_both_ways() {
    let path = crate::helsinki_pbf();
    let g = import_pbf(&path).unwrap();
    let total = g.address_count();
    assert!(total > 1_000, "{total} addresses");
    let same = |hit: &GeocodeHit, a: &Address| {
        hit.street.as_deref().map(normalize) == Some(normalize(&a.street))
            && hit.housenumber.as_deref().map(housenumber_key)
                == Some(housenumber_key(&a.housenumber))
    };
    let (mut forward, mut backward) = (0, 0);
    let mut misses = Vec::new();
    for a in g.addresses() {
        let hits = g.search(&format!("{} {}", a.street, a.housenumber), 3);
        if hits.first().is_some_and(|h| same(h, a)) {
            forward += 1;
        } else if misses.len() < 10 {
            misses.push(format!("{} {}", a.street, a.housenumber));
        }
        if g.reverse(a.lat, a.lon).is_some_and(|r| same(&r.hit, a)) {
            backward += 1;
        }
    }
    let percent = |n: usize| 100.0 * n as f64 / total as f64;
    println!(
        "geocoder on Helsinki: {total} addresses, {} streets, {} places; forward {forward} ({:.1} %), reverse {backward} ({:.1} %); forward misses e.g. {misses:?}",
        g.street_count(),
        g.place_count(),
        percent(forward),
        percent(backward),
    );
    assert!(
        percent(forward) >= 95.0,
        "forward {:.1} %",
        percent(forward)
    );
    assert!(
        percent(backward) >= 95.0,
        "reverse {:.1} %",
        percent(backward)
    );
    let hits = g.search("Aleksanterinkatu 52", 1);
    assert_eq!(hits[0].housenumber.as_deref(), Some("52"));
}
