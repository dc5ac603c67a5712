#!/usr/bin/env bash
# Runs every native Go fuzz test of the module (func FuzzXxx(f *testing.F))
# for a short, bounded time on top of its seed corpus: the f.Add seeds and
# the files in the package's testdata/fuzz/FuzzXxx/. go test accepts one
# -fuzz target per package per run, so targets run one at a time. Every
# target runs even when an earlier one fails; the script exits non-zero if
# any failed.
#
# Usage: scripts/fuzz.sh
#   FUZZTIME      fuzzing time per target, any -fuzztime value (default 10s)
#   FUZZ          extended regexp selecting targets by name (default: all)
#   FUZZ_TIMEOUT  go test -timeout per target (default 5m): a hung input
#                 fails the run instead of blocking CI
#
# A failing input is written by go to the package's testdata/fuzz/FuzzXxx/
# and its name printed: once the bug is fixed, commit it as a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

FUZZTIME=${FUZZTIME:-10s}
FUZZ=${FUZZ:-.}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-5m}

# "<package dir> <target>" for every fuzz target, sorted.
mapfile -t targets < <(
  grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
    sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' |
    grep -E " (${FUZZ})" | sort -u
)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no fuzz target matches FUZZ=${FUZZ}" >&2
  exit 1
fi

failed=()
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "${log}"' EXIT
for t in "${targets[@]}"; do
  dir=${t% *}
  name=${t#* }
  echo "== ${name} (./${dir}, ${FUZZTIME})"
  # go's fuzzing coordinator sometimes reports "context deadline exceeded"
  # as a failure when -fuzztime runs out, with no failing input (a known
  # flake of go test -fuzz): such a run is tried once more.
  for attempt in 1 2; do
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME}" -timeout "${FUZZ_TIMEOUT}" "./${dir}" 2>&1 | tee "${log}"; then
      break
    fi
    if [ "${attempt}" = 1 ] && grep -q 'context deadline exceeded' "${log}" && ! grep -qi 'failing input' "${log}"; then
      echo "== ${name}: the fuzzing coordinator's deadline flake, no failing input; once more"
      continue
    fi
    failed+=("${name} (./${dir})")
    break
  done
done

echo "== ${#targets[@]} fuzz targets in $(($(date +%s) - start))s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
