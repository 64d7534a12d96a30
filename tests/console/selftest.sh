#!/usr/bin/env bash
# selftest.sh -- quick self-test of the local console (loopback only).
#
# Makes a PKI and a console root in a temporary directory, starts console.py
# on a free port on 127.0.0.1, checks downloads, tokens, errors, the manifest,
# prebuilt modules, fail-mode and TLS failures with curl, then stops it.
# Last line: "N passed, N failed"; exit status 0 only when nothing failed.
# Needs python3 (3.11), curl, openssl, dpkg-deb.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

passed=0 failed=0
ok() {
	echo "PASS: $1"
	passed=$((passed + 1))
}
bad() {
	echo "FAIL: $1"
	failed=$((failed + 1))
}
check() { # check DESCRIPTION COMMAND...
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else bad "$desc"; fi
}

# ------------------------------------------------------------------ set-up
"$here/make-pki.sh" "$tmp/pki" >/dev/null
kernel=6.1.0-0-selftest-amd64
printf 'not a real module\n' >"$tmp/fake.ko"
"$here/build-artifacts.sh" "$tmp/root" 1.0.0 --pki "$tmp/pki" \
	--prebuilt "$kernel=$tmp/fake.ko" >/dev/null
token=$(openssl rand -hex 24)
token_args=(--token "$token")

start_console() { # start_console NAME CERT KEY [console.py options...] -> sets port
	local name=$1 cert=$2 key=$3
	shift 3
	python3 "$here/console.py" --root "$tmp/root" --port 0 --bind 127.0.0.1 \
		"${token_args[@]}" --cert "$cert" --key "$key" \
		--port-file "$tmp/$name.port" --log-file "$tmp/$name.log" "$@" \
		>"$tmp/$name.out" 2>&1 &
	pids+=("$!")
	for _ in $(seq 1 100); do
		[ -s "$tmp/$name.port" ] && break
		sleep 0.1
	done
	[ -s "$tmp/$name.port" ] || {
		echo "console $name did not start:" >&2
		cat "$tmp/$name.out" "$tmp/$name.log" >&2 2>/dev/null || true
		exit 1
	}
	port=$(cat "$tmp/$name.port")
}

start_console main "$tmp/pki/console.crt" "$tmp/pki/console.key"
main_pid=${pids[-1]}
base=https://127.0.0.1:$port/hypermotion/v1
dl="$base/sources/download?type=linux"

fetch() { # fetch URL OUTFILE [curl options...] -> prints the HTTP status
	local url=$1 outfile=$2
	shift 2
	curl -sS --cacert "$tmp/pki/ca.crt" -o "$outfile" -w '%{http_code}' "$@" "$url" || true
}
status_is() { [ "$1" = "$2" ] || { echo "  expected HTTP $2, got $1"; false; }; }
sum_of() { sha256sum "$1" | cut -d' ' -f1; }
listed_sum() { awk -v n="$1" '$2 == n { print $1 }' "$tmp/root/SHA256SUMS"; }

# ------------------------------------------------------------------ downloads
code=$(fetch "$dl&id=$token&name=SHA256SUMS" "$tmp/SHA256SUMS")
check "download with the right token: 200" status_is "$code" 200
check "downloaded SHA256SUMS is the served file" cmp -s "$tmp/SHA256SUMS" "$tmp/root/SHA256SUMS"

for name in egisplus-agent_1.0.0_all.deb dattobd-0.12.1.tar.gz hypermotion-monitor server.crt; do
	code=$(fetch "$dl&id=$token&name=$name" "$tmp/$name")
	check "download $name: 200" status_is "$code" 200
	check "download $name: sha256 as in SHA256SUMS" \
		test "$(sum_of "$tmp/$name")" = "$(listed_sum "$name")"
done
check "the downloaded .deb is a valid package" dpkg-deb -f "$tmp/egisplus-agent_1.0.0_all.deb" Package

headers=$(curl -sS --cacert "$tmp/pki/ca.crt" -I "$dl&id=$token&name=server.crt" || true)
check "HEAD answers 200 with X-Checksum-Sha256" \
	grep -qi "^x-checksum-sha256: $(listed_sum server.crt)" <<<"$headers"

code=$(fetch "$dl&id=wrong-$token&name=SHA256SUMS" "$tmp/body")
check "wrong token: 401" status_is "$code" 401
check "wrong token: JSON error body" python3 -c \
	'import json,sys; d=json.load(open(sys.argv[1])); assert d["code"]==401 and d["error"]' "$tmp/body"
code=$(fetch "$dl&name=SHA256SUMS" "$tmp/body")
check "missing token: 401" status_is "$code" 401
code=$(fetch "$dl&id=$token&name=no-such-file.tar.gz" "$tmp/body")
check "unknown file: 404" status_is "$code" 404
code=$(fetch "$dl&id=$token&name=..%2Fpki%2Fca.key" "$tmp/body")
check "path traversal in name: 404" status_is "$code" 404
code=$(fetch "$dl&id=$token" "$tmp/body")
check "missing name: 400" status_is "$code" 400
code=$(fetch "$base/no/such/endpoint?id=$token" "$tmp/body")
check "unknown endpoint: 404" status_is "$code" 404

# ------------------------------------------------------------------ modules, manifest
code=$(fetch "$base/modules/$kernel/dattobd.ko?id=$token" "$tmp/dattobd.ko")
check "prebuilt module for $kernel: 200" status_is "$code" 200
check "prebuilt module for $kernel: the same bytes" cmp -s "$tmp/dattobd.ko" "$tmp/fake.ko"
code=$(fetch "$base/modules/6.99.0-1-amd64/dattobd.ko?id=$token" "$tmp/body")
check "no prebuilt module for an unknown kernel: 404" status_is "$code" 404
code=$(fetch "$base/modules/$kernel/dattobd.ko?id=bad" "$tmp/body")
check "prebuilt module with a wrong token: 401" status_is "$code" 401

code=$(fetch "$base/manifest?id=$token" "$tmp/manifest.json")
check "manifest: 200" status_is "$code" 200
check "manifest lists every artifact with its sha256, and the prebuilt kernel" python3 - \
	"$tmp/manifest.json" "$tmp/root/SHA256SUMS" "$kernel" <<'EOF'
import json, sys
manifest = json.load(open(sys.argv[1]))
sums = dict(reversed(line.split()) for line in open(sys.argv[2]))
got = {a["name"]: a["sha256"] for a in manifest["artifacts"]}
for name, digest in sums.items():
    assert got.get(name) == digest, (name, got.get(name), digest)
assert manifest["prebuilt_kernels"] == [sys.argv[3]], manifest["prebuilt_kernels"]
EOF
code=$(fetch "$base/manifest" "$tmp/body")
check "manifest without a token: 401" status_is "$code" 401

# ------------------------------------------------------------------ TLS
rc=0
curl -sS --cacert "$tmp/pki/other-ca.crt" -o /dev/null "$dl&id=$token&name=SHA256SUMS" 2>"$tmp/curl.err" || rc=$?
check "unknown CA: curl refuses the connection (rc 60)" test "$rc" = 60
rc=0
curl -sS -o /dev/null "$dl&id=$token&name=SHA256SUMS" 2>"$tmp/curl.err" || rc=$?
check "no CA given (system trust store): curl refuses (rc 60)" test "$rc" = 60
code=$(fetch "https://localhost:$port/hypermotion/v1/manifest?id=$token" "$tmp/body")
check "the console cert is valid for localhost too" status_is "$code" 200

start_console wrong "$tmp/pki/wrong-host.crt" "$tmp/pki/wrong-host.key" --fail-mode 500 --fail-count 1
wrong_port=$port
rc=0
curl -sS --cacert "$tmp/pki/ca.crt" -o /dev/null \
	"https://127.0.0.1:$wrong_port/hypermotion/v1/manifest?id=$token" 2>"$tmp/curl.err" || rc=$?
check "cert for wrong.invalid on 127.0.0.1: hostname mismatch (rc 60)" test "$rc" = 60
wrong_url="https://wrong.invalid:$wrong_port/hypermotion/v1/manifest?id=$token"
code=$(fetch "$wrong_url" "$tmp/body" --resolve "wrong.invalid:$wrong_port:127.0.0.1")
check "--fail-mode 500 --fail-count 1: first request 500" status_is "$code" 500
code=$(fetch "$wrong_url" "$tmp/body" --resolve "wrong.invalid:$wrong_port:127.0.0.1")
check "--fail-mode 500 --fail-count 1: then served (200)" status_is "$code" 200

for mode in 401 404; do
	printf '%s\n' "$token" >"$tmp/token"
	token_args=(--token-file "$tmp/token")
	start_console "fail$mode" "$tmp/pki/console.crt" "$tmp/pki/console.key" --fail-mode "$mode"
	code=$(fetch "https://127.0.0.1:$port/hypermotion/v1/manifest?id=$token" "$tmp/body")
	check "--fail-mode $mode: a good request gets $mode" status_is "$code" "$mode"
	code=$(fetch "https://127.0.0.1:$port/hypermotion/v1/manifest?id=$token" "$tmp/body")
	check "--fail-mode $mode without --fail-count: every request gets $mode" status_is "$code" "$mode"
done

# ------------------------------------------------------------------ log, stop
check "access log never shows the token" bash -c "! grep -qF '$token' '$tmp'/*.log '$tmp'/*.out"
check "access log shows redacted ids" grep -q 'id=REDACTED' "$tmp/main.log"
check "access log records the TLS failure" grep -qi 'unknown ca' "$tmp/main.log"

kill "$main_pid"
rc=0
wait "$main_pid" || rc=$?
check "console stops on SIGTERM with status 0" test "$rc" = 0
rc=0
curl -sS --cacert "$tmp/pki/ca.crt" -o /dev/null --max-time 5 "$base/manifest?id=$token" 2>/dev/null || rc=$?
check "nothing listens on the port afterwards (curl rc 7)" test "$rc" = 7

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
