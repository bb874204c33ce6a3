# SPDX-License-Identifier: MIT
"""The formats people have: gzip'd saves, pre-1.10 saves, OCI artifacts.

Images come from tests/fixtures/mkformats.py (on top of mkimage.py's specs).
The oracle is `umoci unpack` of the same layers (oracle.py): for gzip'd
docker-archives the uncompressed archive through skopeo, for gzip'd OCI
archives and for v1 saves (which skopeo does not read: it wants a
manifest.json) the OCI layout mkimage.py writes from the same layer list.
"""

import gzip
import io
import json
import os
import tarfile

import pytest

import fusehelpers as fh
import oracle as O
from fusehelpers import fuse_required  # noqa: F401  (fixture, see marker)

import mkformats as F   # tests/fixtures is on sys.path (oracle.py)

REF = ("--ref", "layerfs-test:latest")
SPECS = ("basic", "mixed_compression", "opaque_dir", "hardlinks")
FMTS = F.FORMATS
TIMEOUT = 60


def _err(p):
    return p.stderr.decode(errors="replace")


class _Images:
    def __init__(self, root):
        self.root = root
        self.paths = {}

    def __call__(self, name, fmt, brk=None):
        key = (name, fmt, brk)
        if key not in self.paths:
            out = os.path.join(self.root, "%s.%s%s.tar%s" % (
                name, fmt, "." + brk if brk else "",
                ".gz" if fmt.startswith("gz-") else ""))
            F.write(O.specs.SPECS[name], out, fmt, brk=brk, key=name)
            self.paths[key] = out
        return self.paths[key]


@pytest.fixture(scope="session")
def fimages(tmp_path_factory, need_tools):
    return _Images(str(tmp_path_factory.mktemp("formats")))


def _oracle_kind(fmt):
    base = fmt[3:] if fmt.startswith("gz-") else fmt
    # skopeo reads docker-archives; a v1 save it does not, so its oracle
    # is the OCI layout of the same layers
    return base if base.startswith("docker-archive") else "oci"


CASES = [pytest.param(name, fmt, n, id="%s-%s-L%d" % (name, fmt, n))
         for name in SPECS for fmt in FMTS
         for n in range(1, O.layer_count(name) + 1)]


@pytest.mark.parametrize("name,fmt,n", CASES)
def test_matches_umoci(name, fmt, n, fimages, oracles, session_caches,
                       layerfs_bin):
    img = fimages(name, fmt)
    cache = session_caches(name, "formats-" + fmt)
    expect = oracles(name, _oracle_kind(fmt), n)
    got, _ = O.layerfs_ls(img, n, cache, extra=REF)

    def cat(path):
        sha, p = O.layerfs_cat_sha(img, path, n, cache, extra=REF)
        return sha if sha else "cat failed: " + _err(p)

    diffs = O.compare(expect, got, cat)
    assert not diffs, "%d differences:\n  %s" % (len(diffs),
                                                  "\n  ".join(diffs[:60]))


def _files(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = os.lstat(p).st_size
    return out


@pytest.mark.parametrize("fmt", ["gz-docker-archive", "gz-oci-archive"])
@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
def test_read_in_place(fmt, cached, fimages, tmp_path, layerfs_bin):
    """Nothing the size of the archive is written anywhere: the cache holds
    indexes and trees (plus the zstd copy the oci-archive's zstd layer
    always gets), $TMPDIR stays empty."""
    name = "mixed_compression"
    img = fimages(name, fmt)
    with gzip.open(img) as g:
        plain = len(g.read())
    tmp, cache = tmp_path / "tmp", tmp_path / "cache"
    tmp.mkdir()
    cache.mkdir()
    args = ["--cache", str(cache)] if cached else ["--no-cache"]
    for cmd in (["ls", "-R"], ["cat"], ["layers"]):
        extra = [img, "d/x"] if cmd == ["cat"] else [img]
        p = O.layerfs(*(cmd + args + list(REF) + extra),
                      env={"TMPDIR": str(tmp)}, timeout=TIMEOUT)
        assert p.returncode == 0, _err(p)
    zstd_layers = sum(1 for bl in F.m.build_layers(O.specs.SPECS[name])
                      if bl.compression == "zstd") \
        if fmt == "gz-oci-archive" else 0
    made = _files(str(cache))
    copies = [f for f in made if f.endswith(".tar")]
    assert len(copies) == (zstd_layers if cached else 0), made
    rest = sum(s for f, s in made.items() if not f.endswith(".tar"))
    assert rest < plain / 4, (rest, plain, made)
    # without a cache the zstd copy is an unlinked file: nothing to see
    assert _files(str(tmp)) == {}


def test_mount_byte_exact(fimages, oracles, tmp_path, fuse_required):  # noqa: F811
    name, fmt = "basic", "gz-docker-archive-blobs"
    img = fimages(name, fmt)
    cache = str(tmp_path / "cache")
    n = O.layer_count(name)
    expect = oracles(name, _oracle_kind(fmt), n)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = fh.mount(img, mnt, cache=cache)
    try:
        diffs = O.mount_diffs(expect, mnt, img, n, cache)
        # a read that straddles outer checkpoints, at an odd offset
        with open(os.path.join(mnt, "big.bin"), "rb") as f:
            f.seek(1048576 - 333)
            part = f.read(2 * 1048576)
        with tarfile.open(fileobj=gzip.open(img)) as t:
            man = json.load(t.extractfile("manifest.json"))
            layer0 = t.extractfile(man[0]["Layers"][0]).read()
        with tarfile.open(fileobj=io.BytesIO(
                gzip.decompress(layer0) if layer0[:2] == b"\x1f\x8b"
                else layer0)) as lt:
            want = lt.extractfile("big.bin").read()
        assert part == want[1048576 - 333:1048576 - 333 + 2 * 1048576]
    finally:
        fh.cleanup(str(mnt), proc)
    assert not diffs, "\n  ".join(diffs[:60])


def _mangled(src, out, how):
    with open(src, "rb") as f:
        data = f.read()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        mid = len(data) // 2
        data = data[:mid] + bytes(b ^ 0xA5 for b in data[mid:mid + 64]) + \
            data[mid + 64:]
    elif how == "trailing":
        data += b"not gzip at all"
    elif how == "not-a-tar":
        data = gzip.compress(b"hello, not a tar\n" * 1000, mtime=0)
    with open(out, "wb") as f:
        f.write(data)
    return out


@pytest.mark.parametrize("how,want", [
    ("truncated", "truncated gzip stream"),
    ("corrupt", "corrupt"),
    ("trailing", "trailing garbage"),
    ("not-a-tar", ""),
])
def test_bad_outer_gzip(how, want, fimages, tmp_path, layerfs_bin):
    img = _mangled(fimages("basic", "gz-docker-archive"),
                   str(tmp_path / ("bad-%s.tar.gz" % how)), how)
    for cmd in ("ls", "layers"):
        p = O.layerfs(cmd, "--cache", str(tmp_path / "c"), img,
                      timeout=TIMEOUT)
        assert p.returncode == 1, (p.returncode, _err(p))
        msg = _err(p)
        assert msg.startswith("layerfs: ") and img in msg, msg
        assert want in msg, msg
        assert "AddressSanitizer" not in msg and "runtime error" not in msg


# -- the pre-1.10 save ---------------------------------------------------------

@pytest.mark.parametrize("brk,want", [
    ("parent-loop", "parent loop"),
    ("missing-parent", "is missing (the parent of"),
    ("missing-layer", "layer.tar is missing"),
])
@pytest.mark.parametrize("fmt", ["v1", "gz-v1"])
def test_v1_broken(fmt, brk, want, fimages, tmp_path, layerfs_bin):
    img = fimages("basic", fmt, brk)
    p = O.layerfs("ls", "--no-cache", *REF, img, timeout=TIMEOUT)
    assert p.returncode == 1, _err(p)
    assert want in _err(p) and img in _err(p), _err(p)


def _v1_jsons(img):
    """id -> v1 JSON, straight from the save (python tarfile)."""
    opener = gzip.open if img.endswith(".gz") else open
    with opener(img, "rb") as f, tarfile.open(fileobj=f) as t:
        repos = json.load(t.extractfile("repositories"))
        out = {}
        for m in t.getmembers():
            if m.name.endswith("/json"):
                out[m.name.split("/")[0]] = json.load(t.extractfile(m))
    return repos, out


@pytest.mark.parametrize("fmt", ["v1", "gz-v1"])
def test_v1_refs_and_history(fmt, fimages, tmp_path, layerfs_bin):
    img = fimages("mixed_compression", fmt)
    cache = str(tmp_path / "c")
    repos, jsons = _v1_jsons(img)
    p = O.layerfs("ls", "--cache", cache, img, timeout=TIMEOUT)
    assert p.returncode == 1 and "choose one with --ref" in _err(p), _err(p)
    for repo, tags in repos.items():
        for tag, top in tags.items():
            chain = []
            while top:
                chain.append(top)
                top = jsons[top].get("parent")
            chain.reverse()
            p = O.layerfs("layers", "--json", "--cache", cache,
                          "--ref", "%s:%s" % (repo, tag), img,
                          timeout=TIMEOUT)
            assert p.returncode == 0, _err(p)
            rows = json.loads(p.stdout)
            rows = rows.get("layers", rows) if isinstance(rows, dict) \
                else rows
            assert len(rows) == len(chain)
            for row, lid in zip(rows, chain):
                cmd = " ".join(jsons[lid]["container_config"]["Cmd"])
                assert row["created_by"] == cmd, (row, cmd)
                # the diff_id is what the layer.tar hashes to
                assert row["diff_id"] == "sha256:" + _member_sha(img, lid)


def _member_sha(img, lid):
    opener = gzip.open if img.endswith(".gz") else open
    with opener(img, "rb") as f, tarfile.open(fileobj=f) as t:
        return F.m.sha256(t.extractfile(lid + "/layer.tar").read())


# -- artifacts -------------------------------------------------------------

@pytest.mark.parametrize("kind,atype", [
    ("artifact-type", F.MT_SBOM),
    ("empty-config", F.MT_EMPTY),
    ("helm", F.MT_HELM),
])
def test_artifact_is_not_an_image(kind, atype, tmp_path, layerfs_bin):
    out = F.artifact(kind, str(tmp_path / kind))
    for cmd in ("ls", "layers", "mount"):
        args = [cmd, "--no-cache", out] + ([str(tmp_path)] if cmd == "mount"
                                           else [])
        p = O.layerfs(*args, timeout=TIMEOUT)
        assert p.returncode == 1, (cmd, _err(p))
        assert "not a container image (artifact type %s)" % atype in \
            _err(p), _err(p)


def test_index_mixing_images_and_artifacts(fimages, tmp_path, layerfs_bin):
    spec = O.specs.SPECS["basic"]
    out = F.artifact("mixed-index", str(tmp_path / "mixed"), spec)
    plain = O.generate("basic", "oci", str(tmp_path))
    got, _ = O.layerfs_ls(out, None, str(tmp_path / "c1"),
                          extra=("--platform", "linux/amd64"))
    want, _ = O.layerfs_ls(plain, None, str(tmp_path / "c2"))
    assert got == want


# -- the outer checkpoints in the cache ------------------------------------

MiB = 1 << 20


@pytest.fixture(scope="module")
def big_gz(tmp_path_factory, need_tools):
    """A gzip'd save whose first layer is 8 MiB of incompressible bytes, so
    inflating it all and inflating a few spans differ by a lot."""
    d = tmp_path_factory.mktemp("biggz")
    spec = F.m.Image([F.m.Layer([F.m.file("big", size=8 * MiB, seed=5)],
                                compression="none"),
                      F.m.Layer([F.m.file("small", b"small\n")])])
    out = F.write(spec, str(d / "big.tar.gz"), "gz-docker-archive-blobs")
    want = F.m.build_layers(spec)[0]
    with tarfile.open(fileobj=io.BytesIO(want.tar)) as t:
        return out, F.m.sha256(t.extractfile("big").read())


def _gzi(cache):
    return sorted(f for f in os.listdir(cache) if f.startswith("gzouter-"))


def _rchar(pid):
    with open("/proc/%d/io" % pid) as f:
        return int(next(l for l in f if l.startswith("rchar:")).split()[1])


def test_checkpoints_cached(big_gz, tmp_path, fuse_required):  # noqa: F811
    """The second mount loads the checkpoints instead of inflating the whole
    archive again: it reads (rchar) a fraction of what the first read."""
    img, want = big_gz
    cache = str(tmp_path / "cache")
    reads = []
    for i in range(2):
        mnt = tmp_path / ("m%d" % i)
        mnt.mkdir()
        proc = fh.mount(img, mnt, cache=cache)
        try:
            reads.append(_rchar(proc.pid))
            with open(mnt / "big", "rb") as f:
                got = F.m.sha256(f.read())
        finally:
            fh.cleanup(str(mnt), proc)
        assert got == want
        assert len(_gzi(cache)) == 1
    print("rchar of the first and second mount:", reads,
          "archive:", os.path.getsize(img))
    assert reads[0] >= os.path.getsize(img), reads
    assert reads[1] < reads[0] / 3, reads


def _forge(path, mutate):
    """Rewrite a checkpoint file with mutate(points bytearray), its
    checksum made right again (the layout of vfile_gzip.c)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    hsize = 192
    npoints = int.from_bytes(data[8 + 8 + 72 + 16:8 + 8 + 72 + 24], "little")
    pts = data[hsize:hsize + 32 * npoints]
    mutate(pts)
    data[hsize:hsize + 32 * npoints] = pts
    data[hsize - 72:hsize] = bytes(72)
    s = ("sha256:" + F.m.sha256(bytes(data))).encode()
    data[hsize - 72:hsize - 72 + len(s)] = s
    with open(path, "wb") as f:
        f.write(data)


def _second_point_out(pts, value):
    pts[32 + 8:32 + 16] = value.to_bytes(8, "little")


@pytest.mark.parametrize("damage,warn", [
    ("flip", "checksum does not match"),
    ("forged-order", "impossible"),
    ("forged-window", "impossible"),
    ("fifo", "not a regular file"),
    ("symlink", "cannot be opened"),
])
def test_damaged_checkpoint_file(damage, warn, big_gz, tmp_path, layerfs_bin):
    img, want = big_gz
    cache = str(tmp_path / "cache")
    canary = tmp_path / "canary"
    canary.write_bytes(b"x" * 1000)
    p = O.layerfs("ls", "--cache", cache, img, timeout=TIMEOUT)
    assert p.returncode == 0, _err(p)
    (gzi,) = _gzi(cache)
    path = os.path.join(cache, gzi)
    if damage == "flip":
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
    elif damage == "forged-order":
        _forge(path, lambda pts: _second_point_out(pts, 0))
    elif damage == "forged-window":
        _forge(path, lambda pts: pts.__setitem__(
            slice(32 + 16, 32 + 24), (1 << 40).to_bytes(8, "little")))
    elif damage == "fifo":
        os.unlink(path)
        os.mkfifo(path)
    elif damage == "symlink":
        os.unlink(path)
        os.symlink(str(canary), path)
    sha, p = O.layerfs_cat_sha(img, "big", cache=cache)
    assert p.returncode == 0, _err(p)
    assert sha == want
    assert "ignoring checkpoint file" in _err(p) and warn in _err(p), _err(p)
    assert canary.read_bytes() == b"x" * 1000
    # rebuilt and stored again: the next run is quiet
    p = O.layerfs("ls", "--cache", cache, img, timeout=TIMEOUT)
    assert p.returncode == 0 and _err(p) == "", _err(p)


def test_changed_archive_gets_new_checkpoints(big_gz, tmp_path, layerfs_bin):
    img, want = big_gz
    copy = str(tmp_path / "copy.tar.gz")
    with open(img, "rb") as f, open(copy, "wb") as g:
        g.write(f.read())
    cache = str(tmp_path / "cache")
    assert O.layerfs("ls", "--cache", cache, copy).returncode == 0
    first = _gzi(cache)
    st = os.stat(copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    sha, p = O.layerfs_cat_sha(copy, "big", cache=cache)
    assert sha == want, _err(p)
    assert len(_gzi(cache)) == 2 and first[0] in _gzi(cache)


@pytest.mark.parametrize("fmt", ["v1", "gz-docker-archive"])
def test_commit_on_top(fmt, fimages, tmp_path, layerfs_bin):
    """commit reads the base blobs through the outer gzip or the made-up v1
    config; umoci unpacks the result (it checks digests and diff_ids)."""
    img = fimages("basic", fmt)
    up = tmp_path / "up"
    up.mkdir()
    (up / "new.txt").write_bytes(b"new\n")
    out = str(tmp_path / "out")
    p = O.layerfs("commit", "--no-cache", *REF, img, "--upper", str(up),
                  "-o", out, "--tag", "x:" + O.TAG, timeout=TIMEOUT)
    assert p.returncode == 0, _err(p)
    rootfs = O.umoci_unpack(out, str(tmp_path / "bundle"), "x:" + O.TAG)
    with open(os.path.join(rootfs, "new.txt"), "rb") as f:
        assert f.read() == b"new\n"
    got, _ = O.layerfs_ls(out, None, str(tmp_path / "c"))
    diffs = O.compare(O.walk_rootfs(rootfs, 0), got)
    assert not [d for d in diffs if "mtime" not in d], diffs


# -- a gzip bomb given as the archive ----------------------------------------

def _gzip_bomb(path, zeros=64 << 20):
    """A gzip'd tar holding one member of `zeros` zero bytes, written
    streaming (about 64 KiB of gzip per 64 MiB)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                mtime=0) as gz:
        ti = tarfile.TarInfo("zeros")
        ti.size = zeros
        gz.write(ti.tobuf(format=tarfile.USTAR_FORMAT))
        block = bytes(1 << 20)
        for _ in range(zeros >> 20):
            gz.write(block)
        gz.write(bytes(1024))


@pytest.mark.parametrize("env,why", [
    ({"LAYERFS_MAX_LAYER_SIZE": "16M"}, "LAYERFS_MAX_LAYER_SIZE"),
    ({"LAYERFS_MAX_RATIO": "50:1M"}, "expands more than 50 times"),
], ids=["size", "ratio"])
def test_gzip_bomb_archive_stops(tmp_path, layerfs_bin, env, why):
    img = str(tmp_path / "bomb.tar.gz")
    _gzip_bomb(img)
    cache = str(tmp_path / "c")
    p = O.layerfs("ls", "--cache", cache, img, env=env, timeout=TIMEOUT)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, err
    assert why in err and "bomb.tar.gz" in err, err
    # nothing of the stopped pass is kept
    kept = os.listdir(cache) if os.path.isdir(cache) else []
    assert not [f for f in kept if f.startswith("gzouter")], kept
    # within the default limits the same file is read to its end and is
    # then refused for what it is: a tar that holds no image
    p = O.layerfs("ls", "--cache", cache, img, timeout=TIMEOUT)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1 and why not in err, err
