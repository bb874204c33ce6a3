# SPDX-License-Identifier: MIT
"""Where a visible entry came from: `ls --origin`, `stat`, `--json`, and the
read-only xattrs user.layerfs.layer / user.layerfs.digest on a mount.

The oracle is computed from the layer tars themselves (Python's tarfile):
the layer that supplied a visible path is the topmost layer with a member
of that name (whiteouts and opaque markers are not members of the view);
a directory that only exists as a parent of other members has none.  What
is visible comes from `umoci unpack` of the same image.
"""

import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

import fusehelpers as fh
import oracle as O

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402

T = 120


def image():
    return mk.Image([
        mk.Layer([mk.dir("/etc"), mk.file("/etc/a", "a\n"),
                  mk.file("/etc/b", "b\n"), mk.file("/etc/c", "c\n"),
                  mk.dir("/d"), mk.file("/d/old", "old\n"),
                  mk.symlink("/etc/l", "a"),
                  mk.file("/deep/er/f", "implicit parents\n")], "gzip"),
        mk.Layer([mk.file("/etc/b", "B\n"), mk.whiteout("/etc/c"),
                  mk.opaque("/d"), mk.file("/d/new", "new\n"),
                  mk.dir("/etc", mode=0o750)], "none"),
        mk.Layer([mk.file("/etc/c", "C again\n"),
                  mk.device("/etc/null", "chr", 1, 3),
                  mk.file("/top", "top\n")], "gzip"),
    ])


def norm(name):
    while name.startswith(("./", "/")):
        name = name[1:] if name[0] == "/" else name[2:]
    return name.rstrip("/")


def expected_origin(layout, visible):
    """path -> 1-based layer (or None) for each visible path."""
    tars = O.layer_tars(layout)
    layers = [d for d, _ in tars]
    members = []
    for _, data in tars:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            members.append({norm(m.name) for m in t.getmembers()
                            if not os.path.basename(norm(m.name))
                            .startswith(".wh.")})
    out = {}
    for p in visible:
        have = [i + 1 for i, m in enumerate(members) if p in m]
        out[p] = have[-1] if have else None
    return out, [d["digest"] for d in layers]


@pytest.fixture(scope="module")
def img(tmp_path_factory, need_tools):
    d = tmp_path_factory.mktemp("origin")
    layout = str(d / "layout")
    mk.write_image(image(), layout, "oci")
    bundle = str(d / "bundle")
    O.umoci_unpack(layout, bundle)
    visible = set(O.walk_rootfs(os.path.join(bundle, "rootfs")))
    exp, digests = expected_origin(layout, visible)
    # the oracle must see what this test is about
    assert exp["etc/b"] == 2 and exp["etc/c"] == 3 and exp["etc/a"] == 1
    assert exp["deep"] is None and exp["d"] == 1 and exp["etc"] == 2
    return layout, exp, digests, str(d / "cache")


def lf(*args, cache):
    p = subprocess.run([O.LAYERFS, *args, "--cache", cache],
                       capture_output=True, timeout=T)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_ls_origin_column(img):
    layout, exp, _, cache = img
    got = {}
    for line in lf("ls", "-R", "--origin", layout, cache=cache).splitlines():
        col, name = line.split(None, 1)
        got[name] = None if col == "-" else int(col)
    assert got == exp
    # with -l the column comes first, the rest is ls -l's
    plain = lf("ls", "-l", layout, "/etc", cache=cache).splitlines()
    origin = lf("ls", "-l", "--origin", layout, "/etc",
                cache=cache).splitlines()
    assert [o.split(None, 1)[1] for o in origin] == plain
    assert [int(o.split()[0]) for o in origin] == \
        [exp["etc/" + p.split()[-1]] if "->" not in p
         else exp["etc/" + p.split()[-3]] for p in plain]


def test_json_and_stat_carry_the_layer(img):
    layout, exp, digests, cache = img
    for e in json.loads(lf("ls", "-R", "--json", layout, cache=cache)):
        assert e["layer"] == exp[e["path"][1:]], e
    out = lf("stat", layout, "/etc/c", cache=cache)
    assert "Layer: 3 (%s)" % digests[2] in out


def test_mount_xattrs(img, tmp_path):
    layout, exp, digests, cache = img
    for opts in ((), ("--origin",)):
        mnt = tmp_path / ("m%d" % len(opts))
        mnt.mkdir()
        proc = fh.mount(layout, mnt, *opts, cache=cache)
        try:
            for p, layer in exp.items():
                full = os.path.join(str(mnt), p)
                names = os.listxattr(full, follow_symlinks=False)
                st = os.lstat(full)
                if not (stat.S_ISREG(st.st_mode) or
                        stat.S_ISDIR(st.st_mode)):
                    # the kernel has user.* xattrs on these only
                    assert not [n for n in names if "layerfs" in n]
                    continue
                if layer is None:
                    with pytest.raises(OSError):
                        os.getxattr(full, "user.layerfs.layer",
                                    follow_symlinks=False)
                    assert "user.layerfs.layer" not in names
                    continue
                v = os.getxattr(full, "user.layerfs.layer",
                                follow_symlinks=False)
                dg = os.getxattr(full, "user.layerfs.digest",
                                 follow_symlinks=False)
                assert (int(v), dg.decode()) == (layer, digests[layer - 1])
                listed = {"user.layerfs.layer", "user.layerfs.digest"} \
                    <= set(names)
                assert listed == bool(opts), (p, names)
            with pytest.raises(OSError):
                os.setxattr(os.path.join(str(mnt), "top"),
                            "user.layerfs.layer", b"1")
            if opts and not os.path.islink(os.path.join(str(mnt), "top")):
                # getfattr -d, the tool the option is for
                g = subprocess.run(["getfattr", "-d",
                                    os.path.join(str(mnt), "top")],
                                   capture_output=True, timeout=T)
                assert g.returncode == 0, g.stderr
                assert b'user.layerfs.layer="3"' in g.stdout
                assert ('user.layerfs.digest="%s"' % digests[2]).encode() \
                    in g.stdout
        finally:
            fh.cleanup(str(mnt), proc)


def test_upper_files_say_upper(img, tmp_path):
    layout, exp, _, cache = img
    mnt = tmp_path / "m"
    mnt.mkdir()
    upper = tmp_path / "upper"
    proc = fh.mount(layout, mnt, "--upper", str(upper), "--origin",
                    cache=cache)
    try:
        with open(os.path.join(str(mnt), "etc", "a"), "a") as f:
            f.write("changed\n")
        with open(os.path.join(str(mnt), "new"), "w") as f:
            f.write("new\n")
        get = lambda p: os.getxattr(os.path.join(str(mnt), p),  # noqa
                                    "user.layerfs.layer")
        assert get("etc/a") == b"upper" and get("new") == b"upper"
        assert get("etc/b") == b"2" and get("top") == b"3"
        assert "user.layerfs.layer" in os.listxattr(
            os.path.join(str(mnt), "etc", "b"))
        with pytest.raises(OSError):
            os.getxattr(os.path.join(str(mnt), "new"), "user.layerfs.digest")
        with pytest.raises(OSError):
            os.setxattr(os.path.join(str(mnt), "new"), "user.layerfs.layer",
                        b"1")
    finally:
        fh.cleanup(str(mnt), proc)
    # nothing of it reached the upper dir
    assert "user.layerfs.layer" not in os.listxattr(str(upper / "new"))


def test_origin_is_for_ls_only(img):
    p = subprocess.run([O.LAYERFS, "cat", "--origin", img[0], "/top"],
                       capture_output=True, timeout=T)
    assert p.returncode == 2
