//! On-disk cache of the imported road network, keyed by the SHA-256 of the map file, so that a
//! restart does not parse a large extract again. A damaged cache is ignored and rewritten.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::graph::{Direction, RoadGraph, RoadGraphBuilder};
use super::import::read_pbf;

const MAGIC: &[u8; 8] = b"DRGRAPH1";

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
    if let Some(builder) = fs::read(&cache).ok().and_then(|b| decode(&b)) {
        return Ok((builder.build(), Origin::Cache));
    }
    let builder = read_pbf(pbf)?;
    if let Err(e) = write_atomically(&cache, &encode(&builder)) {
        tracing::warn!(cache = %cache.display(), error = %e, "could not cache the road graph");
    }
    let graph = builder.build();
    anyhow::ensure!(
        graph.segment_count() > 0,
        "{} holds no drivable road",
        pbf.display()
    );
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

fn encode(b: &RoadGraphBuilder) -> Vec<u8> {
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

/// Reads bytes written by [`encode`]; `None` for anything malformed.
fn decode(bytes: &[u8]) -> Option<RoadGraphBuilder> {
    let mut r = Reader(bytes);
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
    r.0.is_empty().then_some(b)
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
    use super::*;

    #[test]
    fn cache_round_trips_and_survives_damage() {
        let pbf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/helsinki.osm.pbf");
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_import(&pbf, dir.path()).unwrap();
        assert_eq!(origin, Origin::Imported);
        let (second, origin) = load_or_import(&pbf, dir.path()).unwrap();
        assert_eq!(origin, Origin::Cache);
        assert_eq!(
            (first.node_count(), first.segment_count()),
            (second.node_count(), second.segment_count())
        );
        let s = first.snap(60.169_52, 24.952_37, 150.0).unwrap();
        assert_eq!(Some(s), second.snap(60.169_52, 24.952_37, 150.0));
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
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode(b"nonsense").is_none());
        assert!(decode(&[]).is_none());
    }
}
