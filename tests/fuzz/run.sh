#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 20) from the committed
# corpus, as `make test` does. New inputs the fuzzer finds go to a scratch directory that is
# removed afterwards, so the tree stays clean. A crash, a hang or a failed property fails the
# run; its reproducer is kept in tests/fuzz/artifacts/<target>/ and printed at the end.
#
# cargo-fuzz wants a nightly compiler for the flags it passes; RUSTC_BOOTSTRAP=1 lets the
# stable one take them. No sanitizer: the server's code is safe Rust (unsafe_code = "deny"), so
# AddressSanitizer would add build time and little else. Usage: run.sh [target...]
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
targets=("$@")
[ $# -gt 0 ] || targets=(frame api_json pbf pmtiles mbtiles)

# Largest input per target: a frame and a route body fit the 64 KiB limits many times over at
# 4 KiB; a file of a few kilobytes already holds every structure its reader knows.
max_len() {
	case "$1" in
	pbf) echo 16384 ;;
	pmtiles | mbtiles) echo 8192 ;;
	*) echo 4096 ;;
	esac
}

export RUSTC_BOOTSTRAP=1
fuzz=("${CARGO:-cargo}" fuzz)
build_flags=(--fuzz-dir . --sanitizer none --dev)

scratch="$(mktemp -d "${TMPDIR:-/tmp}/dispatch-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

started=$SECONDS
"${fuzz[@]}" build "${build_flags[@]}"
echo "fuzz: built in $((SECONDS - started)) s"

failed=()
for target in "${targets[@]}"; do
	mkdir -p "$scratch/corpus/$target" "$scratch/tmp" "artifacts/$target"
	echo "fuzz: $target for $seconds s (corpus/$target: $(ls "corpus/$target" | wc -l) seeds)"
	# The first corpus directory receives new inputs: the scratch one. The servers and files
	# the targets make live under TMPDIR, removed with the scratch directory.
	if ! TMPDIR="$scratch/tmp" "${fuzz[@]}" run "${build_flags[@]}" "$target" \
		"$scratch/corpus/$target" "corpus/$target" -- \
		-max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
		2>"$scratch/$target.log"; then
		failed+=("$target")
		tail -n 60 "$scratch/$target.log" >&2
	else
		grep -E '^(#[0-9]+.*DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::new_units_added)' \
			"$scratch/$target.log" || true
	fi
done

echo "fuzz: ${#targets[@]} targets in $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
	for target in "${failed[@]}"; do
		echo "fuzz: $target FAILED; reproducer(s):" >&2
		ls -1 "$PWD/artifacts/$target"/* 2>/dev/null | sed 's/^/  /' >&2
		echo "  replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz -s none --dev $target <file>" >&2
	done
	exit 1
fi
