# SPDX-License-Identifier: MIT
"""`layerfs grep PATTERN IMAGE [PATH]`: grep -r over the merged view, and
with --all over every layer's files, hidden versions included.

Oracles: GNU grep (LC_ALL=C) -r over `umoci unpack` of the image for the
merged view, and over each layer's regular files extracted alone (Python's
tarfile) for --all, each hit labelled visible when that layer is the one
the final view takes the file from (the topmost layer holding the path,
the path still visible).
"""

import io
import os
import random
import subprocess
import sys
import tarfile

import pytest

import oracle as O

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402

T = 120
ENV = dict(os.environ, LC_ALL="C")


def text(seed, lines, needle_every=0):
    r = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "Password", "token", "x"]
    out = []
    for i in range(lines):
        ln = " ".join(r.choice(words) for _ in range(r.randint(0, 12)))
        if needle_every and i % needle_every == 0:
            ln += " AKIAIOSFODNN7SECRET"
        out.append(ln)
    return "\n".join(out)


def image():
    big = text(1, 60000, 997)  # > 1 MiB: matches across read chunks
    return mk.Image([
        mk.Layer([mk.dir("/etc"), mk.file("/etc/conf", "user=root\n"
                                           "password=hunter2\n"),
                  mk.file("/srv/big.txt", big),
                  mk.file("/srv/nonl", "no newline at the end password"),
                  mk.file("/srv/crlf", "password=1\r\nother\r\n"),
                  mk.file("/srv/bin", b"\x00\x01password\x00junk\n"),
                  mk.file("/srv/empty", ""),
                  mk.file("/root/.aws/credentials",
                          "[default]\naws_access_key_id=AKIAIOSFODNN7SECRET\n"),
                  mk.symlink("/srv/link", "big.txt")], "gzip"),
        mk.Layer([mk.whiteout("/root/.aws"),
                  mk.file("/etc/conf", "user=root\npassword=changed\n")],
                 "gzip"),
        mk.Layer([mk.file("/srv/new", "Password: PASSWORD password\n"),
                  mk.whiteout("/srv/crlf")], "none"),
    ])


@pytest.fixture(scope="module")
def img(tmp_path_factory, need_tools):
    d = tmp_path_factory.mktemp("grep")
    layout = str(d / "layout")
    mk.write_image(image(), layout, "oci")
    rootfs = O.umoci_unpack(layout, str(d / "bundle"))
    # each layer's regular files alone, for --all
    layers = []
    for k, (_, data) in enumerate(O.layer_tars(layout)):
        root = str(d / ("layer%d" % (k + 1)))
        os.makedirs(root)
        names = set()
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                n = m.name.lstrip("./")
                names.add(n)
                if m.isfile() and not os.path.basename(n).startswith(".wh."):
                    os.makedirs(os.path.join(root, os.path.dirname(n)),
                                exist_ok=True)
                    with open(os.path.join(root, n), "wb") as f:
                        f.write(t.extractfile(m).read())
        layers.append((root, names))
    return layout, rootfs, layers, str(d / "cache")


def gnu(pattern, root, *opts):
    p = subprocess.run(["grep", "-r", *opts, "--", pattern, root],
                       capture_output=True, timeout=T, env=ENV)
    assert p.returncode in (0, 1), p.stderr
    out = set()
    for ln in p.stdout.split(b"\n"):
        if ln:
            out.add(ln[len(root):])
    binary = {ln.split(b": ")[1][len(root):] for ln in p.stderr.split(b"\n")
              if ln.endswith(b"binary file matches")}
    return out, binary


def lf(args, cache, rc=0):
    p = subprocess.run([O.LAYERFS, "grep", "--cache", cache, *args],
                       capture_output=True, timeout=T, env=ENV)
    assert p.returncode == rc, p.stderr.decode(errors="replace")
    out = {ln for ln in p.stdout.split(b"\n") if ln}
    binary = {ln.split(b": ")[1] for ln in p.stderr.split(b"\n")
              if ln.endswith(b"binary file matches")}
    return out, binary


CASES = [
    ("password", ()),
    ("password", ("-n",)),
    ("PASSWORD", ("-i",)),
    ("pass(word|wd)=[a-z]+", ("-E",)),
    ("a.c", ("-F",)),
    ("AKIA[A-Z0-9]\\{16\\}", ("-n",)),
    ("^$", ("-n",)),
    ("password", ("-l",)),
    ("nothing-matches-this", ()),
    # literal patterns take the whole-buffer path: hits in a 1.5 MB file
    # across read chunks, with their line numbers
    ("AKIAIOSFODNN7SECRET", ("-n",)),
    ("gamma delta", ("-n",)),
    ("password", ("-n", "-F")),
    ("junk", ()),
    # a literal part of a regular expression filters lines first: these
    # bind, repeat or group it
    ("gam\\{0,1\\}ma delta", ("-n",)),
    ("gam{0,1}ma delta", ("-E", "-n")),
    ("a{2}lpha|Password token", ("-E",)),
    ("tok(en)? x", ("-E",)),
    ("Pass[a-z]*d token", ()),
    ("x*alpha beta", ("-n",)),
    ("\\(del\\)ta gamma", ()),
]


@pytest.mark.parametrize("pattern,opts", CASES)
def test_merged_view_equals_gnu_grep(img, pattern, opts):
    layout, rootfs, _, cache = img
    want = gnu(pattern, rootfs, *opts)
    got = lf([*opts, pattern, layout], cache, rc=0 if want[0] or want[1]
             else 1)
    assert got == want


def test_a_subdirectory_and_a_file(img):
    layout, rootfs, _, cache = img
    out, _ = lf(["-n", "password", layout, "/srv"], cache)
    want, _ = gnu("password", rootfs, "-n")
    assert out == {ln for ln in want if ln.startswith(b"/srv/")}
    out, _ = lf(["hunter2", layout, "/etc/conf"], cache, rc=1)
    assert out == set()
    out, _ = lf(["changed", layout, "/etc/conf"], cache)
    assert out == {b"/etc/conf:password=changed"}


def expected_all(layers, rootfs, pattern, *opts):
    out = set()
    binary = set()
    for k, (root, _) in enumerate(layers):
        lines, bins = gnu(pattern, root, *opts)
        for ln in lines:
            path = ln.split(b":", 1)[0]
            out.add(b"%d:%s:%s" % (k + 1, vis(layers, rootfs, path, k),
                                   ln))
        for path in bins:
            binary.add(b"%d:%s:%s" % (k + 1, vis(layers, rootfs, path, k),
                                      path))
    return out, binary


def vis(layers, rootfs, path, k):
    rel = path.decode().lstrip("/")
    top = [i for i, (_, names) in enumerate(layers) if rel in names][-1]
    shown = os.path.lexists(os.path.join(rootfs, rel)) and top == k
    return b"visible" if shown else b"hidden"


@pytest.mark.parametrize("pattern,opts", [("password", ("-n",)),
                                          ("AKIA", ()),
                                          ("password", ("-l",))])
def test_all_layers_equals_gnu_grep_per_layer(img, pattern, opts):
    layout, rootfs, layers, cache = img
    want = expected_all(layers, rootfs, pattern, *opts)
    got = lf(["--all", *opts, pattern, layout], cache)
    assert got == want
    if pattern == "AKIA":
        # the deleted credentials still ship, and say so
        assert b"1:hidden:/root/.aws/credentials:" \
            b"aws_access_key_id=AKIAIOSFODNN7SECRET" in got[0]


def test_errors(img):
    layout, _, _, cache = img
    p = subprocess.run([O.LAYERFS, "grep", "--cache", cache, "a[", layout],
                       capture_output=True, timeout=T)
    assert p.returncode == 2 and b"a[" in p.stderr
    p = subprocess.run([O.LAYERFS, "grep", "--cache", cache, "x", layout,
                        "/nowhere"], capture_output=True, timeout=T)
    assert p.returncode == 2 and b"/nowhere" in p.stderr
    p = subprocess.run([O.LAYERFS, "grep", "x"], capture_output=True,
                       timeout=T)
    assert p.returncode == 2
    p = subprocess.run([O.LAYERFS, "grep", "--cache", cache, "x",
                        "/nonexistent-image"], capture_output=True,
                       timeout=T)
    assert p.returncode == 2
