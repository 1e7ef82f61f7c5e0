#!/usr/bin/env bash
# Local services for development and CI, with no Docker: a single-node KRaft Apache Kafka broker assembled from
# Maven Central jars, and Debian's InfluxDB 1.x server. Everything they write lives in a cache outside the
# repository ($FUSEWATCH_CACHE, default ~/.cache/fusewatch). See docs/services.md.
#
#   services.sh up [--record FILE]    fetch what is missing, start what is not running, wait until healthy
#   services.sh down [--only FILE]    stop the services (only those listed in FILE, as written by up --record)
#   services.sh status                one line per service; exit status 0 only when all are healthy
#   services.sh reset                 stop the services and delete their data (topics, databases)
#   services.sh logs                  where the log files are
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${FUSEWATCH_CACHE:-$HOME/.cache/fusewatch}"
KAFKA_PORT="${FUSEWATCH_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${FUSEWATCH_KAFKA_CONTROLLER_PORT:-9093}"
INFLUX_PORT="${FUSEWATCH_INFLUX_PORT:-8086}"
INFLUX_RPC_PORT="${FUSEWATCH_INFLUX_RPC_PORT:-8088}"
KAFKA_HEAP="${FUSEWATCH_KAFKA_HEAP:-1g}"
START_TIMEOUT_S="${FUSEWATCH_SERVICES_TIMEOUT:-90}"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka/pom.xml")"
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
KAFKA_HOME="$CACHE/kafka"          # data, logs, config and pid of the running broker
INFLUX_HOME="$CACHE/influxdb"

say() { printf '%s\n' "services: $*"; }
die() { printf '%s\n' "services: error: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $* (install it yourself, or run as root)"; fi
}

apt_install() {  # apt_install PACKAGE...: install Debian packages, refreshing the package lists once if needed
    say "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends "$@" >"$CACHE/apt.log" 2>&1; then
        as_root apt-get update -q >>"$CACHE/apt.log" 2>&1 || true
        as_root apt-get install -y -q --no-install-recommends "$@" >>"$CACHE/apt.log" 2>&1 \
            || die "apt-get install $* failed; see $CACHE/apt.log"
    fi
}

fill() {  # fill TEMPLATE: replace @NAME@ placeholders
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_HOME/data|g" -e "s|@INFLUX_PORT@|$INFLUX_PORT|g" \
        -e "s|@INFLUX_RPC_PORT@|$INFLUX_RPC_PORT|g" -e "s|@INFLUX_DIR@|$INFLUX_HOME|g" "$1"
}

wait_until() {  # wait_until WHAT PID_FILE LOG COMMAND...: poll COMMAND until it succeeds; fail if the process dies
    local what=$1 pid_file=$2 log=$3; shift 3
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until "$@"; do
        pid_alive "$pid_file" || { tail -n 20 "$log" >&2 || true; die "$what exited during start-up; log: $log"; }
        ((SECONDS < deadline)) || { tail -n 20 "$log" >&2 || true; die "$what not healthy after ${START_TIMEOUT_S} s; log: $log"; }
        sleep 0.3
    done
}

# ---------------------------------------------------------------- Kafka

kafka_fetch() {
    local stamp="$KAFKA_LIBS/.complete"
    if [[ -f "$stamp" ]] && cmp -s "$stamp" "$HERE/kafka/pom.xml"; then return; fi
    command -v java >/dev/null || die "java not found: Kafka $KAFKA_VERSION needs Java 17+"
    command -v mvn >/dev/null || die "mvn not found: Maven fetches the Kafka jars from Maven Central"
    say "fetching Kafka $KAFKA_VERSION and its runtime dependencies from Maven Central into $KAFKA_LIBS"
    rm -rf "$KAFKA_LIBS" && mkdir -p "$KAFKA_LIBS"
    mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_LIBS" >"$CACHE/maven.log" 2>&1 || { tail -n 30 "$CACHE/maven.log" >&2; die "maven failed; see $CACHE/maven.log"; }
    [[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after the fetch"
    cp "$HERE/kafka/pom.xml" "$stamp"
}

KAFKA_JAVA=(java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.yaml" "-Dkafka.logs.dir=$KAFKA_HOME/logs" -cp "$KAFKA_LIBS/*")
RECORD=""  # up --record FILE: the services this invocation started are listed there, one per line

kafka_healthy() {
    port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$KAFKA_HOME/logs/server.log" 2>/dev/null
}

kafka_up() {
    kafka_fetch
    mkdir -p "$KAFKA_HOME/logs" "$KAFKA_HOME/data"
    local pid_file="$KAFKA_HOME/kafka.pid"
    if pid_alive "$pid_file"; then
        wait_until "Kafka" "$pid_file" "$KAFKA_HOME/logs/server.log" kafka_healthy
        say "kafka     already running (pid $(cat "$pid_file"), 127.0.0.1:$KAFKA_PORT)"
        return
    fi
    port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; set FUSEWATCH_KAFKA_PORT"
    fill "$HERE/kafka/server.properties.in" >"$KAFKA_HOME/server.properties"
    if [[ ! -f "$KAFKA_HOME/data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid)"
        "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_HOME/server.properties" \
            >"$KAFKA_HOME/logs/format.log" 2>&1 || die "formatting the KRaft storage failed; see $KAFKA_HOME/logs/format.log"
        say "formatted KRaft storage in $KAFKA_HOME/data (cluster $cluster_id)"
    fi
    : >"$KAFKA_HOME/logs/server.log"
    nohup setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_HOME/server.properties" \
        >"$KAFKA_HOME/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    wait_until "Kafka" "$pid_file" "$KAFKA_HOME/logs/server.log" kafka_healthy
    [[ -z "$RECORD" ]] || echo kafka >>"$RECORD"
    say "kafka     started (pid $(cat "$pid_file"), 127.0.0.1:$KAFKA_PORT, Kafka $KAFKA_VERSION)"
}

# ---------------------------------------------------------------- InfluxDB

influx_healthy() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$INFLUX_PORT/ping")" == 204 ]]
}

influx_up() {
    command -v influxd >/dev/null || apt_install influxdb
    mkdir -p "$INFLUX_HOME"
    local pid_file="$INFLUX_HOME/influxd.pid"
    if pid_alive "$pid_file"; then
        wait_until "InfluxDB" "$pid_file" "$INFLUX_HOME/influxd.log" influx_healthy
        say "influxdb  already running (pid $(cat "$pid_file"), http://127.0.0.1:$INFLUX_PORT)"
        return
    fi
    port_open "$INFLUX_PORT" && die "port $INFLUX_PORT is taken by another process; set FUSEWATCH_INFLUX_PORT"
    fill "$HERE/influxdb.conf.in" >"$INFLUX_HOME/influxdb.conf"
    nohup setsid influxd -config "$INFLUX_HOME/influxdb.conf" >"$INFLUX_HOME/influxd.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    wait_until "InfluxDB" "$pid_file" "$INFLUX_HOME/influxd.log" influx_healthy
    [[ -z "$RECORD" ]] || echo influxdb >>"$RECORD"
    say "influxdb  started (pid $(cat "$pid_file"), http://127.0.0.1:$INFLUX_PORT, $(influxd version | head -n 1))"
}

# ---------------------------------------------------------------- commands

stop() {  # stop NAME PID_FILE
    local name=$1 pid_file=$2
    if ! pid_alive "$pid_file"; then rm -f "$pid_file"; say "$name not running"; return; fi
    local pid; pid="$(cat "$pid_file")"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; say "$name did not stop in 30 s: killed"; fi
    rm -f "$pid_file"
    say "$name stopped"
}

cmd_up() {
    if [[ "${1:-}" == "--record" ]]; then RECORD="${2:?--record needs a file}"; : >"$RECORD"; fi
    mkdir -p "$CACHE"
    command -v kcat >/dev/null || apt_install kcat   # the independent Kafka client the wire-format tests use
    kafka_up
    influx_up
    return 0
}

cmd_down() {
    local only=""
    [[ "${1:-}" == "--only" ]] && only="${2:?--only needs a file}"
    if [[ -z "$only" ]] || grep -qx kafka "$only" 2>/dev/null; then stop kafka "$KAFKA_HOME/kafka.pid"; fi
    if [[ -z "$only" ]] || grep -qx influxdb "$only" 2>/dev/null; then stop influxdb "$INFLUX_HOME/influxd.pid"; fi
    return 0
}

cmd_status() {
    local healthy=0
    if pid_alive "$KAFKA_HOME/kafka.pid" && kafka_healthy; then
        say "kafka     running (pid $(cat "$KAFKA_HOME/kafka.pid"), 127.0.0.1:$KAFKA_PORT, Kafka $KAFKA_VERSION)"
    else say "kafka     down"; healthy=3; fi
    if pid_alive "$INFLUX_HOME/influxd.pid" && influx_healthy; then
        say "influxdb  running (pid $(cat "$INFLUX_HOME/influxd.pid"), http://127.0.0.1:$INFLUX_PORT)"
    else say "influxdb  down"; healthy=3; fi
    return $healthy
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    reset) cmd_down; rm -rf "$KAFKA_HOME" "$INFLUX_HOME"; say "data deleted ($KAFKA_HOME, $INFLUX_HOME)" ;;
    logs) printf '%s\n' "$KAFKA_HOME/logs/server.log" "$INFLUX_HOME/influxd.log" ;;
    -h|--help|help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
