# SPDX-License-Identifier: MIT
"""layerfs commit: an upper dir (or a squash) becomes a new image.

One upper dir is made once per module through a real copy-on-write mount
(`layerfs mount -f --upper U`) with a scripted set of changes; then every
test commits it (or the base image) and checks the result against
independent readers: skopeo inspect, umoci unpack (docker-archive through
skopeo copy first) and layerfs's own ls, each compared with the merged view
of a fresh mount of the same upper dir.

The base is spec "basic" with its zstd layer stored as gzip (umoci 0.4.7
cannot unpack zstd, and commit copies base blobs byte for byte); it has
no hardlinks below, so every nlink in the view is what an extraction gives.
"""

import json
import os
import shutil
import time

import pytest

import fusehelpers as fh
import oracle as O
from fusehelpers import fuse_required  # noqa: F401  (fixture, see marker)

pytestmark = fh.fuse_marker()

SPEC = "basic"
TAG = "layerfs-test:" + O.TAG


def _changes(mnt):
    """The scripted edits, done through the mount (so U holds what layerfs
    writes: copy-ups, whiteouts, an opaque dir)."""
    p = lambda *a: os.path.join(mnt, *a)    # noqa: E731
    with open(p("etc/passwd"), "a") as f:               # edit a lower file
        f.write("commit:x:2000:2000::/:/bin/sh\n")
    os.mkdir(p("srv"), 0o750)                           # create
    with open(p("srv/data.txt"), "w") as f:
        f.write("new data\n" * 100)
    os.unlink(p("etc/shadow"))                          # delete lower file
    shutil.rmtree(p("home/user"))                       # delete lower dir
    shutil.rmtree(p("usr/bin"))                         # mkdir over a
    os.mkdir(p("usr/bin"))                              # deleted dir: opaque
    with open(p("usr/bin/fresh"), "w") as f:
        f.write("#!/bin/sh\necho fresh\n")
    os.chmod(p("usr/bin/fresh"), 0o755)
    os.chmod(p("big.bin"), 0o600)                       # chmod (copy-up)
    os.chmod(p("tmp"), 0o1770)
    os.symlink("etc/passwd", p("pw"))                   # symlink
    os.link(p("srv/data.txt"), p("srv/data.hard"))      # hardlink, upper
    os.link(p("empty"), p("empty.link"))                # hardlink to lower
    os.setxattr(p("srv/data.txt"), "user.commit", b"yes")   # xattrs
    os.setxattr(p("nsec"), "user.lower", b"\x00\x01")
    os.mkfifo(p("srv/fifo"), 0o600)
    os.rename(p("epoch"), p("epoch.moved"))             # rename a lower file


def _view(image, upper, cache, work, name):
    """Walk the merged view of a fresh mount of image + upper."""
    mnt = os.path.join(work, "mnt-" + name)
    os.makedirs(mnt, exist_ok=True)
    proc = fh.mount(image, mnt, "--upper", upper, cache=cache)
    try:
        return O.walk_rootfs(mnt)
    finally:
        fh.umount(mnt)
        fh.cleanup(mnt, proc)


@pytest.fixture(scope="module")
def world(tmp_path_factory, need_tools, layerfs_bin):
    """base image (OCI, and docker-archive), the upper dir, its view."""
    fh.require_fuse()
    work = str(tmp_path_factory.mktemp("commit"))
    base = O.generate(SPEC, "oci", work, no_zstd=True)
    cache = os.path.join(work, "cache")
    upper = os.path.join(work, "upper")
    os.makedirs(cache)
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    proc = fh.mount(base, mnt, "--upper", upper, cache=cache)
    try:
        _changes(mnt)
    finally:
        fh.umount(mnt)
        fh.cleanup(mnt, proc)
    return {"work": work, "base": base, "cache": cache, "upper": upper,
            "view": _view(base, upper, cache, work, "view")}


def commit(w, out, *args, image=None, check=True):
    p = O.layerfs("commit", "--cache", w["cache"], *args, "-o", out,
                  image or w["base"])
    if check and p.returncode != 0:
        raise AssertionError("layerfs commit %s: exit %d: %s" % (
            " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p


def out_path(w, name):
    return os.path.join(w["work"], name)


def manifest_of(layout):
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    assert len(idx["manifests"]) == 1
    d = idx["manifests"][0]
    with open(os.path.join(layout, "blobs", "sha256", d["digest"][7:])) as f:
        return d, json.load(f)


def config_of(layout, man):
    path = os.path.join(layout, "blobs", "sha256",
                        man["config"]["digest"][7:])
    with open(path) as f:
        return json.load(f)


def umoci_tree(layout, w, name, tag=TAG):
    bundle = os.path.join(w["work"], "bundle-" + name)
    t0 = time.time()
    rootfs = O.umoci_unpack(layout, bundle, tag)
    try:
        return O.walk_rootfs(rootfs, t0)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def assert_same(expected, got, what):
    diffs = O.compare(expected, got,
                      cat=lambda p: got[p].get("sha256"))
    assert not diffs, "%s differs from the merged view:\n  %s" % (
        what, "\n  ".join(diffs[:40]))


def assert_ls_equals(w, image, expected, what, n=None):
    """`layerfs ls -lR --json` of image == expected (a walk), contents by
    `layerfs cat`."""
    lf, _ = O.layerfs_ls(image, n=n, cache=w["cache"])
    diffs = O.compare(expected, lf, cat=lambda p: O.layerfs_cat_sha(
        image, p, n=n, cache=w["cache"])[0])
    # the expected side is a walk of a mount or an extraction: its
    # "sha256" is the content, so compare() checked `layerfs cat` against it
    assert not diffs, "%s: layerfs ls differs:\n  %s" % (
        what, "\n  ".join(diffs[:40]))


@pytest.fixture(scope="module")
def oci_out(world):
    out = out_path(world, "out.oci")
    p = commit(world, out, "--upper", world["upper"], "--tag", TAG,
               "--message", "RUN scripted changes", "--json")
    return out, json.loads(p.stdout)


def test_upper_dir_is_what_layerfs_wrote(world):
    """The scripted changes produced the OCI forms commit must carry."""
    u = world["upper"]
    assert os.path.exists(os.path.join(u, "etc", ".wh.shadow"))
    assert os.path.exists(os.path.join(u, "home", ".wh.user"))
    assert os.path.exists(os.path.join(u, "usr", "bin", ".wh..wh..opq"))
    assert os.path.exists(os.path.join(u, ".wh.epoch"))


def test_oci_output(world, oci_out):
    out, res = oci_out
    d, man = manifest_of(out)
    assert d["annotations"]["org.opencontainers.image.ref.name"] == TAG
    assert man["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(man["layers"]) == 4 and res["layers"] == 4
    new = man["layers"][-1]
    assert new["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert new["digest"] == res["layer"] == "sha256:" + O.file_sha256(
        os.path.join(out, "blobs", "sha256", new["digest"][7:]))
    assert d["digest"] == res["manifest"]
    # kept layers are the base's blobs, byte for byte
    _, bman = manifest_of(world["base"])
    assert man["layers"][:3] == bman["layers"]
    cfg, bcfg = config_of(out, man), config_of(world["base"], bman)
    assert cfg["rootfs"]["diff_ids"] == bcfg["rootfs"]["diff_ids"] + [
        res["diff_id"]]
    assert cfg["history"][:-1] == bcfg["history"]
    assert cfg["history"][-1]["created_by"] == "RUN scripted changes"
    assert cfg["history"][-1]["comment"] == "layerfs"
    assert cfg["created"] == cfg["history"][-1]["created"]
    assert cfg["config"] == bcfg["config"]
    p = O.run(["skopeo", "inspect", "oci:%s:%s" % (out, TAG)])
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert json.loads(p.stdout)["Digest"] == res["manifest"]


def test_oci_umoci_equals_view(world, oci_out):
    tree = umoci_tree(oci_out[0], world, "oci")
    assert_same(tree, world["view"], "umoci unpack of the commit")
    assert "srv/fifo" in tree and tree["srv/fifo"]["type"] == "fifo"
    assert tree["srv/data.txt"]["xattrs"] == {"user.commit": b"yes".hex()}


def test_oci_layerfs_ls_equals_view(world, oci_out):
    assert_ls_equals(world, oci_out[0], world["view"], "commit")


def test_reproducible(world, oci_out):
    out, res = oci_out
    again = out_path(world, "again.oci")
    p = commit(world, again, "--upper", world["upper"], "--tag", TAG,
               "--message", "RUN scripted changes", "--json")
    res2 = json.loads(p.stdout)
    assert res2["layer"] == res["layer"]
    assert res2["manifest"] == res["manifest"]
    blob = lambda o: open(os.path.join(      # noqa: E731
        o, "blobs", "sha256", res["layer"][7:]), "rb").read()
    assert blob(out) == blob(again)
    assert sorted(os.listdir(os.path.join(out, "blobs", "sha256"))) == \
        sorted(os.listdir(os.path.join(again, "blobs", "sha256")))


def test_docker_archive_output(world, oci_out):
    out = out_path(world, "out.docker.tar")
    p = commit(world, out, "--upper", world["upper"], "--tag", TAG,
               "--message", "RUN scripted changes", "--format",
               "docker-archive", "--json")
    res = json.loads(p.stdout)
    # same image as the OCI form: the layer and manifest bytes do not
    # depend on the container format
    assert res["layer"] == oci_out[1]["layer"]
    assert res["manifest"] == oci_out[1]["manifest"]
    p = O.run(["skopeo", "inspect", "docker-archive:" + out])
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert len(json.loads(p.stdout)["Layers"]) == 4
    layout = O.skopeo_to_oci(out, out_path(world, "skopeo.oci"))
    assert_same(umoci_tree(layout, world, "docker", O.TAG), world["view"],
                "docker-archive commit (skopeo copy + umoci unpack)")
    assert_ls_equals(world, out, world["view"], "docker-archive commit")


def test_squash_with_upper(world):
    out = out_path(world, "squash.oci")
    p = commit(world, out, "--squash", "--upper", world["upper"], "--tag",
               TAG, "--json")
    res = json.loads(p.stdout)
    assert res["layers"] == 1
    _, man = manifest_of(out)
    assert len(man["layers"]) == 1
    cfg = config_of(out, man)
    assert cfg["rootfs"]["diff_ids"] == [res["diff_id"]]
    assert len(cfg["history"]) == 1
    assert cfg["history"][0]["created_by"] == "layerfs commit"
    tree = umoci_tree(out, world, "squash")
    assert_same(tree, world["view"], "squashed commit")
    # a squash carries no whiteouts
    layer = os.path.join(out, "blobs", "sha256", res["layer"][7:])
    names = O.run(["tar", "tzf", layer]).stdout.decode().split("\n")
    assert not [n for n in names if "/.wh." in "/" + n]


def test_squash_image_alone(world):
    out = out_path(world, "flat.oci")
    commit(world, out, "--squash", "--tag", TAG)
    base, _ = O.layerfs_ls(world["base"], cache=world["cache"])
    flat, _ = O.layerfs_ls(out, cache=world["cache"])
    assert sorted(base) == sorted(flat)
    for path, e in base.items():
        for k in ("type", "mode", "uid", "gid", "size", "mtime",
                  "mtime_nsec", "nlink", "target", "xattrs"):
            assert e.get(k) == flat[path].get(k), (path, k)
    tree = umoci_tree(out, world, "flat")
    assert_ls_equals(world, out, tree, "squash of the image alone")


def test_layers_prefix(world):
    """--layers 2 keeps the first two base layers; an empty upper dir
    gives an image whose view is the base's layers 1..2."""
    empty = out_path(world, "empty-upper")
    os.makedirs(empty)
    out = out_path(world, "prefix.oci")
    p = commit(world, out, "--layers", "2", "--upper", empty, "--json")
    assert json.loads(p.stdout)["layers"] == 3
    _, man = manifest_of(out)
    _, bman = manifest_of(world["base"])
    assert man["layers"][:2] == bman["layers"][:2]
    cfg = config_of(out, man)
    assert len([h for h in cfg["history"]
                if not h.get("empty_layer")]) == 3
    want, _ = O.layerfs_ls(world["base"], n=2, cache=world["cache"])
    got, _ = O.layerfs_ls(out, cache=world["cache"])
    assert sorted(want) == sorted(got)
    for path in want:
        for k in ("type", "mode", "uid", "gid", "size", "mtime", "target"):
            assert want[path].get(k) == got[path].get(k), (path, k)


def test_docker_archive_base(world, oci_out):
    """A legacy docker-archive base (no blob digests stated: commit
    computes them) with the same upper dir gives the same view."""
    base = O.generate(SPEC, "docker-archive", world["work"])
    out = out_path(world, "from-docker.oci")
    commit(world, out, "--upper", world["upper"], image=base)
    _, man = manifest_of(out)
    for d in man["layers"]:
        blob = os.path.join(out, "blobs", "sha256", d["digest"][7:])
        assert d["digest"] == "sha256:" + O.file_sha256(blob)
        assert d["size"] == os.path.getsize(blob)
    assert_ls_equals(world, out, world["view"], "commit on docker-archive")


def test_errors(world, oci_out):
    out = oci_out[0]
    before = O.file_sha256(os.path.join(out, "index.json"))
    p = commit(world, out, "--upper", world["upper"], check=False)
    assert p.returncode == 1
    assert b"exists" in p.stderr
    assert O.file_sha256(os.path.join(out, "index.json")) == before

    fresh = out_path(world, "never")
    p = commit(world, fresh, check=False)
    assert p.returncode == 2, p.stderr
    assert b"--upper" in p.stderr
    p = commit(world, fresh, "--upper", out_path(world, "no-such-dir"),
               check=False)
    assert p.returncode == 1, p.stderr
    assert b"no-such-dir" in p.stderr
    assert not os.path.exists(fresh)
    assert not os.path.exists(out_path(world, "no-such-dir"))
    p = commit(world, fresh, "--upper", world["upper"], "--format", "zip",
               check=False)
    assert p.returncode == 2
    # nothing half-written is left beside OUT
    assert not [n for n in os.listdir(world["work"]) if ".tmp." in n]


def test_help(layerfs_bin):
    p = O.layerfs("commit", "--help")
    assert p.returncode == 0
    assert b"--squash" in p.stdout and b"--upper" in p.stdout

