"""Checks an export written by `dispatchd export` with standard readers, as another agency's
tools would read it: every EIDO-shaped incident against docs/schemas/eido-incident.schema.json
(jsonschema), every GeoJSON file with the `geojson` package and shapely, every CAP alert against
the OASIS CAP 1.2 schema (xmllint), and statistics.csv with the csv module. Prints one line per
file and exits 1 naming the first problem.

Usage: python3 check_export.py EXPORT_DIR DOCS_SCHEMAS_DIR
"""

import csv
import json
import pathlib
import subprocess
import sys

import geojson
import jsonschema
import shapely.geometry


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def check_eido(path, schema):
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    count = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            errors = sorted(validator.iter_errors(json.loads(line)), key=lambda e: list(e.path))
            if errors:
                fail(f"{path.name} line {number}: {errors[0].message} at {list(errors[0].path)}")
            count += 1
    return count


def check_geojson(path):
    with path.open(encoding="utf-8") as f:
        collection = geojson.load(f)
    if collection.get("type") != "FeatureCollection":
        fail(f"{path.name}: not a FeatureCollection")
    if not collection.is_valid:
        fail(f"{path.name}: {collection.errors()}")
    for number, feature in enumerate(collection["features"], 1):
        geometry = shapely.geometry.shape(feature["geometry"])
        if not geometry.is_valid:
            fail(f"{path.name} feature {number}: invalid {geometry.geom_type}")
        for lon, lat in geometry.exterior.coords if geometry.geom_type == "Polygon" else geometry.coords:
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                fail(f"{path.name} feature {number}: position {lon},{lat} is not [lon, lat]")
    return len(collection["features"])


def check_cap(paths, xsd):
    if not paths:
        return 0
    result = subprocess.run(
        ["xmllint", "--noout", "--schema", str(xsd), *map(str, paths)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        fail(f"CAP alerts do not validate: {result.stderr.strip()}")
    return len(paths)


def check_csv(path):
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][0] != "incident_id":
        fail(f"{path.name}: no header row")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        fail(f"{path.name}: rows of different widths {widths}")
    return len(rows) - 1


def main():
    export, schemas = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    schema = json.loads((schemas / "eido-incident.schema.json").read_text(encoding="utf-8"))
    print(f"incidents.eido.jsonl {check_eido(export / 'incidents.eido.jsonl', schema)}")
    for name in ["incidents.geojson", "unit-tracks.geojson", "premises.geojson"]:
        print(f"{name} {check_geojson(export / name)}")
    alerts = sorted((export / "broadcasts").glob("*.xml"))
    print(f"broadcasts {check_cap(alerts, schemas / 'CAP-v1.2.xsd')}")
    print(f"statistics.csv {check_csv(export / 'statistics.csv')}")
    print("OK")


main()
