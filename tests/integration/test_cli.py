# SPDX-License-Identifier: MIT
"""layerfs command line: exit codes (0 ok, 1 error, 2 usage), messages
(`layerfs: <message>` on stderr naming the cause), bad inputs, the index
cache.  Expected contents still come from umoci or from the generated
image itself, never from literals."""

import hashlib
import json
import os
import re
import stat
import subprocess
import tarfile
import time

import pytest

import oracle as O

SUBCOMMANDS = ("ls", "cat", "stat", "layers")


def _err(p):
    return p.stderr.decode(errors="replace")


def _assert_error(p, code, *words, any_of=()):
    err = _err(p)
    assert p.returncode == code, "exit %d, want %d; stderr: %s" % (
        p.returncode, code, err)
    assert "layerfs: " in err, "no 'layerfs: <message>' on stderr: %r" % err
    low = err.lower()
    for w in words:
        assert w.lower() in low, "%r not in stderr: %r" % (w, err)
    if any_of:
        assert any(w.lower() in low for w in any_of), \
            "none of %r in stderr: %r" % (any_of, err)


# -- usage ------------------------------------------------------------------

@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help(sub, layerfs_bin):
    p = O.layerfs(sub, "--help")
    assert p.returncode == 0, _err(p)
    assert p.stdout.strip(), "help text goes to stdout"


def test_top_level_help(layerfs_bin):
    p = O.layerfs("--help")
    assert p.returncode == 0, _err(p)
    for sub in SUBCOMMANDS:
        assert sub.encode() in p.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_unknown_option(sub, images, cache_dir, layerfs_bin):
    p = O.layerfs(sub, "--no-such-option", "--cache", cache_dir,
                  images("basic"), "etc/passwd")
    _assert_error(p, 2)


def test_unknown_subcommand(layerfs_bin):
    _assert_error(O.layerfs("no-such-subcommand"), 2)


def test_missing_image_argument(layerfs_bin):
    _assert_error(O.layerfs("ls", "-lR", "--json"), 2)


@pytest.mark.parametrize("how", ["zero", "above", "minus_count",
                                 "below", "junk"])
def test_layers_out_of_range(how, images, cache_dir, layerfs_bin):
    n = O.layer_count("basic")
    val = {"zero": 0, "above": n + 1, "minus_count": -n, "below": -(n + 5),
           "junk": "two"}[how]
    p = O.layerfs("ls", "-lR", "--json", "--layers", val, "--cache",
                  cache_dir, images("basic"))
    _assert_error(p, 2)
    assert p.stdout == b""


def test_nonexistent_image(tmp_path, cache_dir, layerfs_bin):
    p = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir,
                  str(tmp_path / "nope"))
    _assert_error(p, 1, "nope")


def test_cat_missing_path(images, cache_dir, layerfs_bin):
    p = O.layerfs("cat", "--cache", cache_dir, images("basic"),
                  "no/such/file")
    _assert_error(p, 1)


def test_cat_goes_on_after_a_failing_path(images, cache_dir, layerfs_bin):
    """As cat(1): every readable PATH is written, in order; each one that
    fails is named on stderr; the exit status is 1."""
    img = images("basic")
    one = O.layerfs("cat", "--cache", cache_dir, img, "etc/passwd")
    two = O.layerfs("cat", "--cache", cache_dir, img, "usr/bin/su")
    assert one.returncode == two.returncode == 0 and one.stdout
    p = O.layerfs("cat", "--cache", cache_dir, img, "no/such", "etc/passwd",
                  "etc", "usr/bin/su", "no/more")
    _assert_error(p, 1, "no/such", "no/more", "is a directory")
    assert p.stdout == one.stdout + two.stdout


def test_cat_stops_when_output_fails(images, cache_dir, layerfs_bin):
    img = images("basic")
    p = subprocess.run([layerfs_bin, "cat", "--cache", cache_dir, img,
                        "etc/passwd", "usr/bin/su"],
                       stdout=open("/dev/full", "wb"),
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 1
    assert p.stderr.count(b"cannot write output") == 1, p.stderr


@pytest.mark.parametrize("how", ["--version", "-V", "version"])
def test_version(layerfs_bin, how):
    p = subprocess.run([layerfs_bin, how], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stderr == b""
    assert re.fullmatch(rb"layerfs \d+\.\d+\.\d+\n", p.stdout), p.stdout


# -- bad images ----------------------------------------------------------------

BAD_CASES = [
    # name, words that must all appear, words of which one must appear
    ("truncated_gzip", ("truncated",), ()),
    ("corrupt_deflate", ("corrupt",), ()),
    ("wrong_digest", ("digest", O.specs.WRONG_DIGEST[7:19]), ()),
    ("wrong_diff_id", ("diff_id",), ()),
    ("bad_json_index", ("json", "index.json"), ()),
    ("bad_json_manifest", ("json",), ("manifest", "blobs/sha256/")),
    ("bad_json_config", ("json",), ("config", "blobs/sha256/")),
    ("missing_blob", ("missing",), ()),
    ("dotdot", ("..", "escape"), ()),
]


@pytest.mark.parametrize("fmt", ["oci", "oci-archive"])
@pytest.mark.parametrize("name,words,any_of", BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_bad_input(name, words, any_of, fmt, bad_images, cache_dir,
                   layerfs_bin):
    img = bad_images(name, fmt)
    p = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    _assert_error(p, 1, *words, any_of=any_of)
    # the same cause through cat of a file of the last layer, which needs
    # every layer merged
    p2 = O.layerfs("cat", "--cache", cache_dir, img, "etc/motd")
    assert p2.returncode == 1, _err(p2)


def test_bad_json_manifest_names_file(bad_images, cache_dir, layerfs_bin):
    img = bad_images("bad_json_manifest")
    with open(os.path.join(img, "index.json")) as f:
        hexd = json.load(f)["manifests"][0]["digest"][7:]
    p = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    _assert_error(p, 1, "json", hexd[:12])


def test_wrong_digest_no_verify(bad_images, oracles, cache_dir, layerfs_bin,
                                tmp_path):
    """--no-verify skips the digest check; the result is the image as
    umoci reads the unmodified twin."""
    img = bad_images("wrong_digest")
    got, _ = O.layerfs_ls(img, None, cache_dir, extra=("--no-verify",))
    good = bad_images("good_base")
    rootfs = O.umoci_unpack(good, str(tmp_path / "bundle"))
    expect = O.walk_rootfs(rootfs, time.time() - 1)

    def cat(path):
        return O.layerfs_cat_sha(img, path, None, cache_dir,
                                 extra=("--no-verify",))[0]
    diffs = O.compare(expect, got, cat)
    assert not diffs, "\n".join(diffs)


def test_good_base_reads(bad_images, cache_dir, layerfs_bin):
    """Control: the twin of the bad images is fine."""
    O.layerfs_ls(bad_images("good_base"), None, cache_dir)


def test_absolute_entry_read_relative(images, oracles, cache_dir,
                                      layerfs_bin):
    img = images("edge_tar")
    expect = oracles("edge_tar", "oci", 1)["abs/file"]
    sha, p = O.layerfs_cat_sha(img, "abs/file", 1, cache_dir)
    assert p.returncode == 0, _err(p)
    assert sha == expect["sha256"]
    p = O.layerfs("stat", "--json", "--layers", 1, "--cache", cache_dir,
                  img, "abs/file")
    assert p.returncode == 0, _err(p)
    st = json.loads(p.stdout)
    assert st["type"] == "file" and st["size"] == expect["size"]


def test_many_entries_bounded(bad_images, cache_dir, layerfs_bin, tmp_path):
    """1e6 entries in one layer: indexed in < 120 s and < 1 GiB peak RSS."""
    img = bad_images("many_entries")
    rss = str(tmp_path / "rss")
    t0 = time.monotonic()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", rss, O.LAYERFS, "layers",
         "--json", "--cache", cache_dir, img],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    dt = time.monotonic() - t0
    assert p.returncode == 0, _err(p)
    with open(rss) as f:
        peak_kib = int(f.read().split()[-1])
    assert dt < 120, "indexing took %.1f s" % dt
    assert peak_kib < 1 << 20, "peak RSS %d KiB" % peak_kib
    info = json.loads(p.stdout)["layers"][0]
    assert info["entries"] >= 1000000
    # and the tree answers from the index
    p = O.layerfs("stat", "--json", "--cache", cache_dir, img,
                  "d0999/f0999")
    assert p.returncode == 0, _err(p)
    assert json.loads(p.stdout)["type"] == "file"


# -- stat / ls PATH / --ref -------------------------------------------------

def test_stat_equals_ls(images, cache_dir, layerfs_bin):
    for name in ("basic", "devices", "symlinks", "xattrs", "hardlinks"):
        img = images(name)
        tree, _ = O.layerfs_ls(img, None, cache_dir)
        for path, e in tree.items():
            p = O.layerfs("stat", "--json", "--cache", cache_dir, img, path)
            assert p.returncode == 0, _err(p)
            st = json.loads(p.stdout)
            # stat's path is absolute; the listing's, as listed
            assert st.pop("schema") == 1
            assert st.pop("path") == "/" + path
            st.pop("path_hex", None)
            e = {k: v for k, v in e.items() if k not in ("path", "path_hex")}
            assert st == e, path


def test_ls_subtree(images, cache_dir, layerfs_bin):
    img = images("basic")
    full, _ = O.layerfs_ls(img, None, cache_dir)
    sub, _ = O.layerfs_ls(img, None, cache_dir, path="home")
    want = {p: e for p, e in full.items() if p.startswith("home/")}
    # paths may be given from the root or relative to PATH
    if set(sub) != set(want):
        sub = {"home/" + p: dict(e, path="home/" + e["path"])
               for p, e in sub.items()}
        want = {p: dict(e) for p, e in want.items()}
    assert set(sub) == set(want)
    for p in want:
        a = {k: v for k, v in sub[p].items() if k != "path"}
        b = {k: v for k, v in want[p].items() if k != "path"}
        assert a == b, p


@pytest.mark.parametrize("fmt", ["docker-archive", "docker-archive-blobs"])
def test_ref(fmt, images, cache_dir, layerfs_bin):
    import mkimage
    img = images("basic", fmt)
    ref = "%s:%s" % (mkimage.REF_NAME, mkimage.REF_TAG)
    a, _ = O.layerfs_ls(img, None, cache_dir, extra=("--ref", ref))
    b, _ = O.layerfs_ls(img, None, cache_dir)
    assert a == b
    p = O.layerfs("ls", "-lR", "--json", "--ref", "no-such:ref", "--cache",
                  cache_dir, img)
    _assert_error(p, 1, "no-such")


def test_cat_to_stdout_matches_oracle_big(images, oracles, cache_dir,
                                          layerfs_bin):
    """The sparse 50 MiB file and the 3 MiB random file through every
    compression, in one go (test_oracle covers the rest)."""
    for name, path in (("sparse", "data/sparse.img"), ("basic", "big.bin")):
        n = O.layer_count(name)
        expect = oracles(name, "oci", n)[path]["sha256"]
        for fmt in O.FORMATS:
            sha, p = O.layerfs_cat_sha(images(name, fmt), path, None,
                                       cache_dir)
            assert sha == expect, (name, fmt, _err(p))


# -- layers ------------------------------------------------------------------

def _tar_counts(tar):
    import io
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
    wh = sum(1 for m in members
             if os.path.basename(m.name.rstrip("/")).startswith(".wh."))
    return len(members), wh


@pytest.mark.parametrize("name", ["mixed_compression", "basic", "sparse"])
def test_layers_json(name, images, cache_dir, layerfs_bin):
    import mkimage
    img = images(name)
    built = mkimage.build_layers(O.specs.SPECS[name], key=name)
    p = O.layerfs("layers", "--json", "--cache", cache_dir, img)
    assert p.returncode == 0, _err(p)
    got = json.loads(p.stdout)["layers"]
    assert len(got) == len(built)
    for i, (g, bl) in enumerate(zip(got, built), 1):
        total, wh = _tar_counts(bl.tar)
        assert g["index"] == i
        assert g["digest"] == bl.digest
        assert g["diff_id"] == bl.diff_id
        assert g["compression"] == bl.compression
        assert g["size"] == len(bl.blob)
        assert g["uncompressed_size"] == len(bl.tar)
        assert g["created_by"] == bl.created_by
        assert g["whiteouts"] == wh
        assert g["entries"] in (total, total - wh), (g["entries"], total, wh)


# -- the index cache ---------------------------------------------------------

def _snapshot(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            with open(p, "rb") as fh:
                # not mtime: it is the cache's last-use mark (LRU)
                out[os.path.relpath(p, d)] = (
                    st.st_ino, hashlib.sha256(fh.read()).hexdigest())
    return out


def test_cache_reused(images, cache_dir, layerfs_bin):
    img = images("basic")
    p1 = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    assert p1.returncode == 0, _err(p1)
    snap = _snapshot(cache_dir)
    assert snap, "nothing written to the cache dir"
    p2 = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    assert p2.returncode == 0, _err(p2)
    assert p2.stdout == p1.stdout
    assert _snapshot(cache_dir) == snap, "cache rewritten on a warm run"


def test_cache_env(images, tmp_path, layerfs_bin):
    d = tmp_path / "envcache"
    d.mkdir()
    p = O.layerfs("ls", "-lR", "--json", images("basic"),
                  env={"LAYERFS_CACHE": str(d)})
    assert p.returncode == 0, _err(p)
    assert any(os.scandir(d)), "LAYERFS_CACHE not used"


@pytest.mark.parametrize("where", ["start", "middle", "end", "truncate"])
def test_corrupt_cache_ignored(where, images, oracles, cache_dir,
                               layerfs_bin):
    img = images("hardlinks")
    p1 = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    assert p1.returncode == 0, _err(p1)
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(cache_dir)
                   for f in fs)
    assert files
    for path in files:
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            if where == "truncate":
                f.truncate(size // 2)
                continue
            off = {"start": 0, "middle": size // 2,
                   "end": max(0, size - 16)}[where]
            f.seek(off)
            old = f.read(16)
            f.seek(off)
            f.write(bytes(b ^ 0xff for b in old))
    p2 = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    assert p2.returncode == 0, _err(p2)
    assert "cache" in _err(p2).lower(), "no warning about the cache"
    assert p2.stdout == p1.stdout
    sha, p3 = O.layerfs_cat_sha(img, "h/link1", None, cache_dir)
    assert p3.returncode == 0, _err(p3)
    n = O.layer_count("hardlinks")
    assert sha == oracles("hardlinks", "oci", n)["h/link1"]["sha256"]


@pytest.mark.parametrize("name", [c[0] for c in BAD_CASES if c[0] != "dotdot"])
def test_bad_fixture_rejected_by_umoci(name, bad_images, tmp_path):
    """Generator check: each bad image is bad for umoci too (dotdot aside:
    umoci 0.4.7 silently clamps `../escape` to `escape`)."""
    p = O.run(["umoci", "unpack", "--image",
               "%s:%s" % (bad_images(name), O.TAG), str(tmp_path / "b")])
    assert p.returncode != 0


@pytest.mark.parametrize("dest", ["docker-archive", "oci-archive", "oci"])
@pytest.mark.parametrize("name", ["hardlinks", "devices", "symlinks"])
def test_skopeo_written_image(name, dest, images, tmp_path, cache_dir,
                              layerfs_bin):
    """Images written by skopeo (its docker-archive stores `<id>/layer.tar`
    style members and symlinks) read the same as our own layout."""
    import mkimage
    src = images(name, "oci")
    out = str(tmp_path / ("img.tar" if dest != "oci" else "img"))
    ref = {"docker-archive": "docker-archive:%s:%s:%s" % (
        out, mkimage.REF_NAME, mkimage.REF_TAG),
        "oci-archive": "oci-archive:%s:%s" % (out, O.TAG),
        "oci": "oci:%s:%s" % (out, O.TAG)}[dest]
    p = O.run(["skopeo", "--insecure-policy", "copy", "-q",
               "oci:%s:%s" % (src, O.TAG), ref])
    if p.returncode != 0:
        pytest.skip("skopeo cannot write %s for %s: %s" % (
            dest, name, p.stderr.decode(errors="replace")[-200:]))
    a, _ = O.layerfs_ls(src, None, cache_dir)
    b, _ = O.layerfs_ls(out, None, cache_dir)
    strip = lambda t: {p: {k: v for k, v in e.items() if k != "ino"}  # noqa
                       for p, e in t.items()}
    assert strip(a) == strip(b)


@pytest.mark.parametrize("name", ["basic", "mixed_compression"])
def test_cache_dir_created(name, images, cache_dir, tmp_path, layerfs_bin):
    """A first run whose cache directory does not exist yet (no
    ~/.cache/layerfs) creates it, mode 0700, for every layer compression
    (the zstd layers' decompressed copies too) and lists what a cache
    that already existed lists."""
    img = images(name)
    want = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    assert want.returncode == 0, _err(want)
    new = tmp_path / "a" / "b" / "layerfs"
    p = O.layerfs("ls", "-lR", "--json", "--cache", str(new), img)
    assert p.returncode == 0, _err(p)
    assert p.stdout == want.stdout
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o700
    files = os.listdir(new)
    assert any(f.endswith(".idx") for f in files), files
    assert not [f for f in files if ".tmp." in f], files
    if name == "mixed_compression":
        assert any(f.endswith(".idx.tar") for f in files), files


@pytest.mark.parametrize("name", ["basic", "mixed_compression"])
def test_cache_dir_unwritable(name, images, oracles, cache_dir, tmp_path,
                              layerfs_bin):
    """A cache directory that cannot be created costs speed, not the
    result: a warning naming the directory, exit 0, the same listing and
    the same bytes as umoci (zstd layers decompressed into a private temp
    file that is gone when layerfs exits)."""
    img = images(name)
    want = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img)
    assert want.returncode == 0, _err(want)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir's parent should be")
    bad = str(blocker / "layerfs")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    p = O.layerfs("ls", "-lR", "--json", "--cache", bad, img, env=env)
    assert p.returncode == 0, _err(p)
    assert p.stdout == want.stdout
    assert bad in _err(p) and "Not a directory" in _err(p), _err(p)
    path = "d/x" if name == "mixed_compression" else "big.bin"
    c = O.layerfs("cat", "--cache", bad, img, path, env=env)
    assert c.returncode == 0, _err(c)
    n = O.layer_count(name)
    assert hashlib.sha256(c.stdout).hexdigest() == \
        oracles(name, "oci", n)[path]["sha256"]
    assert os.listdir(scratch) == [], "scratch copy left behind"
