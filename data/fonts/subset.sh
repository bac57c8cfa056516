#!/usr/bin/env bash
# Makes the fonts the console and the basemap labels use, from Debian's Noto packages (SIL Open
# Font Licence 1.1, OFL.txt): Noto Sans for Latin text and Noto Sans KR (the Korean face of
# Noto Sans CJK) for Korean, each cut down to the characters a Korean or European control room
# writes. Run once by a maintainer when the fonts should change; the results are committed, so
# neither a build nor a test needs the network or these tools. Needs apt-get, dpkg-deb and
# Python's fonttools (pip install fonttools).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download fonts-noto-core fonts-noto-cjk >/dev/null
dpkg-deb -x fonts-noto-core_*.deb core
dpkg-deb -x fonts-noto-cjk_*.deb cjk

# Latin with its supplements and extended A (Finnish, Swedish, every EU language), Greek and
# Cyrillic for foreign names, general punctuation, currency and arrows.
latin=U+0000-024F,U+0370-03FF,U+0400-04FF,U+1E00-1EFF,U+2000-206F,U+20A0-20CF,U+2100-214F,U+2190-21FF
# Hangul: all 11,172 syllables, the jamo and compatibility jamo, CJK punctuation, full-width forms.
korean=U+1100-11FF,U+3000-303F,U+3130-318F,U+AC00-D7A3,U+FF00-FFEF

options=(--layout-features='*' --no-hinting --desubroutinize --name-IDs='*' --notdef-outline)
pyftsubset core/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf "${options[@]}" \
  --unicodes="$latin" --output-file="$here/NotoSans-Regular.ttf"
# Index 1 of the collection is the Korean face (JP, KR, SC, TC, HK).
pyftsubset cjk/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc --font-number=1 \
  "${options[@]}" --unicodes="$latin,$korean" --output-file="$here/NotoSansKR-Regular.otf"
ls -l "$here"/*.ttf "$here"/*.otf
