"""RSS of rampart holding N idle keep-alive client connections, each of which made one
request (so each also left an upstream connection in the pool). Loopback only; starts its
own upstream (Python, HTTP/1.1 keep-alive) and rampart, prints JSON.
Usage: idle_connections.py RAMPART_BIN CONFIG N"""
import http.server
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # one write per answer: no Nagle delay between head and body

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def main():
    binary, config, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * n + 256)), hard))
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    listen = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, RAMPART_LOG="warn", BENCH_LISTEN=listen,
               BENCH_UPSTREAM=f"127.0.0.1:{upstream.server_address[1]}",
               BENCH_ADMIN_PORT=str(free_port()))
    proxy = subprocess.Popen([binary, "run", "-c", config], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host, port = listen.split(":")
    try:
        for _ in range(100):
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        idle_rss = status(proxy.pid, "VmRSS")
        conns = []
        for _ in range(n):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            got = b""
            while not got.endswith(b"ok\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("the proxy closed a connection")
                got += chunk
            if not got.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {got[:80]!r}")
            conns.append(s)
        time.sleep(1)
        fds = len(os.listdir(f"/proc/{proxy.pid}/fd"))
        if fds < n:
            # header_read_timeout closes idle keep-alive connections: opening took too long.
            raise SystemExit(f"only {fds} descriptors: the proxy closed idle connections")
        result = {
            "connections": n,
            "idle_rss_kb": idle_rss,
            "rss_kb": status(proxy.pid, "VmRSS"),
            "hwm_kb": status(proxy.pid, "VmHWM"),
            "fds": fds,
        }
        for s in conns:
            s.close()
        print(json.dumps(result))
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        upstream.shutdown()


main()
