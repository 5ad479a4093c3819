#!/usr/bin/env bash
# Every picture of the documentation (docs/**/*.svg) must be well-formed XML (xmllint
# --noout) and must render (rsvg-convert, librsvg: the renderer of many desktops and
# converters). The renderings go to target/svg/, one PNG per picture, to be looked at.
#
#   bash scripts/svg-check.sh
#
# Needs xmllint and rsvg-convert (installs nothing; .ci/run installs both). Time: 2 s.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

command -v xmllint >/dev/null || die "xmllint is missing (Debian: apt-get install libxml2-utils)"
command -v rsvg-convert >/dev/null ||
    die "rsvg-convert is missing (Debian: apt-get install librsvg2-bin)"
cd "$ROOT"
out="$TARGET_DIR/svg"
mkdir -p "$out"
count=0
while IFS= read -r -d '' svg; do
    xmllint --noout "$svg" || die "$svg is not well-formed XML (above)"
    png="$out/$(basename "$(dirname "$svg")")-$(basename "$svg" .svg).png"
    rsvg-convert --output "$png" "$svg" || die "$svg does not render (above)"
    [ -s "$png" ] || die "$svg rendered to nothing"
    count=$((count + 1))
done < <(find docs -name '*.svg' -print0 | sort -z)
[ "$count" -gt 0 ] || die "no SVG found under docs/"
say "$count pictures are well-formed and render (PNGs in $out)"
