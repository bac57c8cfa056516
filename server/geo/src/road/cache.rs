//! On-disk cache of the imported road network and its contraction hierarchy, keyed by the
//! SHA-256 of the map file, so that a restart neither parses a large extract nor contracts it
//! again. The cache ends with a SHA-256 of its own bytes: a damaged cache is ignored and
//! rewritten.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::contract::Hierarchy;
use super::graph::{Direction, RoadGraph, RoadGraphBuilder, Rows};
use super::import::read_pbf;

/// Format and version; version 1 had no hierarchy and no checksum.
const MAGIC: &[u8; 8] = b"DRGRAPH2";
const CHECKSUM_LEN: usize = 32;

/// Where the graph came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cache,
    Imported,
}

/// The road graph of `pbf`, from `cache_dir` when a cache of this exact file exists, else
/// imported and cached.
///
/// # Errors
/// When the map cannot be read or holds no drivable road. A cache that cannot be written
/// is logged, not an error.
pub fn load_or_import(pbf: &Path, cache_dir: &Path) -> anyhow::Result<(RoadGraph, Origin)> {
    let bytes = fs::read(pbf).with_context(|| format!("reading {}", pbf.display()))?;
    let cache = cache_dir.join(format!("roads-{}.bin", hex::encode(Sha256::digest(&bytes))));
    if let Some((builder, hierarchy)) = fs::read(&cache).ok().and_then(|b| decode(&b)) {
        return Ok((builder.build_with(Some(hierarchy)), Origin::Cache));
    }
    let builder = read_pbf(pbf)?;
    let mut bytes = encode_parts(&builder);
    let graph = builder.build();
    anyhow::ensure!(
        graph.segment_count() > 0,
        "{} holds no drivable road",
        pbf.display()
    );
    encode_hierarchy(&mut bytes, &graph.hierarchy);
    if let Err(e) = write_atomically(&cache, &bytes) {
        tracing::warn!(cache = %cache.display(), error = %e, "could not cache the road graph");
    }
    Ok((graph, Origin::Imported))
}

fn write_atomically(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(tmp, path)
}

fn direction_code(d: Direction) -> u8 {
    match d {
        Direction::Both => 0,
        Direction::Forward => 1,
        Direction::Backward => 2,
    }
}

/// Magic, nodes and segments: everything but the hierarchy and the checksum.
fn encode_parts(b: &RoadGraphBuilder) -> Vec<u8> {
    let (nodes, segments) = b.parts();
    let mut out = Vec::with_capacity(24 + nodes.len() * 16 + segments.len() * 17);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(nodes.len() as u64).to_le_bytes());
    for (lat, lon) in nodes {
        out.extend_from_slice(&lat.to_le_bytes());
        out.extend_from_slice(&lon.to_le_bytes());
    }
    out.extend_from_slice(&(segments.len() as u64).to_le_bytes());
    for &(a, b, speed, dir) in segments {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&speed.to_le_bytes());
        out.push(direction_code(dir));
    }
    out
}

/// Appends the hierarchy's upward edges, then the checksum of everything.
fn encode_hierarchy(out: &mut Vec<u8>, h: &Hierarchy) {
    for rows in [&h.up_out, &h.up_in] {
        for first in &rows.first {
            out.extend_from_slice(&first.to_le_bytes());
        }
        out.extend_from_slice(&(rows.head.len() as u64).to_le_bytes());
        for head in &rows.head {
            out.extend_from_slice(&head.to_le_bytes());
        }
        for cost in &rows.cost_ms {
            out.extend_from_slice(&cost.to_le_bytes());
        }
    }
    let checksum = Sha256::digest(&out[..]);
    out.extend_from_slice(&checksum);
}

/// Reads bytes written by [`encode_parts`] and [`encode_hierarchy`]; `None` for anything
/// malformed or damaged.
fn decode(bytes: &[u8]) -> Option<(RoadGraphBuilder, Hierarchy)> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(CHECKSUM_LEN)?)?;
    if Sha256::digest(body)[..] != *checksum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC {
        return None;
    }
    let n = usize::try_from(r.u64()?).ok()?;
    let mut b = RoadGraphBuilder::new();
    for _ in 0..n {
        let (lat, lon) = (r.f64()?, r.f64()?);
        b.add_node(lat, lon);
    }
    let m = usize::try_from(r.u64()?).ok()?;
    for _ in 0..m {
        let (a, c, speed) = (r.u32()?, r.u32()?, r.f64()?);
        let dir = match r.take(1)?[0] {
            0 => Direction::Both,
            1 => Direction::Forward,
            2 => Direction::Backward,
            _ => return None,
        };
        if a as usize >= n || c as usize >= n {
            return None;
        }
        b.add_segment(a, c, speed, dir);
    }
    let hierarchy = Hierarchy {
        up_out: decode_rows(&mut r, n)?,
        up_in: decode_rows(&mut r, n)?,
    };
    r.0.is_empty().then_some((b, hierarchy))
}

/// Compressed rows over `n` nodes, checked so that no search can index out of bounds.
fn decode_rows(r: &mut Reader, n: usize) -> Option<Rows> {
    let first = (0..=n).map(|_| r.u32()).collect::<Option<Vec<u32>>>()?;
    let m = usize::try_from(r.u64()?).ok()?;
    let ordered = first.first() == Some(&0)
        && first.windows(2).all(|w| w[0] <= w[1])
        && first.last().map(|&l| l as usize) == Some(m);
    let head = (0..m).map(|_| r.u32()).collect::<Option<Vec<u32>>>()?;
    let cost_ms = (0..m).map(|_| r.f64()).collect::<Option<Vec<f64>>>()?;
    let sound = head.iter().all(|&h| (h as usize) < n)
        && cost_ms.iter().all(|c| c.is_finite() && *c >= 0.0);
    (ordered && sound).then_some(Rows {
        first,
        head,
        cost_ms,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.take(8)?.try_into().ok().map(f64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DriveTime, EtaSearch};
    use super::*;

    #[test]
    fn cache_round_trips_and_survives_damage() {
        let pbf = crate::helsinki_pbf();
        let dir = tempfile::tempdir().unwrap();
        let (mut first, origin) = load_or_import(&pbf, dir.path()).unwrap();
        assert_eq!(origin, Origin::Imported);
        let (mut second, origin) = load_or_import(&pbf, dir.path()).unwrap();
        assert_eq!(origin, Origin::Cache);
        assert_eq!(
            (first.node_count(), first.segment_count()),
            (second.node_count(), second.segment_count())
        );
        let s = first.snap(60.169_52, 24.952_37, 150.0).unwrap();
        assert_eq!(Some(s), second.snap(60.169_52, 24.952_37, 150.0));
        // The hierarchy read back times routes exactly as the one just contracted.
        let n = u32::try_from(first.node_count()).unwrap();
        let sources: Vec<_> = [0, n / 2, n - 1]
            .iter()
            .map(|&v| {
                let (lat, lon) = first.node_position(v);
                first.snap(lat, lon, 150.0).unwrap()
            })
            .collect();
        first.set_eta_search(EtaSearch::Hierarchy);
        second.set_eta_search(EtaSearch::Hierarchy);
        let times = first.drive_times_to(&s, &sources, 3);
        assert!(
            times.iter().any(|t| matches!(t, DriveTime::Route(_))),
            "{times:?}"
        );
        assert_eq!(times, second.drive_times_to(&s, &sources, 3));
        // Truncate the cache: it is ignored and rewritten.
        let file = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let bytes = fs::read(&file).unwrap();
        fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(
            load_or_import(&pbf, dir.path()).unwrap().1,
            Origin::Imported
        );
        assert_eq!(fs::read(&file).unwrap(), bytes);
        // One changed byte in the hierarchy: the checksum catches it.
        let mut flipped = bytes.clone();
        flipped[bytes.len() - 100] ^= 1;
        fs::write(&file, &flipped).unwrap();
        assert_eq!(
            load_or_import(&pbf, dir.path()).unwrap().1,
            Origin::Imported
        );
        assert_eq!(fs::read(&file).unwrap(), bytes);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode(b"nonsense").is_none());
        assert!(decode(&[]).is_none());
    }
}
