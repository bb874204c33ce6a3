# SPDX-License-Identifier: MIT
"""registry.py - a local registry for the tests, and a proxy that lies.

Registry: Debian's docker-registry (CNCF distribution 2.8) serving plain
HTTP on 127.0.0.1 and a free port, its storage in a temp dir; images are
pushed with skopeo.  Flavours: htpasswd Basic auth, TLS with a CA the test
makes (openssl).  AuthFront: a front on 127.0.0.1 that asks for a Bearer
token (from its own /token, with Basic credentials) or Basic credentials,
and may redirect blob GETs to a blob host on another port that records
whether credentials reached it.  FaultProxy: an HTTP proxy on 127.0.0.1 in front of
it that can flip a byte of every blob body, fail requests with 500/429
first, or drop the connection in the middle of a body; its request loop is
bounded by shutdown() and by a per-connection timeout.
"""

import http.client
import http.server
import os
import re
import shutil
import socket
import subprocess
import threading
import time

T = 60


def require_registry():
    """Skip without docker-registry; on CI (CI=true) that is a failure."""
    import pytest
    if not os.path.exists("/usr/bin/docker-registry"):
        if os.environ.get("CI") == "true":
            pytest.fail("docker-registry is not installed")
        pytest.skip("docker-registry is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, proc=None, timeout=15.0, ctx=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            log = getattr(proc, "lf_log", None)
            raise RuntimeError("the registry exited: %s" % (
                open(log, errors="replace").read()[-2000:] if log
                else "(no log)"))
        try:
            c = (http.client.HTTPSConnection("127.0.0.1", port, timeout=1,
                                             context=ctx) if ctx else
                 http.client.HTTPConnection("127.0.0.1", port, timeout=1))
            c.request("GET", "/v2/")
            if c.getresponse().status in (200, 401):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("no registry on port %d" % port)


def _run(cmd):
    p = subprocess.run(cmd, capture_output=True, timeout=T)
    assert p.returncode == 0, (cmd, p.stderr.decode(errors="replace"))


def make_tls(d):
    """A CA and a server certificate for 127.0.0.1: the paths; the CA alone
    also in d/certs/ca.crt (a --cert-dir)."""
    os.makedirs(os.path.join(d, "certs"), exist_ok=True)
    j = lambda n: os.path.join(d, n)  # noqa: E731
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
          "-keyout", j("ca.key"), "-out", j("certs/ca.crt"), "-days", "2",
          "-subj", "/CN=layerfs test CA"])
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
          j("srv.key"), "-out", j("srv.csr"), "-subj", "/CN=127.0.0.1"])
    with open(j("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    _run(["openssl", "x509", "-req", "-in", j("srv.csr"), "-CA",
          j("certs/ca.crt"), "-CAkey", j("ca.key"), "-CAcreateserial",
          "-out", j("srv.pem"), "-days", "2", "-extfile", j("ext.cnf")])
    return {"ca": j("certs/ca.crt"), "cert_dir": j("certs"),
            "cert": j("srv.pem"), "key": j("srv.key")}


def htpasswd_line(user, password):
    """A bcrypt line (docker-registry takes only bcrypt), made by glibc's
    libxcrypt through python's crypt module; low cost, tests only."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return "%s:%s" % (user, crypt.crypt(
        password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))


class Registry:
    """auth: (user, password) for htpasswd Basic auth; tls: serve HTTPS
    with a certificate of a CA made here (self.tls: its paths)."""

    def __init__(self, root, auth=None, tls=False):
        self.root = root
        self.port = free_port()
        self.auth = auth
        os.makedirs(root, exist_ok=True)
        self.tls = make_tls(os.path.join(root, "tls")) if tls else None
        cfg = os.path.join(root, "config.yml")
        text = ("version: 0.1\nlog:\n  level: error\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                "http:\n  addr: 127.0.0.1:%d\n"
                % (os.path.join(root, "data"), self.port))
        if self.tls:
            text += ("  tls:\n    certificate: %s\n    key: %s\n"
                     % (self.tls["cert"], self.tls["key"]))
        if auth:
            pw = os.path.join(root, "htpasswd")
            with open(pw, "w") as f:
                f.write(htpasswd_line(*auth) + "\n")
            text += ("auth:\n  htpasswd:\n    realm: layerfs-test\n"
                     "    path: %s\n" % pw)
        with open(cfg, "w") as f:
            f.write(text)
        # its log to a file: a pipe nobody reads fills up (an error line
        # per 404, as every lookup of an index artifact makes) and then
        # the registry blocks on writing it
        self.log_path = os.path.join(root, "registry.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [shutil.which("docker-registry") or
                 "/usr/bin/docker-registry", "serve", cfg],
                stdout=subprocess.DEVNULL, stderr=log)
        self.proc.lf_log = self.log_path
        ctx = None
        if self.tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.tls["ca"])
        wait_http(self.port, self.proc, ctx=ctx)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def push(self, src, name):
        """skopeo copy src (a transport) to HOST/name; returns the ref."""
        ref = "docker://%s/%s" % (self.host, name)
        opts = ["--dest-tls-verify=false"]
        if self.tls:
            opts = ["--dest-cert-dir", self.tls["cert_dir"]]
        if self.auth:
            opts += ["--dest-creds", "%s:%s" % self.auth]
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q",
                            *opts, src, ref],
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

    def call(self, method, path, body=None, headers=None):
        """One plain HTTP request to the registry: (status, headers, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=T)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def upload(self, repo, data):
        """Upload a blob by the distribution API; returns its digest."""
        import hashlib
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        st, h, _ = self.call("POST", "/v2/%s/blobs/uploads/" % repo)
        assert st == 202, st
        loc = h["Location"].split("://", 1)[-1].split("/", 1)[-1]
        st, _, b = self.call(
            "PUT", "/%s%sdigest=%s" % (loc, "&" if "?" in loc else "?",
                                       digest), data,
            {"Content-Type": "application/octet-stream"})
        assert st == 201, (st, b)
        return digest

    def put_manifest(self, repo, ref, body, media_type):
        st, _, b = self.call("PUT", "/v2/%s/manifests/%s" % (repo, ref),
                             body, {"Content-Type": media_type})
        assert st == 201, (st, b)

    def get(self, repo, kind, ref, accept=None):
        """GET /v2/REPO/KIND/REF: (status, body)."""
        st, _, b = self.call("GET", "/v2/%s/%s/%s" % (repo, kind, ref),
                             headers={"Accept": accept} if accept else {})
        return st, b

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
    (blob GETs answered 200 with the whole blob, ignoring Range),
    "retry-after" (each path's first answer 429 with Retry-After: 1),
    "stall" (each blob path's first answer stops mid-body for 8 s).
    log: (method, path, Range header or None, body bytes sent) of every
    request, to count what a command fetched."""

    def __init__(self, upstream_port, mode=None):
        self.mode = mode
        self.seen = {}
        self.requests = 0
        self.log = []
        self.times = []
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
                if proxy.mode == "retry-after" and n == 0:
                    proxy.log.append(("429", self.path, time.monotonic(),
                                      0))
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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
                if proxy.mode == "stall" and blob and not head and n == 0 \
                        and len(body) > 1:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    time.sleep(8)
                    self.close_connection = True
                    return
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
                proxy.times.append(time.monotonic())

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


class AuthFront:
    """A front on 127.0.0.1 for a plain registry at upstream_port.

    scheme "bearer": /v2/ wants `Authorization: Bearer <token>`; 401 with a
    challenge naming realm http://127.0.0.1:PORT/token, which hands out a
    token for Basic `creds` (token_mode "garbage": not JSON, "none": {}).
    scheme "basic": /v2/ wants Basic `creds`.  redirect: blob GETs are
    answered 307 to a blob host on another port, which serves the bytes
    (Range honoured) and records every Authorization header it is sent in
    blob_auth (None when there was none); redirect_to: that Location
    instead.  Bounded by shutdown()."""

    def __init__(self, upstream_port, scheme, creds, token_mode="ok",
                 redirect=False, redirect_to=None):
        import base64
        import secrets
        self.token = "tok-" + secrets.token_hex(8)
        self.token_requests = []
        self.blob_auth = []
        basic = "Basic " + base64.b64encode(
            ("%s:%s" % creds).encode()).decode()
        front = self

        def upstream(handler, path, head=False):
            c = http.client.HTTPConnection("127.0.0.1", upstream_port,
                                           timeout=20)
            hdr = {k: v for k, v in handler.headers.items()
                   if k.lower() in ("accept", "range")}
            c.request("HEAD" if head else "GET", path, headers=hdr)
            r = c.getresponse()
            body = b"" if head else r.read()
            handler.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("transfer-encoding", "connection"):
                    handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(body)

        class Blobs(http.server.BaseHTTPRequestHandler):
            timeout = 20

            def log_message(self, *a):
                pass

            def do_GET(self):
                front.blob_auth.append(self.headers.get("Authorization"))
                upstream(self, self.path[len("/blob"):])

        class H(http.server.BaseHTTPRequestHandler):
            timeout = 20

            def log_message(self, *a):
                pass

            def answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self):
                self.serve(head=True)

            def do_GET(self):
                self.serve(head=False)

            def serve(self, head):
                if self.path.startswith("/token"):
                    front.token_requests.append(
                        (self.path, self.headers.get("Authorization")))
                    if self.headers.get("Authorization") != basic:
                        return self.answer(401)
                    body = {"ok": json.dumps({"token": front.token}),
                            "garbage": "<html>", "none": "{}"}[token_mode]
                    return self.answer(200, body.encode())
                want = ("Bearer " + front.token if scheme == "bearer"
                        else basic)
                if self.headers.get("Authorization") != want:
                    ch = ('Bearer realm="http://127.0.0.1:%d/token",'
                          'service="layerfs-test",scope="repository:%s:pull"'
                          % (front.port, re.sub(r"^/v2/(.*?)/(manifests|"
                                                r"blobs)/.*", r"\1",
                                                self.path))
                          if scheme == "bearer"
                          else 'Basic realm="layerfs-test"')
                    return self.answer(401, b"{}",
                                       [("WWW-Authenticate", ch)])
                if redirect and "/blobs/" in self.path and not head:
                    return self.answer(307, b"", [(
                        "Location", redirect_to or "http://127.0.0.1:%d/blob%s"
                        % (front.blob_port, self.path))])
                upstream(self, self.path, head)

        import json
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.blobs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blobs)
        for s in (self.server, self.blobs):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever,
                             kwargs={"poll_interval": 0.1},
                             daemon=True).start()
        self.port = self.server.server_address[1]
        self.blob_port = self.blobs.server_address[1]

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        for s in (self.server, self.blobs):
            s.shutdown()
            s.server_close()


class ReferrersFront:
    """A front on 127.0.0.1 for a plain registry at upstream_port that adds
    the OCI 1.1 referrers API distribution 2.8 lacks: a manifest PUT whose
    body has a `subject` is answered with OCI-Subject and remembered;
    GET /v2/REPO/referrers/DIGEST[?artifactType=T] lists what was
    remembered for DIGEST as an image index.  Everything else is passed
    through (uploads included: the Host header goes upstream, so upload
    locations name this front).  log: (method, path) of every request."""

    def __init__(self, upstream_port):
        import json
        import urllib.parse
        self.refs = {}
        self.log = []
        front = self

        class H(http.server.BaseHTTPRequestHandler):
            timeout = 20
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def referrers(self):
                u = urllib.parse.urlsplit(self.path)
                repo, digest = u.path[4:].split("/referrers/", 1)
                want = urllib.parse.parse_qs(u.query).get("artifactType")
                ms = [d for d in front.refs.get((repo, digest), [])
                      if not want or d.get("artifactType") == want[0]]
                body = json.dumps({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": ms}).encode()
                hdr = [("Content-Type",
                        "application/vnd.oci.image.index.v1+json")]
                if want:
                    hdr.append(("OCI-Filters-Applied", "artifactType"))
                self.answer(200, body, hdr)

            def forward(self):
                front.log.append((self.command, self.path))
                if self.command == "GET" and "/referrers/" in self.path:
                    return self.referrers()
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                c = http.client.HTTPConnection("127.0.0.1", upstream_port,
                                               timeout=20)
                hdr = {k: v for k, v in self.headers.items()
                       if k.lower() in ("accept", "range", "content-type",
                                        "content-length", "host",
                                        "authorization")}
                c.request(self.command, self.path, body=body, headers=hdr)
                r = c.getresponse()
                data = r.read()
                c.close()
                extra = []
                if (self.command == "PUT" and "/manifests/" in self.path
                        and r.status == 201 and body):
                    m = json.loads(body)
                    subj = (m.get("subject") or {}).get("digest")
                    if subj:
                        repo = self.path[4:].split("/manifests/", 1)[0]
                        d = {"mediaType": m.get("mediaType"),
                             "digest": r.getheader("Docker-Content-Digest"),
                             "size": len(body)}
                        if m.get("artifactType"):
                            d["artifactType"] = m["artifactType"]
                        lst = front.refs.setdefault((repo, subj), [])
                        if d not in lst:
                            lst.append(d)
                        extra.append(("OCI-Subject", subj))
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection",
                                         "content-length"):
                        self.send_header(k, v)
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Content-Length",
                                 r.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else
                                 str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = \
                forward

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

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
