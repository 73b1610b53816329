# Sourced by profile.sh, pgo.sh and latency.sh: the nginx upstream they all measure against,
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
