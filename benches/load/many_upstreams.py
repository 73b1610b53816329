"""Prints rampart-bench.yaml's route as one upstream among N: N-1 others with their own
hosts and prefixes (so every routing table holds N entries), all with the same policies."""
import sys

n = int(sys.argv[1])
print("""listen: ${BENCH_LISTEN}
admin: { listen: "127.0.0.1:${BENCH_ADMIN_PORT:-0}" }
runtime: { worker_threads: 1 }
defaults:
  timeouts: { connect: 1s, request: 15s, per_try: 5s, idle: 90s }
  retry:
    attempts: 3
    budget: { ratio: 20%, min_per_second: 10, window: 10s }
  rate_limit: { rate: 1000000/s, burst: 100000 }
  circuit_breaker: { preset: moderate }
upstreams:""")
for i in range(1, n):
    print(f"""  u{i:05d}:
    endpoints: ["http://127.0.0.1:{20000 + i % 10000}"]
    hosts: [svc{i:05d}.internal]
    path_prefix: /svc{i:05d}""")
print("""  bench:
    endpoints: ["http://${BENCH_UPSTREAM}"]
    path_prefix: /""")
