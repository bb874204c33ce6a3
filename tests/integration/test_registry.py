# SPDX-License-Identifier: MIT
"""docker:// images from a registry on 127.0.0.1 (tests/integration/
registry.py), checked against the same image read from the OCI layout it
was pushed from: the listing, every file's bytes, a mount; and a proxy that
lies: flipped bytes are an error (never other bytes), failures and dropped
connections are retried, a registry that ignores Range is an error."""

import os
import subprocess

import pytest

import fusehelpers as fh
from registry import FaultProxy, Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
MKIMAGE = os.path.join(HERE, "..", "fixtures", "mkimage.py")
SPECS = ("hardlinks", "symlinks", "opaque_dir")
T = 120


def run(args, cache, **kw):
    env = dict(os.environ, LAYERFS_CACHE=str(cache))
    return subprocess.run(args, capture_output=True, timeout=T, env=env, **kw)


@pytest.fixture(scope="module")
def reg(tmp_path_factory, need_tools):
    require_registry()
    d = tmp_path_factory.mktemp("registry")
    r = Registry(str(d / "registry"))
    images = {}
    try:
        for spec in SPECS:
            layout = str(d / spec)
            p = subprocess.run(["/usr/bin/python3", MKIMAGE, spec, layout],
                               capture_output=True, timeout=T)
            assert p.returncode == 0, p.stderr.decode()
            r.push("oci:" + layout, "test/%s:v1" % spec)
            images[spec] = layout
        yield r, images
    finally:
        r.stop()


def ref(host, spec):
    return "docker://%s/test/%s:v1" % (host, spec)


def files(layerfs_bin, image, cache, *opts):
    p = run([layerfs_bin, "ls", "-R", "-l", *opts, image], cache)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout, [line.split()[-1] for line in p.stdout.decode(
        errors="surrogateescape").splitlines() if line.startswith("-")]


@pytest.mark.parametrize("spec", SPECS)
def test_registry_image_equals_its_layout(reg, layerfs_bin, tmp_path, spec):
    r, images = reg
    img = ref(r.host, spec)
    got, paths = files(layerfs_bin, img, tmp_path / "c1",
                       "--tls-verify=false")
    want, _ = files(layerfs_bin, images[spec], tmp_path / "c2")
    assert got == want and paths
    for p in paths:
        a = run([layerfs_bin, "cat", "--tls-verify=false", img, "/" + p],
                tmp_path / "c1")
        b = run([layerfs_bin, "cat", images[spec], "/" + p], tmp_path / "c2")
        assert a.returncode == b.returncode == 0, a.stderr.decode()
        assert a.stdout == b.stdout, p


def test_registry_mount(reg, layerfs_bin, tmp_path):
    fh.require_fuse()
    r, images = reg
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = run([layerfs_bin, "mount", "--tls-verify=false",
             ref(r.host, "symlinks"), str(mnt)], tmp_path / "c")
    assert p.returncode == 0, p.stderr.decode()
    try:
        found = sorted(os.listdir(mnt))
        want = run([layerfs_bin, "ls", images["symlinks"]], tmp_path / "c2")
        assert found == sorted(want.stdout.decode().split())
    finally:
        subprocess.run(["umount", str(mnt)], timeout=T)


def test_digest_reference(reg, layerfs_bin, tmp_path):
    r, images = reg
    p = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                        "--format", "{{.Digest}}", ref(r.host, "symlinks")],
                       capture_output=True, timeout=T)
    assert p.returncode == 0, p.stderr.decode()
    digest = p.stdout.decode().strip()
    byd = "docker://%s/test/symlinks@%s" % (r.host, digest)
    got, _ = files(layerfs_bin, byd, tmp_path / "c", "--tls-verify=false")
    want, _ = files(layerfs_bin, images["symlinks"], tmp_path / "c2")
    assert got == want
    # a digest the registry does not have
    bad = byd[:-4] + ("0000" if not byd.endswith("0000") else "1111")
    p = run([layerfs_bin, "ls", "--tls-verify=false", bad], tmp_path / "c")
    assert p.returncode == 1 and b"HTTP 404" in p.stderr


@pytest.mark.parametrize("what,msg", [
    ("test/nosuch:v1", b"HTTP 404"),
    ("test/symlinks:nosuch", b"HTTP 404"),
])
def test_missing(reg, layerfs_bin, tmp_path, what, msg):
    r, _ = reg
    p = run([layerfs_bin, "ls", "--tls-verify=false",
             "docker://%s/%s" % (r.host, what)], tmp_path / "c")
    assert p.returncode == 1 and msg in p.stderr
    assert p.stderr.startswith(b"layerfs: ") and b"http://" in p.stderr


def test_nothing_listening(layerfs_bin, tmp_path):
    from registry import free_port
    p = run([layerfs_bin, "ls", "--tls-verify=false",
             "docker://127.0.0.1:%d/a:b" % free_port()], tmp_path / "c")
    assert p.returncode == 1 and b"127.0.0.1" in p.stderr


def test_tls_verify_is_the_default(reg, layerfs_bin, tmp_path):
    r, _ = reg
    p = run([layerfs_bin, "ls", ref(r.host, "symlinks")], tmp_path / "c")
    assert p.returncode == 1 and b"https://" in p.stderr
    p = run([layerfs_bin, "ls", "--tls-verify=maybe",
             ref(r.host, "symlinks")], tmp_path / "c")
    assert p.returncode == 2


@pytest.mark.parametrize("mode", ["fail-once", "drop"])
def test_proxy_faults_are_retried(reg, layerfs_bin, tmp_path, mode):
    r, images = reg
    px = FaultProxy(r.port, mode)
    try:
        got, _ = files(layerfs_bin, ref(px.host, "hardlinks"), tmp_path / "c",
                       "--tls-verify=false")
    finally:
        px.stop()
    want, _ = files(layerfs_bin, images["hardlinks"], tmp_path / "c2")
    assert got == want
    assert px.requests > len(px.seen)  # something was asked twice


@pytest.mark.parametrize("mode,msg", [
    ("flip", b"digest"),
    ("norange", b"asked for bytes"),
])
def test_proxy_lies_are_errors(reg, layerfs_bin, tmp_path, mode, msg):
    r, _ = reg
    px = FaultProxy(r.port, mode)
    try:
        p = run([layerfs_bin, "ls", "-R", "--tls-verify=false",
                 ref(px.host, "hardlinks")], tmp_path / "c")
    finally:
        px.stop()
    assert p.returncode == 1, p.stdout
    assert p.stdout == b""
    assert msg in p.stderr, p.stderr
    # nothing was kept: the same image through the registry itself works
    got, _ = files(layerfs_bin, ref(r.host, "hardlinks"), tmp_path / "c",
                   "--tls-verify=false")
    assert got


def test_commit_and_commands_on_a_registry_base(reg, layerfs_bin, tmp_path):
    """commit's base image, layers, stat, diff and waste take docker://
    like a path: the same output as from the layout pushed."""
    r, images = reg
    img, layout = ref(r.host, "hardlinks"), images["hardlinks"]
    upper = tmp_path / "upper"
    (upper / "newdir").mkdir(parents=True)
    (upper / "newdir" / "f").write_bytes(b"hello\n")
    for cmd in (["layers"], ["stat", "/h"], ["diff"], ["waste"]):
        a = run([layerfs_bin, *cmd[:1], "--tls-verify=false", img,
                 *cmd[1:]], tmp_path / "c1")
        b = run([layerfs_bin, *cmd[:1], layout, *cmd[1:]], tmp_path / "c2")
        assert a.returncode == b.returncode == 0, a.stderr
        assert a.stdout == b.stdout, cmd
    outs = []
    for base, extra in ((img, ["--tls-verify=false"]), (layout, [])):
        out = tmp_path / ("out%d" % len(outs))
        p = run([layerfs_bin, "commit", *extra, "--upper", str(upper),
                 "-o", str(out), base], tmp_path / "c3")
        assert p.returncode == 0, p.stderr.decode()
        outs.append(run([layerfs_bin, "ls", "-R", "-l", str(out)],
                        tmp_path / "c3").stdout)
    assert outs[0] == outs[1] and b"newdir" in outs[0]
