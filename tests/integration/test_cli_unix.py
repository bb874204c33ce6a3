"""The CLI behaves like the Unix tools it stands beside.

ls sorts like ls(1) (checked against ls(1) itself on the same names
extracted by python tarfile), -U keeps archive order (the tar's member
order); stat prints the modification time as stat(1) prints it (checked
against stat(1) on a mount); commit -t NAME:TAG is found by skopeo's
oci:OUT:NAME:TAG, umoci's --image OUT:NAME:TAG and podman load.
"""
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

import fusehelpers as fh
import oracle as O
from mkimage import Image, Layer, dir as d, file as f, symlink

NAMES = ["b", "a", "B", "_x", "A10", "a2", "a10", ".hidden", "z z",
         "\u00e9t\u00e9", "e", "\u00ff", "-dash", "~tilde", "0", "10", "9"]


def _image():
    return Image([Layer([d("top")] + [f("top/" + n, n + "\n") for n in NAMES]
                        + [d("top/b.d"), f("top/b.d/y", "y"),
                           f("top/b.d/x", "x"), symlink("top/l", "a")]),
                  Layer([f("top/a", "again\n"), f("top/0a", "new\n")])])


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    root = tmp_path_factory.mktemp("cliunix")
    out = str(root / "img.tar")
    O.mkimage.write_image(_image(), out, "oci-archive")
    cache = str(root / "cache")
    # the tar member order of both layers, for -U, and the names on disk
    # for ls(1)
    ext = root / "rootfs"
    layout = str(root / "layout")
    os.mkdir(layout)
    with tarfile.open(out) as t:
        t.extractall(layout)
    order = []
    idx = json.load(open(os.path.join(layout, "index.json")))
    man = json.load(open(os.path.join(
        layout, "blobs", *idx["manifests"][0]["digest"].split(":"))))
    for i, lay in enumerate(man["layers"]):
        blob = os.path.join(layout, "blobs", *lay["digest"].split(":"))
        with tarfile.open(blob, "r:*") as t:
            for m in t:
                if i == 0:
                    t.extract(m, str(ext), set_attrs=False)
                else:
                    t.extract(m, str(ext), set_attrs=False)
                order.append((i, m.name.rstrip("/")))
    return {"img": out, "cache": cache, "rootfs": str(ext), "order": order,
            "root": str(root)}


def lf(w, *args, env=None):
    return O.layerfs(*args[:1], "--cache", w["cache"], *args[1:], env=env)


def ls1(path, env):
    p = subprocess.run(["ls", "-1A", path], env=env, stdout=subprocess.PIPE)
    assert p.returncode == 0
    return p.stdout.decode("utf-8", "surrogateescape").splitlines()


@pytest.mark.parametrize("loc", ["C", "C.UTF-8"])
def test_ls_sorted_as_ls1(img, loc):
    env = dict(os.environ, LC_ALL=loc)
    p = lf(img, "ls", img["img"], "top", env=env)
    assert p.returncode == 0, p.stderr
    got = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    assert got == ls1(os.path.join(img["rootfs"], "top"), env)
    # -R: each directory's names in the same order, parents first
    p = lf(img, "ls", "-R", img["img"], "top", env=env)
    got = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    want = []
    for n in ls1(os.path.join(img["rootfs"], "top"), env):
        want.append(n)
        if n == "b.d":
            want += ["b.d/" + c for c in
                     ls1(os.path.join(img["rootfs"], "top", "b.d"), env)]
    assert got == want
    # --json lists in the same order
    p = lf(img, "ls", "--json", img["img"], "top", env=env)
    names = [os.path.basename(e["path"]) for e in json.loads(p.stdout)]
    assert names == ls1(os.path.join(img["rootfs"], "top"), env)


def test_ls_U_keeps_archive_order(img):
    """-U: the merged directory in archive order: each name where the
    layer that last wrote it has it, layer by layer (the lower layer's
    members as its tar holds them, then the upper layer's)."""
    p = lf(img, "ls", "-U", img["img"], "top")
    assert p.returncode == 0, p.stderr
    got = p.stdout.decode().splitlines()
    top = [(i, n[4:]) for i, n in img["order"]
           if n.startswith("top/") and "/" not in n[4:]]
    upper = [n for i, n in top if i == 1]
    want = [n for i, n in top if i == 0 and n not in upper] + upper
    assert got == want
    assert got != sorted(got)


def test_stat_time_as_stat1(img, tmp_path):
    fh.require_fuse()
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    p = O.layerfs("mount", "--cache", img["cache"], img["img"], mnt)
    assert p.returncode == 0, p.stderr
    try:
        for tz in ("UTC", "Asia/Kolkata", "America/St_Johns"):
            env = dict(os.environ, TZ=tz)
            for path in ("top/a", "top/b.d", "top/l"):
                want = subprocess.run(
                    ["stat", "-c", "Modify: %y", os.path.join(mnt, path)],
                    env=env, stdout=subprocess.PIPE).stdout.decode()
                p = lf(img, "stat", img["img"], path, env=env)
                assert p.returncode == 0, p.stderr
                got = [x for x in p.stdout.decode().splitlines()
                       if x.startswith("Modify:")]
                assert got == [want.rstrip("\n")], (tz, path)
    finally:
        fh.cleanup(mnt)


@pytest.fixture(scope="module")
def tagged(img):
    out = os.path.join(img["root"], "tagged")
    p = lf(img, "commit", "-q", "--squash", "-t", "example/app:v1.2",
           img["img"], "-o", out)
    assert p.returncode == 0, p.stderr
    return out


def test_commit_tag_found_by_skopeo(tagged):
    if not shutil.which("skopeo"):
        fh.skip_or_fail("skopeo not installed")
    p = subprocess.run(["skopeo", "inspect", "--raw",
                        "oci:%s:example/app:v1.2" % tagged],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["layers"]


def test_commit_tag_found_by_umoci(tagged, tmp_path):
    p = subprocess.run(["umoci", "ls", "--layout", tagged],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.decode().split() == ["example/app:v1.2"], p.stderr
    b = str(tmp_path / "bundle")
    p = subprocess.run(["umoci", "unpack", "--image",
                        tagged + ":example/app:v1.2", b],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(b, "rootfs", "top", "a")) as fp:
        assert fp.read() == "again\n"


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_commit_tag_named_by_podman_load(img, fmt, tmp_path, request):
    if not shutil.which("podman"):
        fh.skip_or_fail("podman not installed")
    out = str(tmp_path / "out")
    p = lf(img, "commit", "-q", "--squash", "--format", fmt, "-t",
           "example/app:v1.2", img["img"], "-o", out)
    assert p.returncode == 0, p.stderr
    if fmt == "oci":
        # podman load reads an OCI archive: the layout in a tar
        tar = out + ".tar"
        with tarfile.open(tar, "w") as t:
            for n in sorted(os.listdir(out)):
                t.add(os.path.join(out, n), n)
        out = tar
    # podman wants a short runroot
    run = tempfile.mkdtemp(prefix="lfpod-")
    request.addfinalizer(lambda: shutil.rmtree(run, ignore_errors=True))
    pod = ["podman", "--root", str(tmp_path / "root"), "--runroot",
           run, "--storage-driver", "vfs",
           "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    p = subprocess.run(pod + ["load", "-i", out], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(pod + ["images", "--format",
                              "{{.Repository}}:{{.Tag}}"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.decode().split() == ["localhost/example/app:v1.2"], \
        p.stdout
    subprocess.run(pod + ["system", "reset", "-f"], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
