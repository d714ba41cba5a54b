#!/bin/sh
# Tool wrapper allowlisted in the threads' config.yaml: the only way an agent
# (or the tests gate) runs this repository's tests. Arguments are Go package
# patterns, e.g. ./services/payments/...; output is go test -json.
set -eu
cd "$(dirname "$0")"
if [ "$#" -eq 0 ]; then
	set -- ./...
fi
for arg in "$@"; do
	case "$arg" in
	./*) ;;
	*) echo "run_tests.sh: only ./package patterns are allowed, got: $arg" >&2; exit 2 ;;
	esac
done
exec go test -json -count=1 -cover "$@"
