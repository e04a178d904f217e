"""Local HTTP receivers standing in for the webhook platform and the SMS gateway.

Each answers 204 (``ok``), 500 (``error``) or holds the request without an answer until the
mode changes and then drops it (``hang``). It counts attempts and accepted deliveries per
notification id: the webhook body's ``notification_id``, the SMS gateway's
``X-Lianfang-Notification`` header (both the same on every retry).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Sink:
    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "ok"
        self.attempts: Counter[int] = Counter()
        self.delivered: Counter[int] = Counter()
        self.answers: Counter[str] = Counter()
        self._changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                nid = outer.notification_id(self.headers.get("X-Lianfang-Notification"), body)
                mode = outer.mode
                outer.attempts[nid] += 1
                outer.answers[mode] += 1
                if mode == "hang":
                    outer.wait_mode_change("hang")
                    self.close_connection = True
                    return  # no answer: the connection is dropped
                if mode == "error":
                    self.send_response(500)
                else:
                    outer.delivered[nid] += 1
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def notification_id(header: str | None, body: bytes) -> int:
        if header:
            return int(header)
        try:
            return int(json.loads(body).get("notification_id", -1))
        except (ValueError, AttributeError):
            return -1

    def set_mode(self, mode: str) -> None:
        with self._changed:
            self.mode = mode
            self._changed.notify_all()

    def wait_mode_change(self, mode: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.mode == mode and time.monotonic() < deadline:
                self._changed.wait(1.0)

    def summary(self) -> dict[str, Any]:
        return {
            "notifications": len(self.attempts),
            "attempts": sum(self.attempts.values()),
            "answers": dict(self.answers),
            "delivered": len(self.delivered),
            "delivered_twice": sum(1 for n in self.delivered.values() if n > 1),
        }

    def close(self) -> None:
        self.set_mode("ok")
        self.httpd.shutdown()
