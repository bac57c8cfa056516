#!/usr/bin/env python3
"""Writes the binary seed files of the fuzz corpus (PBF, PMTiles, MBTiles): small, valid files
that reach deep into each reader, so the fuzzer mutates from there. Run from anywhere; the
seeds are committed, so this is needed only to change them. Needs the `sqlite3` command.

PBF seeds hold their data blocks raw (uncompressed) as well as zlib-compressed: libFuzzer can
only usefully mutate what it can see.
"""

import gzip
import os
import struct
import subprocess
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


# --- protobuf, by hand (only what PBF needs) ---

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(v):
    return (v << 1) ^ (v >> 63)


def key(field, wire):
    return varint((field << 3) | wire)


def f_varint(field, v):
    return key(field, 0) + varint(v & 0xFFFFFFFFFFFFFFFF)


def f_bytes(field, b):
    return key(field, 2) + varint(len(b)) + b


def packed(field, values, signed=False):
    body = b"".join(varint(zigzag(v) if signed else v) for v in values)
    return f_bytes(field, body)


def deltas(values):
    out, last = [], 0
    for v in values:
        out.append(v - last)
        last = v
    return out


class Strings:
    def __init__(self):
        self.table = [b""]

    def __call__(self, s):
        b = s.encode()
        if b not in self.table:
            self.table.append(b)
        return self.table.index(b)

    def encode(self):
        return b"".join(f_bytes(1, s) for s in self.table)


def blob(kind, payload, compress):
    if compress:
        body = f_varint(2, len(payload)) + f_bytes(3, zlib.compress(payload, 9))
    else:
        body = f_bytes(1, payload)
    header = f_bytes(1, kind.encode()) + f_varint(3, len(body))
    return struct.pack(">I", len(header)) + header + body


def pbf(compress):
    header_block = f_bytes(4, b"OsmSchema-V0.6") + f_bytes(4, b"DenseNodes")
    st = Strings()
    # Around Helsinki's Senate Square, in 1e-7 degrees (granularity 100 nanodegrees).
    nodes = [
        (1, 601690000, 249520000, {}),
        (2, 601695000, 249530000, {"highway": "traffic_signals"}),
        (3, 601700000, 249540000, {}),
        (4, 601705000, 249520000, {"addr:street": "Aleksanterinkatu", "addr:housenumber": "12"}),
        (5, 601692000, 249500000, {}),
        (6, 601692000, 249510000, {}),
        (7, 601697000, 249510000, {}),
        (8, 601710000, 249560000, {"place": "neighbourhood", "name": "Kruununhaka"}),
    ]
    kv = []
    for _, _, _, tags in nodes:
        for k, v in tags.items():
            kv += [st(k), st(v)]
        kv.append(0)
    dense = (
        packed(1, deltas([n[0] for n in nodes]), signed=True)
        + packed(8, deltas([n[1] for n in nodes]), signed=True)
        + packed(9, deltas([n[2] for n in nodes]), signed=True)
        + packed(10, kv)
    )
    plain_node = (
        f_varint(1, zigzag(9))
        + packed(2, [st("amenity")])
        + packed(3, [st("police")])
        + f_varint(8, zigzag(601688000))
        + f_varint(9, zigzag(249550000))
    )

    def way(wid, refs, tags):
        return (
            f_varint(1, wid)
            + packed(2, [st(k) for k in tags])
            + packed(3, [st(v) for v in tags.values()])
            + packed(8, deltas(refs), signed=True)
        )

    ways = [
        way(10, [1, 2, 3], {"highway": "residential", "name": "Aleksanterinkatu", "maxspeed": "30"}),
        way(11, [3, 4], {"highway": "primary", "oneway": "yes", "name": "Unioninkatu"}),
        way(12, [5, 6, 7, 5], {"building": "yes", "addr:street": "Senaatintori", "addr:housenumber": "1"}),
        way(13, [1, 5], {"highway": "service", "access": "private"}),
    ]
    relation = (
        f_varint(1, 20)
        + packed(2, [st("type"), st("natural")])
        + packed(3, [st("multipolygon"), st("water")])
        + packed(8, [st("outer")])
        + packed(9, deltas([12]), signed=True)
        + packed(10, [1])
    )
    groups = (
        f_bytes(2, f_bytes(2, dense))
        + f_bytes(2, f_bytes(1, plain_node))
        + f_bytes(2, b"".join(f_bytes(3, w) for w in ways))
        + f_bytes(2, f_bytes(4, relation))
    )
    block = f_bytes(1, st.encode()) + groups + f_varint(17, 100)
    return blob("OSMHeader", header_block, compress) + blob("OSMData", block, compress)


# --- PMTiles v3 ---

def directory(entries):
    """Entries of (tile_id, offset, length, run_length), offsets written in full."""
    out = varint(len(entries))
    out += b"".join(varint(d) for d in deltas([e[0] for e in entries]))
    out += b"".join(varint(e[3]) for e in entries)
    out += b"".join(varint(e[2]) for e in entries)
    out += b"".join(varint(e[1] + 1) for e in entries)
    return out


def pmtiles(gzip_internal, leaves):
    # Tile ids: 0 is 0/0/0, 1..4 zoom 1, 5..20 zoom 2.
    tiles = [b"\x1a\x00tile-%d" % i for i in range(6)]
    data, entries = b"", []
    for i, t in enumerate(tiles):
        entries.append((i, len(data), len(t), 2 if i == 5 else 1))
        data += t
    pack = (lambda b: gzip.compress(b, mtime=0)) if gzip_internal else (lambda b: b)
    if leaves:
        leaf = pack(directory(entries[2:]))
        root = pack(directory(entries[:2] + [(2, 0, len(leaf), 0)]))
    else:
        leaf = b""
        root = pack(directory(entries))
    metadata = pack(b'{"name":"seed","attribution":"(c) OpenStreetMap contributors","vector_layers":[]}')
    root_at = 127
    meta_at = root_at + len(root)
    leaf_at = meta_at + len(metadata)
    data_at = leaf_at + len(leaf)
    compression = 2 if gzip_internal else 1
    header = b"PMTiles" + bytes([3]) + struct.pack(
        "<QQQQQQQQQQQ",
        root_at, len(root), meta_at, len(metadata), leaf_at, len(leaf), data_at, len(data),
        7, len(tiles), len(tiles),
    )
    header += bytes([1, compression, 1, 1, 0, 2])
    header += struct.pack("<iiii", 249000000, 601000000, 250000000, 602000000)
    header += bytes([1]) + struct.pack("<ii", 249500000, 601500000)
    assert len(header) == 127, len(header)
    return header + root + metadata + leaf + data


# --- MBTiles (SQLite, small pages) ---

def mbtiles(path, with_metadata):
    if os.path.exists(path):
        os.remove(path)
    sql = [
        "PRAGMA page_size=512;",
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);",
        "INSERT INTO tiles VALUES (0,0,0,X'1a00'), (1,1,1,X'1f8b0800000000000003e302000a32d4b502000000');",
    ]
    if with_metadata:
        sql += [
            "CREATE TABLE metadata (name TEXT, value TEXT);",
            "INSERT INTO metadata VALUES ('bounds','24.9,60.1,25.0,60.2'), ('center','24.95,60.17,12'),"
            " ('minzoom','0'), ('maxzoom','14'), ('attribution','seed'), ('format','pbf');",
        ]
    sql.append("VACUUM;")
    subprocess.run(["sqlite3", path], input="\n".join(sql).encode(), check=True)


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def main():
    write("pbf", "raw.osm.pbf", pbf(compress=False))
    write("pbf", "zlib.osm.pbf", pbf(compress=True))
    write("pmtiles", "plain.pmtiles", pmtiles(gzip_internal=False, leaves=False))
    write("pmtiles", "leaves.pmtiles", pmtiles(gzip_internal=False, leaves=True))
    write("pmtiles", "gzip-leaves.pmtiles", pmtiles(gzip_internal=True, leaves=True))
    os.makedirs(os.path.join(CORPUS, "mbtiles"), exist_ok=True)
    mbtiles(os.path.join(CORPUS, "mbtiles", "metadata.mbtiles"), with_metadata=True)
    mbtiles(os.path.join(CORPUS, "mbtiles", "bare.mbtiles"), with_metadata=False)


if __name__ == "__main__":
    main()
