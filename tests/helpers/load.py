"""Client threads sending GETs through HAProxy under keep-alive (or Connection: close); every
non-200 answer or connection error is a failure, kept with its reason."""
import http.client
import threading
import time


class Load:
    """Client threads sending GETs through HAProxy; counts answers per backend and failures."""

    def __init__(self, port, *, threads=4, keep_alive=True, host="web.example.com"):
        self.port, self.threads, self.keep_alive, self.host = port, threads, keep_alive, host
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self._threads = []

    def __enter__(self):
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self._threads:
            t.join(5)

    def _run(self):
        conn = None
        headers = {"Host": self.host}
        if not self.keep_alive:
            headers["Connection"] = "close"
        deadline = time.monotonic() + 240  # bounded, whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/", headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                with self.lock:
                    self.ok += 1
                if not self.keep_alive or resp.will_close:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.failures.append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None
