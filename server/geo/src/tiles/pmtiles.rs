//! Tiles from an agency-supplied PMTiles v3 file (one file: header, varint-encoded directories
//! addressed by Hilbert tile id, optional leaf directories, tile data) instead of generating
//! them. The header and root directory are read once; tiles and leaf directories with
//! positional reads. Spec: <https://github.com/protomaps/PMTiles/blob/main/spec/v3/spec.md>.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, ensure, Context};

use super::TileId;

/// Length of the fixed header.
const HEADER_LEN: usize = 127;
/// Directory levels a lookup may descend (root plus leaves), as the spec's reader allows.
const MAX_DEPTH: usize = 4;
/// Leaf directories kept decoded; the cache is emptied when it is full.
const LEAF_CACHE: usize = 64;

/// How the directories and metadata, or the tiles, are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
}

impl Compression {
    fn parse(code: u8, what: &str) -> anyhow::Result<Self> {
        match code {
            1 => Ok(Self::None),
            2 => Ok(Self::Gzip),
            0 => bail!("{what} compression is `unknown`"),
            3 => bail!("{what} compression is brotli, which is not supported (use gzip or none)"),
            4 => bail!("{what} compression is zstd, which is not supported (use gzip or none)"),
            other => bail!("{what} compression has the unknown code {other}"),
        }
    }

    fn decode(self, data: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::None => Ok(data),
            Self::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(data.as_slice())
                    .read_to_end(&mut out)
                    .context("gunzipping")?;
                Ok(out)
            }
        }
    }
}

/// One directory entry: `run_length` tiles from `tile_id` share one tile's bytes, or, with a
/// run length of 0, a leaf directory covers the ids from `tile_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tile_id: u64,
    offset: u64,
    length: u64,
    run_length: u64,
}

/// The header fields this server uses.
#[derive(Debug, Clone, Copy)]
struct Header {
    root: (u64, u64),
    metadata: (u64, u64),
    leaves_offset: u64,
    tiles_offset: u64,
    internal: Compression,
    tiles: Compression,
    min_zoom: u8,
    max_zoom: u8,
    /// `[west, south, east, north]`, degrees.
    bounds: [f64; 4],
    /// `[lon, lat, zoom]`.
    center: [f64; 3],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn degrees_at(b: &[u8], at: usize) -> f64 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    f64::from(i32::from_le_bytes(v)) / 1e7
}

impl Header {
    fn parse(b: &[u8]) -> anyhow::Result<Self> {
        ensure!(
            b.len() >= HEADER_LEN && &b[..7] == b"PMTiles",
            "not a PMTiles file"
        );
        ensure!(
            b[7] == 3,
            "PMTiles version {} (only version 3 is read)",
            b[7]
        );
        ensure!(
            b[99] == 1,
            "the tiles are not vector tiles (tile type {}, MVT is 1)",
            b[99]
        );
        Ok(Self {
            root: (u64_at(b, 8), u64_at(b, 16)),
            metadata: (u64_at(b, 24), u64_at(b, 32)),
            leaves_offset: u64_at(b, 40),
            tiles_offset: u64_at(b, 56),
            internal: Compression::parse(b[97], "internal")?,
            tiles: Compression::parse(b[98], "tile")?,
            min_zoom: b[100],
            max_zoom: b[101],
            bounds: [
                degrees_at(b, 102),
                degrees_at(b, 106),
                degrees_at(b, 110),
                degrees_at(b, 114),
            ],
            center: [degrees_at(b, 119), degrees_at(b, 123), f64::from(b[118])],
        })
    }
}

/// An unsigned LEB128 varint at the cursor.
fn varint(b: &mut &[u8]) -> anyhow::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().context("directory ends inside a varint")?;
        *b = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("directory varint longer than 64 bits")
}

/// A decompressed directory: the entry count, then the columns tile id (delta-encoded), run
/// length, length and offset (0 meaning "right after the previous entry", else offset + 1).
fn parse_directory(mut b: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let b = &mut b;
    let n = usize::try_from(varint(b)?)?;
    // Every entry takes at least four bytes: a bogus count must not allocate gigabytes.
    ensure!(n <= b.len() / 4 + 1, "directory claims {n} entries");
    let mut entries = Vec::with_capacity(n);
    let mut id = 0u64;
    for _ in 0..n {
        id = id
            .checked_add(varint(b)?)
            .context("tile id overflows in directory")?;
        entries.push(Entry {
            tile_id: id,
            offset: 0,
            length: 0,
            run_length: 0,
        });
    }
    for e in &mut entries {
        e.run_length = varint(b)?;
    }
    for e in &mut entries {
        e.length = varint(b)?;
    }
    for i in 0..n {
        let v = varint(b)?;
        entries[i].offset = match (v, i.checked_sub(1)) {
            (0, Some(prev)) => entries[prev]
                .offset
                .checked_add(entries[prev].length)
                .context("offset overflows in directory")?,
            (0, None) => bail!("the first directory entry has no offset"),
            (v, _) => v - 1,
        };
    }
    Ok(entries)
}

/// The entry covering `tile_id`: the last one starting at or before it, if its run reaches it
/// (a leaf directory, run length 0, covers everything up to the next entry).
fn find(entries: &[Entry], tile_id: u64) -> Option<Entry> {
    let i = entries
        .partition_point(|e| e.tile_id <= tile_id)
        .checked_sub(1)?;
    let e = entries[i];
    (e.run_length == 0 || tile_id - e.tile_id < e.run_length).then_some(e)
}

/// The tile id of z/x/y: the tiles of all lower zooms, then the position along the Hilbert
/// curve over the zoom's 2^z × 2^z grid.
pub fn tile_id(id: TileId) -> u64 {
    let n = 1u64 << id.z;
    let before: u64 = ((1u64 << (2 * u32::from(id.z))) - 1) / 3;
    let (mut x, mut y) = (u64::from(id.x), u64::from(id.y));
    let mut d = 0u64;
    let mut s = n / 2;
    while s > 0 {
        let rx = u64::from(x & s != 0);
        let ry = u64::from(y & s != 0);
        d += s * s * ((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = n - 1 - x;
                y = n - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    before + d
}

/// Decoded leaf directories by (file offset, length).
type LeafCache = HashMap<(u64, u64), Arc<Vec<Entry>>>;

/// An open PMTiles file.
#[derive(Debug)]
pub struct PmTiles {
    file: File,
    file_len: u64,
    header: Header,
    root: Vec<Entry>,
    leaves: Mutex<LeafCache>,
    /// The metadata JSON object (`attribution`, `name`, …); empty when it has none.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl PmTiles {
    /// Opens the file and reads its header, root directory and metadata.
    ///
    /// # Errors
    /// When the file cannot be read, is not PMTiles v3 with vector tiles, or uses a compression
    /// other than gzip or none.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let read = || -> anyhow::Result<Self> {
            let file = File::open(path)?;
            let file_len = file.metadata()?.len();
            let mut head = vec![0u8; HEADER_LEN];
            file.read_exact_at(&mut head, 0)
                .context("shorter than a PMTiles header")?;
            let header = Header::parse(&head)?;
            let mut pm = Self {
                file,
                file_len,
                header,
                root: Vec::new(),
                leaves: Mutex::default(),
                metadata: serde_json::Map::new(),
            };
            pm.root = pm.directory(header.root).context("root directory")?;
            if header.metadata.1 > 0 {
                let json = pm.section(header.metadata, header.internal)?;
                pm.metadata = serde_json::from_slice(&json).context("metadata is not JSON")?;
            }
            Ok(pm)
        };
        read().with_context(|| format!("reading PMTiles {}", path.display()))
    }

    /// Bytes `at..at+len` of the file, decompressed.
    fn section(&self, (at, len): (u64, u64), compression: Compression) -> anyhow::Result<Vec<u8>> {
        ensure!(
            at.checked_add(len).is_some_and(|end| end <= self.file_len),
            "{len} bytes at {at} lie beyond the end of the file ({} bytes)",
            self.file_len
        );
        let mut buf = vec![0u8; usize::try_from(len)?];
        self.file
            .read_exact_at(&mut buf, at)
            .with_context(|| format!("reading {len} bytes at {at}"))?;
        compression.decode(buf)
    }

    fn directory(&self, at: (u64, u64)) -> anyhow::Result<Vec<Entry>> {
        parse_directory(&self.section(at, self.header.internal)?)
    }

    fn leaf(&self, e: Entry) -> anyhow::Result<Arc<Vec<Entry>>> {
        let key = (self.header.leaves_offset.saturating_add(e.offset), e.length);
        let cached = self
            .leaves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(leaf) = cached {
            return Ok(leaf);
        }
        let leaf = Arc::new(self.directory(key).context("leaf directory")?);
        let mut cache = self.leaves.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= LEAF_CACHE {
            cache.clear();
        }
        cache.insert(key, leaf.clone());
        Ok(leaf)
    }

    /// The stored tile (gzip-compressed when the file's tiles are), or an empty tile when the
    /// file has none there. Blocking file reads: call off the async threads.
    ///
    /// # Errors
    /// When the file cannot be read or a directory is malformed.
    pub fn tile(&self, id: TileId) -> anyhow::Result<Vec<u8>> {
        if id.z < self.header.min_zoom || id.z > self.header.max_zoom {
            return Ok(Vec::new());
        }
        let wanted = tile_id(id);
        let mut found = find(&self.root, wanted);
        for _ in 0..MAX_DEPTH {
            let Some(e) = found else {
                return Ok(Vec::new());
            };
            if e.run_length > 0 {
                // Stored as is: gzip tiles keep their gzip header for `Content-Encoding`.
                return self.section(
                    (self.header.tiles_offset.saturating_add(e.offset), e.length),
                    Compression::None,
                );
            }
            found = find(&self.leaf(e)?, wanted);
        }
        bail!("directories nest deeper than {MAX_DEPTH} levels")
    }

    /// Whether tiles are stored gzip-compressed.
    pub fn gzip_tiles(&self) -> bool {
        self.header.tiles == Compression::Gzip
    }

    /// `[west, south, east, north]`, degrees.
    pub fn bounds(&self) -> [f64; 4] {
        self.header.bounds
    }

    /// `[lon, lat, zoom]`.
    pub fn center(&self) -> [f64; 3] {
        self.header.center
    }

    pub fn zooms(&self) -> (u8, u8) {
        (self.header.min_zoom, self.header.max_zoom)
    }

    /// A metadata string such as `attribution`.
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        self.metadata.get(key)?.as_str().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let byte = u8::try_from(v & 0x7f).unwrap();
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A directory serialised the way the spec describes, offsets run together when they can.
    fn directory(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, entries.len() as u64);
        let mut last = 0;
        for e in entries {
            put_varint(&mut out, e.tile_id - last);
            last = e.tile_id;
        }
        for e in entries {
            put_varint(&mut out, e.run_length);
        }
        for e in entries {
            put_varint(&mut out, e.length);
        }
        for (i, e) in entries.iter().enumerate() {
            let follows = i > 0 && e.offset == entries[i - 1].offset + entries[i - 1].length;
            put_varint(&mut out, if follows { 0 } else { e.offset + 1 });
        }
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn entry(tile_id: u64, offset: u64, length: u64, run_length: u64) -> Entry {
        Entry {
            tile_id,
            offset,
            length,
            run_length,
        }
    }

    /// A file with tiles at z/x/y 0/0/0, 1/0/1 (ids 0 and 2), a run of one tile over ids
    /// 10..=12 (zoom 2), found through two leaf directories, written with `internal`
    /// compression.
    fn file(internal: u8) -> Vec<u8> {
        let pack = |d: Vec<u8>| if internal == 2 { gzip(&d) } else { d };
        let tiles = b"AAAABBCCC".to_vec();
        let leaf_a = pack(directory(&[entry(0, 0, 4, 1), entry(2, 4, 2, 1)]));
        let leaf_b = pack(directory(&[entry(10, 6, 3, 3)]));
        let root = pack(directory(&[
            entry(0, 0, leaf_a.len() as u64, 0),
            entry(10, leaf_a.len() as u64, leaf_b.len() as u64, 0),
        ]));
        let metadata = pack(br#"{"attribution":"Agency"}"#.to_vec());
        let root_at = HEADER_LEN as u64;
        let metadata_at = root_at + root.len() as u64;
        let leaves_at = metadata_at + metadata.len() as u64;
        let tiles_at = leaves_at + (leaf_a.len() + leaf_b.len()) as u64;
        let mut h = b"PMTiles\x03".to_vec();
        for v in [
            root_at,
            root.len() as u64,
            metadata_at,
            metadata.len() as u64,
            leaves_at,
            (leaf_a.len() + leaf_b.len()) as u64,
            tiles_at,
            tiles.len() as u64,
            6,
            3,
            3,
        ] {
            h.extend(v.to_le_bytes());
        }
        h.extend([1, internal, 1, 1, 0, 2]);
        for deg in [24.9f64, 60.1, 25.0, 60.2] {
            #[allow(clippy::cast_possible_truncation)]
            h.extend(((deg * 1e7).round() as i32).to_le_bytes());
        }
        h.push(1);
        h.extend(249_500_000i32.to_le_bytes());
        h.extend(601_500_000i32.to_le_bytes());
        assert_eq!(h.len(), HEADER_LEN);
        [h, root, metadata, leaf_a, leaf_b, tiles].concat()
    }

    #[test]
    fn tile_ids_follow_the_hilbert_curve() {
        let id = |z, x, y| tile_id(TileId { z, x, y });
        assert_eq!(id(0, 0, 0), 0);
        assert_eq!(id(1, 0, 0), 1);
        assert_eq!(id(1, 0, 1), 2);
        assert_eq!(id(1, 1, 1), 3);
        assert_eq!(id(1, 1, 0), 4);
        assert_eq!(id(2, 0, 0), 5);
        // Every id of a zoom is used once.
        let mut ids: Vec<u64> = (0..8)
            .flat_map(|x| (0..8).map(move |y| id(3, x, y)))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (21..85).collect::<Vec<_>>());
    }

    #[test]
    fn reads_tiles_through_leaf_directories_and_runs() {
        for internal in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.pmtiles");
            std::fs::write(&path, file(internal)).unwrap();
            let pm = PmTiles::open(&path).unwrap();
            let tile = |z, x, y| pm.tile(TileId { z, x, y }).unwrap();
            assert_eq!(tile(0, 0, 0), b"AAAA");
            assert_eq!(tile(1, 0, 1), b"BB");
            assert!(tile(1, 0, 0).is_empty(), "id 1 is between entries");
            // Ids 10, 11 and 12 at zoom 2 share one tile's bytes.
            let mut run = Vec::new();
            for x in 0..4 {
                for y in 0..4 {
                    let t = TileId { z: 2, x, y };
                    if (10..=12).contains(&tile_id(t)) {
                        run.push(pm.tile(t).unwrap());
                    } else {
                        assert!(pm.tile(t).unwrap().is_empty());
                    }
                }
            }
            assert_eq!(run, vec![b"CCC".to_vec(); 3]);
            assert!(tile(3, 0, 0).is_empty(), "above the max zoom");
            assert_eq!(pm.zooms(), (0, 2));
            assert_eq!(pm.bounds(), [24.9, 60.1, 25.0, 60.2]);
            assert_eq!(pm.center(), [24.95, 60.15, 1.0]);
            assert_eq!(pm.metadata_text("attribution").as_deref(), Some("Agency"));
            assert!(!pm.gzip_tiles());
        }
    }

    #[test]
    fn a_file_cut_short_while_open_is_an_error_not_a_crash() {
        // An operator copies a new basemap over the one the server has open: until it is
        // opened again, tiles past the new end are errors, and the process lives on.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pmtiles");
        std::fs::write(&path, file(1)).unwrap();
        let pm = PmTiles::open(&path).unwrap();
        assert_eq!(pm.tile(TileId { z: 0, x: 0, y: 0 }).unwrap(), b"AAAA");
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let err = pm.tile(TileId { z: 1, x: 0, y: 1 }).unwrap_err();
        assert!(format!("{err:#}").contains("reading"), "{err:#}");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pmtiles");
        let err = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            format!("{:#}", PmTiles::open(&path).unwrap_err())
        };
        assert!(err(b"SQLite format 3").contains("PMTiles header"));
        let mut f = file(2);
        f[7] = 2;
        assert!(err(&f).contains("version 2"));
        let mut f = file(2);
        f[97] = 3;
        assert!(err(&f).contains("brotli"));
        let mut f = file(2);
        f[99] = 2;
        assert!(err(&f).contains("not vector tiles"));
        let mut f = file(1);
        f.truncate(HEADER_LEN + 3);
        assert!(err(&f).contains("root directory"));
    }

    #[test]
    fn malformed_directories_are_errors() {
        assert!(parse_directory(&[0x80]).is_err());
        assert!(parse_directory(&[0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(parse_directory(&[1, 0, 1, 1, 0]).is_err(), "first offset 0");
        assert_eq!(
            parse_directory(&[2, 5, 1, 1, 1, 3, 4, 1, 0]).unwrap(),
            vec![entry(5, 0, 3, 1), entry(6, 3, 4, 1)]
        );
    }
}
