# SPDX-License-Identifier: MIT
"""registry.py - a local registry for the tests, and a proxy that lies.

Registry: Debian's docker-registry (CNCF distribution 2.8) serving plain
HTTP on 127.0.0.1 and a free port, its storage in a temp dir; images are
pushed with skopeo.  FaultProxy: an HTTP proxy on 127.0.0.1 in front of
it that can flip a byte of every blob body, fail requests with 500/429
first, or drop the connection in the middle of a body; its request loop is
bounded by shutdown() and by a per-connection timeout.
"""

import http.client
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

T = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, proc=None, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("the registry exited: %s"
                               % proc.stderr.read().decode(errors="replace"))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/v2/")
            if c.getresponse().status in (200, 401):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("no registry on port %d" % port)


class Registry:
    def __init__(self, root):
        self.root = root
        self.port = free_port()
        os.makedirs(root, exist_ok=True)
        cfg = os.path.join(root, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "http:\n  addr: 127.0.0.1:%d\n"
                    % (os.path.join(root, "data"), self.port))
        self.proc = subprocess.Popen(
            [shutil.which("docker-registry") or "/usr/bin/docker-registry",
             "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_http(self.port, self.proc)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def push(self, src, name):
        """skopeo copy src (a transport) to HOST/name; returns the ref."""
        ref = "docker://%s/%s" % (self.host, name)
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q",
                            "--dest-tls-verify=false", src, ref],
                           capture_output=True, timeout=T)
        assert r.returncode == 0, r.stderr.decode()
        return ref

    def push_layout(self, layout, name):
        """Upload an OCI layout's first image as it is, blob for blob, by
        the distribution API (skopeo would compress an uncompressed
        layer); returns the ref."""
        import json
        repo, tag = name.rsplit(":", 1)

        def blob(hexd):
            with open(os.path.join(layout, "blobs", "sha256", hexd),
                      "rb") as f:
                return f.read()

        def call(method, path, body=None, headers=None):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=T)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            r.read()
            c.close()
            assert r.status < 300, (method, path, r.status)
            return r

        with open(os.path.join(layout, "index.json")) as f:
            desc = json.load(f)["manifests"][0]
        man = blob(desc["digest"][7:])
        m = json.loads(man)
        for d in [m["config"]] + m["layers"]:
            loc = call("POST", "/v2/%s/blobs/uploads/" % repo
                       ).getheader("Location")
            loc = loc.split("://", 1)[-1].split("/", 1)[-1]
            call("PUT", "/%s%sdigest=%s" % (loc, "&" if "?" in loc else "?",
                                             d["digest"]),
                 blob(d["digest"][7:]),
                 {"Content-Type": "application/octet-stream"})
        call("PUT", "/v2/%s/manifests/%s" % (repo, tag), man,
             {"Content-Type": desc["mediaType"]})
        return "docker://%s/%s" % (self.host, name)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class FaultProxy:
    """mode: None (pass through), "flip" (one byte of every blob body),
    "fail-once" (each path answers 500, then 429, then the truth), "drop"
    (each blob path's first response is cut in the middle), "norange"
    (blob GETs answered 200 with the whole blob, ignoring Range).
    log: (method, path, Range header or None, body bytes sent) of every
    request, to count what a command fetched."""

    def __init__(self, upstream_port, mode=None):
        self.mode = mode
        self.seen = {}
        self.requests = 0
        self.log = []
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            timeout = 20

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.forward(head=True)

            def do_GET(self):
                self.forward(head=False)

            def forward(self, head):
                proxy.requests += 1
                n = proxy.seen.get(self.path, 0)
                proxy.seen[self.path] = n + 1
                blob = "/blobs/" in self.path
                if proxy.mode == "fail-once" and n < 2:
                    self.send_response(500 if n == 0 else 429)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                c = http.client.HTTPConnection("127.0.0.1", upstream_port,
                                               timeout=20)
                hdr = {k: v for k, v in self.headers.items()
                       if k.lower() in ("accept", "range")}
                if proxy.mode == "norange":
                    hdr.pop("Range", None)
                c.request("HEAD" if head else "GET", self.path,
                          headers=hdr)
                r = c.getresponse()
                body = b"" if head else r.read()
                if proxy.mode == "flip" and blob and body:
                    body = (body[:len(body) // 2]
                            + bytes([body[len(body) // 2] ^ 0x20])
                            + body[len(body) // 2 + 1:])
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.end_headers()
                if proxy.mode == "drop" and blob and not head and n == 0 \
                        and len(body) > 1:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)
                proxy.log.append(("HEAD" if head else "GET", self.path,
                                  self.headers.get("Range"), len(body)))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def blob_gets(self, digest=None):
        """The blob GETs logged so far (of one blob when digest)."""
        return [e for e in self.log if e[0] == "GET" and "/blobs/" in e[1]
                and (digest is None or e[1].endswith(digest))]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
