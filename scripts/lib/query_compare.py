#!/usr/bin/env python3
"""Times typical dashboard queries against Vigie, Prometheus and
VictoriaMetrics holding the same data, and checks their answers agree.

    query_compare.py END_SECONDS RUNS NAME=URL...

Every query runs as an instant query at END and as range queries over the
last 6 h and 24 h before END at a 60 s step (Grafana's step for a day on
a ~1,400 px wide panel). Each variant runs once to warm up, then RUNS
times, the systems taking turns, over one kept-alive HTTP connection per
system; a run is timed from sending the request to the last byte of the
answer. The first NAME is the reference the others are compared with.
Stdlib only.
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse

# (short name, PromQL).
QUERIES = [
    ("cpu_busy", 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'),
    ("net_rx", "sum by (instance) (rate(node_network_receive_bytes_total[5m]))"),
    ("p90", "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("p99_inst", "histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("topk_tx", "topk(5, rate(node_network_transmit_bytes_total[5m]))"),
    ("load1_avg", "avg by (instance) (node_load1)"),
    ("fs_avail", "node_filesystem_avail_bytes / node_filesystem_size_bytes"),
    ("mem_used", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"),
    ("req_rate", "sum by (instance) (rate(http_request_duration_seconds_count[5m]))"),
    ("disk_w_max", "max by (instance) (rate(node_disk_written_bytes_total[5m]))"),
]

STEP = 60
MODES = [("instant", None), ("range 6h", 6 * 3600), ("range 24h", 24 * 3600)]


class Client:
    def __init__(self, name, url):
        self.name = name
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def get(self, path, params):
        """(seconds, parsed JSON) of one GET."""
        target = path + "?" + urllib.parse.urlencode(params)
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", target)
                resp = self.conn.getresponse()
                body = resp.read()
                took = time.perf_counter() - t0
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        doc = json.loads(body)
        if resp.status != 200 or doc.get("status") != "success":
            raise RuntimeError(f"{self.name}: HTTP {resp.status}: {body[:300]!r}")
        return took, doc["data"]


def request(end, mode_span, query):
    if mode_span is None:
        return "/api/v1/query", {"query": query, "time": end}
    return "/api/v1/query_range", {
        "query": query,
        "start": end - mode_span,
        "end": end,
        "step": STEP,
    }


def normalise(data):
    """{labels: {t: value}} of a vector or matrix answer."""
    out = {}
    for s in data["result"]:
        key = tuple(sorted(s["metric"].items()))
        points = s.get("values") or [s["value"]]
        out[key] = {float(t): float(v) for t, v in points}
    return out


def compare(ref, got):
    """(series in ref, series in got, points only in one, max relative
    difference of shared points)."""
    only = 0
    worst = 0.0
    for key in set(ref) | set(got):
        a, b = ref.get(key, {}), got.get(key, {})
        only += len(set(a) ^ set(b))
        for t in set(a) & set(b):
            x, y = a[t], b[t]
            if x == y or (x != x and y != y):
                continue
            worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-300))
    return len(ref), len(got), only, worst


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    end, runs = int(sys.argv[1]), int(sys.argv[2])
    clients = [Client(*a.split("=", 1)) for a in sys.argv[3:]]
    names = [c.name for c in clients]
    rows = []
    for mode, span in MODES:
        for qname, query in QUERIES:
            path, params = request(end, span, query)
            answers = {}
            times = {c.name: [] for c in clients}
            for c in clients:
                _, answers[c.name] = c.get(path, params)
            for _ in range(runs):
                for c in clients:
                    took, _ = c.get(path, params)
                    times[c.name].append(took * 1000)
            ref = normalise(answers[names[0]])
            checks = {n: compare(ref, normalise(answers[n])) for n in names[1:]}
            rows.append((mode, qname, times, checks))
            cells = "  ".join(
                f"{n} {statistics.median(times[n]):8.1f}/{pct(times[n], 0.9):8.1f}" for n in names
            )
            notes = "; ".join(
                f"{n} vs {names[0]}: series {r}/{g}"
                + (f", {only} points in one only" if only else "")
                + (f", max rel diff {worst:.2g}" if worst else ", equal")
                for n, (r, g, only, worst) in checks.items()
            )
            print(f"{mode:9} {qname:10} {cells}   {notes}", flush=True)

    print()
    print("Median / p90 ms per query (warm, %d runs each); agreement with %s" % (runs, names[0]))
    print()
    print("| query | mode | " + " | ".join(f"{n} med / p90" for n in names) + " | agreement |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for mode, qname, times, checks in rows:
        cells = " | ".join(
            f"{statistics.median(times[n]):.1f} / {pct(times[n], 0.9):.1f}" for n in names
        )
        notes = "; ".join(
            f"{n}: {g}/{r} series"
            + (f", {only} pts differ in presence" if only else "")
            + (f", max rel diff {worst:.1e}" if worst else ", identical")
            for n, (r, g, only, worst) in checks.items()
        )
        print(f"| {qname} | {mode} | {cells} | {notes} |")
    print()
    print("Median over the queries of each query's median (ms):")
    for mode in [m for m, _ in MODES] + ["all"]:
        sel = [r for r in rows if mode in ("all", r[0])]
        cells = ", ".join(
            f"{n} {statistics.median(statistics.median(r[2][n]) for r in sel):.1f}" for n in names
        )
        print(f"  {mode:9}: {cells}")


if __name__ == "__main__":
    main()
