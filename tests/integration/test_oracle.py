# SPDX-License-Identifier: MIT
"""layerfs ls/cat of layers 1..N == `umoci unpack` of the N-layer image.

One test per (fixture, format, prefix).  The expected values all come from
umoci's unpacked rootfs (docker-archive fixtures through skopeo first);
nothing here is a hard-coded expectation.  What is compared (design.md 3):
type, mode incl. suid/sgid/sticky, uid, gid, size, mtime (+nsec) of files,
symlinks and explicitly created dirs, symlink target, content sha256,
rdev, xattrs (user.*, security.capability), hardlink partition, file nlink.
"""

import json

import pytest

import oracle as O

def _case(name, fmt, n):
    # fixtures where umoci and design.md disagree run as (non-strict) xfail,
    # so the report shows them and any change of behaviour
    first, reason = O.specs.UMOCI_DIFFERS.get(name, (None, None))
    marks = []
    if first is not None and n >= first:
        marks = [pytest.mark.xfail(reason=reason, strict=False)]
    return pytest.param(name, fmt, n, marks=marks,
                        id="%s-%s-L%d" % (name, fmt, n))


CASES = [_case(name, fmt, n)
         for name in O.specs.SPECS
         for fmt in O.FORMATS
         for n in range(1, O.layer_count(name) + 1)]


@pytest.mark.parametrize("name,fmt,n", CASES)
def test_matches_umoci(name, fmt, n, images, oracles, session_caches,
                       layerfs_bin):
    img = images(name, fmt)
    cache = session_caches(name, fmt)
    expect = oracles(name, fmt, n)
    got, entries = O.layerfs_ls(img, n, cache)
    paths = [e["path"] for e in entries]
    assert len(paths) == len(set(paths)), "duplicate paths in ls output"
    assert all(p and not p.startswith("/") and p != "." for p in paths)

    def cat(path):
        sha, p = O.layerfs_cat_sha(img, path, n, cache)
        if sha is None:
            return "cat failed (%d): %s" % (
                p.returncode, p.stderr.decode(errors="replace").strip())
        return sha

    diffs = O.compare(expect, got, cat)
    assert not diffs, "%d differences:\n  %s" % (len(diffs),
                                                  "\n  ".join(diffs[:60]))


# -- properties of the same trees that umoci cannot tell us ----------------

FULL = [(name, O.layer_count(name)) for name in O.specs.SPECS]


@pytest.mark.parametrize("name,count", FULL, ids=[c[0] for c in FULL])
def test_negative_and_default_prefix(name, count, images, session_caches,
                                     layerfs_bin):
    """--layers -k == --layers count-k; no --layers == --layers count."""
    img = images(name, "oci")
    cache = session_caches(name, "oci")
    _, full = O.layerfs_ls(img, None, cache)
    _, top = O.layerfs_ls(img, count, cache)
    assert full == top
    for k in range(1, count):
        _, neg = O.layerfs_ls(img, -k, cache)
        _, pos = O.layerfs_ls(img, count - k, cache)
        assert neg == pos, "--layers -%d != --layers %d" % (k, count - k)


@pytest.mark.parametrize("name,count", FULL, ids=[c[0] for c in FULL])
def test_dir_nlink_and_stable_inodes(name, count, images, session_caches,
                                     cache_dir, layerfs_bin):
    """Rule 8: dir nlink = 2 + subdirs; inode numbers stable for an image
    and prefix, cold or warm cache."""
    img = images(name, "oci")
    warm, _ = O.layerfs_ls(img, count, session_caches(name, "oci"))
    cold, _ = O.layerfs_ls(img, count, cache_dir)
    assert {p: e["ino"] for p, e in warm.items()} == \
        {p: e["ino"] for p, e in cold.items()}
    subdirs = {}
    for p, e in cold.items():
        if e["type"] == "dir":
            parent = p.rpartition("/")[0]
            subdirs[parent] = subdirs.get(parent, 0) + 1
    bad = ["%s: nlink %s, %d subdirs" % (p, e["nlink"], subdirs.get(p, 0))
           for p, e in cold.items()
           if e["type"] == "dir" and e["nlink"] != 2 + subdirs.get(p, 0)]
    assert not bad
    by_ino = {}
    for p, e in cold.items():
        by_ino.setdefault(e["ino"], []).append(e)
    shared = [[e["path"] for e in g] for g in by_ino.values()
              if len(g) > 1 and (any(e["type"] == "dir" for e in g) or
                                 len({e["type"] for e in g}) > 1)]
    assert not shared, "only hardlinks of one type may share an inode"


@pytest.mark.parametrize("fmt", [f for f in O.FORMATS if f != "oci"])
def test_formats_agree(fmt, images, session_caches, layerfs_bin):
    """Every fixture reads the same from every format (ino aside)."""
    for name in O.specs.SPECS:
        a, _ = O.layerfs_ls(images(name, "oci"), None,
                            session_caches(name, "oci"))
        b, _ = O.layerfs_ls(images(name, fmt), None,
                            session_caches(name, fmt))
        strip = lambda t: json.dumps(  # noqa: E731
            {p: {k: v for k, v in e.items() if k != "ino"}
             for p, e in t.items()}, sort_keys=True)
        assert strip(a) == strip(b), name


# -- the generator and the oracle themselves (no layerfs needed) ------------

def _hash_tree(path):
    import hashlib
    import os
    out = {}
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {".": hashlib.sha256(f.read()).hexdigest()}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(
                    fh.read()).hexdigest()
    return out


@pytest.mark.parametrize("name", list(O.specs.SPECS))
def test_fixture_reproducible(name, tmp_path, need_tools):
    """mkimage output is byte-for-byte the same on every run."""
    spec = O.specs.SPECS[name]
    for fmt in O.FORMATS:
        a = O.mkimage.write_image(spec, str(tmp_path / ("a-" + fmt)), fmt)
        b = O.mkimage.write_image(spec, str(tmp_path / ("b-" + fmt)), fmt)
        assert _hash_tree(a) == _hash_tree(b), fmt


@pytest.mark.parametrize("fmt", O.FORMATS)
@pytest.mark.parametrize("name", list(O.specs.SPECS))
def test_fixture_accepted(name, fmt, images, oracles):
    """skopeo inspects every fixture and umoci unpacks it (via skopeo for
    docker-archive)."""
    img = images(name, fmt)
    transport = {"oci": "oci:%s:%s" % (img, O.TAG),
                 "oci-archive": "oci-archive:%s:%s" % (img, O.TAG)}.get(
                     fmt, "docker-archive:" + img)
    p = O.run(["skopeo", "inspect", "--raw", transport])
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert isinstance(oracles(name, fmt, O.layer_count(name)), dict)
