#!/usr/bin/python3
"""registry.py: a small schema registry for tests, on 127.0.0.1.

It answers the endpoints of Confluent's Schema Registry that reco uses:
  POST /subjects/SUBJECT/versions  {"schema": "..."} -> {"id": N}
       (the same schema text, parsed, gets the same id in every subject)
  GET  /schemas/ids/N              -> {"schema": "..."} or 404 (40403)
  GET  /subjects, GET /subjects/SUBJECT/versions/latest
It prints its port on the first line of standard output, logs requests to
standard error, and with --fail-after N answers 500 to every request
after the first N. With --user U:P it asks for HTTP basic authentication.
"""
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

schemas = []   # id - 1 -> schema text
ids = {}       # canonical JSON -> id
subjects = {}  # subject -> [ids]
state = {"requests": 0, "fail_after": None, "auth": None}


def canon(text):
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def gate(self):
        state["requests"] += 1
        if state["auth"]:
            want = "Basic " + base64.b64encode(state["auth"].encode()).decode()
            if self.headers.get("Authorization") != want:
                self.answer(401, {"error_code": 401, "message": "Unauthorized"})
                return False
        if state["fail_after"] is not None and state["requests"] > state["fail_after"]:
            self.answer(500, {"error_code": 50001, "message": "Error in the backend datastore"})
            return False
        return True

    def do_GET(self):
        if not self.gate():
            return
        parts = [unquote(p) for p in self.path.strip("/").split("/")]
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            n = int(parts[2])
            if 1 <= n <= len(schemas):
                return self.answer(200, {"schema": schemas[n - 1]})
            return self.answer(404, {"error_code": 40403, "message": "Schema %d not found" % n})
        if parts == ["subjects"]:
            return self.answer(200, sorted(subjects))
        if len(parts) == 4 and parts[0] == "subjects" and parts[2:] == ["versions", "latest"]:
            v = subjects.get(parts[1])
            if not v:
                return self.answer(404, {"error_code": 40401, "message": "Subject not found"})
            return self.answer(200, {"subject": parts[1], "version": len(v), "id": v[-1],
                                     "schema": schemas[v[-1] - 1]})
        self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def do_POST(self):
        if not self.gate():
            return
        parts = [unquote(p) for p in self.path.strip("/").split("/")]
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n))
            text = body["schema"]
            key = canon(text)
        except (ValueError, KeyError, TypeError):
            return self.answer(422, {"error_code": 42201, "message": "Invalid schema"})
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        if key not in ids:
            schemas.append(text)
            ids[key] = len(schemas)
        v = subjects.setdefault(parts[1], [])
        if ids[key] not in v:
            v.append(ids[key])
        self.answer(200, {"id": ids[key]})

    def log_message(self, fmt, *args):
        sys.stderr.write("registry: " + (fmt % args) + "\n")


def main():
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--fail-after":
            state["fail_after"] = int(args.pop(0))
        elif a == "--user":
            state["auth"] = args.pop(0)
        else:
            sys.exit("usage: registry.py [--fail-after N] [--user U:P]")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
