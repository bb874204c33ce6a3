# SPDX-License-Identifier: MIT
"""`layerfs log IMAGE PATH`: every layer that added, changed or deleted a
path, and whether the bytes still ship.

Two oracles: a history written out by hand for an image made for it, and,
for the merge-rule images of specs.py, `umoci unpack` of every prefix:
what appears between the rootfs of layers 1..K-1 and 1..K must be `added`,
what disappears `deleted`, what differs (type, mode, owner, content,
symlink target) `changed` with those changes; an extra `changed` with no
visible difference is allowed only where layer K's tar has a member of
that name (it ships the same thing again).
"""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

import oracle as O

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402

T = 120


def image():
    return mk.Image([
        mk.Layer([mk.dir("/etc"), mk.file("/etc/passwd", "root\n"),
                  mk.file("/etc/x", "x\n"), mk.file("/s/k", "secret\n"),
                  mk.symlink("/l", "etc/x")], "gzip",
                 created_by="COPY base/ /"),
        mk.Layer([mk.file("/etc/passwd", "root\nuser\n", mode=0o600),
                  mk.whiteout("/s"), mk.symlink("/l", "etc/passwd")],
                 "gzip", created_by="RUN adduser user && rm -r /s"),
        mk.Layer([mk.file("/etc/passwd", "root\nuser\n", mode=0o600),
                  mk.file("/etc/x", "x\n", uid=33, gid=33)], "none",
                 created_by="RUN touch /etc/passwd"),
        mk.Layer([mk.opaque("/etc"), mk.file("/etc/y", "y\n")], "gzip",
                 created_by="RUN rm -rf /etc/* && echo y > /etc/y"),
    ])


@pytest.fixture(scope="module")
def img(tmp_path_factory, need_tools):
    d = tmp_path_factory.mktemp("log")
    layout = str(d / "layout")
    mk.write_image(image(), layout, "oci")
    return layout, str(d / "cache")


def log(layout, cache, *args, rc=0):
    p = subprocess.run([O.LAYERFS, "log", "--cache", cache, "--json", layout,
                        *args], capture_output=True, timeout=T)
    assert p.returncode == rc, p.stderr.decode()
    if rc:
        return p
    doc = json.loads(p.stdout)
    from test_json_schema import validate
    validate("log", doc)
    return doc


def brief(doc):
    return [(e["layer"], e["event"], e["path"], e["type"], e["size"],
             tuple(e["changes"]), e["cause"], e["cause_path"],
             e["ships_hidden"]) for e in doc["events"]]


def test_one_file_by_hand(img):
    doc = log(*img, "/etc/passwd")
    assert brief(doc) == [
        (1, "added", "/etc/passwd", "file", 5, (), None, None, True),
        (2, "changed", "/etc/passwd", "file", 10, ("mode", "content"),
         None, None, True),
        (3, "changed", "/etc/passwd", "file", 10, (), None, None, True),
        (4, "deleted", "/etc/passwd", "file", 10, (), "opaque directory",
         "/etc", False),
    ]
    assert doc["hidden_bytes"] == 25
    e = doc["events"][1]
    assert e["old"] == {"type": "file", "mode": 0o644, "uid": 0, "gid": 0,
                        "size": 5}
    assert e["created_by"] == "RUN adduser user && rm -r /s"
    assert e["layer_digest"].startswith("sha256:")


def test_recursive_by_hand(img):
    doc = log(*img, "-r", "/")
    got = [(e["layer"], e["event"], e["path"], tuple(e["changes"]),
            e["cause"], e["cause_path"]) for e in doc["events"]]
    assert got == [
        (1, "added", "/etc", (), None, None),
        (1, "added", "/etc/passwd", (), None, None),
        (1, "added", "/etc/x", (), None, None),
        (1, "added", "/l", (), None, None),
        (1, "added", "/s", (), "implied by paths below it", None),
        (1, "added", "/s/k", (), None, None),
        (2, "changed", "/etc/passwd", ("mode", "content"), None, None),
        (2, "changed", "/l", ("target",), None, None),
        (2, "deleted", "/s", (), "whiteout", None),
        (2, "deleted", "/s/k", (), "whiteout", "/s"),
        (3, "changed", "/etc/passwd", (), None, None),
        (3, "changed", "/etc/x", ("owner",), None, None),
        (4, "deleted", "/etc/passwd", (), "opaque directory", "/etc"),
        (4, "deleted", "/etc/x", (), "opaque directory", "/etc"),
        (4, "added", "/etc/y", (), None, None),
    ]
    # etc/passwd 5 + 10 + 10, etc/x 2 + 2, s/k 7
    assert doc["hidden_bytes"] == 36


def test_text_form(img):
    p = subprocess.run([O.LAYERFS, "log", "--cache", img[1], img[0],
                        "/etc/passwd"], capture_output=True, timeout=T)
    assert p.returncode == 0
    out = p.stdout.decode()
    assert "layer 2  sha256:" in out and "RUN adduser user" in out
    assert "(mode 0644 -> 0600, content (5 -> 10 bytes))" in out
    assert "(the same again)" in out and "[ships hidden]" in out
    assert "(opaque directory of /etc)" in out
    assert out.endswith("25 bytes of versions that are not visible still "
                        "ship in the image\n")


def test_errors(img):
    p = log(*img, "/nowhere", rc=1)
    assert b"no layer has it" in p.stderr
    p = subprocess.run([O.LAYERFS, "log", img[0]], capture_output=True,
                       timeout=T)
    assert p.returncode == 2


# -- against umoci, every prefix of the merge-rule images ----------------

RULES = ["basic", "delete_file", "delete_dir", "opaque_dir",
         "opaque_recreate", "replace_types", "whiteout_only_parent",
         "implicit_parents", "symlinks", "hardlinks"]


def members(layout, k):
    """Names (normalised) of layer k's tar (1-based)."""
    with tarfile.open(fileobj=io.BytesIO(O.layer_tars(layout)[k - 1][1])) \
            as t:
        return {m.name.lstrip("./").rstrip("/") for m in t.getmembers()}


KEYS = {"type": "type", "mode": "mode", "owner": ("uid", "gid"),
        "content": ("size", "sha256"), "target": "target"}


def differs(a, b):
    out = set()
    for name, keys in KEYS.items():
        keys = keys if isinstance(keys, tuple) else (keys,)
        if any(a.get(k) != b.get(k) for k in keys):
            out.add(name)
    if "type" in out:
        out.discard("content")
        out.discard("target")
    return out


@pytest.mark.parametrize("name", RULES)
def test_every_prefix_against_umoci(name, tmp_path, need_tools):
    n = O.layer_count(name)
    layout = O.generate(name, "oci", str(tmp_path), no_zstd=True)
    doc = log(layout, str(tmp_path / "cache"), "-r", "/")
    assert doc["events"]
    prev = {}
    for k in range(1, n + 1):
        rootfs, _ = O.oracle_rootfs(name, "oci", k, str(tmp_path / "o"))
        cur = O.walk_rootfs(rootfs)
        ev = {e["path"][1:]: e for e in doc["events"] if e["layer"] == k}
        added = {p for p in cur if p not in prev}
        deleted = {p for p in prev if p not in cur}
        assert {p for p, e in ev.items() if e["event"] == "added"} == \
            added, (k, "added")
        assert {p for p, e in ev.items() if e["event"] == "deleted"} == \
            deleted, (k, "deleted")
        tar = members(layout, k)
        for p in set(cur) & set(prev):
            want = differs(prev[p], cur[p])
            e = ev.get(p)
            if cur[p]["type"] == "dir":
                want -= {"content"}
            if want:
                assert e and e["event"] == "changed", (k, p, want)
                assert want <= set(e["changes"]), (k, p, want, e)
            elif e:
                assert e["event"] == "changed" and p in tar, (k, p, e)
        prev = cur
