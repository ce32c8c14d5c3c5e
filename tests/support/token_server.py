#!/usr/bin/env python3
"""A registry token server for tests (the distribution token spec): the
registry configured with `auth: token:` answers 401 with a Bearer challenge
naming this server as realm; a client GETs realm?service=S&scope=C, with
basic credentials, and gets a JWT the registry trusts (signed RS256 by the
key of the certificate in the registry's rootcertbundle, which the header's
x5c carries).

  token_server.py --port-file F --key KEY.pem --cert CERT.pem --issuer I
                  [--user USER:PASSWORD] [--expires SECONDS]

With --user, a request without those credentials is refused (401); the
token grants what the scope asks (repository:NAME:pull,push). It binds port
0 itself and writes the port it got to the port file. Every request is
printed, one line, to standard output (for the test's log).
"""
import argparse
import base64
import http.server
import json
import sys
import time
import urllib.parse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--expires", type=int, default=300)
    args = parser.parse_args()

    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            print("token_server: " + (fmt % a), flush=True)

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if args.user:
                expected = "Basic " + base64.b64encode(args.user.encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self.answer(401, {"details": "bad credentials"})
            service = query.get("service", [""])[0]
            access = []
            for scope in query.get("scope", []):
                parts = scope.split(":")
                if len(parts) == 3 and parts[0] == "repository":
                    access.append({"type": "repository", "name": parts[1], "actions": parts[2].split(",")})
            now = int(time.time())
            claims = {"iss": args.issuer, "sub": args.user.split(":")[0], "aud": service,
                      "exp": now + args.expires, "nbf": now - 10, "iat": now,
                      "jti": str(time.time_ns()), "access": access}
            token = jwt.encode(claims, key, algorithm="RS256", headers={"x5c": x5c})
            self.answer(200, {"token": token, "expires_in": args.expires})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
