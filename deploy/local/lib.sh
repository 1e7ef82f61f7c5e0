# Bash shared by deploy/local/services.sh and deploy/local/cluster.sh (sourced, never run). The caller sets
# HERE (this directory) and NAME (the prefix of its messages) first, and `set -euo pipefail`.
# shellcheck shell=bash disable=SC2034  # the variables set here are used by the scripts that source it

CACHE="${FUSEWATCH_CACHE:-$HOME/.cache/fusewatch}"
START_TIMEOUT_S="${FUSEWATCH_SERVICES_TIMEOUT:-90}"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka/pom.xml")"
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"

say() { printf '%s\n' "$NAME: $*"; }
die() { printf '%s\n' "$NAME: error: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

proc_alive() {  # proc_alive PID: the process exists and is not a zombie (a killed JVM waits a while to be reaped)
    kill -0 "$1" 2>/dev/null || return 1
    local stat; stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]]
}

pid_alive() { [[ -f "$1" ]] && proc_alive "$(cat "$1")"; }

wait_until() {  # wait_until WHAT PID_FILE LOG COMMAND...: poll COMMAND until it succeeds; fail if the process dies
    local what=$1 pid_file=$2 log=$3; shift 3
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until "$@"; do
        pid_alive "$pid_file" || { tail -n 20 "$log" >&2 || true; die "$what exited during start-up; log: $log"; }
        ((SECONDS < deadline)) || { tail -n 20 "$log" >&2 || true; die "$what not healthy after ${START_TIMEOUT_S} s; log: $log"; }
        sleep 0.3
    done
}

stop() {  # stop NAME PID_FILE: SIGTERM, then SIGKILL after 30 s
    local name=$1 pid_file=$2
    if ! pid_alive "$pid_file"; then rm -f "$pid_file"; say "$name not running"; return; fi
    local pid; pid="$(cat "$pid_file")"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while proc_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if proc_alive "$pid"; then kill -KILL "$pid"; say "$name did not stop in 30 s: killed"; fi
    rm -f "$pid_file"
    say "$name stopped"
}

kafka_fetch() {  # the broker's jars from Maven Central into $KAFKA_LIBS, once per pom.xml
    local stamp="$KAFKA_LIBS/.complete"
    if [[ -f "$stamp" ]] && cmp -s "$stamp" "$HERE/kafka/pom.xml"; then return; fi
    command -v java >/dev/null || die "java not found: Kafka $KAFKA_VERSION needs Java 17+"
    command -v mvn >/dev/null || die "mvn not found: Maven fetches the Kafka jars from Maven Central"
    say "fetching Kafka $KAFKA_VERSION and its runtime dependencies from Maven Central into $KAFKA_LIBS"
    mkdir -p "$CACHE"
    rm -rf "$KAFKA_LIBS" && mkdir -p "$KAFKA_LIBS"
    mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_LIBS" >"$CACHE/maven.log" 2>&1 || { tail -n 30 "$CACHE/maven.log" >&2; die "maven failed; see $CACHE/maven.log"; }
    [[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after the fetch"
    cp "$HERE/kafka/pom.xml" "$stamp"
}

kafka_uuid() {  # a random Kafka Uuid (22 characters of URL-safe base64), like `StorageTool random-uuid`
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" == -* ]] || break  # Kafka never hands out ids that look like a command-line flag
    done
    printf '%s\n' "$id"
}
