#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 reverse proxy for pagerfs's tests (stdlib only).

It forwards every request to one upstream (nginx serving a store) and breaks
the ones the test's rules select, so that the remote layer's handling of each
failure can be tested against a real server:

  status:CODE     answer CODE at once; the upstream sees nothing
  delay:MS        wait MS milliseconds, then forward
  truncate:N      forward, send the headers with the real Content-Length but
                  only N bytes of the body, then close the connection
  corrupt[:OFF]   forward with the body's byte at OFF (default: the middle)
                  inverted
  close           read the request, close the connection without an answer
  redirect        answer 307 to /__direct__/PATH on this proxy, which is
                  forwarded unmodified, as a registry redirects to object storage

A rule is {"path": SUBSTRING, "action": ACTION, "count": N, "method": M}: it
selects requests whose path (query included) contains SUBSTRING and, if M is
given, whose method is M; "count" is how many of the next such requests it
breaks (-1 or absent: all). The first rule with requests left that matches
wins. Rules leave /__direct__/ requests alone unless their path contains
"__direct__".

Control, on the proxy's own port (never forwarded, never logged):
  POST /__rules__    a JSON array of rules, replacing all rules (400 if invalid)
  GET  /__rules__    the rules, with the requests each has left
  GET  /__log__      every request so far: method, path, range, action, status
  DELETE /__log__    forget them

The proxy binds 127.0.0.1 at a free port and writes it to --port-file (by a
rename, so the file is complete when it appears); it ends on SIGTERM.
Every request runs on a thread of its own; keep-alive connections are kept,
to the client and to the upstream (one connection per proxy thread).
"""

import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

DIRECT = "/__direct__"
# Headers about one connection, which a proxy does not forward (RFC 9110 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}


class Rule:
    ACTIONS = {"status", "delay", "truncate", "corrupt", "close", "redirect"}

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a rule is an object, not %r" % (spec,))
        unknown = set(spec) - {"path", "action", "count", "method"}
        if unknown:
            raise ValueError("unknown rule keys %s" % sorted(unknown))
        self.path = spec.get("path", "")
        self.method = spec.get("method") or None
        self.action = spec.get("action", "")
        self.remaining = spec.get("count", -1)
        if not isinstance(self.path, str) or not isinstance(self.action, str):
            raise ValueError("path and action are strings")
        if not isinstance(self.remaining, int) or self.remaining == 0 or self.remaining < -1:
            raise ValueError("count is a positive number or -1 (always), not %r" % (self.remaining,))
        self.kind, _, arg = self.action.partition(":")
        if self.kind not in self.ACTIONS:
            raise ValueError("unknown action %r" % self.action)
        self.arg = None
        if arg:
            if self.kind in ("close", "redirect") or not arg.isdigit():
                raise ValueError("bad argument in action %r" % self.action)
            self.arg = int(arg)
        if self.kind in ("status", "delay", "truncate") and self.arg is None:
            raise ValueError("action %r needs a number" % self.action)
        if self.kind == "status" and not 100 <= self.arg <= 599:
            raise ValueError("no HTTP status: %r" % self.action)

    def matches(self, method, path, direct):
        if direct and "__direct__" not in self.path:
            return False
        return self.remaining != 0 and self.path in path and self.method in (None, method)

    def to_json(self):
        return {"path": self.path, "method": self.method, "action": self.action,
                "remaining": self.remaining}


class State:
    """The rules and the request log, shared by the request threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.log = []

    def arrive(self, method, path, range_header):
        """Logs a request and takes the rule that breaks it, if any."""
        direct = path.startswith(DIRECT + "/")
        entry = {"method": method, "path": path, "range": range_header, "action": "", "status": 0}
        with self.lock:
            self.log.append(entry)
            for rule in self.rules:
                if rule.matches(method, path, direct):
                    if rule.remaining > 0:
                        rule.remaining -= 1
                    entry["action"] = rule.action
                    return entry, rule
        return entry, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    server_version = "pagerfs-fault-proxy"

    def log_request(self, code="-", size="-"):
        pass  # GET /__log__ is the request log; stderr keeps errors only

    def do_any(self):
        body = self.read_body()
        if self.path.split("?")[0] in ("/__rules__", "/__log__"):
            return self.control(body)
        entry, rule = self.server.state.arrive(self.command, self.path, self.headers.get("Range", ""))
        try:
            entry["status"] = self.serve(rule, body)
        except ConnectionError:
            self.close_connection = True  # the client went away

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_any

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def serve(self, rule, body):
        """Answers one proxied request; returns the status sent (0: none)."""
        kind = rule.kind if rule else None
        if kind == "status":
            return self.answer(rule.arg, "fault proxy: injected status %d\n" % rule.arg)
        if kind == "close":
            self.close_connection = True
            return 0
        if kind == "redirect":
            location = "http://127.0.0.1:%d%s%s" % (self.server.server_port, DIRECT, self.path)
            return self.answer(307, "", [("Location", location)])
        if kind == "delay":
            time.sleep(rule.arg / 1000.0)

        path = self.path[len(DIRECT):] if self.path.startswith(DIRECT + "/") else self.path
        try:
            status, reason, headers, data = self.server.upstream.fetch(
                self.command, path, self.headers, body)
        except (OSError, http.client.HTTPException) as e:
            return self.answer(502, "fault proxy: upstream %s: %s\n" % (self.server.upstream.netloc, e))

        if kind == "corrupt" and data:
            offset = rule.arg if rule.arg is not None else len(data) // 2
            if offset < len(data):
                data = bytearray(data)
                data[offset] ^= 0xFF
                data = bytes(data)
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if self.command == "HEAD":
            length = next((v for n, v in headers if n.lower() == "content-length"), None)
            if length is not None:
                self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            if kind == "truncate":
                self.wfile.write(data[:rule.arg])
                self.close_connection = True  # short of the Content-Length sent
            else:
                self.wfile.write(data)
        return status

    def answer(self, status, text, headers=()):
        data = text.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return status

    def control(self, body):
        state = self.server.state
        path = self.path.split("?")[0]
        if path == "/__rules__" and self.command == "POST":
            try:
                specs = json.loads(body or b"[]")
                if not isinstance(specs, list):
                    raise ValueError("the rules are a JSON array")
                rules = [Rule(spec) for spec in specs]
            except ValueError as e:
                return self.answer(400, "fault proxy: %s\n" % e)
            with state.lock:
                state.rules = rules
            return self.answer(200, "ok\n")
        if path == "/__rules__" and self.command == "GET":
            with state.lock:
                text = json.dumps([r.to_json() for r in state.rules])
            return self.answer(200, text + "\n")
        if path == "/__log__" and self.command == "GET":
            with state.lock:
                text = json.dumps(state.log)
            return self.answer(200, text + "\n")
        if path == "/__log__" and self.command == "DELETE":
            with state.lock:
                state.log = []
            return self.answer(200, "ok\n")
        return self.answer(405, "fault proxy: no %s %s\n" % (self.command, path))


class Upstream:
    """The server behind the proxy, one keep-alive connection per thread."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit("fault_proxy: upstream must be http://HOST[:PORT][/PREFIX], not %r" % url)
        self.netloc = parts.netloc
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.local = threading.local()

    def fetch(self, method, path, request_headers, body):
        """(status, reason, headers, body) of the upstream's answer."""
        # A kept connection may have been closed by the upstream meanwhile
        # (its keep-alive timeout, a restart): then once more on a new one.
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.putrequest(method, self.prefix + path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", self.netloc)
                for name, value in request_headers.items():
                    if name.lower() not in HOP_BY_HOP | {"host", "content-length"}:
                        conn.putheader(name, value)
                if body or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                    self.local.conn = None
                return response.status, response.reason, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if fresh or attempt == 1:
                    raise
        raise AssertionError("unreachable")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # SIGTERM ends the process with connections open
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the server behind")
    parser.add_argument("--port-file", required=True, help="where to write the port listened on")
    parser.add_argument("--port", type=int, default=0, help="the port to listen on (0: a free one)")
    args = parser.parse_args()

    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State()
    server.upstream = Upstream(args.upstream)
    temp = args.port_file + ".tmp"
    with open(temp, "w") as f:
        f.write("%d\n" % server.server_port)
    os.replace(temp, args.port_file)
    print("fault_proxy: 127.0.0.1:%d -> %s" % (server.server_port, args.upstream), file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
