# SPDX-License-Identifier: MIT
"""Depth and length: no walk recurses, no name crosses into a fixed buffer.

The image (tests/fixtures/deep.py) has a 20,000-level directory chain, a
64 KiB path, a symlink with a 64 KiB target, a 300-byte component and a
4095-byte target; a deep upper dir is made with mkdir relative to dir fds.
The oracle is the generator's own list of paths (deep.paths()).  The chain
alone gives 400 MB of `ls -R` output (every line is a full path), so
outputs are read as streams and compared as multisets through a hash sum,
never held whole.

The limits checked here (docs/architecture.md, "Depth and length"): paths,
depths and symlink targets of any length are served by the CLI, diff,
waste and commit; on a mount, a name of more than NAME_MAX bytes is not
listed and its lookup answers ENAMETOOLONG, and a target of PATH_MAX bytes
or more answers ENAMETOOLONG to readlink.
"""

import errno
import hashlib
import json
import os
import subprocess
import sys
import tarfile

import pytest

import fusehelpers as fh
import oracle as O
from fusehelpers import fuse_required  # noqa: F401  (fixture, see marker)

import deep  # noqa: E402  (tests/fixtures is on sys.path through oracle)

TIMEOUT = 300       # ASan + 400 MB of output; a hang still ends here


# -- helpers ------------------------------------------------------------------

class Multiset:
    """Order-free digest of (path, kind) pairs: count and a sum of sha256."""

    def __init__(self, items=()):
        self.n = 0
        self.sum = 0
        self.short = set()      # paths under 300 bytes, for messages
        for p, k in items:
            self.add(p, k)

    def add(self, path, kind):
        if isinstance(path, str):
            path = path.encode("utf-8", "surrogateescape")
        h = hashlib.sha256(path + b"\0" + kind.encode()).digest()
        self.sum = (self.sum + int.from_bytes(h, "big")) % (1 << 256)
        self.n += 1
        if len(path) < 300:
            self.short.add((path, kind))

    def check(self, want, what):
        assert (self.n, self.sum) == (want.n, want.sum), (
            "%s: %d paths, want %d; short ones only here %s, missing %s" % (
                what, self.n, want.n, sorted(self.short - want.short)[:5],
                sorted(want.short - self.short)[:5]))


def run(*args, check=True):
    p = O.layerfs(*args, timeout=TIMEOUT)
    if check:
        assert p.returncode == 0, "layerfs %s: exit %d: %s" % (
            " ".join(str(a)[:80] for a in args), p.returncode,
            p.stderr.decode(errors="replace")[:2000])
    return p


def _lines(argv, env=None):
    """Run argv with stdout as a stream; yield its lines (bytes, without
    the newline), then check the exit status."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        for line in proc.stdout:
            yield line.rstrip(b"\n")
        err = proc.stderr.read()
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, "%s: exit %d: %s" % (
        " ".join(str(a)[:80] for a in argv), rc, err[:2000])


def stream(*args):
    """layerfs ARGS as a stream of lines (see _lines)."""
    e = dict(os.environ)
    e.pop("LAYERFS_CACHE", None)
    return _lines([O.LAYERFS] + [str(a) for a in args], e)


def want(n, drop=()):
    return Multiset((p, k) for p, k in deep.paths(n) if p not in drop)


def json_lines(lines, head):
    """Objects of a JSON array printed one per line after the line `head`,
    up to the line that closes the array."""
    lines = iter(lines)
    for line in lines:
        if line.strip() == head:
            break
    for line in lines:
        if line.startswith(b"]"):
            break
        yield json.loads(line.rstrip(b","))
    for line in lines:      # drain, so the exit status is checked
        pass


# -- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="module")
def image(tmp_path_factory, layerfs_bin):
    root = tmp_path_factory.mktemp("deep")
    return deep.write(str(root / "deep.oci"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("deep-cache"))


@pytest.fixture(scope="module")
def upper(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("deep-upper") / "upper")
    deep.make_upper(d)
    yield d
    deep.remove_tree(d)


# -- the CLI over the image ---------------------------------------------------

@pytest.mark.parametrize("n", [3, 4])
def test_ls_recursive(image, cache, n):
    got = Multiset()
    for line in stream("ls", "-R", "--json", "--layers", n, "--cache",
                       cache, image):
        if line in (b"[", b"]", b"[]"):
            continue
        e = json.loads(line.rstrip(b","))
        got.add(e["path"], e["type"])
    got.check(want(n), "ls -R --json --layers %d" % n)


def test_ls_recursive_text(image, cache):
    got = Multiset()
    for line in stream("ls", "-R", "--layers", 3, "--cache", cache, image):
        got.add(b"/" + line, "?")
    got.check(Multiset((p, "?") for p, _ in deep.paths(3)),
              "ls -R --layers 3")


def test_stat_cat_long_paths(image, cache):
    leaf = deep.CHAIN + "/leaf"
    for n in (2, 3):
        p = run("cat", "--layers", n, "--cache", cache, image, leaf)
        assert p.stdout == deep.leaf_content(n)
    p = run("cat", "--layers", 2, "--cache", cache, image, deep.LONG_FILE)
    assert p.stdout == b"long path\n"
    p = run("cat", "--cache", cache, image, deep.NAME300)
    assert p.stdout == b"300\n"
    for link, target in (("longlink", deep.LONG_TARGET),
                         ("link4095", deep.TARGET4095)):
        p = run("stat", "--json", "--cache", cache, image, link)
        st = json.loads(p.stdout)
        assert (st["type"], st["target"], st["size"]) == (
            "symlink", target, len(target))
    p = run("stat", "--json", "--layers", 3, "--cache", cache, image, leaf)
    st = json.loads(p.stdout)
    assert (st["path"], st["type"], st["size"]) == ("/" + leaf, "file", 19)


def test_missing_long_path_error(image, cache):
    """The error names the start of the path and the cause, in one line."""
    p = run("cat", "--cache", cache, image, deep.LONG_FILE, check=False)
    msg = p.stderr.decode()
    assert p.returncode == 1, msg[:500]
    assert msg.count("\n") == 1 and len(msg) < 1000, msg[:500]
    assert deep.LONG_COMP[:100] in msg and "..." in msg
    assert msg.rstrip().endswith("No such file or directory"), msg[-200:]


# -- diff ---------------------------------------------------------------------

def test_diff_text(image, cache):
    p = run("diff", "--cache", cache, image, "--from", 2, "--to", 3)
    assert p.stdout.decode().splitlines() == [
        "D /" + deep.LONG_FILE, "A /" + deep.CHAIN + "/added",
        "C /" + deep.CHAIN + "/leaf"]
    # a deep D: the size of the files below is summed without recursion
    p = run("diff", "--json", "--cache", cache, image, "--from", 3, "--to",
            4)
    doc = json.loads(p.stdout)
    assert [(c["kind"], c["path"], c["type"], c["size"])
            for c in doc["changes"]] == [("D", "/d", "dir", 19 + 6)]


def test_diff_json_added_tree(image, cache):
    got = Multiset()
    for c in json_lines(stream("diff", "--json", "--cache", cache, image,
                               "--from", 1, "--to", 3),
                        b'{"schema":1,"changes": ['):
        assert c["kind"] == "A", c["path"][:200]
        got.add(c["path"], c["type"])
    got.check(want(3, drop=("/base",)), "diff --json --from 1 --to 3")


def test_diff_stat(image, cache):
    p = run("diff", "--stat", "--cache", cache, image, "--from", 1, "--to", 3)
    n = sum(1 for _ in deep.paths(3)) - 1
    # files added: leaf (19), added (6), 300 (4); symlinks carry no bytes
    assert p.stdout.decode().splitlines() == [
        "added: %d paths, 29 bytes" % n, "changed: 0 paths, 0 bytes",
        "deleted: 0 paths, 0 bytes"]


# -- waste --------------------------------------------------------------------

def test_waste(image, cache):
    p = run("waste", "--json", "--cache", cache, image)
    doc = json.loads(p.stdout)
    layers = [(e["index"], e["overwritten"], e["deleted"])
              for e in doc["layers"]]
    # layer 2: leaf overwritten (10) by 3, long file deleted (10) by 3;
    # layer 3: leaf (19) and added (6) deleted by 4
    assert layers == [(1, 0, 0), (2, 10, 10), (3, 0, 25), (4, 0, 0)], layers
    top = {t["path"]: t["cumulative"] for t in doc["top"]}
    assert top.get("/" + deep.CHAIN + "/leaf") == 29, sorted(
        (k[:60], v) for k, v in top.items())
    assert top.get("/" + deep.LONG_FILE) == 10


# -- commit -------------------------------------------------------------------

def layer_members(layout):
    """(path, kind) of the last layer of an OCI layout, and symlink
    targets, read with python tarfile."""
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    blob = lambda d: os.path.join(layout, "blobs", *d.split(":"))  # noqa
    with open(blob(idx["manifests"][0]["digest"])) as f:
        man = json.load(f)
    got, targets = Multiset(), {}
    with tarfile.open(blob(man["layers"][-1]["digest"]), "r:gz",
                      encoding="utf-8", errors="surrogateescape") as t:
        for m in t:
            kind = ("dir" if m.isdir() else "file" if m.isfile() else
                    "symlink" if m.issym() else str(m.type))
            got.add("/" + m.name.rstrip("/"), kind)
            if m.issym():
                targets[m.name] = m.linkname
    return got, targets


def test_commit_squash(image, cache, tmp_path):
    out = str(tmp_path / "squash")
    run("commit", "-q", "--squash", "--layers", 3, "--cache", cache, image,
        "-o", out)
    got, targets = layer_members(out)
    got.check(want(3), "commit --squash --layers 3")
    assert targets == {"longlink": deep.LONG_TARGET,
                       "link4095": deep.TARGET4095}


def test_commit_deep_upper(image, cache, upper, tmp_path):
    out = str(tmp_path / "committed")
    run("commit", "-q", "--cache", cache, image, "--upper", upper, "-o", out)
    got, _ = layer_members(out)
    got.check(Multiset(deep.upper_paths()), "commit --upper (deep)")


def test_diff_deep_upper(image, cache, upper):
    """Works, or says which limit it met: never a crash or a hang."""
    e = dict(os.environ)
    e.pop("LAYERFS_CACHE", None)
    got = Multiset()
    proc = subprocess.Popen([O.LAYERFS, "diff", "--cache", cache, image,
                             "--upper", upper], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=e)
    try:
        for line in proc.stdout:
            kind, path = line.rstrip(b"\n").split(b" ", 1)
            assert kind == b"A", path[:200]
            got.add(path, "?")
        err = proc.stderr.read().decode(errors="replace")
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc == 0:
        got.check(Multiset((p, "?") for p, _ in deep.upper_paths()),
                  "diff --upper (deep)")
    else:
        assert rc == 1, err[:500]
        assert err.count("\n") == 1 and len(err) < 1000, err[:500]
        assert "too long" in err, err


# -- the mount ----------------------------------------------------------------


def find_lines(mnt):
    """`find MNT -printf '%y %P\\n'` as a stream (find walks with fts, no
    path longer than PATH_MAX is ever passed to the kernel)."""
    return _lines(["find", mnt, "-printf", "%y %P\\n"])


def open_deep(mnt, path):
    """Open a long path one component at a time (dir fds)."""
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    parts = path.split("/")
    try:
        for comp in parts[:-1]:
            nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], os.O_RDONLY, dir_fd=fd)
    finally:
        os.close(fd)


def check_mount(mnt, proc):
    kinds = {"d": "dir", "f": "file", "l": "symlink"}
    got = Multiset()
    for line in find_lines(str(mnt)):
        y, p = line.split(b" ", 1)
        if p:
            got.add(b"/" + p, kinds[y.decode()])
    # a name longer than NAME_MAX is never listed
    got.check(want(3, drop=("/" + deep.NAME300,)), "find on the mount")
    fd = open_deep(str(mnt), deep.CHAIN + "/leaf")
    try:
        assert os.read(fd, 100) == deep.leaf_content(3)
    finally:
        os.close(fd)
    assert proc.poll() is None, fh.read_stderr(proc)


def check_limits(mnt, proc):
    # a name longer than NAME_MAX: its lookup says why it is not there
    with pytest.raises(OSError) as ei:
        os.lstat(os.path.join(mnt, deep.NAME300))
    assert ei.value.errno == errno.ENAMETOOLONG
    # a target the kernel cannot take: ENAMETOOLONG, not EIO or a cut one
    with pytest.raises(OSError) as ei:
        os.readlink(os.path.join(mnt, "longlink"))
    assert ei.value.errno == errno.ENAMETOOLONG
    assert os.lstat(os.path.join(mnt, "longlink")).st_size == \
        len(deep.LONG_TARGET)
    assert os.readlink(os.path.join(mnt, "link4095")) == deep.TARGET4095
    assert proc.poll() is None, fh.read_stderr(proc)


def mounted(image, cache, tmp_path, rw, check):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = ["--layers", 3]
    if rw:
        opts += ["--upper", str(tmp_path / "up")]
    proc = fh.mount(image, mnt, *opts, cache=cache)
    try:
        check(str(mnt), proc)
    finally:
        fh.cleanup(str(mnt), proc)
    assert proc.returncode == 0, fh.read_stderr(proc)


@fh.fuse_marker()
def test_mount_find(image, cache, tmp_path):
    mounted(image, cache, tmp_path, False, check_mount)


@fh.fuse_marker()
@pytest.mark.parametrize("rw", [False, True], ids=["ro", "rw"])
def test_mount_limits(image, cache, tmp_path, rw):
    mounted(image, cache, tmp_path, rw, check_limits)


# a writable mount serves an upper dir down to the upper code's depth limit
# and answers ENAMETOOLONG below it: test_upper_hostile.py checks that


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
