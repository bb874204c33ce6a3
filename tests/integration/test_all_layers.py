# SPDX-License-Identifier: MIT
"""`layerfs mount --all-layers IMAGE MNT`: MNT/K is the view of layers
1..K, MNT/layer/K layer K's own entries, all in one mount.

Oracles: `umoci unpack` of each prefix (oracle.oracle_rootfs) for MNT/K,
compared as test_oracle compares a one-prefix mount (types, modes, owners,
times, sizes, bytes, targets, devices, xattrs, hardlink groups); Python's
tarfile over layer K's blob alone for MNT/layer/K (every member as the tar
holds it, whiteouts and opaque markers included as the empty files they
are; a hardlink to a file of a lower layer is not in the layer's own
view).  That views are made on first use: the tree files in the cache.
"""

import io
import os
import subprocess
import tarfile

import pytest

import fusehelpers as fh
import oracle as O

SPECS = ["basic", "opaque_dir", "opaque_recreate", "replace_types",
         "whiteout_only_parent", "implicit_parents", "hardlinks", "xattrs",
         "devices"]


def layer_members(layout, k):
    """path -> (type, size, bytes or target) of layer k's tar (1-based)."""
    data = O.layer_tars(layout)[k - 1][1]
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            p = os.path.normpath(m.name.lstrip("/"))
            if p in ("", "."):
                continue
            if m.islnk():
                target = os.path.normpath(m.linkname.lstrip("/"))
                if target not in out:
                    continue  # a file of a lower layer
                out[p] = out[target]
            elif m.isfile():
                out[p] = ("file", m.size, t.extractfile(m).read())
            elif m.isdir():
                out[p] = ("dir", None, None)
            elif m.issym():
                out[p] = ("symlink", None, m.linkname)
            elif m.ischr() or m.isblk():
                out[p] = ("chr" if m.ischr() else "blk", None,
                          (m.devmajor, m.devminor))
            elif m.isfifo():
                out[p] = ("fifo", None, None)
            # implicit parents
            q = os.path.dirname(p)
            while q and q not in out:
                out[q] = ("dir", None, None)
                q = os.path.dirname(q)
    return out


def layer_view(mnt):
    out = {}
    for dirpath, dirs, files in os.walk(mnt):
        for n in dirs + files:
            full = os.path.join(dirpath, n)
            p = os.path.relpath(full, mnt)
            st = os.lstat(full)
            typ = O._TYPES[st.st_mode & 0o170000]
            if typ == "file":
                with open(full, "rb") as f:
                    out[p] = ("file", st.st_size, f.read())
            elif typ == "symlink":
                out[p] = ("symlink", None, os.readlink(full))
            elif typ in ("chr", "blk"):
                out[p] = (typ, None, (os.major(st.st_rdev),
                                      os.minor(st.st_rdev)))
            else:
                out[p] = (typ, None, None)
    return out


@pytest.mark.parametrize("name", SPECS)
def test_every_prefix_and_layer(name, tmp_path, need_tools):
    n = O.layer_count(name)
    layout = O.generate(name, "oci", str(tmp_path), no_zstd=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = fh.mount(layout, mnt, "--all-layers", cache=str(tmp_path / "c"))
    try:
        top = sorted(os.listdir(str(mnt)))
        assert top == sorted([str(k) for k in range(1, n + 1)] + ["layer"])
        assert sorted(os.listdir(str(mnt / "layer")), key=int) == \
            [str(k) for k in range(1, n + 1)]
        for k in range(1, n + 1):
            expect, t0 = O.oracle_rootfs(name, "oci", k,
                                         str(tmp_path / "o"))
            want = O.walk_rootfs(expect, t0)
            got = O.walk_rootfs(str(mnt / str(k)))
            diffs = O.compare(want, got,
                              cat=lambda p: got[p].get("sha256"))
            assert not diffs, (k, diffs[:10])
            assert layer_view(str(mnt / "layer" / str(k))) == \
                layer_members(layout, k), k
    finally:
        fh.cleanup(str(mnt), proc)


def test_views_are_made_when_entered(tmp_path, need_tools):
    name = "opaque_recreate"
    layout = O.generate(name, "oci", str(tmp_path), no_zstd=True)
    cache = tmp_path / "c"
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def trees():
        return sorted(f for f in os.listdir(str(cache))
                      if f.startswith("tree-"))
    proc = fh.mount(layout, mnt, "--all-layers", cache=str(cache))
    try:
        before = trees()  # the whole image's tree, made by the mount
        os.listdir(str(mnt))
        assert trees() == before
        os.listdir(str(mnt / "1"))
        assert len(trees()) == len(before) + 1
        # standard tools over two views
        d = subprocess.run(["diff", "-r", str(mnt / "1"), str(mnt / "2")],
                           capture_output=True, timeout=60)
        assert d.returncode in (0, 1), d.stderr
    finally:
        fh.cleanup(str(mnt), proc)


def test_read_only_and_refused_with_upper(tmp_path, need_tools):
    layout = O.generate("basic", "oci", str(tmp_path), no_zstd=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([O.LAYERFS, "mount", "--all-layers", "--upper",
                        str(tmp_path / "u"), layout, str(mnt)],
                       capture_output=True, timeout=60)
    assert p.returncode == 2 and b"--upper" in p.stderr
    proc = fh.mount(layout, mnt, "--all-layers", cache=str(tmp_path / "c"))
    try:
        with pytest.raises(OSError):
            open(str(mnt / "1" / "new"), "w")
        with pytest.raises(OSError):
            os.mkdir(str(mnt / "9"))
        assert not os.path.exists(str(mnt / "0"))
        assert not os.path.exists(str(mnt / "layer" / "99"))
    finally:
        fh.cleanup(str(mnt), proc)
