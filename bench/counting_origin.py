#!/usr/bin/env python3
"""A tiny origin for the benchmarks: counts the requests it gets, per Host and path.

Every GET or HEAD for a path gets 200 with a body of BODY_BYTES derived from the path and
`Cache-Control: max-age=3600`, so each tier may keep it for the whole run. Two paths are not
objects:

  /__count   JSON {"requests": {host: {path: n}}, "health": n}; not counted itself
  /__health  the edges' health probes: 200, max-age=3600, counted apart from the objects

With --files DIR, `/files/NAME` (any query string) serves the file NAME of DIR instead, read
once at start-up, with a Content-Type guessed from its extension; `cache-control=VALUE` in the
query string replaces its `Cache-Control: max-age=3600` (e.g. `?v=3&cache-control=no-store`).
A name not in DIR gets 404. These are counted like the objects.

HTTP/1.1 with keep-alive, one thread per connection (stdlib ThreadingHTTPServer). It binds
127.0.0.1 on the given port (0: any free port) and writes the port it got to --port-file once
it listens. Python 3 standard library only.
"""

import argparse
import hashlib
import json
import mimetypes
import os
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BODY_BYTES = 2048

LOCK = threading.Lock()
COUNTS = defaultdict(lambda: defaultdict(int))  # host -> path -> requests
HEALTH = [0]
FILES = {}  # name -> (body, content type), from --files


def body_for(path: str) -> bytes:
    # Deterministic per path, so a body that reached the client from the wrong object shows.
    seed = hashlib.sha256(path.encode()).hexdigest().encode()
    return (seed * (BODY_BYTES // len(seed) + 1))[:BODY_BYTES]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bench-origin"
    sys_version = ""
    # The head and the body go out in two writes. With Nagle's algorithm on, the second waits
    # for the ACK of the first, which the peer delays by up to 40 ms: every miss would take
    # 40 ms more than the nodes cost. TCP_NODELAY, as the nodes and nginx set it.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's signature)
        pass

    def reply(self, status, body, cache_control, content_type="application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path
        if path == "/__count":
            with LOCK:
                snapshot = {"requests": {h: dict(p) for h, p in COUNTS.items()}, "health": HEALTH[0]}
            self.reply(200, json.dumps(snapshot).encode(), "no-store", "application/json")
            return
        if path == "/__health":
            with LOCK:
                HEALTH[0] += 1
            self.reply(200, b"ok\n", "max-age=3600", "text/plain")
            return
        host = (self.headers.get("Host") or "").lower()
        with LOCK:
            COUNTS[host][path] += 1
        if FILES and path.startswith("/files/"):
            self.reply_file(path)
            return
        self.reply(200, body_for(path), "max-age=3600")

    def reply_file(self, path):
        url = urlsplit(path)
        found = FILES.get(url.path[len("/files/") :])
        if found is None:
            self.reply(404, b"no such file\n", "no-store", "text/plain")
            return
        cache_control = parse_qs(url.query).get("cache-control", ["max-age=3600"])[0]
        self.reply(200, found[0], cache_control, found[1])

    do_HEAD = do_GET


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--files", metavar="DIR", help="serve the files of DIR at /files/NAME")
    args = ap.parse_args()
    if args.files:
        for name in os.listdir(args.files):
            full = os.path.join(args.files, name)
            if os.path.isfile(full):
                with open(full, "rb") as f:
                    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                    FILES[name] = (f.read(), kind)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
