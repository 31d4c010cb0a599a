#!/usr/bin/env bash
# TUF client benchmark: time to verify a refresh of a repository with 10,000 targets and
# 50 delegated roles (against parsing the same bytes without verification, same process),
# and signature verifications per second per key type against `openssl speed` run here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
out=$(build/release/bench/tuf_bench)
echo "$out"
speed=$(openssl speed -seconds 2 ed25519 ecdsap256 rsa3072 2>/dev/null)
ours() { echo "$out" | awk -v k="$1" '$1=="verify/s" && $2==k":" {print $3}'; }
theirs_ed=$(echo "$speed" | awk '/EdDSA \(Ed25519\)/ {v=$NF} END {print v}')
theirs_ec=$(echo "$speed" | awk '/ecdsa \(nistp256\)/ {v=$NF} END {print v}')
theirs_rsa=$(echo "$speed" | awk '/^rsa 3072 bits/ {v=$NF} END {print v}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "openssl speed verify/s: ed25519 $theirs_ed, ecdsa-p256 $theirs_ec, rsa-3072 $theirs_rsa"
echo "ratio quietpatch / openssl speed: ed25519 $(ratio "$(ours ed25519)" "$theirs_ed")," \
     "ecdsa-p256 $(ratio "$(ours ecdsa-sha2-nistp256)" "$theirs_ec")," \
     "rsa-3072 (PSS vs PKCS#1) $(ratio "$(ours rsassa-pss-sha256)" "$theirs_rsa")"
