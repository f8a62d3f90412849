#!/usr/bin/env python3
"""Workload and figures for bench/shield-offload.sh: origin offload over two tiers, and the
latency a shield hop adds to a miss.

bench/shield-offload.sh starts the processes and writes a topology file; this program only
talks to them over loopback and prints the report (stdout). Progress goes to stderr.

Two services on every edge, one origin behind both:
  tiered  (Host tiered.bench.test)  edge -> one of two shields (rendezvous hashing) -> origin
  direct  (Host direct.bench.test)  edge -> origin
The origin counts requests per Host and path, so one origin serves as the counter for both.

1. Offload. One seeded Zipf(s) sequence of N requests over K objects, request i sent to edge
   i mod 3, C client threads with keep-alive connections; the same sequence once per service,
   each over cold caches (the services share no cache keys). Figures: origin requests per
   object (from the origin), hit ratios per tier (from each node's /metrics, before and after),
   and the tiers each response went through (from Cache-Status).
2. Shield hop. M fresh objects per case, one request each through edge-1, one client thread,
   one keep-alive connection per case, the cases interleaved in rotating order:
     a  direct: edge miss -> origin
     b  tiered: edge miss -> shield miss -> origin
     c  tiered: edge miss -> shield hit (each object fetched through edge-2 beforehand)
     d  direct: edge hit (each object fetched through edge-1 beforehand), the floor
     o  the origin alone, no node: its own share of a, b and c
   The first W iterations warm the connections and are not counted.

Python 3 standard library only.
"""

import argparse
import http.client
import json
import math
import os
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from itertools import accumulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from counting_origin import body_for  # noqa: E402  (beside this file)

HOSTS = {"tiered": "tiered.bench.test", "direct": "direct.bench.test"}
TIMEOUT_S = 10.0


def log(msg):
    print(f"[shield-offload] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# HTTP


class Client:
    """One keep-alive HTTP/1.1 connection to one address; reconnects after an error."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn = None

    def get(self, host_header, path, extra_headers=None):
        """Returns (status, headers dict lower-cased, body) or raises."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
            try:
                self.conn.request("GET", path, headers={"Host": host_header, **(extra_headers or {})})
                resp = self.conn.getresponse()
                body = resp.read()
                headers = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    self.close()
                return resp.status, headers, body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A pooled connection the server closed while idle: once more on a new one.
                self.close()
                if attempt == 2:
                    raise
            except Exception:
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def fetch_json(addr, path):
    c = Client(addr)
    try:
        status, _, body = c.get("127.0.0.1", path)
    finally:
        c.close()
    if status != 200:
        raise RuntimeError(f"GET http://{addr}{path}: status {status}")
    return json.loads(body)


# The nodes' admin token (shield-offload.sh writes it into every node's config).
ADMIN_AUTH = {"Authorization": "Bearer bench-admin-token-0123456789"}


def fetch_text(addr, path):
    c = Client(addr)
    try:
        status, _, body = c.get("127.0.0.1", path, ADMIN_AUTH)
    finally:
        c.close()
    if status != 200:
        raise RuntimeError(f"GET http://{addr}{path}: status {status}")
    return body.decode()


# ---------------------------------------------------------------------------------------------
# Cache-Status (RFC 9211): one entry per tier, the shield's first, the edge's last.


def entry_kind(entry):
    params = [p.strip() for p in entry.split(";")[1:]]
    if "hit" in params:
        return "hit"
    if "collapsed" in params:
        return "collapsed"
    fwd = next((p.split("=", 1)[1] for p in params if p.startswith("fwd=")), None)
    if fwd == "uri-miss":
        return "miss"
    return f"fwd={fwd}" if fwd else "other"


def cache_path(headers):
    """('edge kind', 'shield kind' or None, number of entries) of one response."""
    value = headers.get("cache-status", "")
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        return ("none", None, 0)
    edge = entry_kind(entries[-1])
    shield = entry_kind(entries[-2]) if len(entries) >= 2 else None
    return (edge, shield, len(entries))


# ---------------------------------------------------------------------------------------------
# Metrics

LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(admin, metric):
    """{frozenset(labels): value} for one counter on one node."""
    out = {}
    for line in fetch_text(admin, "/metrics").splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        head, _, value = line.rpartition(" ")
        labels = frozenset(LABELS.findall(head))
        out[labels] = out.get(labels, 0.0) + float(value)
    return out


def delta(before, after):
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def snapshot(topo):
    snap = {}
    for node in topo["edges"] + topo["shields"]:
        snap[node["name"]] = {
            "requests": scrape(node["admin"], "outpost_requests_total"),
            "upstream": scrape(node["admin"], "outpost_upstream_requests_total"),
        }
    return snap


def outcomes(snap_before, snap_after, names):
    """Counter of cache outcome over the nodes `names`, 2xx responses only (the health probes'
    other answers, if any, stay out)."""
    c = Counter()
    for n in names:
        for labels, v in delta(snap_before[n]["requests"], snap_after[n]["requests"]).items():
            d = dict(labels)
            if d.get("status") == "2xx":
                c[d.get("cache", "?")] += int(round(v))
    return c


def upstream_split(snap_before, snap_after, names, service):
    """Counter of requests the nodes `names` sent per upstream URL for `service`."""
    c = Counter()
    for n in names:
        for labels, v in delta(snap_before[n]["upstream"], snap_after[n]["upstream"]).items():
            d = dict(labels)
            if d.get("service") == service:
                c[(d.get("upstream", "?"), d.get("result", "?"))] += int(round(v))
    return c


# ---------------------------------------------------------------------------------------------
# 1. Offload


def zipf_sequence(n, k, s, seed):
    weights = [1.0 / (rank**s) for rank in range(1, k + 1)]
    cum = list(accumulate(weights))
    rng = random.Random(seed)
    return [rng.choices(range(k), cum_weights=cum)[0] for _ in range(n)]


def obj_path(i):
    return f"/obj/{i:06d}"


def run_load(topo, host, jobs, concurrency):
    """Sends each (edge index, path) of `jobs` from `concurrency` threads, each thread with one
    keep-alive connection per edge. Returns the tallies."""
    edges = topo["edges"]
    next_i = [0]
    lock = threading.Lock()
    tally = {"ok": 0, "errors": Counter(), "paths": Counter(), "bad_body": 0}

    def worker():
        clients = [Client(e["http"]) for e in edges]
        ok, bad_body, errors, paths = 0, 0, Counter(), Counter()
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(jobs):
                break
            edge, path = jobs[i]
            try:
                status, headers, body = clients[edge].get(host, path)
            except Exception as e:  # noqa: BLE001 (every failure is counted and shown)
                errors[type(e).__name__] += 1
                continue
            if status != 200:
                errors[f"status {status}"] += 1
                continue
            if body != body_for(path):
                bad_body += 1
            ok += 1
            paths[cache_path(headers)] += 1
        for c in clients:
            c.close()
        with lock:
            tally["ok"] += ok
            tally["errors"].update(errors)
            tally["paths"].update(paths)
            tally["bad_body"] += bad_body

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally["elapsed"] = time.perf_counter() - t0
    return tally


def offload_phase(topo, service, seq, concurrency):
    host = HOSTS[service]
    log(f"offload: {len(seq)} requests, service {service} (Host {host})")
    n_edges = len(topo["edges"])
    jobs = [(i % n_edges, obj_path(obj)) for i, obj in enumerate(seq)]
    before = snapshot(topo)
    tally = run_load(topo, host, jobs, concurrency)
    after = snapshot(topo)
    tally["per_edge_distinct"] = [len({p for e, p in jobs if e == k}) for k in range(n_edges)]
    counts = fetch_json(topo["origin"], "/__count")["requests"].get(host, {})
    obj_counts = {p: n for p, n in counts.items() if p.startswith("/obj/")}
    edge_names = [e["name"] for e in topo["edges"]]
    shield_names = [s["name"] for s in topo["shields"]]
    res = {
        "service": service,
        "tally": tally,
        "requested": {obj_path(i) for i in seq},
        "origin": obj_counts,
        "origin_other": {p: n for p, n in counts.items() if not p.startswith("/obj/")},
        "edge": outcomes(before, after, edge_names),
        "shield": outcomes(before, after, shield_names),
        "split": upstream_split(before, after, edge_names, service),
    }
    log(f"offload {service}: {tally['ok']} ok, {sum(tally['errors'].values())} errors, "
        f"{sum(obj_counts.values())} origin requests, {tally['elapsed']:.1f}s")
    return res


# ---------------------------------------------------------------------------------------------
# 2. Shield hop

CASES = [
    # name, service, path prefix, expected (edge kind, shield kind), label
    ("o", "direct", "/lat/o/", ("none", None), "origin alone, no node (reference)"),
    ("a", "direct", "/lat/a/", ("miss", None), "edge miss -> origin"),
    ("b", "tiered", "/lat/b/", ("miss", "miss"), "edge miss -> shield miss -> origin"),
    ("c", "tiered", "/lat/c/", ("miss", "hit"), "edge miss -> shield hit"),
    ("d", "direct", "/lat/d/", ("hit", None), "edge hit (floor)"),
]


def prefill(topo, edge_index, host, paths, concurrency):
    """GET each path once through one edge."""
    return run_load(topo, host, [(edge_index, p) for p in paths], concurrency)


def percentile(sorted_ms, q):
    # Nearest rank: the smallest value with at least q% of the values at or below it.
    if not sorted_ms:
        return float("nan")
    k = max(0, min(len(sorted_ms) - 1, math.ceil(q / 100.0 * len(sorted_ms)) - 1))
    return sorted_ms[k]


def latency_phase(topo, m, warm, concurrency):
    n = m + warm
    edge1 = topo["edges"][0]
    log(f"shield hop: prefilling {n} objects for case c (through edge-2) and d (through edge-1)")
    pre_c = prefill(topo, 1, HOSTS["tiered"], [f"/lat/c/{i:06d}" for i in range(n)], concurrency)
    pre_d = prefill(topo, 0, HOSTS["direct"], [f"/lat/d/{i:06d}" for i in range(n)], concurrency)
    problems = []
    for name, pre in (("c", pre_c), ("d", pre_d)):
        if pre["errors"] or pre["bad_body"]:
            problems.append(f"prefill {name}: errors {dict(pre['errors'])}, wrong bodies {pre['bad_body']}")
    # Case c needs each object in its home shield: the prefill must have gone through one.
    through_shield = sum(v for (_, shield, _), v in pre_c["paths"].items() if shield is not None)
    if through_shield != n:
        problems.append(f"prefill c: {n - through_shield} of {n} responses had no shield entry in Cache-Status")
    clients = {name: Client(topo["origin"] if name == "o" else edge1["http"]) for name, *_ in CASES}
    times = defaultdict(list)
    unexpected = defaultdict(Counter)
    errors = Counter()
    log(f"shield hop: {n} iterations of {len(CASES)} cases through edge-1, first {warm} not counted")
    for i in range(n):
        shift = i % len(CASES)
        for name, service, prefix, expected, _ in CASES[shift:] + CASES[:shift]:
            path = f"{prefix}{i:06d}"
            t0 = time.perf_counter_ns()
            try:
                status, headers, body = clients[name].get(HOSTS[service], path)
            except Exception as e:  # noqa: BLE001
                errors[(name, type(e).__name__)] += 1
                continue
            dt = (time.perf_counter_ns() - t0) / 1e6
            if status != 200 or body != body_for(path):
                errors[(name, f"status {status}" if status != 200 else "wrong body")] += 1
                continue
            got = cache_path(headers)
            if got[:2] != expected:
                unexpected[name][headers.get("cache-status", "")] += 1
            if i >= warm:
                times[name].append(dt)
    for c in clients.values():
        c.close()
    counts = fetch_json(topo["origin"], "/__count")["requests"]
    fetched_twice = []
    for name, service, prefix, _, _ in CASES:
        for p, cnt in counts.get(HOSTS[service], {}).items():
            if p.startswith(prefix) and cnt != 1:
                fetched_twice.append((p, cnt))
    return {"times": times, "unexpected": unexpected, "errors": errors, "problems": problems,
            "origin_repeats": fetched_twice}


# ---------------------------------------------------------------------------------------------
# Report


def pct(x):
    return f"{100.0 * x:.1f}%"


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def hit_ratio(c):
    total = sum(c.values())
    return (c.get("hit", 0) / total if total else float("nan")), total


def outcome_line(c):
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "none"


def per_object(res):
    hist = Counter(res["origin"].get(p, 0) for p in res["requested"])
    return hist


def hist_line(hist):
    return ", ".join(f"{n}x: {hist[n]}" for n in sorted(hist))


def report_offload(args, topo, t, d):
    print("1. Origin offload: the same Zipf request sequence through both topologies, cold caches")
    print()
    shield_urls = {s["url"].rstrip("/") for s in topo["shields"]}
    rows = []
    for res in (t, d):
        tally = res["tally"]
        client = len(args.seq)
        origin = sum(res["origin"].get(p, 0) for p in res["requested"])
        res["client"], res["origin_total"] = client, origin
        e_ratio, e_total = hit_ratio(res["edge"])
        s_ratio, s_total = hit_ratio(res["shield"])
        to_shields = sum(v for (url, _), v in res["split"].items() if url.rstrip("/") in shield_urls)
        rows.append({
            "client requests": str(client),
            "  answered 200 / failed": f"{tally['ok']} / {sum(tally['errors'].values())}",
            "distinct objects requested": str(len(res["requested"])),
            "origin requests": str(origin),
            "offload = 1 - origin/client": pct(1 - origin / client),
            "origin requests per object": f"{origin / len(res['requested']):.3f}",
            "  objects fetched more than once": str(sum(1 for p in res["requested"] if res["origin"].get(p, 0) > 1)),
            "edge hit ratio (metrics)": f"{pct(e_ratio)} of {e_total}",
            "shield hit ratio (metrics)": f"{pct(s_ratio)} of {s_total}" if to_shields else "-",
            "  shield requests not sent by the workload": str(s_total - to_shields),
            "client req/s": f"{client / tally['elapsed']:.0f}",
        })
    width = max(len(k) for k in rows[0])
    print(f"  {'':<{width}}  {'with shields':>16}  {'edges only':>16}  {'shields/edges-only':>18}")
    for key in rows[0]:
        extra = ""
        if key == "origin requests":
            extra = ratio(t["origin_total"], d["origin_total"])
        elif key == "origin requests per object":
            extra = ratio(t["origin_total"] / len(t["requested"]), d["origin_total"] / len(d["requested"]))
        print(f"  {key:<{width}}  {rows[0][key]:>16}  {rows[1][key]:>16}  {extra:>18}")
    print()
    print(f"  origin requests per object, with shields:  {hist_line(per_object(t))}")
    print(f"  origin requests per object, edges only:    {hist_line(per_object(d))}")
    expected_direct = sum(d["tally"]["per_edge_distinct"])
    print(f"  edges only, if each edge fetched each of its objects once: {expected_direct} "
          f"(distinct objects per edge: {', '.join(map(str, d['tally']['per_edge_distinct']))})")
    pops = {s["url"].rstrip("/"): s["pop"] for s in topo["shields"]}
    split = Counter()
    failures = 0
    for (url, result), v in t["split"].items():
        url = url.rstrip("/")
        split[f"shield {pops[url]}" if url in pops else f"origin {url}"] += v
        if result != "success":
            failures += v
    print(f"  edges' upstream requests, with shields:   {outcome_line(split)}"
          f"{f' ({failures} failed)' if failures else ''}")
    print(f"  edge outcomes (metrics, 2xx):   with shields: {outcome_line(t['edge'])};  edges only: {outcome_line(d['edge'])}")
    print(f"  shield outcomes (metrics, 2xx): with shields: {outcome_line(t['shield'])};  edges only: {outcome_line(d['shield'])}")
    for res in (t, d):
        paths = Counter()
        for (edge, shield, n), v in res["tally"]["paths"].items():
            paths[f"edge {edge}" + (f" / shield {shield}" if shield else "")] += v
        print(f"  Cache-Status seen by clients, {'with shields' if res is t else 'edges only  '}: {outcome_line(paths)}")


def report_latency(lat):
    print()
    print("2. Shield hop on a miss: one request per fresh object, one client, edge-1, cases interleaved")
    print()
    stats = {}
    print(f"  {'case':<40} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, _, _, _, label in CASES:
        ts = sorted(lat["times"][name])
        p50, p99 = percentile(ts, 50), percentile(ts, 99)
        mean = sum(ts) / len(ts) if ts else float("nan")
        stats[name] = (p50, p99)
        print(f"  {name + '  ' + label:<40} {len(ts):>6} {p50:>8.3f} {p99:>8.3f} {mean:>8.3f}")
    print()
    print(f"  {'comparison':<40} {'':>6} {'p50':>8} {'p99':>8}")
    for x, y, label in (("b", "a", "shield hop on a miss (b - a, b / a)"),
                        ("c", "a", "shield hit vs origin (c - a, c / a)"),
                        ("c", "b", "shield hit vs shield miss (c - b, c / b)")):
        print(f"  {label:<40} {'diff':>6} {stats[x][0] - stats[y][0]:>+8.3f} {stats[x][1] - stats[y][1]:>+8.3f}")
        print(f"  {'':<40} {'ratio':>6} {ratio(stats[x][0], stats[y][0]):>8} {ratio(stats[x][1], stats[y][1]):>8}")


def report_warnings(t, d, lat):
    warnings = []
    for res in (t, d):
        tally = res["tally"]
        if tally["errors"]:
            warnings.append(f"{res['service']}: failed client requests: {dict(tally['errors'])}")
        if tally["bad_body"]:
            warnings.append(f"{res['service']}: {tally['bad_body']} responses with another object's body")
        unrequested = sorted(set(res["origin"]) - res["requested"])
        if unrequested:
            warnings.append(f"{res['service']}: origin got {len(unrequested)} paths no client asked for: {unrequested[:5]}")
    repeats = sorted(((p, n) for p, n in t["origin"].items() if n > 1), key=lambda x: (-x[1], x[0]))
    if repeats:
        shown = ", ".join(f"{p} x{n}" for p, n in repeats[:20])
        warnings.append(f"with shields: {len(repeats)} objects fetched from the origin more than once "
                        f"({sum(n - 1 for _, n in repeats)} extra requests): {shown}"
                        f"{' ...' if len(repeats) > 20 else ''}")
    for name, seen in sorted(lat["unexpected"].items()):
        top = "; ".join(f"{v}x '{k}'" for k, v in seen.most_common(3))
        warnings.append(f"shield hop case {name}: {sum(seen.values())} responses took another path than the case: {top}")
    if lat["errors"]:
        warnings.append(f"shield hop: failed requests: {dict(lat['errors'])}")
    warnings.extend(f"shield hop: {p}" for p in lat["problems"])
    if lat["origin_repeats"]:
        warnings.append(f"shield hop: objects fetched from the origin other than once: {lat['origin_repeats'][:10]}")
    print()
    if warnings:
        print("warnings:")
        for w in warnings:
            print(f"  {w}")
    else:
        print("warnings: none (no failed request, every object of the shielded run fetched from the origin once,")
        print("          every shield-hop response took its case's path per Cache-Status)")


def main():
    ap = argparse.ArgumentParser(description="origin offload and shield-hop latency")
    ap.add_argument("--topology", required=True, help="JSON written by bench/shield-offload.sh")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--zipf-s", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency-objects", type=int, default=2000)
    ap.add_argument("--latency-warmup", type=int, default=50)
    args = ap.parse_args()
    with open(args.topology) as f:
        topo = json.load(f)

    args.seq = zipf_sequence(args.requests, args.objects, args.zipf_s, args.seed)
    print(f"  workload:  {args.requests} requests over {args.objects} objects (2048-byte bodies, max-age=3600), "
          f"Zipf s={args.zipf_s}, seed {args.seed};")
    print(f"             request i to edge (i mod {len(topo['edges'])}), {args.concurrency} client threads, "
          f"HTTP/1.1 keep-alive; shield hop: {args.latency_objects} objects per case")
    print()
    tiered = offload_phase(topo, "tiered", args.seq, args.concurrency)
    direct = offload_phase(topo, "direct", args.seq, args.concurrency)
    lat = latency_phase(topo, args.latency_objects, args.latency_warmup, args.concurrency)
    report_offload(args, topo, tiered, direct)
    report_latency(lat)
    report_warnings(tiered, direct, lat)


if __name__ == "__main__":
    main()
