# Sourced by the load scripts: the nginx upstream they all measure against,
# on 127.0.0.1:18080, answering / with "ok\n" and /4k with 4 KiB, as the harness's does.
# upstream_conf DIR writes DIR/upstream.conf and DIR/4k; start it with
# nginx -c DIR/upstream.conf -p DIR.
upstream_conf() {
    local dir=$1
    # nginx's workers run as nobody and read /4k from here (mktemp makes it 0700).
    chmod 755 "$dir"
    head -c 4096 /dev/zero | tr '\0' 'x' > "$dir/4k"
    cat > "$dir/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/upstream.pid;
error_log $dir/upstream-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:18080;
        location = / { return 200 "ok\n"; }
        location = /4k { alias $dir/4k; }
    }
}
NGINX
}

# nginx_proxy_conf DIR writes DIR/px.conf: nginx as a reverse proxy of that upstream on
# 127.0.0.1:18082 (one worker), the peer latency.sh and pairs.sh compare rampart with.
# Start it with nginx -c DIR/px.conf -p DIR.
nginx_proxy_conf() {
    local dir=$1
    mkdir -p "$dir/px"
    # The same resilience switched on as for rampart; the upstream is listed twice because nginx
    # ignores max_fails for a single server and would have no peer to retry on.
    cat > "$dir/px.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/px.pid;
error_log $dir/px-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/px;
    proxy_temp_path $dir/px;
    keepalive_requests 1000000;
    limit_req_zone \$binary_remote_addr zone=rl:10m rate=1000000r/s;
    upstream up {
        server 127.0.0.1:18080 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:18080 max_fails=3 fail_timeout=10s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:18082 backlog=4096;
        location / {
            limit_req zone=rl burst=100000 nodelay;
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
        }
    }
}
NGINX
}

# start_compared BIN writes both nginx configs into a new temporary directory `out`, starts
# the upstream (CPU 1), nginx_proxy_conf's nginx on :18082 and BIN
# (benches/load/rampart-bench.yaml) on :18090, both on CPU 0, and returns once all three
# answer. An EXIT trap stops them and removes `out`.
start_compared() {
    local bin=$1 port ready
    # A leftover server (a draining rampart) would answer the readiness checks, then vanish.
    for port in 18080 18082 18090; do
        ! curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "something already answers on :$port" >&2; exit 1; }
    done
    out=$(mktemp -d)
    upstream_conf "$out"
    nginx_proxy_conf "$out"
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$out"' EXIT
    taskset -c 1 nginx -c "$out/upstream.conf" -p "$out" & pids+=($!)
    taskset -c 0 nginx -c "$out/px.conf" -p "$out" & pids+=($!)
    BENCH_LISTEN=127.0.0.1:18090 BENCH_UPSTREAM=127.0.0.1:18080 BENCH_ADMIN_PORT=18091 RAMPART_LOG=warn \
        taskset -c 0 "$bin" run -c benches/load/rampart-bench.yaml > "$out/rampart.log" 2>&1 & pids+=($!)
    for port in 18080 18082 18090; do
        ready=
        for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && { ready=1; break; }; sleep 0.1; done
        [ -n "$ready" ] || { echo "nothing answers on :$port" >&2; exit 1; }
    done
}

# need TOOL...: stops the script at the first tool that is not installed.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing $tool (bash ../shared/bench/setup.sh)" >&2; exit 1; }
    done
}

# rampart_bin GIVEN prints GIVEN when set (stopping the script if it is no executable), else
# builds the release binary and prints its path.
rampart_bin() {
    if [ -n "$1" ]; then
        [ -x "$1" ] || { echo "no binary at $1" >&2; exit 1; }
        echo "$1"
    else
        cargo build --release --locked --bin rampart >&2 || exit 1
        echo "$PWD/target/release/rampart"
    fi
}
