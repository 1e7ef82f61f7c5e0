#!/usr/bin/env bash
# Runs a command at the lowest CPU priority, so it only uses CPU time nothing else wants:
#   deploy/local/low-priority.sh COMMAND [ARG...]
# `nice` alone does not do this on Linux: with autogroup scheduling (kernel.sched_autogroup_enabled = 1) CPU time
# is shared fairly between sessions first, and niceness only counts inside a session. So the command gets a
# session of its own (setsid), whose autogroup is set to nice 19, and the command itself runs at nice 15.
# Ctrl-C or SIGTERM stops the command's whole process group; the exit status is the command's.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
setsid bash -c 'echo 19 > /proc/self/autogroup 2>/dev/null || true; exec nice -n 15 "$@"' low-priority "$@" &
child=$!
trap 'kill -TERM -- "-$child" 2>/dev/null || true' INT TERM
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends `wait` early: wait for the command to stop
    wait "$child" || status=$?
done
exit "$status"
