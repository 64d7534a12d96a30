#!/usr/bin/env bash
# make-pki.sh OUTDIR [--force]
#
# Test PKI for the local console, made with openssl (RSA 2048, 10 years):
#   ca.crt, ca.key                  self-signed test CA (clients trust ca.crt)
#   console.crt, console.key        console's server cert, signed by the CA,
#                                   SAN IP:127.0.0.1, DNS:localhost, IP:10.0.2.2
#   wrong-host.crt, wrong-host.key  signed by the CA, SAN DNS:wrong.invalid only
#                                   (hostname-mismatch tests)
#   other-ca.crt, other-ca.key      an unrelated CA (unknown-CA tests)
#   server.crt, server.key          the monitor's cert and key, signed by the CA:
#                                   artifacts the agent installs on hosts
# Keys are mode 0600, certs 0644. When every file already exists nothing is
# redone, unless --force.
set -euo pipefail

usage() {
	echo "usage: $0 OUTDIR [--force]" >&2
	exit 2
}
force=0
case $# in
1) ;;
2) if [ "$2" = --force ]; then force=1; else usage; fi ;;
*) usage ;;
esac
out=$1

files="ca.crt ca.key console.crt console.key wrong-host.crt wrong-host.key
other-ca.crt other-ca.key server.crt server.key"
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ "$force" = 0 ]; then
	complete=1
	for f in $files; do [ -s "$out/$f" ] || complete=0; done
	if [ "$complete" = 1 ]; then
		echo "make-pki.sh: $out already complete (use --force to redo)"
		exit 0
	fi
fi

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
days=3650

newkey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

make_ca() { # make_ca NAME SUBJECT
	newkey "$work/$1.key"
	openssl req -x509 -new -key "$work/$1.key" -sha256 -days "$days" -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-out "$work/$1.crt"
}

make_leaf() { # make_leaf NAME SUBJECT SAN
	newkey "$work/$1.key"
	openssl req -new -key "$work/$1.key" -subj "$2" -out "$work/$1.csr"
	cat >"$work/$1.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$3
EOF
	openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" \
		-extfile "$work/$1.ext" -out "$work/$1.crt" 2>/dev/null
	openssl verify -CAfile "$work/ca.crt" "$work/$1.crt" >/dev/null
}

make_ca ca "/O=HyperMotion test/CN=HyperMotion test console CA"
make_ca other-ca "/O=Unrelated test/CN=Unrelated test CA"
make_leaf console "/O=HyperMotion test/CN=127.0.0.1" "IP:127.0.0.1,DNS:localhost,IP:10.0.2.2"
make_leaf wrong-host "/O=HyperMotion test/CN=wrong.invalid" "DNS:wrong.invalid"
make_leaf server "/O=HyperMotion test/CN=hypermotion-monitor" "DNS:localhost,IP:127.0.0.1"

for f in $files; do
	case "$f" in
	*.key) chmod 0600 "$work/$f" ;;
	*) chmod 0644 "$work/$f" ;;
	esac
	mv -f "$work/$f" "$out/$f"
done
echo "make-pki.sh: wrote $out"
