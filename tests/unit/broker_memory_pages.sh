#!/bin/sh
# The broker runs on jemalloc with the malloc_conf compiled into it (broker_main.c): jemalloc's
# own report at exit (MALLOC_CONF=stats_print:true) names the options it took. Fails if the
# broker is not linked with jemalloc or jemalloc does not read the program's malloc_conf
# (jemalloc's own default is thp "default": the kernel's setting decides).
# Usage: broker_memory_pages.sh path/to/handoff-broker
set -u
broker=${1:?usage: broker_memory_pages.sh path/to/handoff-broker}
out=$(MALLOC_CONF=stats_print:true "$broker" --help 2>&1) || { printf '%s\n' "$out"; exit 1; }
for o in 'opt.thp: "never"'; do
  printf '%s\n' "$out" | grep -qF "$o" || {
    printf '%s\n' "$out" | head -20
    echo "broker_memory_pages: jemalloc did not report $o (is handoff-broker linked with jemalloc?)" >&2
    exit 1
  }
done
echo "broker_memory_pages: $broker on jemalloc with thp never (4 KiB pages)"
