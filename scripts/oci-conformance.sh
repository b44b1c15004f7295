#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against a registry.
#
#   scripts/oci-conformance.sh                 # against a fresh in-memory test server
#   OCI_REGISTRY=127.0.0.1:5000 OCI_PASSWORD=secret OCI_CA_FILE=ca.crt scripts/oci-conformance.sh
#                                              # against a running replica (user admin), over
#                                              # HTTPS verified with the cluster's CA (its path:
#                                              # "ca" in ladder cluster status -o json)
#
# The suite is built from its own module (pinned below) with `go install
# pkg@version`, so it never enters this module's go.mod. Any OCI_* variable
# the suite knows can be set to adjust it; the optional APIs this registry
# implements (upload cancel, tag parameters, digest headers) are switched on.
# Reports land in OCI_RESULTS_DIR (default: a temporary folder, printed).
# Exit status: the suite's (0 when every test passed).
set -euo pipefail

SUITE_VERSION="${SUITE_VERSION:-v0.0.0-20260831232431-97274622c111}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/oci-conformance.XXXXXX")"
server_pid=""
cleanup() {
	if [[ -n "$server_pid" ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [[ -z "${KEEP_WORK:-}" ]]; then
		rm -rf "$work/bin" "$work/server.out"
	fi
}
trap cleanup EXIT

echo "building conformance suite $SUITE_VERSION"
GOBIN="$work/bin" GOFLAGS=-buildvcs=false go install \
	"github.com/opencontainers/distribution-spec/conformance@$SUITE_VERSION"

if [[ -z "${OCI_REGISTRY:-}" ]]; then
	echo "starting the in-memory test server"
	(cd "$root" && go build -o "$work/bin/ocitest" ./registry/oci/internal/ocitest)
	OCI_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
	export OCI_PASSWORD
	"$work/bin/ocitest" -listen 127.0.0.1:0 -password "$OCI_PASSWORD" >"$work/server.out" 2>"$work/server.log" &
	server_pid=$!
	for _ in $(seq 100); do
		if grep -q '^listening on ' "$work/server.out" 2>/dev/null; then break; fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "test server exited:" >&2
			cat "$work/server.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	OCI_REGISTRY="$(sed -n 's#^listening on http://##p' "$work/server.out")"
	if [[ -z "$OCI_REGISTRY" ]]; then
		echo "test server did not start" >&2
		exit 1
	fi
	export OCI_REGISTRY
fi

if [[ -n "${OCI_CA_FILE:-}" ]]; then
	# HTTPS, verified against this CA alone (Go reads SSL_CERT_FILE).
	export SSL_CERT_FILE="$OCI_CA_FILE"
	export OCI_TLS="${OCI_TLS:-enabled}"
fi
export OCI_TLS="${OCI_TLS:-disabled}"
export OCI_USERNAME="${OCI_USERNAME:-admin}"
export OCI_REPO1="${OCI_REPO1:-conformance/repo1}"
export OCI_REPO2="${OCI_REPO2:-conformance/repo2}"
export OCI_API_BLOBS_UPLOAD_CANCEL="${OCI_API_BLOBS_UPLOAD_CANCEL:-true}"
export OCI_API_MANIFESTS_TAG_PARAM="${OCI_API_MANIFESTS_TAG_PARAM:-true}"
export OCI_API_BLOBS_DIGEST_HEADER="${OCI_API_BLOBS_DIGEST_HEADER:-true}"
export OCI_API_MANIFESTS_DIGEST_HEADER="${OCI_API_MANIFESTS_DIGEST_HEADER:-true}"
export OCI_RESULTS_DIR="${OCI_RESULTS_DIR:-$work/results}"

echo "running against $OCI_REGISTRY (reports in $OCI_RESULTS_DIR)"
status=0
(cd "$work" && "$work/bin/conformance") >"$work/output.txt" 2>&1 || status=$?
# the suite exits 0 when it cannot even start: require its result line
if ! grep -q '^OCI Conformance Result: ' "$work/output.txt"; then
	cat "$work/output.txt" >&2
	[[ $status -ne 0 ]] || status=1
else
	sed -n '/^OCI Conformance Result: /,/^  Total/p' "$work/output.txt"
	grep -E '^  [A-Za-z].*\.:[[:space:]]+(FAIL|Error)$' "$work/output.txt" || true
fi
if [[ $status -ne 0 ]]; then
	echo "conformance FAILED (full output: $work/output.txt)" >&2
	KEEP_WORK=1
fi
exit "$status"
