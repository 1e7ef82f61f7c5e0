#!/usr/bin/env bash
# A three-node KRaft Kafka cluster on loopback (combined broker + controller nodes 1..3, PLAINTEXT only) for fault
# tests and manual trials, from the same Maven Central jars as services.sh; data in $FUSEWATCH_CACHE/cluster.
# It leaves the single-node broker of services.sh alone (other ports).
#
#   cluster.sh up [--fresh]   start the nodes that are not running (format on first start; --fresh wipes the
#                             cluster's data first), wait until all three are healthy
#   cluster.sh down           stop all nodes (SIGTERM, then SIGKILL after 30 s)
#   cluster.sh status         one line per node; exit status 3 if any is down
#   cluster.sh kill N         kill -9 node N (returns at once)
#   cluster.sh stop N         stop node N gracefully
#   cluster.sh start N        start node N again (same data) and wait until it is healthy
#   cluster.sh bootstrap      print the bootstrap servers (127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3)
# See docs/services.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME=cluster
# shellcheck source=lib.sh
source "$HERE/lib.sh"   # CACHE, KAFKA_VERSION, KAFKA_LIBS, say, die, port_open, pid_alive, wait_until, stop, kafka_fetch
PORT_BASE="${FUSEWATCH_CLUSTER_PORT_BASE:-19092}"
CONTROLLER_BASE="${FUSEWATCH_CLUSTER_CONTROLLER_BASE:-19192}"
HEAP="${FUSEWATCH_CLUSTER_HEAP:-384m}"
CLUSTER_HOME="$CACHE/cluster"
NODES=(1 2 3)

broker_port() { echo $((PORT_BASE + $1 - 1)); }
controller_port() { echo $((CONTROLLER_BASE + $1 - 1)); }
node_home() { echo "$CLUSTER_HOME/node$1"; }
pid_file() { echo "$CLUSTER_HOME/node$1/kafka.pid"; }
server_log() { echo "$CLUSTER_HOME/node$1/logs/server.log"; }

node_java() {  # node_java N: the JVM command line of node N, in the array JAVA_CMD (logs in that node's directory)
    JAVA_CMD=(java -Xms128m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.yaml" "-Dkafka.logs.dir=$(node_home "$1")/logs" -cp "$KAFKA_LIBS/*")
}

bootstrap() {
    local n out=()
    for n in "${NODES[@]}"; do out+=("127.0.0.1:$(broker_port "$n")"); done
    (IFS=,; echo "${out[*]}")
}

node_config() {  # node_config N: node N's server.properties from the template
    local n=$1 controllers=() m
    for m in "${NODES[@]}"; do controllers+=("127.0.0.1:$(controller_port "$m")"); done
    sed -e "s|@NODE_ID@|$n|g" -e "s|@BROKER_PORT@|$(broker_port "$n")|g" \
        -e "s|@CONTROLLER_PORT@|$(controller_port "$n")|g" -e "s|@DATA_DIR@|$(node_home "$n")/data|g" \
        -e "s|@CONTROLLERS@|$(IFS=,; echo "${controllers[*]}")|g" \
        "$HERE/kafka/cluster-node.properties.in" >"$(node_home "$n")/server.properties"
}

node_running() { pid_alive "$(pid_file "$1")"; }

node_healthy() {  # the port answers and the log of the current start says so (the log is truncated at each start)
    port_open "$(broker_port "$1")" && grep -q "Kafka Server started" "$(server_log "$1")" 2>/dev/null
}

format_all() {  # one cluster id, one directory id per node, the three controllers as the initial voters
    local cluster_id n dir_ids=() voters=() pids=()
    cluster_id="$(kafka_uuid)"
    for n in "${NODES[@]}"; do
        dir_ids[n]="$(kafka_uuid)"
        voters+=("$n@127.0.0.1:$(controller_port "$n"):${dir_ids[n]}")
    done
    local initial; initial="$(IFS=,; echo "${voters[*]}")"
    for n in "${NODES[@]}"; do  # the three formats run side by side (a JVM start each)
        node_java "$n"
        "${JAVA_CMD[@]}" -XX:TieredStopAtLevel=1 kafka.tools.StorageTool format -t "$cluster_id" -c "$(node_home "$n")/server.properties" \
            --initial-controllers "$initial" >"$(node_home "$n")/logs/format.log" 2>&1 &
        pids+=($!)
    done
    for n in "${NODES[@]}"; do
        wait "${pids[n - 1]}" || die "formatting node $n failed; see $(node_home "$n")/logs/format.log"
        grep -q "directory.id=${dir_ids[n]}" "$(node_home "$n")/data/meta.properties" \
            || die "node $n: meta.properties lacks directory.id ${dir_ids[n]}"
    done
    echo "$cluster_id" >"$CLUSTER_HOME/cluster.id"
    say "formatted nodes ${NODES[*]} (cluster $cluster_id, initial controllers $initial)"
}

launch() {  # launch N: start node N in the background (no waiting)
    local n=$1 port
    for port in "$(broker_port "$n")" "$(controller_port "$n")"; do
        port_open "$port" && die "node $n: port $port is taken by another process" \
            "(set FUSEWATCH_CLUSTER_PORT_BASE / FUSEWATCH_CLUSTER_CONTROLLER_BASE)"
    done
    node_config "$n"
    : >"$(server_log "$n")"
    node_java "$n"
    nohup setsid "${JAVA_CMD[@]}" kafka.Kafka "$(node_home "$n")/server.properties" \
        >"$(node_home "$n")/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$(pid_file "$n")"
}

check_node() { [[ "${1:-}" =~ ^[123]$ ]] || die "which node? 1, 2 or 3 (got '${1:-}')"; }

cmd_up() {
    local fresh=0
    case "${1:-}" in --fresh) fresh=1 ;; "") ;; *) die "up takes only --fresh" ;; esac
    kafka_fetch
    local n
    if ((fresh)); then
        for n in "${NODES[@]}"; do node_running "$n" && die "node $n is running: \`cluster.sh down\` first"; done
        rm -rf "$CLUSTER_HOME"
    fi
    local formatted=0
    for n in "${NODES[@]}"; do
        mkdir -p "$(node_home "$n")/data" "$(node_home "$n")/logs"
        [[ -f "$(node_home "$n")/data/meta.properties" ]] && formatted=$((formatted + 1))
    done
    if ((formatted == 0)); then
        for n in "${NODES[@]}"; do node_config "$n"; done
        format_all
    elif ((formatted < ${#NODES[@]})); then
        die "some nodes are formatted and some are not: start over with \`cluster.sh up --fresh\`"
    fi
    local started=()
    for n in "${NODES[@]}"; do
        node_running "$n" && continue
        launch "$n"
        started+=("$n")
    done
    for n in "${NODES[@]}"; do wait_until "node $n" "$(pid_file "$n")" "$(server_log "$n")" node_healthy "$n"; done
    ((${#started[@]} == 0)) || say "started nodes ${started[*]}"
    cmd_status
}

cmd_down() {  # all nodes at once (one by one, the last would wait for a quorum that is gone)
    local n pid pids=()
    for n in "${NODES[@]}"; do
        if node_running "$n"; then pid="$(cat "$(pid_file "$n")")"; kill -TERM "$pid"; pids+=("$n:$pid"); fi
    done
    local deadline=$((SECONDS + 30)) entry
    for entry in "${pids[@]}"; do
        pid=${entry#*:}
        while proc_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    done
    for entry in "${pids[@]}"; do
        n=${entry%%:*} pid=${entry#*:}
        if proc_alive "$pid"; then kill -KILL "$pid"; say "node $n did not stop in 30 s: killed"; fi
        rm -f "$(pid_file "$n")"
        say "node $n stopped"
    done
    ((${#pids[@]} > 0)) || say "no node was running"
}

cmd_status() {
    local n status=0
    for n in "${NODES[@]}"; do
        if node_running "$n" && node_healthy "$n"; then
            say "node $n  running (pid $(cat "$(pid_file "$n")"), 127.0.0.1:$(broker_port "$n"), controller :$(controller_port "$n"))"
        elif node_running "$n"; then
            say "node $n  starting (pid $(cat "$(pid_file "$n")"), 127.0.0.1:$(broker_port "$n"))"; status=3
        else
            say "node $n  down (127.0.0.1:$(broker_port "$n"))"; status=3
        fi
    done
    return $status
}

cmd_kill() {
    check_node "${1:-}"
    node_running "$1" || { say "node $1 is not running"; return 0; }
    local pid; pid="$(cat "$(pid_file "$1")")"
    kill -KILL "$pid"
    # SIGKILL is delivered at once, but the JVM takes a moment to vanish: wait for that (not for any clean-up)
    local deadline=$((SECONDS + 5))
    while proc_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    say "node $1 killed (pid $pid)"
}

cmd_stop() { check_node "${1:-}"; stop "node $1" "$(pid_file "$1")"; }

cmd_start() {
    check_node "${1:-}"
    local n=$1
    kafka_fetch
    [[ -f "$(node_home "$n")/data/meta.properties" ]] || die "node $n has no data: \`cluster.sh up\` formats the cluster"
    if node_running "$n"; then say "node $n already running"
    else
        # after a kill -9 the process may linger for a moment: wait until its ports are free
        local deadline=$((SECONDS + 10))
        while { port_open "$(broker_port "$n")" || port_open "$(controller_port "$n")"; } && ((SECONDS < deadline)); do sleep 0.2; done
        launch "$n"
    fi
    wait_until "node $n" "$(pid_file "$n")" "$(server_log "$n")" node_healthy "$n"
    say "node $n running (pid $(cat "$(pid_file "$n")"), 127.0.0.1:$(broker_port "$n"))"
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) cmd_kill "${2:-}" ;;
    stop) cmd_stop "${2:-}" ;;
    start) cmd_start "${2:-}" ;;
    bootstrap) bootstrap ;;
    -h|--help|help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
