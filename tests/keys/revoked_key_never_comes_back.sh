#!/usr/bin/env bash
# ctest keys/revoked_key_never_comes_back: deploy/keys.sh as an operator runs it over a
# network's life — a new network, a clinic added, one rotated, another revoked, then the
# plain keys.sh again (the documented way to add clinics) — and the broker started on what
# it wrote. A revoked key and a rotated-out key never come back into the allow-list, the new
# keys stay, and the broker leaves a revoked key out even when someone writes it back by hand.
# Usage: revoked_key_never_comes_back.sh SOURCE_DIR BUILD_DIR
# shellcheck disable=SC2015  # "A && B || fail": fail exits, so it is if-then-else here
set -euo pipefail
SRC=${1:?usage: $0 SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: $0 SOURCE_DIR BUILD_DIR}
KEYS_SH=$SRC/deploy/keys.sh
export HANDOFF_CLI=$BUILD/services/cli/handoff
BROKER=$BUILD/broker/handoff-broker
T=$(mktemp -d /tmp/handoff-keys-XXXXXX)
broker_pid=""
cleanup() {
  local rc=$?
  [ -z "$broker_pid" ] || { kill "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null || true; }
  if [ "$rc" = 0 ]; then rm -rf "$T"; else echo "keys test: FAILED; files kept in $T" >&2; fi
}
trap cleanup EXIT
fail() { echo "keys test: FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }
K=$T/keys
A=$K/access/allow.txt
R=$K/access/revoked.txt
keys() { "$KEYS_SH" "$@" >>"$T/keys.log" 2>&1 || { cat "$T/keys.log" >&2; fail "keys.sh $* exited $?"; }; }
allowed() { awk -v k="$1" '$1 == k { f = 1 } END { exit !f }' "$A"; }
revoked() { awk -v k="$1" '$1 == k { f = 1 } END { exit !f }' "$R"; }
entries() { grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$A" || true; }

step "a new network"
keys "$K" --clinics "northpoint lakeside" --admins ops
[ -s "$K/broker.key" ] && [ -s "$K/data.key" ] || fail "no broker key or data key"
[ "$(entries)" = 7 ] || fail "allow-list has $(entries) entries, not 7 (3 services, 2 clinics, 1 admin, 1 reviewer)"
grep -q " reviewer review\$" "$A" || fail "no reviewer in a new network's allow-list"
[ -r "$R" ] || fail "no revoked record"
[ "$(stat -c %a "$K/lakeside.key")" = 600 ] || fail "a secret key is not mode 0600"
[ ! -e "$K/allow.txt" ] || fail "the allow-list is not in access/"

step "add harbour"
keys add harbour --dir "$K"
harbour_1=$(head -n1 "$K/harbour.pub")
allowed "$harbour_1" || fail "harbour's key is not in the allow-list"
grep -q " clinic harbour\$" "$A" || fail "harbour is not listed as a clinic"
if "$KEYS_SH" add harbour --dir "$K" >>"$T/keys.log" 2>&1; then fail "add of an existing name succeeded"; fi

step "rotate harbour"
keys rotate harbour --dir "$K"
harbour_2=$(head -n1 "$K/harbour.pub")
[ "$harbour_1" != "$harbour_2" ] || fail "rotate did not make a new key"
allowed "$harbour_2" || fail "harbour's new key is not allowed"
! allowed "$harbour_1" || fail "harbour's old key is still allowed"
revoked "$harbour_1" || fail "harbour's old key is not in the revoked record"
grep -q "^.\{40\} clinic harbour [0-9T:-]*Z rotated\$" "$R" || fail "the record line has no role, name, date or reason"

step "revoke lakeside"
lakeside_1=$(head -n1 "$K/lakeside.pub")
keys revoke lakeside --dir "$K"
! allowed "$lakeside_1" || fail "lakeside's key is still allowed"
revoked "$lakeside_1" || fail "lakeside's key is not in the revoked record"
[ ! -e "$K/lakeside.key" ] || fail "lakeside's secret key was kept"

step "the plain keys.sh again, naming every clinic (the documented way to add one)"
keys "$K" --clinics "northpoint lakeside harbour" --admins ops
! allowed "$lakeside_1" || fail "keys.sh put the revoked key of lakeside back"
! allowed "$harbour_1" || fail "keys.sh put harbour's rotated-out key back"
allowed "$harbour_2" || fail "keys.sh dropped harbour's new key"
[ ! -e "$K/lakeside.key" ] || fail "keys.sh gave the revoked lakeside a new key without being asked"
grep -q "lakeside: its keys were revoked" "$T/keys.log" || fail "keys.sh did not say why it skipped lakeside"

step "someone writes the revoked line back by hand (an old backup); keys.sh takes it out again"
echo "$lakeside_1 clinic lakeside" >>"$A"
keys "$K" --clinics "northpoint harbour" --admins ops
! allowed "$lakeside_1" || fail "keys.sh kept a revoked key that was written back by hand"

step "rotate northpoint keeping the old key for a while; keys.sh keeps both; then revoke the old one"
northpoint_1=$(head -n1 "$K/northpoint.pub")
keys rotate northpoint --keep-old --dir "$K"
northpoint_2=$(head -n1 "$K/northpoint.pub")
allowed "$northpoint_1" && allowed "$northpoint_2" || fail "rotate --keep-old did not keep both keys"
keys "$K" --clinics "northpoint harbour" --admins ops
allowed "$northpoint_1" && allowed "$northpoint_2" || fail "keys.sh lost a key of a rotation in progress"
keys revoke northpoint --old --dir "$K"
! allowed "$northpoint_1" || fail "revoke --old left the old key allowed"
allowed "$northpoint_2" || fail "revoke --old took the current key too"
revoked "$northpoint_1" || fail "the old key of northpoint is not recorded"

step "lakeside added again: a new key, and the revoked one still never comes back"
keys add lakeside --dir "$K"
lakeside_2=$(head -n1 "$K/lakeside.pub")
allowed "$lakeside_2" || fail "lakeside's new key is not allowed"
! allowed "$lakeside_1" || fail "lakeside's revoked key came back"
keys "$K" --clinics "northpoint lakeside harbour" --admins ops
for k in "$lakeside_1" "$harbour_1" "$northpoint_1"; do ! allowed "$k" || fail "a revoked key is back: $k"; done
for k in "$lakeside_2" "$harbour_2" "$northpoint_2"; do allowed "$k" || fail "a current key is gone: $k"; done

step "bad requests are refused with a reason"
for args in "rotate nobody --dir $K" "revoke nobody --dir $K" "rotate broker --dir $K" "add bad/name --dir $K" \
            "rotate" "revoke lakeside --keep-old --dir $K"; do
  # shellcheck disable=SC2086
  if "$KEYS_SH" $args >"$T/bad.log" 2>&1; then fail "keys.sh $args succeeded"; fi
  grep -q "keys.sh: " "$T/bad.log" || fail "keys.sh $args gave no reason: $(cat "$T/bad.log")"
done

step "the layout before access/ is moved, not lost"
mkdir "$T/old"
cp "$K/broker.key" "$K/broker.pub" "$T/old/"
head -n3 "$A" >"$T/old/allow.txt"
keys "$T/old" --clinics "northpoint" --admins ops
[ -s "$T/old/access/allow.txt" ] && [ ! -e "$T/old/allow.txt" ] || fail "allow.txt was not moved into access/"
grep -qF -e "$(head -n1 "$A")" "$T/old/access/allow.txt" || fail "an entry of the old allow-list was lost"

step "the broker starts on these files, with --revoked, and leaves out a revoked key written back by hand"
echo "$harbour_1 clinic harbour-old" >>"$A"
ready=$T/broker.endpoint
"$BROKER" --bind 'tcp://127.0.0.1:*' --ready-file "$ready" --curve-secret "$K/broker.key" --allow "$A" \
  --revoked "$R" >"$T/broker.log" 2>&1 &
broker_pid=$!
deadline=$((SECONDS + 15))
until [ -s "$ready" ]; do
  kill -0 "$broker_pid" 2>/dev/null || { cat "$T/broker.log" >&2; fail "the broker did not start"; }
  [ "$SECONDS" -lt "$deadline" ] || fail "the broker did not start within 15 s"
  sleep 0.05
done
grep -q "left out clinic:harbour-old" "$T/broker.log" || { cat "$T/broker.log" >&2; fail "the broker allowed a revoked key"; }
[ "$(grep -c "left out" "$T/broker.log")" = 1 ] || fail "the broker left out more than the one revoked key"
echo "keys test: passed"
