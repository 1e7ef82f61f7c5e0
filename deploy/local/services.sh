#!/usr/bin/env bash
# Local services for development and CI, with no Docker: a single-node KRaft Apache Kafka broker assembled from
# Maven Central jars (PLAINTEXT :9092, SASL_SSL/SCRAM :9094, mutual TLS :9095), Debian's InfluxDB 1.x server and
# Debian's Mosquitto MQTT broker (:1883).
# Everything they write lives in a cache outside the repository ($FUSEWATCH_CACHE, default ~/.cache/fusewatch).
#
#   services.sh up [--record FILE]    fetch what is missing, start what is not running, wait until healthy
#   services.sh down [--only FILE]    stop the services (only those listed in FILE, as written by up --record)
#   services.sh status                one line per service; exit status 0 only when all are healthy
#   services.sh reset                 stop the services and delete their data (topics, databases, MQTT sessions)
#   services.sh logs                  where the log files are
# See docs/services.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME=services
# shellcheck source=lib.sh
source "$HERE/lib.sh"   # CACHE, KAFKA_VERSION, KAFKA_LIBS, say, die, port_open, pid_alive, wait_until, stop, kafka_fetch
KAFKA_PORT="${FUSEWATCH_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${FUSEWATCH_KAFKA_CONTROLLER_PORT:-9093}"
SASL_SSL_PORT="${FUSEWATCH_KAFKA_SASL_SSL_PORT:-9094}"
SSL_PORT="${FUSEWATCH_KAFKA_SSL_PORT:-9095}"
INFLUX_PORT="${FUSEWATCH_INFLUX_PORT:-8086}"
INFLUX_RPC_PORT="${FUSEWATCH_INFLUX_RPC_PORT:-8088}"
MQTT_PORT="${FUSEWATCH_MQTT_PORT:-1883}"
KAFKA_HEAP="${FUSEWATCH_KAFKA_HEAP:-1g}"

KAFKA_HOME="$CACHE/kafka"          # data, logs, config and pid of the running broker
TLS_DIR="$KAFKA_HOME/tls"          # CA, broker keystore and truststore, client certificates
SECRETS_DIR="$KAFKA_HOME/secrets"  # keystore passwords and SCRAM passwords, one file each
SCRAM_USERS=(admin fusewatch outsider)
INFLUX_HOME="$CACHE/influxdb"
MQTT_HOME="$CACHE/mosquitto"

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

fill() {  # fill TEMPLATE: replace @NAME@ placeholders (no secrets: kafka_config adds those)
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        -e "s|@SASL_SSL_PORT@|$SASL_SSL_PORT|g" -e "s|@SSL_PORT@|$SSL_PORT|g" -e "s|@TLS_DIR@|$TLS_DIR|g" \
        -e "s|@DATA_DIR@|$KAFKA_HOME/data|g" -e "s|@INFLUX_PORT@|$INFLUX_PORT|g" \
        -e "s|@INFLUX_RPC_PORT@|$INFLUX_RPC_PORT|g" -e "s|@INFLUX_DIR@|$INFLUX_HOME|g" \
        -e "s|@MQTT_PORT@|$MQTT_PORT|g" -e "s|@MQTT_DIR@|$MQTT_HOME|g" -e "s|@MQTT_USER@|$(id -un)|g" "$1"
}

# ---------------------------------------------------------------- Kafka

KAFKA_JAVA=(java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.yaml" "-Dkafka.logs.dir=$KAFKA_HOME/logs" -cp "$KAFKA_LIBS/*")
# StorageTool and ConfigCommand: a small JVM that logs apart from the broker (it may run next to it)
KAFKA_TOOL=(java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.yaml" "-Dkafka.logs.dir=$KAFKA_HOME/logs/tools" -cp "$KAFKA_LIBS/*")
RECORD=""  # up --record FILE: the services this invocation started are listed there, one per line

secret() {  # secret NAME: the path of $SECRETS_DIR/NAME.password, a random secret made once (mode 600, no newline)
    local file="$SECRETS_DIR/$1.password"
    if [[ ! -s "$file" ]]; then
        (umask 077 && mkdir -p "$SECRETS_DIR" && openssl rand -hex 16 | tr -d '\n' >"$file.tmp" && mv "$file.tmp" "$file") \
            || die "could not write $file"
    fi
    printf '%s\n' "$file"
}

tls_issue() {  # tls_issue NAME CN EXTENSIONS (in $TLS_DIR): NAME.key (unencrypted PEM, 600) and NAME.pem, signed by the CA
    local name=$1 cn=$2 ext=$3
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$name.key.tmp" -out "$name.csr" 2>>tls.log \
        && openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
            -days 3650 -sha256 -extfile <(printf '%s\n' "$ext") -out "$name.pem.tmp" 2>>tls.log \
        && chmod 600 "$name.key.tmp" && chmod 644 "$name.pem.tmp" \
        && mv "$name.key.tmp" "$name.key" && mv "$name.pem.tmp" "$name.pem" && rm -f "$name.csr"
}

TLS_LEAF="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"

tls_make() {  # (run in $TLS_DIR with umask 077) make what is missing; print one line per thing made
    local keystore_pw=$1 truststore_pw=$2 user
    if [[ ! -s ca.pem || ! -s ca.key ]]; then  # a new CA: every certificate of the old one goes too
        rm -f ./*.pem ./*.key ./*.p12
        openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=fusewatch local CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout ca.key.tmp -out ca.pem.tmp 2>>tls.log \
            && chmod 644 ca.pem.tmp && mv ca.key.tmp ca.key && mv ca.pem.tmp ca.pem || return 1
        echo "new CA: $TLS_DIR/ca.pem"
    fi
    if [[ ! -s broker.keystore.p12 ]]; then
        tls_issue broker localhost "$TLS_LEAF
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1" \
            && openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
                -passout "file:$keystore_pw" -out broker.keystore.p12.tmp 2>>tls.log \
            && mv broker.keystore.p12.tmp broker.keystore.p12 && rm -f broker.key || return 1
        echo "broker keystore (CN=localhost, SAN DNS:localhost, IP:127.0.0.1)"
    fi
    if [[ ! -s broker.truststore.p12 ]]; then
        rm -f broker.truststore.p12.tmp
        keytool -importcert -noprompt -alias fusewatch-ca -file ca.pem -storetype PKCS12 \
            -keystore broker.truststore.p12.tmp -storepass:file "$truststore_pw" >>tls.log 2>&1 \
            && mv broker.truststore.p12.tmp broker.truststore.p12 || return 1
        echo "broker truststore (the CA, to check client certificates)"
    fi
    for user in fusewatch outsider; do
        [[ -s $user-client.pem && -s $user-client.key ]] && continue
        tls_issue "$user-client" "$user" "$TLS_LEAF
extendedKeyUsage=clientAuth" || return 1
        echo "client certificate CN=$user"
    done
}

tls_setup() {  # the TLS material of the secured listeners, made at the first `up` and only what is missing
    command -v openssl >/dev/null || die "openssl not found: it makes the certificates of the secured Kafka listeners"
    command -v keytool >/dev/null || die "keytool not found: it comes with the JDK"
    local keystore_pw truststore_pw made
    [[ -s "$SECRETS_DIR/keystore.password" ]] || rm -f "$TLS_DIR/broker.keystore.p12"
    [[ -s "$SECRETS_DIR/truststore.password" ]] || rm -f "$TLS_DIR/broker.truststore.p12"
    keystore_pw="$(secret keystore)" && truststore_pw="$(secret truststore)"
    mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
    made="$(cd "$TLS_DIR" && umask 077 && tls_make "$keystore_pw" "$truststore_pw")" \
        || { printf '%s\n' "$made"; die "making the TLS material in $TLS_DIR failed; see $TLS_DIR/tls.log"; }
    [[ -z "$made" ]] || printf '%s\n' "$made" | while read -r line; do say "tls       $line"; done
}

kafka_config() {  # server.properties from the template, with the keystore passwords (so mode 600)
    local out="$KAFKA_HOME/server.properties"
    rm -f "$out"
    (umask 077 && fill "$HERE/kafka/server.properties.in" \
        | sed -e "s|@KEYSTORE_PASSWORD@|$(cat "$(secret keystore)")|g" \
              -e "s|@TRUSTSTORE_PASSWORD@|$(cat "$(secret truststore)")|g" >"$out")
}

scram_fingerprint() {  # which passwords the broker should hold: a digest of the users and their password files
    local user
    for user in "${SCRAM_USERS[@]}"; do printf '%s:' "$user"; cat "$(secret "$user")"; printf '\n'; done | sha256sum | cut -d' ' -f1
}

scram_args() {  # --add-scram arguments of StorageTool format: SCRAM-SHA-512 and SCRAM-SHA-256 for every user
    local user pw
    for user in "${SCRAM_USERS[@]}"; do
        pw="$(cat "$(secret "$user")")"
        printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$pw]" --add-scram "SCRAM-SHA-256=[name=$user,password=$pw]"
    done
}

kafka_scram_sync() {  # storage formatted before the SCRAM users existed (or new passwords): set them on the running broker
    local want; want="$(scram_fingerprint)"
    [[ "$(cat "$SECRETS_DIR/scram.applied" 2>/dev/null)" == "$want" ]] && return
    local user pw mechanism
    for user in "${SCRAM_USERS[@]}"; do
        pw="$(cat "$(secret "$user")")"
        # one mechanism per call: Kafka 4.0 refuses two credentials of one user in one request
        for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
            "${KAFKA_TOOL[@]}" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
                --add-config "$mechanism=[password=$pw]" --entity-type users --entity-name "$user" \
                >>"$KAFKA_HOME/logs/scram.log" 2>&1 \
                || die "setting the $mechanism credential of $user failed; see $KAFKA_HOME/logs/scram.log"
        done
    done
    (umask 077 && printf '%s' "$want" >"$SECRETS_DIR/scram.applied")
    say "kafka     SCRAM-SHA-512/256 credentials set for ${SCRAM_USERS[*]} (passwords in $SECRETS_DIR)"
}

kafka_healthy() {
    port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$KAFKA_HOME/logs/server.log" 2>/dev/null
}

kafka_secured() { port_open "$SASL_SSL_PORT" && port_open "$SSL_PORT"; }

kafka_fully_healthy() { kafka_healthy && kafka_secured; }

kafka_where() { printf '%s' "127.0.0.1:$KAFKA_PORT, SASL_SSL :$SASL_SSL_PORT, mTLS :$SSL_PORT"; }

kafka_up() {
    kafka_fetch
    mkdir -p "$KAFKA_HOME/logs/tools" "$KAFKA_HOME/data"
    tls_setup
    local pid_file="$KAFKA_HOME/kafka.pid"
    if pid_alive "$pid_file"; then
        wait_until "Kafka" "$pid_file" "$KAFKA_HOME/logs/server.log" kafka_healthy
        if kafka_secured; then
            kafka_scram_sync
            say "kafka     already running (pid $(cat "$pid_file"), $(kafka_where))"
        else  # a broker started by an older services.sh: the development listener works, the secured ones do not
            say "kafka     already running (pid $(cat "$pid_file"), 127.0.0.1:$KAFKA_PORT) with an older configuration:" \
                "no listeners on :$SASL_SSL_PORT/:$SSL_PORT; run \`services.sh down\` and \`up\` to add them"
        fi
        return
    fi
    local check port var
    for check in "$KAFKA_PORT FUSEWATCH_KAFKA_PORT" "$CONTROLLER_PORT FUSEWATCH_KAFKA_CONTROLLER_PORT" \
                 "$SASL_SSL_PORT FUSEWATCH_KAFKA_SASL_SSL_PORT" "$SSL_PORT FUSEWATCH_KAFKA_SSL_PORT"; do
        read -r port var <<<"$check"
        port_open "$port" && die "port $port is taken by another process; set $var"
    done
    kafka_config
    if [[ ! -f "$KAFKA_HOME/data/meta.properties" ]]; then
        local cluster_id args=()
        cluster_id="$(kafka_uuid)"
        mapfile -t args < <(scram_args)
        "${KAFKA_TOOL[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_HOME/server.properties" \
            "${args[@]}" >"$KAFKA_HOME/logs/format.log" 2>&1 \
            || die "formatting the KRaft storage failed; see $KAFKA_HOME/logs/format.log"
        (umask 077 && scram_fingerprint | tr -d '\n' >"$SECRETS_DIR/scram.applied")
        say "formatted KRaft storage in $KAFKA_HOME/data (cluster $cluster_id, SCRAM users ${SCRAM_USERS[*]})"
    fi
    : >"$KAFKA_HOME/logs/server.log"
    nohup setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_HOME/server.properties" \
        >"$KAFKA_HOME/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    wait_until "Kafka" "$pid_file" "$KAFKA_HOME/logs/server.log" kafka_fully_healthy
    [[ -z "$RECORD" ]] || echo kafka >>"$RECORD"
    kafka_scram_sync
    say "kafka     started (pid $(cat "$pid_file"), $(kafka_where), Kafka $KAFKA_VERSION)"
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

# ---------------------------------------------------------------- Mosquitto

mqtt_healthy() {
    port_open "$MQTT_PORT" && grep -q "mosquitto version .* running" "$MQTT_HOME/mosquitto.log" 2>/dev/null
}

mqtt_up() {
    command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || apt_install mosquitto
    local mosquitto; mosquitto="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
    mkdir -p "$MQTT_HOME/data"
    local pid_file="$MQTT_HOME/mosquitto.pid"
    if pid_alive "$pid_file"; then
        wait_until "Mosquitto" "$pid_file" "$MQTT_HOME/mosquitto.log" mqtt_healthy
        say "mosquitto already running (pid $(cat "$pid_file"), mqtt://127.0.0.1:$MQTT_PORT)"
        return
    fi
    port_open "$MQTT_PORT" && die "port $MQTT_PORT is taken by another process; set FUSEWATCH_MQTT_PORT"
    fill "$HERE/mosquitto.conf.in" >"$MQTT_HOME/mosquitto.conf"
    nohup setsid "$mosquitto" -c "$MQTT_HOME/mosquitto.conf" >"$MQTT_HOME/mosquitto.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    wait_until "Mosquitto" "$pid_file" "$MQTT_HOME/mosquitto.log" mqtt_healthy
    [[ -z "$RECORD" ]] || echo mosquitto >>"$RECORD"
    say "mosquitto started (pid $(cat "$pid_file"), mqtt://127.0.0.1:$MQTT_PORT, $("$mosquitto" -h | head -n 1))"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    if [[ "${1:-}" == "--record" ]]; then RECORD="${2:?--record needs a file}"; : >"$RECORD"; fi
    mkdir -p "$CACHE"
    command -v kcat >/dev/null || apt_install kcat   # the independent Kafka client the wire-format tests use
    kafka_up
    influx_up
    mqtt_up
    return 0
}

cmd_down() {
    local only=""
    [[ "${1:-}" == "--only" ]] && only="${2:?--only needs a file}"
    if [[ -z "$only" ]] || grep -qx kafka "$only" 2>/dev/null; then stop kafka "$KAFKA_HOME/kafka.pid"; fi
    if [[ -z "$only" ]] || grep -qx influxdb "$only" 2>/dev/null; then stop influxdb "$INFLUX_HOME/influxd.pid"; fi
    if [[ -z "$only" ]] || grep -qx mosquitto "$only" 2>/dev/null; then stop mosquitto "$MQTT_HOME/mosquitto.pid"; fi
    return 0
}

cmd_status() {
    local healthy=0
    if pid_alive "$KAFKA_HOME/kafka.pid" && kafka_fully_healthy; then
        say "kafka     running (pid $(cat "$KAFKA_HOME/kafka.pid"), $(kafka_where), Kafka $KAFKA_VERSION)"
    elif pid_alive "$KAFKA_HOME/kafka.pid" && kafka_healthy; then
        say "kafka     running (pid $(cat "$KAFKA_HOME/kafka.pid"), 127.0.0.1:$KAFKA_PORT) but without the secured" \
            "listeners :$SASL_SSL_PORT/:$SSL_PORT (an older configuration): run \`services.sh down\` and \`up\`"
        healthy=3
    else say "kafka     down"; healthy=3; fi
    if pid_alive "$INFLUX_HOME/influxd.pid" && influx_healthy; then
        say "influxdb  running (pid $(cat "$INFLUX_HOME/influxd.pid"), http://127.0.0.1:$INFLUX_PORT)"
    else say "influxdb  down"; healthy=3; fi
    if pid_alive "$MQTT_HOME/mosquitto.pid" && mqtt_healthy; then
        say "mosquitto running (pid $(cat "$MQTT_HOME/mosquitto.pid"), mqtt://127.0.0.1:$MQTT_PORT)"
    else say "mosquitto down"; healthy=3; fi
    return $healthy
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    reset) cmd_down; rm -rf "$KAFKA_HOME" "$INFLUX_HOME" "$MQTT_HOME"
           say "data deleted ($KAFKA_HOME with its TLS material and secrets, $INFLUX_HOME, $MQTT_HOME)" ;;
    logs) printf '%s\n' "$KAFKA_HOME/logs/server.log" "$INFLUX_HOME/influxd.log" "$MQTT_HOME/mosquitto.log" ;;
    -h|--help|help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
