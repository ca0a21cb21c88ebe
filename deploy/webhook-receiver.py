#!/usr/bin/env python3
"""A demo embassy endpoint for `deploy/up`: receives Amparo webhooks on
127.0.0.1, checks each Standard Webhooks signature with the subscription
secret (read from SECRET_FILE at each request) and prints one line each.

usage: webhook-receiver.py PORT SECRET_FILE
"""
import base64, hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, secret_file = int(sys.argv[1]), sys.argv[2]


def verify(headers, body):
    try:
        secret = open(secret_file).read().strip()
    except OSError:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers.get("webhook-signature", "").split())


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        ok = verify(self.headers, body)
        self.send_response(204 if ok else 401)
        self.end_headers()
        try:
            event = json.loads(body)
            a = event["data"]
            e = a["exposure"]
            print(f"[embassy webhook] signature {'valid' if ok else 'INVALID'}: {event['type']} "
                  f"{a['level'].upper()}{' EXERCISE' if a['exercise'] else ''} {a['state']} nationals in "
                  f"{a['host_country']}: {e['registrants']} registered ({e['household_members']} people, "
                  f"{e['vulnerable']} vulnerable) - {a['headline']}", flush=True)
        except (ValueError, KeyError) as err:
            print(f"[embassy webhook] unreadable body: {err}", flush=True)

    def log_message(self, *args):
        pass


try:
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
except KeyboardInterrupt:  # Ctrl-C in deploy/up stops everything
    pass
