# SPDX-License-Identifier: MIT
"""IMAGE arguments in skopeo's transport syntax (oci:, oci-archive:,
docker-archive:, docker://) on images skopeo itself wrote.

Two different images ("hardlinks" and "symlinks" of mkimage.py) are copied by
skopeo into one OCI layout under two names, into OCI archives, and into
docker-archives joined into one two-image archive.  Each transport form
must list exactly what the source image of that name lists (and the two
sources differ, so picking the wrong one fails); wrong names, indexes and
transports are errors that say so.
"""

import json
import os
import subprocess
import tarfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MKIMAGE = os.path.join(HERE, "..", "fixtures", "mkimage.py")
T = 120


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=T, **kw)


def skopeo(src, dst):
    r = run(["skopeo", "--insecure-policy", "copy", "-q", src, dst])
    assert r.returncode == 0, r.stderr.decode()


def join_docker_archives(parts, out):
    """One docker-archive holding the images of `parts` (skopeo writes one
    per file): members are content-addressed, manifest.json is joined."""
    manifest, seen = [], set()
    with tarfile.open(out, "w") as o:
        for p in parts:
            with tarfile.open(p) as t:
                for m in t.getmembers():
                    if m.name == "manifest.json":
                        manifest += json.load(t.extractfile(m))
                    elif m.name not in seen and m.name != "repositories":
                        seen.add(m.name)
                        o.addfile(m, t.extractfile(m) if m.isfile()
                                  else None)
        data = json.dumps(manifest).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(data)
        import io
        o.addfile(ti, io.BytesIO(data))


@pytest.fixture(scope="module")
def world(tmp_path_factory, need_tools):
    d = tmp_path_factory.mktemp("transports")
    src = {}
    for spec in ("hardlinks", "symlinks"):
        src[spec] = str(d / spec)
        r = run(["/usr/bin/python3", MKIMAGE, spec, src[spec]])
        assert r.returncode == 0, r.stderr.decode()
    lay = str(d / "lay")
    skopeo("oci:" + src["hardlinks"], "oci:%s:foo" % lay)
    skopeo("oci:" + src["symlinks"], "oci:%s:bar" % lay)
    skopeo("oci:" + src["symlinks"], "oci-archive:%s:bar" % (d / "oa.tar"))
    parts = []
    for i, (spec, name) in enumerate((("hardlinks", "one:1"),
                                       ("symlinks", "two:2"))):
        parts.append(str(d / ("da%d.tar" % i)))
        skopeo("oci:" + src[spec], "docker-archive:%s:%s" % (parts[-1],
                                                            name))
    join_docker_archives(parts, str(d / "da.tar"))
    return d, src


def ls(layerfs_bin, image, *extra, cache=None):
    r = run([layerfs_bin, "ls", "-R", "--json", *extra, image],
            env=dict(os.environ, XDG_CACHE_HOME=cache or "/nonexistent"))
    return r.returncode, r.stdout, r.stderr.decode()


def listing(layerfs_bin, image, *extra):
    code, out, err = ls(layerfs_bin, image, *extra)
    assert code == 0, err
    return out


CASES = [
    ("oci:{d}/lay:foo", "hardlinks"),
    ("oci:{d}/lay:bar", "symlinks"),
    ("oci:{d}/lay:@0", "hardlinks"),
    ("oci:{d}/lay:@1", "symlinks"),
    ("oci-archive:{d}/oa.tar", "symlinks"),
    ("oci-archive:{d}/oa.tar:bar", "symlinks"),
    ("docker-archive:{d}/da.tar:@0", "hardlinks"),
    ("docker-archive:{d}/da.tar:@1", "symlinks"),
    ("docker-archive:{d}/da.tar:one:1", "hardlinks"),
    ("docker-archive:{d}/da.tar:two:2", "symlinks"),
    ("docker-archive:{d}/da0.tar", "hardlinks"),
]


@pytest.mark.parametrize("arg,spec", CASES)
def test_transport_picks_the_named_image(world, layerfs_bin, arg, spec):
    d, src = world
    got = listing(layerfs_bin, arg.format(d=d))
    assert got == listing(layerfs_bin, src[spec])
    other = "symlinks" if spec == "hardlinks" else "hardlinks"
    assert got != listing(layerfs_bin, src[other])


def test_transport_equals_path_and_ref(world, layerfs_bin):
    d, _ = world
    assert (listing(layerfs_bin, "oci:%s/lay:bar" % d)
            == listing(layerfs_bin, "%s/lay" % d, "--ref", "bar"))
    assert (listing(layerfs_bin, "docker-archive:%s/da.tar:two:2" % d)
            == listing(layerfs_bin, "%s/da.tar" % d, "--ref", "two:2"))
    # the same ref twice is no conflict
    assert (listing(layerfs_bin, "oci:%s/lay:bar" % d, "--ref", "bar")
            == listing(layerfs_bin, "%s/lay" % d, "--ref", "bar"))


def test_every_command_takes_a_transport(world, layerfs_bin, tmp_path):
    d, src = world
    arg = "docker-archive:%s/da.tar:@1" % d
    for cmd, after in ((["layers"], []), (["stat"], ["/"]), (["waste"], []),
                       (["diff", "--from", "0", "--to", "1"], [])):
        a = run([layerfs_bin, *cmd, arg, *after])
        b = run([layerfs_bin, *cmd, src["symlinks"], *after])
        assert a.returncode == b.returncode == 0, a.stderr.decode()
        if cmd[0] != "layers":  # layers names the image
            assert a.stdout == b.stdout
    out = tmp_path / "out"
    up = tmp_path / "up"
    up.mkdir()
    (up / "new").write_text("x")
    r = run([layerfs_bin, "commit", "--upper", str(up), "-o", str(out),
             "oci:%s/lay:foo" % d])
    assert r.returncode == 0, r.stderr.decode()
    assert b'"new"' in listing(layerfs_bin, str(out))


@pytest.mark.parametrize("arg,code,msg", [
    ("oci:{d}/lay:nosuch", 1, "no image 'nosuch'"),
    ("oci:{d}/lay:@2", 1, "no image @2: it lists 2 images"),
    ("docker-archive:{d}/da.tar:@5", 1, "no image @5: it lists 2 images"),
    ("docker-archive:{d}/da.tar:@x", 1, "is not an image index"),
    ("oci:{d}/oa.tar", 1, "oa.tar' is an oci-archive, not an oci-layout"),
    ("docker-archive:{d}/lay", 1, "lay' is an oci-layout, not a "
     "docker-archive"),
    ("oci-archive:{d}/da0.tar", 1, "is a docker-archive, not an oci-archive"),
    ("oci:{d}/missing", 1, "missing"),
    ("dir:{d}/nosuch", 1, "unsupported transport 'dir'"),
    ("containers-storage:[vfs@{d}/nostore]busybox", 1, "nostore: No such "
     "file"),
    ("docker:busybox", 1, "docker://[HOST[:PORT]/]NAME"),
    ("docker://Upper/Case", 1, "bad repository name"),
    ("docker://127.0.0.1:1/app:v1", 1, "https://127.0.0.1:1/v2/app/"
     "manifests/v1: Couldn't connect"),
])
def test_bad_references(world, layerfs_bin, arg, code, msg):
    d, _ = world
    rc, out, err = ls(layerfs_bin, arg.format(d=d))
    assert rc == code, err
    assert msg in err and err.startswith("layerfs: ")
    assert out == b""


def test_transport_ref_conflicts_with_ref_option(world, layerfs_bin):
    d, _ = world
    rc, _, err = ls(layerfs_bin, "oci:%s/lay:foo" % d, "--ref", "bar")
    assert rc == 1 and "names image 'foo' but --ref says 'bar'" in err
    rc, _, err = ls(layerfs_bin, "oci:%s/lay:@0" % d, "--ref", "bar")
    assert rc == 1 and "names image @0 but --ref says 'bar'" in err


def test_existing_path_with_a_colon_is_a_path(world, layerfs_bin, tmp_path):
    d, src = world
    odd = tmp_path / "oci:odd"
    os.symlink(src["hardlinks"], odd)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert listing(layerfs_bin, "oci:odd") == listing(layerfs_bin,
                                                         src["hardlinks"])
    finally:
        os.chdir(cwd)
