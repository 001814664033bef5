"""A scripted OpenAI-compatible server on loopback, for the LLM client's tests: each behaviour answers one
request (the last one repeats)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server:
    """A scripted server: `behaviours` is consumed one per request (the last one repeats)."""

    def __init__(self, behaviours):
        self.behaviours = list(behaviours)
        self.bodies, self.headers = [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append((self.path, body))
                outer.headers.append(dict(self.headers))
                b = outer.behaviours.pop(0) if len(outer.behaviours) > 1 else outer.behaviours[0]
                b(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def sse(pieces, finish="stop", chat=False):
    def run(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        for p in pieces:
            choice = {"delta": {"content": p}} if chat else {"text": p}
            handler.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
            handler.wfile.flush()
        end = {"choices": [{"text": "", "delta": {}, "finish_reason": finish}]}
        handler.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
    return run


def status(code):
    def run(handler, body):
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(b'{"error": "busy"}')
    return run


def slow(seconds):
    def run(handler, body):
        time.sleep(seconds)
        sse(["late"])(handler, body)
    return run


def plain(handler, body):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    handler.wfile.write(b"this is not json")
