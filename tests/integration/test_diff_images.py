# SPDX-License-Identifier: MIT
"""`layerfs diff IMAGE_A IMAGE_B`: two images (or prefixes of them) side by
side, any transports.

Oracles: `umoci unpack` of each image, the two rootfs trees compared file
by file here (type, mode, owner, size, mtime, sha256, symlink target,
xattrs) and by GNU `diff -rq --no-dereference` for contents; docker diff's
rules for what is listed (an added directory lists its subtree, a deleted
one is one line).  That a shared base is not read: both images served by
the local registry through a counting proxy, indexes cached, and the
blob requests of the diff counted.
"""

import json
import os
import subprocess
import sys
import time

import pytest

import oracle as O
from registry import FaultProxy, Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402

T = 120
BASE = [
    mk.Layer([mk.dir("/etc"), mk.file("/etc/os-release", "ID=test\n"),
              mk.dir("/usr/lib"),
              mk.file("/usr/lib/big.so", size=2 << 20, seed=7),
              mk.file("/usr/lib/same.txt", "same in both\n"),
              mk.symlink("/usr/lib/link", "big.so")], "gzip"),
    mk.Layer([mk.dir("/app"), mk.file("/app/main.py", "print(1)\n"),
              mk.file("/app/conf", "a=1\n")], "gzip"),
]
A_TOP = [
    mk.Layer([mk.file("/app/v1-only", "old\n"),
              mk.file("/app/conf", "a=1\nb=2\n"),
              mk.dir("/app/cache"), mk.file("/app/cache/x", "x\n")], "gzip"),
]
B_TOP = [
    mk.Layer([mk.file("/app/main.py", "print(2)\n"),
              mk.file("/app/conf", "a=1\n", mode=0o600),
              mk.whiteout("/usr/lib/same.txt"),
              mk.symlink("/usr/lib/link", "other.so"),
              mk.dir("/app/new"), mk.file("/app/new/y", "y\n")], "none"),
    mk.Layer([mk.file("/etc/os-release", "ID=test\nVERSION=2\n")], "gzip"),
]


def write(d, layers, name):
    out = os.path.join(str(d), name)
    mk.write_image(mk.Image(layers), out, "oci")
    return out


def expected(ra, rb):
    """docker diff's A/C/D between two rootfs trees ((path, unpack start)
    each: umoci gives the directories it makes up the time of the unpack,
    which walk_rootfs leaves out)."""
    ta, tb = O.walk_rootfs(*ra), O.walk_rootfs(*rb)
    keys = ("type", "mode", "uid", "gid", "size", "sha256", "target",
            "xattrs", "mtime", "mtime_nsec")
    out = set()
    for p in tb:
        if p not in ta:
            out.add(("A", "/" + p))
        elif any(ta[p].get(k) != tb[p].get(k) for k in keys):
            out.add(("C", "/" + p))
    for p in ta:
        if p not in tb and os.path.dirname(p) in ta and \
                (os.path.dirname(p) == "" or os.path.dirname(p) in tb):
            out.add(("D", "/" + p))
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory, need_tools):
    d = tmp_path_factory.mktemp("diffimg")
    a = write(d, BASE + A_TOP, "a")
    b = write(d, BASE + B_TOP, "b")
    t0 = time.time()
    ra = (O.umoci_unpack(a, str(d / "ua")), t0)
    t0 = time.time()
    rb = (O.umoci_unpack(b, str(d / "ub")), t0)
    return a, b, ra, rb, str(d / "cache")


def lf(*args, cache, rc=0):
    p = subprocess.run([O.LAYERFS, "diff", "--cache", cache, *args],
                       capture_output=True, timeout=T)
    assert p.returncode == rc, p.stderr.decode()
    return p


def lines(p):
    return {(ln[0], ln[2:]) for ln in p.stdout.decode().splitlines()}


def test_two_images_against_umoci(pair):
    a, b, ra, rb, cache = pair
    got = lines(lf(a, b, cache=cache))
    want = expected(ra, rb)
    assert got == want
    # the oracle sees what the test is about
    assert {("C", "/app/main.py"), ("C", "/app/conf"),
            ("D", "/usr/lib/same.txt"), ("C", "/usr/lib/link"),
            ("A", "/app/new"), ("A", "/app/new/y"), ("D", "/app/cache"),
            ("D", "/app/v1-only"), ("C", "/etc/os-release")} <= want
    # and GNU diff agrees on contents
    g = subprocess.run(["diff", "-rq", "--no-dereference", ra[0], rb[0]],
                       capture_output=True, timeout=T)
    differ = {ln.split(" and ")[0][len("Files " + ra[0]):]
              for ln in g.stdout.decode().splitlines()
              if ln.startswith("Files ")}
    assert differ <= {p for k, p in got if k == "C"}, differ


def test_reverse_and_prefixes(pair):
    a, b, ra, rb, cache = pair
    rev = lines(lf(b, a, cache=cache))
    fwd = lines(lf(a, b, cache=cache))
    flip = {"A": "D", "D": "A", "C": "C"}
    # reversed, what was added is deleted: the same paths at the top
    assert {(k, p) for k, p in rev if k == "C"} == \
        {(k, p) for k, p in fwd if k == "C"}
    assert {p for k, p in rev if k == "D"} >= \
        {p for k, p in fwd if flip[k] == "D" and
         os.path.dirname(p) in ("/", "/app", "/usr/lib", "/etc")}
    # the shared base against itself: nothing
    assert lf(a, b, "--from", "2", "--to", "2", cache=cache).stdout == b""
    # layers 1..2 of A against all of B = the changes of B's own layers
    p = lf(a, b, "--from", "2", cache=cache)
    q = subprocess.run([O.LAYERFS, "diff", "--cache", cache, b, "--from",
                        "2", "--to", "4"], capture_output=True, timeout=T)
    assert lines(p) == lines(q)


def test_stat_and_json(pair):
    a, b, ra, rb, cache = pair
    out = lf(a, b, "--stat", cache=cache).stdout.decode()
    assert "layers: 2 shared (the bottom 2 in common), 1 only in the " \
        "first image, 2 only in the second" in out
    doc = json.loads(lf(a, b, "--json", cache=cache).stdout)
    from test_json_schema import validate
    validate("diff", doc)
    assert doc["layers"] == {"base": 2, "shared": 2, "only_a": 1,
                             "only_b": 2}
    assert {(c["kind"], c["path"]) for c in doc["changes"]} == \
        expected(ra, rb)


def test_usage(pair):
    a, b, _, _, cache = pair
    assert b"--upper" in lf(a, b, "--upper", "/tmp", cache=cache,
                            rc=2).stderr
    assert b"has 3 layers" in lf(a, b, "--from", "9", cache=cache,
                                 rc=2).stderr


def test_shared_base_is_not_read(pair, tmp_path):
    """Registry images, indexes cached, spans not: the diff fetches the
    changed files (their old versions may be in the base), but nothing of
    the bottom layer, whose files are equal on both sides, deleted, or
    differ in size or symlink target (no content to compare)."""
    require_registry()
    a, b, _, _, _ = pair
    r = Registry(str(tmp_path / "registry"))
    try:
        ra = r.push_layout(a, "d/app:1")
        rb = r.push_layout(b, "d/app:2")
        cache = str(tmp_path / "cache")
        for ref in (ra, rb):
            p = subprocess.run([O.LAYERFS, "ls", "--tls-verify=false",
                                "--cache", cache, ref, "/"],
                               capture_output=True, timeout=T)
            assert p.returncode == 0, p.stderr
        # drop the fetched spans, keep the indexes and span digests
        spans = os.path.join(cache, "spans")
        for e in os.listdir(spans):
            if os.path.isdir(os.path.join(spans, e)):
                for f in os.listdir(os.path.join(spans, e)):
                    os.unlink(os.path.join(spans, e, f))
        with open(os.path.join(a, "index.json")) as f:
            man = json.load(f)["manifests"][0]["digest"][7:]
        with open(os.path.join(a, "blobs", "sha256", man)) as f:
            base = [d["digest"] for d in json.load(f)["layers"][:1]]
        px = FaultProxy(r.port)
        try:
            p = subprocess.run([O.LAYERFS, "diff", "--tls-verify=false",
                                "--cache", cache,
                                ra.replace(r.host, px.host),
                                rb.replace(r.host, px.host)],
                               capture_output=True, timeout=T)
            gets = px.blob_gets()
        finally:
            px.stop()
        assert p.returncode == 0, p.stderr
        assert ("C", "/app/main.py") in lines(p)
        assert gets, "the changed files were read"
        assert not [g for g in gets if any(g[1].endswith(d) for d in base)]
    finally:
        r.stop()
