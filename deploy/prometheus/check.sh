#!/usr/bin/env bash
# Checks deploy/prometheus: promtool accepts the scrape config and the alert rules, every
# metric the alerts use is one the programs export, and the programs' /metrics pass
# `promtool check metrics`. Usage: check.sh BUILD_DIR (run by ctest as prometheus_config).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: check.sh BUILD_DIR}
command -v promtool >/dev/null || { echo "promtool not found (Debian package prometheus; make deps)"; exit 77; }

promtool check config "$here/prometheus.yml"
promtool check config "$here/prometheus-ha.yml"
# the HA file is prometheus.yml with the broker's job scraping three nodes: nothing else differs
python3 - "$here/prometheus.yml" "$here/prometheus-ha.yml" <<'PY' ||
import sys, yaml
one, ha = (yaml.safe_load(open(f)) for f in sys.argv[1:])
want = [{"targets": [t], "labels": {"program": "handoff-broker", "node": n}}
        for t, n in (("broker:9100", "1"), ("broker2:9100", "2"), ("broker3:9100", "3"))]
for job in one["scrape_configs"]:
    if job["job_name"] == "handoff-broker":
        job["static_configs"] = want
sys.exit(0 if one == ha else 1)
PY
    { echo "prometheus-ha.yml differs from prometheus.yml in more than the broker's three nodes" >&2; exit 1; }
promtool check rules "$here/alerts.yml"

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT


# GET http://127.0.0.1:$1$2 with bash's /dev/tcp; the body on stdout, non-zero unless 200.
get() {
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    local reply
    reply=$(cat <&3)
    exec 3<&-
    [[ $reply == "HTTP/1."?" 200"* ]] || return 1
    printf '%s\n' "${reply#*$'\r\n\r\n'}"
}

# Polls until GET answers 200 (deadline 30 s).
wait_get() {
    for _ in $(seq 300); do get "$1" "$2" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "no answer on port $1$2" >&2; return 1
}

# The port a program chose for --http 127.0.0.1:0, from its log line "... (port N) ...".
port_of() {
    for _ in $(seq 300); do
        local p
        p=$(grep -oE '\(port [0-9]+\)' "$1" | head -1 | grep -oE '[0-9]+') && [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
    done
    echo "no --http port in $1:" >&2; cat "$1" >&2; return 1
}

"$build/broker/handoff-broker" --plain-tcp-for-tests --bind "tcp://127.0.0.1:*" --data "$work/data" \
    --http 127.0.0.1:0 2>"$work/broker.log" & pids+=($!)
"$build/services/intake/handoff-intake" --broker tcp://127.0.0.1:1 --db "$work/intake.db" \
    --http 127.0.0.1:0 2>"$work/intake.log" & pids+=($!)
"$build/services/scheduling/handoff-scheduling" --broker tcp://127.0.0.1:1 --db "$work/scheduling.db" \
    --directory "$here/../sample/directory.json" --http 127.0.0.1:0 2>"$work/scheduling.log" & pids+=($!)
# the clinic portal (its /metrics on its own port, printed as "listening PORT"): one clinic,
# no broker behind it (its mailbox is simply down)
"$build/services/web/handoff-web" serve --listen 127.0.0.1:0 --broker tcp://127.0.0.1:1 --home "$work/web" \
    --accounts "$work/web-accounts.db" --clinics "northpoint=unused.key" >"$work/web.out" 2>"$work/web.log" & pids+=($!)
# a node of a replicated broker (a cluster of one): the handoff_broker_raft_* metrics
raft_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$build/broker/handoff-broker" --plain-tcp-for-tests --bind "tcp://127.0.0.1:*" --data "$work/node" \
    --cluster "1=127.0.0.1:$raft_port=tcp://127.0.0.1:1" --node-id 1 \
    --http 127.0.0.1:0 2>"$work/node.log" & pids+=($!)
bport=$(port_of "$work/broker.log")
nport=$(port_of "$work/node.log")
sport=$(port_of "$work/intake.log")
cport=$(port_of "$work/scheduling.log")
wport=""
for _ in $(seq 300); do
    wport=$(awk '/^listening /{ print $2; exit }' "$work/web.out" 2>/dev/null) && [ -n "$wport" ] && break
    sleep 0.1
done
[ -n "$wport" ] || { echo "handoff-web did not start:" >&2; cat "$work/web.log" >&2; exit 1; }
wait_get "$bport" /metrics
wait_get "$nport" /metrics
wait_get "$sport" /metrics
wait_get "$cport" /metrics
wait_get "$wport" /metrics
get "$bport" /metrics >"$work/metrics.txt"
get "$nport" /metrics >>"$work/metrics.txt"
get "$nport" /metrics | promtool check metrics
get "$sport" /metrics >>"$work/metrics.txt"
get "$cport" /metrics >>"$work/metrics.txt"
get "$wport" /metrics >>"$work/metrics.txt"
get "$cport" /metrics | promtool check metrics
get "$wport" /metrics | promtool check metrics

# the text format, as Prometheus reads it (naming lint included)
get "$bport" /metrics | promtool check metrics
get "$sport" /metrics | promtool check metrics

# every handoff_* name in an alert expression is exported (a histogram's _bucket by its family)
status=0
for name in $(grep -E '^\s+expr:' "$here/alerts.yml" | grep -oE 'handoff_[a-z0-9_]+' | sort -u); do
    base=$name
    case $name in *_bucket|*_sum|*_count) base=${name%_*} ;; esac
    if grep -q "^# TYPE $name " "$work/metrics.txt" ||
       { [ "$base" != "$name" ] && grep -q "^# TYPE $base histogram" "$work/metrics.txt"; }; then
        echo "ok: $name"
    else
        echo "alerts.yml uses $name, which no program exports" >&2
        status=1
    fi
done
exit $status
