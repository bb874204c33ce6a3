# SPDX-License-Identifier: MIT
"""docker:// with credentials, TLS, redirects and slow or busy registries.

Test bed (registry.py, all on 127.0.0.1): docker-registry with htpasswd
Basic auth; docker-registry over TLS with a CA made by the test; a Bearer
token front (its own /token wants Basic credentials); a Basic front that
redirects blob GETs to a blob host on another port.  Images are pushed with
skopeo; the oracle for every byte is the OCI layout pushed, read from disk.
"""

import base64
import json
import os
import stat
import subprocess
import time

import pytest

import fusehelpers as fh
from registry import AuthFront, FaultProxy, Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
MKIMAGE = os.path.join(HERE, "..", "fixtures", "mkimage.py")
USER, PASSWORD = "alice", "s3cret-Pass:word"
T = 120


@pytest.fixture(scope="module")
def bed(tmp_path_factory, need_tools):
    require_registry()
    d = tmp_path_factory.mktemp("authbed")
    layout = str(d / "layout")
    p = subprocess.run(["/usr/bin/python3", MKIMAGE, "hardlinks", layout],
                       capture_output=True, timeout=T)
    assert p.returncode == 0, p.stderr.decode()
    regs = {}
    try:
        regs["basic"] = Registry(str(d / "basic"), auth=(USER, PASSWORD))
        regs["tls"] = Registry(str(d / "tls"), tls=True)
        regs["plain"] = Registry(str(d / "plain"))
        for r in regs.values():
            r.push("oci:" + layout, "test/img:v1")
        yield regs, layout, d
    finally:
        for r in regs.values():
            r.stop()


def env_for(home, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR",
                        "XDG_CONFIG_HOME", "DOCKER_CONFIG")}
    env["HOME"] = str(home)
    env["LAYERFS_CACHE"] = str(home / "cache")
    env.update(extra)
    return env


def run(lf, args, home, **extra):
    # a new session: no controlling terminal to ask a password on
    return subprocess.run([lf, *args], capture_output=True, timeout=T,
                          env=env_for(home, **extra), start_new_session=True,
                          stdin=subprocess.DEVNULL)


def listing(lf, image, home, *opts, **extra):
    return run(lf, ["ls", "-R", "-l", *opts, image], home, **extra)


def local(lf, layout, home):
    p = listing(lf, layout, home)
    assert p.returncode == 0, p.stderr
    return p.stdout


def auth_file(path, key, user=USER, password=PASSWORD):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    with open(path, "w") as f:
        json.dump({"auths": {key: {"auth": tok}}}, f)


# -- htpasswd Basic auth ------------------------------------------------------

def test_basic_needs_credentials(bed, layerfs_bin, tmp_path):
    regs, layout, _ = bed
    img = "docker://%s/test/img:v1" % regs["basic"].host
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false")
    assert p.returncode == 1 and p.stdout == b""
    assert b"HTTP 401" in p.stderr and b"--creds" in p.stderr
    assert b"http://" + regs["basic"].host.encode() in p.stderr
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                "--creds", USER + ":wrong-password")
    assert p.returncode == 1 and b"refused the credentials of alice" \
        in p.stderr, p.stderr
    assert b"wrong-password" not in p.stderr
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                "--creds", "%s:%s" % (USER, PASSWORD))
    assert p.returncode == 0, p.stderr
    assert p.stdout == local(layerfs_bin, layout, tmp_path)
    assert PASSWORD.encode() not in p.stderr


def test_creds_without_password_and_no_terminal(bed, layerfs_bin, tmp_path):
    regs, _, _ = bed
    p = listing(layerfs_bin, "docker://%s/test/img:v1" % regs["basic"].host,
                tmp_path, "--tls-verify=false", "--creds", USER)
    assert p.returncode == 1 and b"no terminal" in p.stderr, p.stderr


@pytest.mark.parametrize("where", ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR",
                                   "XDG_CONFIG_HOME", "docker", "repo-key",
                                   "url-key"])
def test_auth_files(bed, layerfs_bin, tmp_path, where):
    regs, layout, _ = bed
    host = regs["basic"].host
    extra = {}
    if where == "REGISTRY_AUTH_FILE":
        path = str(tmp_path / "any.json")
        extra["REGISTRY_AUTH_FILE"] = path
        auth_file(path, host)
    elif where == "XDG_RUNTIME_DIR":
        extra["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
        auth_file(str(tmp_path / "run/containers/auth.json"), host)
    elif where == "XDG_CONFIG_HOME":
        extra["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
        auth_file(str(tmp_path / "cfg/containers/auth.json"), host)
    elif where == "docker":
        auth_file(str(tmp_path / ".docker/config.json"), host)
    elif where == "repo-key":  # the most specific key wins
        path = str(tmp_path / ".docker/config.json")
        auth_file(path, host)
        with open(path) as f:
            cfg = json.load(f)
        cfg["auths"][host + "/test/img"] = cfg["auths"].pop(host)
        cfg["auths"][host] = {"auth": base64.b64encode(
            b"alice:wrong").decode()}
        with open(path, "w") as f:
            json.dump(cfg, f)
    else:
        auth_file(str(tmp_path / ".docker/config.json"),
                  "http://%s/v2/" % host)
    p = listing(layerfs_bin, "docker://%s/test/img:v1" % host, tmp_path,
                "--tls-verify=false", **extra)
    assert p.returncode == 0, p.stderr
    assert p.stdout == local(layerfs_bin, layout, tmp_path)


def test_creds_win_over_files_and_bad_files_are_errors(bed, layerfs_bin,
                                                       tmp_path):
    regs, _, _ = bed
    host = regs["basic"].host
    img = "docker://%s/test/img:v1" % host
    auth_file(str(tmp_path / ".docker/config.json"), host)
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                "--creds", "alice:nope")
    assert p.returncode == 1 and b"refused" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                REGISTRY_AUTH_FILE=str(bad))
    assert p.returncode == 1 and str(bad).encode() in p.stderr, p.stderr
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                REGISTRY_AUTH_FILE=str(fifo))
    assert p.returncode == 1 and b"not a regular file" in p.stderr
    auth_file(str(tmp_path / "notb64.json"), host)
    with open(tmp_path / "notb64.json", "w") as f:
        json.dump({"auths": {host: {"auth": "%%%"}}}, f)
    p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                REGISTRY_AUTH_FILE=str(tmp_path / "notb64.json"))
    assert p.returncode == 1 and b"base64" in p.stderr


# -- TLS ----------------------------------------------------------------------

def test_tls_with_cert_dir(bed, layerfs_bin, tmp_path):
    regs, layout, _ = bed
    r = regs["tls"]
    img = "docker://%s/test/img:v1" % r.host
    p = listing(layerfs_bin, img, tmp_path)
    assert p.returncode == 1
    assert b"https://" + r.host.encode() in p.stderr, p.stderr
    p = listing(layerfs_bin, img, tmp_path, "--cert-dir", r.tls["cert_dir"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == local(layerfs_bin, layout, tmp_path)
    p = listing(layerfs_bin, img, tmp_path / "h2", "--tls-verify=false")
    assert p.returncode == 0, p.stderr
    p = listing(layerfs_bin, img, tmp_path, "--cert-dir",
                str(tmp_path / "nosuch"))
    assert p.returncode == 1 and b"nosuch" in p.stderr
    trap = tmp_path / "trap"
    trap.mkdir()
    os.mkfifo(trap / "ca.crt")
    p = listing(layerfs_bin, img, tmp_path, "--cert-dir", str(trap))
    assert p.returncode == 1 and b"not a regular file" in p.stderr


# -- Bearer tokens --------------------------------------------------------------

@pytest.mark.parametrize("mode,ok,msg", [
    ("ok", True, b""),
    ("garbage", False, b"has no token"),
    ("none", False, b"has no token"),
])
def test_bearer_token_flow(bed, layerfs_bin, tmp_path, mode, ok, msg):
    regs, layout, _ = bed
    front = AuthFront(regs["plain"].port, "bearer", (USER, PASSWORD), mode)
    try:
        img = "docker://%s/test/img:v1" % front.host
        p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                    "--creds", "%s:%s" % (USER, PASSWORD))
        assert (p.returncode == 0) == ok, p.stderr
        if ok:
            assert p.stdout == local(layerfs_bin, layout, tmp_path)
            path, _ = front.token_requests[0]
            assert "scope=repository%3Atest%2Fimg%3Apull" in path, path
            assert "service=layerfs-test" in path
        else:
            assert msg in p.stderr and b"Sanitizer" not in p.stderr
        # no credentials: the token server says no
        p = listing(layerfs_bin, img, tmp_path / "anon",
                    "--tls-verify=false")
        assert p.returncode == 1 and b"no token" in p.stderr, p.stderr
    finally:
        front.stop()


def test_bearer_mount_reads(bed, layerfs_bin, tmp_path):
    fh.require_fuse()
    regs, layout, _ = bed
    front = AuthFront(regs["plain"].port, "bearer", (USER, PASSWORD))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        p = run(layerfs_bin, ["mount", "--tls-verify=false", "--creds",
                              "%s:%s" % (USER, PASSWORD),
                              "docker://%s/test/img:v1" % front.host,
                              str(mnt)], tmp_path)
        assert p.returncode == 0, p.stderr
        try:
            got = {}
            for root, _, names in os.walk(mnt):
                for n in names:
                    f = os.path.join(root, n)
                    if stat.S_ISREG(os.lstat(f).st_mode):
                        with open(f, "rb") as fp:
                            got[f[len(str(mnt)):]] = fp.read()
            assert got
            for path, data in got.items():
                c = run(layerfs_bin, ["cat", layout, path], tmp_path)
                assert c.stdout == data, path
        finally:
            subprocess.run(["umount", str(mnt)], timeout=T)
    finally:
        front.stop()


# -- redirects to a blob host -----------------------------------------------

def test_redirect_never_forwards_credentials(bed, layerfs_bin, tmp_path):
    regs, layout, _ = bed
    front = AuthFront(regs["plain"].port, "basic", (USER, PASSWORD),
                      redirect=True)
    try:
        img = "docker://%s/test/img:v1" % front.host
        p = listing(layerfs_bin, img, tmp_path, "--tls-verify=false",
                    "--creds", "%s:%s" % (USER, PASSWORD))
        assert p.returncode == 0, p.stderr
        assert p.stdout == local(layerfs_bin, layout, tmp_path)
        assert front.blob_auth, "no blob was redirected"
        assert front.blob_auth == [None] * len(front.blob_auth)
    finally:
        front.stop()


def test_redirect_to_a_local_file_is_refused(bed, layerfs_bin, tmp_path):
    regs, _, _ = bed
    secret = tmp_path / "secret"
    secret.write_bytes(b"local-secret-bytes\n" * 100)
    front = AuthFront(regs["plain"].port, "basic", (USER, PASSWORD),
                      redirect=True, redirect_to="file://%s" % secret)
    try:
        p = run(layerfs_bin, ["cat", "--tls-verify=false", "--creds",
                              "%s:%s" % (USER, PASSWORD),
                              "docker://%s/test/img:v1" % front.host,
                              "/h/orig"], tmp_path)
    finally:
        front.stop()
    assert p.returncode == 1 and b"local-secret" not in p.stdout + p.stderr
    assert b"layerfs: " in p.stderr


# -- busy and slow registries ---------------------------------------------------

def test_retry_after_is_honoured(bed, layerfs_bin, tmp_path):
    regs, layout, _ = bed
    px = FaultProxy(regs["plain"].port, "retry-after")
    try:
        p = listing(layerfs_bin, "docker://%s/test/img:v1" % px.host,
                    tmp_path, "--tls-verify=false")
    finally:
        px.stop()
    assert p.returncode == 0, p.stderr
    assert p.stdout == local(layerfs_bin, layout, tmp_path)
    # the manifest: refused at t0, asked again no sooner than 1 s later
    first = [e for e in px.log if e[0] == "429"][0]
    again = [t for e, t in zip([e for e in px.log if e[0] != "429"],
                               px.times) if e[1] == first[1]]
    assert again and again[0] - first[2] >= 0.9


def test_stalled_transfer_is_retried(bed, layerfs_bin, tmp_path):
    regs, layout, _ = bed
    px = FaultProxy(regs["plain"].port, "stall")
    try:
        t = time.monotonic()
        p = listing(layerfs_bin, "docker://%s/test/img:v1" % px.host,
                    tmp_path, "--tls-verify=false", LAYERFS_NET_STALL="1")
        took = time.monotonic() - t
    finally:
        px.stop()
    assert p.returncode == 0, p.stderr
    assert p.stdout == local(layerfs_bin, layout, tmp_path)
    assert took < 60
