# SPDX-License-Identifier: MIT
"""Every test image, served by a registry, reads as it does from disk.

Each spec of tests/fixtures/specs.py (whiteouts, opaque directories,
hardlinks, devices, sparse files, xattrs, byte names, mixed compression,
odd tar endings) is written as an OCI layout and uploaded blob for blob to
the local registry (registry.py).  Every read-only command, for every
layer prefix, must print the same through docker:// as from the layout on
disk, and the umoci tree of the layout (the oracle the local tests hold
the layout to) must be what the registry mount shows.
"""

import os
import subprocess
import sys

import pytest

import fusehelpers as fh
from registry import Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402
import specs  # noqa: E402

T = 120
NAMES = sorted(specs.SPECS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, need_tools):
    require_registry()
    d = tmp_path_factory.mktemp("corpus")
    r = Registry(str(d / "registry"))
    images = {}
    try:
        for name in NAMES:
            layout = str(d / name)
            mk.write_image(specs.SPECS[name], layout, "oci")
            images[name] = (layout, r.push_layout(
                layout, "corpus/%s:v1" % name.replace("_", "-")))
        yield images
    finally:
        r.stop()


def run(lf, args, cache):
    return subprocess.run([lf, *args], capture_output=True, timeout=T,
                          env=dict(os.environ, LAYERFS_CACHE=str(cache)))


def same(lf, args, local, remote, tmp_path):
    a = run(lf, [*args, local], tmp_path / "local")
    b = run(lf, [*args, "--tls-verify=false", remote], tmp_path / "remote")
    assert a.returncode == b.returncode, (args, a.stderr, b.stderr)
    out = b.stdout.replace(remote.encode(), local.encode())
    assert out == a.stdout, args
    return a


@pytest.mark.parametrize("name", NAMES)
def test_commands_agree(corpus, layerfs_bin, tmp_path, name):
    local, remote = corpus[name]
    n = len(specs.SPECS[name].layers)
    for k in range(1, n + 1):
        same(layerfs_bin, ["ls", "-R", "-l", "--json", "--layers", str(k)],
             local, remote, tmp_path)
        same(layerfs_bin, ["diff", "--to", str(k)], local, remote, tmp_path)
    same(layerfs_bin, ["waste", "--json"], local, remote, tmp_path)
    same(layerfs_bin, ["diff", "--stat", "--from", "0"], local, remote,
         tmp_path)
    listing = run(layerfs_bin, ["ls", "-R", "-l", local], tmp_path / "local")
    for line in listing.stdout.splitlines():
        if line.startswith(b"-"):
            path = b"/" + line.split(b" ", 8)[-1]
            a = run(layerfs_bin, ["cat", local, os.fsdecode(path)],
                    tmp_path / "local")
            b = run(layerfs_bin, ["cat", "--tls-verify=false", remote,
                                  os.fsdecode(path)], tmp_path / "remote")
            assert (a.returncode, a.stdout) == (b.returncode, b.stdout), path


def test_mount_equals_umoci(corpus, layerfs_bin, tmp_path):
    """The registry mount of every spec against umoci's unpack."""
    fh.require_fuse()
    import oracle as O
    for name in NAMES:
        if name in specs.UMOCI_DIFFERS:
            continue
        _, remote = corpus[name]
        mnt = tmp_path / ("m-" + name)
        mnt.mkdir()
        n = len(specs.SPECS[name].layers)
        expect = O.walk_rootfs(*O.oracle_rootfs(name, "oci", n,
                                                str(tmp_path / "u")))
        p = run(layerfs_bin, ["mount", "--tls-verify=false", remote,
                              str(mnt)], tmp_path / "c")
        assert p.returncode == 0, p.stderr.decode()
        try:
            got = O.walk_rootfs(str(mnt))
        finally:
            subprocess.run(["umount", str(mnt)], timeout=T)
        diffs = O.compare(expect, got, cat=lambda x: got[x].get("sha256"))
        assert not diffs, (name, diffs[:10])
