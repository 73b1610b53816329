"""The docs/performance.md table from one run of benches/load/run.sh: rampart (bench route
alone and among 10,000 upstreams) against direct, nginx, HAProxy and Caddy, medians of the
harness's clean runs, with the issue's goals checked against the same run.
Usage: table.py HARNESS_RESULTS_JSON IDLE_CONNECTIONS_JSON [INSTRUCTIONS_JSON]
INSTRUCTIONS_JSON: callgrind instructions per request of "rampart" and "rampart-10k"."""
import json
import sys

results = json.load(open(sys.argv[1]))
idle = json.load(open(sys.argv[2]))
instructions = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else None
runs = results["summary"]["runs"]
memory = results["summary"]["memory"]
targets = [t for t in ["direct", "nginx", "haproxy", "caddy", "rampart", "rampart-10k"]
           if f"{t}|/|max" in runs]
paths = sorted({key.split("|")[1] for key in runs})


def run(target, path, mode):
    return runs.get(f"{target}|{path}|{mode}")


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def added_p99(target, path, rate):
    mine, direct = run(target, path, f"rate{rate}"), run("direct", path, f"rate{rate}")
    if not mine or not direct or mine.get("p99_us") is None:
        return None
    return mine["p99_us"] - direct["p99_us"]


print(f"Run {results['meta']['started']} – {results['meta']['finished']}, "
      f"{results['meta']['settings'].get('rounds', '?')} round(s); medians of clean runs.\n")
for path in paths:
    print(f"#### Path `{path}`\n")
    print("| target | max req/s | CPU µs/req at max | +p99 over direct at 5,000 req/s (µs) "
          "| +p99 at 2,000 req/s (µs) | idle RSS MiB | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in targets:
        m = run(t, path, "max") or {}
        mem = memory.get(t, {})
        print(f"| {t} | {fmt(m.get('rps'))} | {fmt(m.get('sut_cpu_us_per_req'), 1)} "
              f"| {fmt(added_p99(t, path, 5000)) if t != 'direct' else '0'} "
              f"| {fmt(added_p99(t, path, 2000)) if t != 'direct' else '0'} "
              f"| {fmt(mem.get('idle_rss_kb', 0) / 1024, 1) if t != 'direct' else '–'} "
              f"| {fmt(mem.get('peak_hwm_kb', 0) / 1024, 1) if t != 'direct' else '–'} |")
    print()

print(f"Idle keep-alive client connections: {idle['connections']:,} held "
      f"(each made one request): RSS {idle['rss_kb'] / 1024:.1f} MiB "
      f"(idle before: {idle['idle_rss_kb'] / 1024:.1f} MiB), {idle['fds']:,} descriptors.\n")

print("| goal | measured | met |")
print("| --- | --- | --- |")
best_peer = min((t for t in ["nginx", "haproxy", "caddy"] if run(t, "/", "max")),
                key=lambda t: run(t, "/", "max")["sut_cpu_us_per_req"], default=None)
for path in paths:
    mine, peer = run("rampart", path, "max"), run(best_peer, path, "max") if best_peer else None
    if mine and peer:
        ratio = mine["sut_cpu_us_per_req"] / peer["sut_cpu_us_per_req"]
        print(f"| CPU µs/req ≤ {best_peer}'s, `{path}` | ratio {ratio:.2f} | {'yes' if ratio <= 1.0 else 'no'} |")
        print(f"| max req/s ≥ {best_peer}'s, `{path}` | {mine['rps']:,.0f} vs {peer['rps']:,.0f} "
              f"| {'yes' if mine['rps'] >= peer['rps'] else 'no'} |")
p99 = added_p99("rampart", "/", 5000)
if p99 is not None:
    print(f"| +p99 over direct at 5,000 req/s ≤ 150 µs | {p99:,.0f} µs | {'yes' if p99 <= 150 else 'no'} |")
mem = memory.get("rampart", {})
if mem:
    print(f"| idle RSS ≤ 10 MiB | {mem['idle_rss_kb'] / 1024:.1f} MiB | {'yes' if mem['idle_rss_kb'] <= 10240 else 'no'} |")
    print(f"| peak RSS ≤ 16 MiB | {mem['peak_hwm_kb'] / 1024:.1f} MiB | {'yes' if mem['peak_hwm_kb'] <= 16384 else 'no'} |")
print(f"| 1,000 idle keep-alive connections ≤ 48 MiB | {idle['rss_kb'] / 1024:.1f} MiB "
      f"| {'yes' if idle['rss_kb'] <= 48 * 1024 else 'no'} |")
# Wall-clock CPU is shown; instructions per request (callgrind), which repeat where wall
# clock on a busy host does not, decide when they were measured.
one, many = run("rampart", "/", "max"), run("rampart-10k", "/", "max")
wall = many["sut_cpu_us_per_req"] / one["sut_cpu_us_per_req"] - 1 if one and many else None
if instructions:
    ir_one, ir_many = instructions["rampart"], instructions["rampart-10k"]
    change = ir_many / ir_one - 1
    wall_text = f"; wall-clock CPU µs/req {wall:+.1%}" if wall is not None else ""
    print(f"| CPU/req among 10,000 upstreams within 5 % of among 1 | instructions/req "
          f"{ir_many:,} vs {ir_one:,}, {change:+.1%}{wall_text} "
          f"| {'yes' if abs(change) <= 0.05 else 'no'} |")
elif wall is not None:
    print(f"| CPU/req among 10,000 upstreams within 5 % of among 1 | {wall:+.1%} "
          f"| {'yes' if abs(wall) <= 0.05 else 'no'} |")
