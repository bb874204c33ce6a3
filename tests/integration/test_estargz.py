# SPDX-License-Identifier: MIT
"""eStargz layers: indexed from their TOC, read chunk by chunk.

Images are written by tests/fixtures/estargz.py after the published format
(files split in chunks, whiteouts, opaque dirs, hardlinks, symlinks,
devices, xattrs).  Oracles: umoci unpack of the same OCI layout, per file
and for every prefix; the cache file's flags (indexed from the TOC or
not); for docker:// the counting proxy of registry.py (bytes fetched, far
below the blob's size; a flipped byte is an error, never other bytes).
"""

import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile

import pytest

import oracle as O
from registry import FaultProxy, Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import estargz as sg  # noqa: E402
import mkimage as mk  # noqa: E402

T = 120
FLAGS_AT = 8 + 4 + 4 + 80 + 72 + 72 + 4 * 8 + 4  # cache.h header.flags
ESTARGZ = 2


def image():
    l1 = [mk.dir("/data"), mk.file("/data/big.bin", size=1 << 20, seed=1),
          mk.file("/data/mid.bin", size=200 << 10, seed=2),
          mk.dir("/etc", xattrs={"user.k": b"v\x00\xff"}),
          mk.file("/etc/conf", "a=1\n", mode=0o600, uid=7, gid=8),
          mk.file("/etc/empty", ""),
          mk.symlink("/etc/link", "conf"),
          mk.hardlink("/etc/hard", "/etc/conf"),
          mk.dir("/opq"), mk.file("/opq/old", "old\n"),
          mk.device("/dev0", "chr", 1, 3), mk.fifo("/fifo")]
    l1 += [mk.dir("/small")]
    l1 += [mk.file("/small/f%02d" % i, "small %d\n" % i * 30)
           for i in range(30)]
    l2 = [mk.whiteout("/data/mid.bin"), mk.opaque("/opq"),
          mk.file("/opq/new", "new\n"),
          mk.file("/data/big.bin", size=300 << 10, seed=3)]
    l3 = [mk.file("/top.txt", "top\n"), mk.whiteout("/small/f03")]
    return mk.Image([mk.Layer(l1, "gzip"), mk.Layer(l2, "gzip"),
                     mk.Layer(l3, "gzip")])


def write(root, name, img=None, **kw):
    out = os.path.join(str(root), name)
    built = sg.write_layout(img or image(), out, **kw)
    return out, built


def _toc_of(blob):
    """The TOC JSON of an eStargz blob, by Python's gzip and tarfile."""
    toc_off = int(blob[-51 + 16:-51 + 32], 16)
    tf = tarfile.open(fileobj=io.BytesIO(gzip.decompress(
        blob[toc_off:-51])))
    return tf.extractfile(tf.next()).read()


def flags(cache, digest):
    with open(os.path.join(str(cache), digest.replace(":", "-") + ".idx"),
              "rb") as f:
        return struct.unpack("<I", f.read(FLAGS_AT + 4)[FLAGS_AT:])[0]


def lf(*args, cache, timeout=T):
    return O.layerfs(*args, env={"LAYERFS_CACHE": str(cache)},
                     timeout=timeout)


@pytest.fixture(scope="module")
def need(need_tools):
    return need_tools


@pytest.mark.parametrize("n,eoa,min_chunk", [
    (1, False, 0), (2, False, 0), (3, False, 0), (3, True, 0),
    (3, False, 16 << 10)])
def test_matches_umoci(tmp_path, n, eoa, min_chunk, need):
    """eoa: the layer's end-of-archive blocks kept before the TOC (dive's
    estargz test image is so): the TOC is then no file of the layer.
    min_chunk: small files share gzip members (innerOffset)."""
    full = image()
    img = mk.Image(full.layers[:n])
    layout, built = write(tmp_path, "img", img, eoa=eoa,
                          min_chunk=min_chunk)
    if min_chunk:
        toc = json.loads(_toc_of(built[0].blob))
        assert any(e.get("innerOffset") for e in toc["entries"])
    cache = tmp_path / "cache"
    rootfs = O.umoci_unpack(layout, str(tmp_path / "bundle"))
    want = O.walk_rootfs(rootfs)
    got, _ = O.layerfs_ls(layout, cache=str(cache))
    diffs = O.compare(want, got, cat=lambda p: O.layerfs_cat_sha(
        layout, "/" + p, cache=str(cache))[0])
    assert not diffs, "\n".join(diffs)
    for b in built:  # every layer was indexed from its TOC
        assert flags(cache, b.digest) & ESTARGZ
    # and a warm cache reads the same
    again, _ = O.layerfs_ls(layout, cache=str(cache))
    assert again == got


def test_no_annotation_streams(tmp_path, need):
    """Without the TOC digest in the manifest the TOC is not trusted: the
    layer is streamed and indexed as any gzip layer, same view."""
    layout, built = write(tmp_path, "img", annotate=False)
    cache = tmp_path / "cache"
    p = lf("cat", layout, "/data/big.bin", cache=cache)
    assert p.returncode == 0, p.stderr.decode()
    assert not flags(cache, built[0].digest) & ESTARGZ


def test_toc_index_not_used_without_the_digest(tmp_path, need):
    """An index built from the TOC is used only by an image naming the
    same TOC digest: the same blobs without the annotation are streamed,
    silently, and then read the same."""
    img = mk.Image(image().layers[:1])
    with_ann, built = write(tmp_path, "a", img)
    without, built2 = write(tmp_path, "b", img, annotate=False)
    assert built[0].digest == built2[0].digest
    cache = tmp_path / "cache"
    p = lf("cat", with_ann, "/data/big.bin", cache=cache)
    assert p.returncode == 0 and flags(cache, built[0].digest) & ESTARGZ
    q = lf("cat", without, "/data/big.bin", cache=cache)
    assert q.returncode == 0 and q.stdout == p.stdout, q.stderr.decode()
    assert q.stderr == b""
    assert not flags(cache, built[0].digest) & ESTARGZ


def test_wrong_toc_digest_streams(tmp_path, need):
    """A TOC that does not match the manifest's digest: a warning, and the
    layer is streamed (whose digests then decide)."""
    layout, built = write(tmp_path, "img",
                          toc_digest=lambda i, d: "sha256:" + "ab" * 32)
    cache = tmp_path / "cache"
    p = lf("cat", layout, "/etc/conf", cache=cache)
    assert p.returncode == 0 and p.stdout == b"a=1\n", p.stderr.decode()
    assert b"TOC digest" in p.stderr
    assert not flags(cache, built[0].digest) & ESTARGZ


def _first_chunk_digest(toc, value):
    for e in toc["entries"]:
        if e.get("chunkDigest"):
            e["chunkDigest"] = value
            return


HOSTILE = {
    # TOC-level lies: refused (a warning), the layer streamed instead
    "dotdot": lambda t: t["entries"][0].update(name="../../escape"),
    "overlap": lambda t: [e.update(chunkOffset=1) for e in t["entries"]
                          if e["type"] == "chunk"][:1],
    "offset-past": lambda t: [e.update(offset=1 << 40) for e in t["entries"]
                              if e.get("offset")][:1],
    "size-lie": lambda t: [e.update(size=e["size"] + 5) for e in t["entries"]
                           if e.get("size")][:1],
    "bad-type": lambda t: t["entries"][0].update(type="sock"),
    "no-entries": lambda t: t.pop("entries"),
    "huge-chunk": lambda t: [e.update(chunkSize=1 << 40) for e in
                             t["entries"] if e.get("chunkSize")][:1],
    "chunk-past-end": lambda t: [e.update(chunkSize=e["chunkSize"] + 1)
                                 for e in t["entries"]
                                 if e["type"] == "chunk"][-1:],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_toc(tmp_path, case, need):
    layout, built = write(tmp_path, "img", mk.Image(image().layers[:1]),
                          tweak_toc=HOSTILE[case])
    cache = tmp_path / "cache"
    canary = tmp_path / "escape"
    p = lf("cat", layout, "/data/big.bin", cache=cache, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert p.returncode < 2 and b"AddressSanitizer" not in p.stderr
    assert hashlib.sha256(p.stdout).hexdigest() == hashlib.sha256(
        mk._content(None, 1 << 20, 1)).hexdigest()
    assert b"eStargz" in p.stderr, p.stderr.decode()
    assert not flags(cache, built[0].digest) & ESTARGZ
    assert not canary.exists()


def test_lying_chunk_digest_is_eio(tmp_path, need):
    """A TOC (matching its annotation) whose chunk digest is wrong: the
    read fails with a message; no byte of the chunk comes out."""
    layout, built = write(
        tmp_path, "img", mk.Image(image().layers[:1]),
        tweak_toc=lambda t: _first_chunk_digest(t, "sha256:" + "00" * 32))
    cache = tmp_path / "cache"
    p = lf("cat", layout, "/data/big.bin", cache=cache, timeout=60)
    assert p.returncode == 1
    assert b"does not match its digest" in p.stderr, p.stderr.decode()
    assert p.stdout == b""
    assert flags(cache, built[0].digest) & ESTARGZ
    # other files are fine
    p = lf("cat", layout, "/etc/conf", cache=cache, timeout=60)
    assert p.returncode == 0 and p.stdout == b"a=1\n"


def test_damaged_blob_is_eio(tmp_path, need):
    """A byte of a chunk's compressed data changed on disk after indexing:
    EIO with a message, never other bytes."""
    layout, built = write(tmp_path, "img", mk.Image(image().layers[:1]))
    cache = tmp_path / "cache"
    assert lf("ls", layout, cache=cache).returncode == 0
    path = os.path.join(layout, "blobs", "sha256", built[0].digest[7:])
    with open(path, "r+b") as f:
        f.seek(5000)  # inside big.bin's first chunk
        b = f.read(1)
        f.seek(5000)
        f.write(bytes([b[0] ^ 0x40]))
    p = lf("cat", layout, "/data/big.bin", cache=cache, timeout=60)
    assert p.returncode == 1, p.stderr.decode()
    assert p.stdout == b""


# -- docker:// ---------------------------------------------------------------

@pytest.fixture(scope="module")
def reg(tmp_path_factory, need_tools):
    require_registry()
    d = tmp_path_factory.mktemp("sgzreg")
    big = mk.Image([mk.Layer(
        [mk.dir("/data")] +
        [mk.file("/data/r%02d.bin" % i, size=256 << 10, seed=40 + i)
         for i in range(16)] +
        [mk.dir("/etc"), mk.file("/etc/motd", "hello from estargz\n")],
        "gzip")])
    layouts = {}
    r = Registry(str(d / "registry"))
    try:
        refs = {}
        for name, kw in (("good", {}), ("badtoc", {
                "toc_digest": lambda i, t: "sha256:" + "cd" * 32})):
            lay = str(d / name)
            built = sg.write_layout(big, lay, **kw)
            layouts[name] = (lay, built)
            refs[name] = r.push_layout(lay, "test/sgz-%s:v1" % name)
        yield r, refs, layouts
    finally:
        r.stop()


def _fetched(px, digest):
    return sum(e[3] for e in px.blob_gets(digest))


def _reg_run(px, ref, args, cache):
    ref = ref.replace(ref.split("/")[2], px.host)
    return O.layerfs(args[0], "--tls-verify=false", *args[1:-1], ref,
                     *args[-1:], env={"LAYERFS_CACHE": str(cache)},
                     timeout=T) if len(args) > 1 else \
        O.layerfs(args[0], "--tls-verify=false", ref,
                  env={"LAYERFS_CACHE": str(cache)}, timeout=T)


def test_registry_no_stream(tmp_path, reg):
    r, refs, layouts = reg
    _, built = layouts["good"]
    digest = built[0].digest
    size = len(built[0].blob)
    px = FaultProxy(r.port)
    try:
        cache = tmp_path / "cache"
        p = _reg_run(px, refs["good"], ["ls"], cache)
        assert p.returncode == 0, p.stderr.decode()
        after_ls = _fetched(px, digest)
        ls_gets = len(px.blob_gets(digest))
        p = _reg_run(px, refs["good"], ["cat", "/etc/motd"], cache)
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout == b"hello from estargz\n"
        after_cat = _fetched(px, digest)
        p = _reg_run(px, refs["good"], ["cat", "/data/r05.bin"], cache)
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout == mk._content(None, 256 << 10, 45)
        after_big = _fetched(px, digest)
        print("eStargz blob %d bytes; fetched: ls %d (%d requests), "
              "+cat small %d, +cat 256 KiB file %d" % (
                  size, after_ls, ls_gets, after_cat, after_big))
        assert ls_gets == 1  # the tail, with the TOC in it
        assert after_ls < size // 10
        assert after_cat - after_ls < size // 20
        # the file's chunks and nothing past it (read-ahead stays in a file)
        assert after_big - after_cat < (256 << 10) * 11 // 10
        assert flags(cache, digest) & ESTARGZ
    finally:
        px.stop()


def test_registry_flip_is_error(tmp_path, reg):
    r, refs, layouts = reg
    px = FaultProxy(r.port, mode="flip")
    try:
        p = _reg_run(px, refs["good"], ["cat", "/data/r05.bin"],
                     tmp_path / "cache")
        assert p.returncode == 1, p.stderr.decode()
        assert p.stdout == b""
    finally:
        px.stop()


def test_registry_wrong_toc_digest_streams(tmp_path, reg):
    """The manifest's TOC digest does not match: the blob is streamed
    (and checked by its digest), never trusted through the TOC."""
    r, refs, layouts = reg
    _, built = layouts["badtoc"]
    px = FaultProxy(r.port)
    try:
        cache = tmp_path / "cache"
        p = _reg_run(px, refs["badtoc"], ["cat", "/etc/motd"], cache)
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout == b"hello from estargz\n"
        assert b"TOC digest" in p.stderr
        assert _fetched(px, built[0].digest) >= len(built[0].blob)
        assert not flags(cache, built[0].digest) & ESTARGZ
    finally:
        px.stop()


def test_registry_mount_matches_umoci(tmp_path, reg):
    """mount docker://... on an empty cache fetches a few KiB (the tail and
    the TOC), then every file reads as umoci unpacks the same layout."""
    import fusehelpers as fh
    import threading
    fh.require_fuse()
    r, refs, layouts = reg
    layout, built = layouts["good"]
    digest, size = built[0].digest, len(built[0].blob)
    want = O.walk_rootfs(O.umoci_unpack(layout, str(tmp_path / "bundle")))
    px = FaultProxy(r.port)
    mnt = tmp_path / "m"
    mnt.mkdir()
    try:
        p = _reg_run(px, refs["good"], ["mount", str(mnt)], tmp_path / "c")
        assert p.returncode == 0, p.stderr.decode()
        try:
            at_mount = _fetched(px, digest)
            results = []

            def reader():
                with open(mnt / "data" / "r07.bin", "rb") as f:
                    results.append(f.read())

            ts = [threading.Thread(target=reader) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            assert results == [mk._content(None, 256 << 10, 47)] * 4
            got = O.walk_rootfs(str(mnt))
            diffs = O.compare(want, got,
                              cat=lambda q: got[q].get("sha256"))
            assert not diffs, "\n".join(diffs)
            total = _fetched(px, digest)
            print("eStargz mount: blob %d bytes, fetched %d at mount "
                  "(%d requests in all), %d after reading every file" % (
                      size, at_mount, len(px.blob_gets(digest)), total))
            assert at_mount < size // 10
        finally:
            subprocess.run(["umount", str(mnt)], timeout=T)
    finally:
        px.stop()


# -- a forged cache file -------------------------------------------------------

CHUNKS_DESC = 280 + 6 * 16  # cache.h: header.sect[LF_SECT_CHUNKS]


def _forge_chunk(cache, digest, at, value, fmt="<Q"):
    import test_cache_files as tcf
    path = os.path.join(str(cache), digest.replace(":", "-") + ".idx")

    def edit(b):
        off, ln = struct.unpack_from("<QQ", b, CHUNKS_DESC)
        assert ln >= 64
        struct.pack_into(fmt, b, off + at, value)
    tcf._reseal_index(path, edit)


@pytest.mark.parametrize("field", ["in_end", "len"])
def test_forged_chunk_table_rejected(tmp_path, field, need):
    """A well-sealed cache file whose chunk table could not come from a
    TOC (a member past the blob, chunks that no longer meet) is rebuilt."""
    layout, built = write(tmp_path, "img", mk.Image(image().layers[:1]))
    cache = tmp_path / "cache"
    assert lf("ls", layout, cache=cache).returncode == 0
    if field == "in_end":
        _forge_chunk(cache, built[0].digest, 16, len(built[0].blob) + 99)
    else:
        _forge_chunk(cache, built[0].digest, 28, 7, "<I")  # len
    p = lf("cat", layout, "/data/big.bin", cache=cache)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == mk._content(None, 1 << 20, 1)
    assert b"inconsistent index contents" in p.stderr, p.stderr.decode()


def test_forged_chunk_digest_is_eio(tmp_path, need):
    """A chunk digest changed in a well-sealed cache file: reading that
    chunk is EIO with a message, never the bytes."""
    layout, built = write(tmp_path, "img", mk.Image(image().layers[:1]))
    cache = tmp_path / "cache"
    assert lf("ls", layout, cache=cache).returncode == 0
    _forge_chunk(cache, built[0].digest, 40, 0x5A5A5A5A5A5A5A5A)
    p = lf("cat", layout, "/data/big.bin", cache=cache)
    assert p.returncode == 1
    assert b"does not match its digest" in p.stderr, p.stderr.decode()
    assert p.stdout == b""


def test_ranges_across_chunks(tmp_path, need):
    """Reads at any offset and length, across chunk boundaries, through a
    mount: the bytes of the file."""
    import fusehelpers as fh
    import random
    fh.require_fuse()
    layout, built = write(tmp_path, "img", mk.Image(image().layers[:1]),
                          chunk=10000)
    want = mk._content(None, 1 << 20, 1)
    mnt = tmp_path / "m"
    mnt.mkdir()
    p = lf("mount", layout, str(mnt), cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr.decode()
    try:
        rnd = random.Random(5)
        fd = os.open(mnt / "data" / "big.bin", os.O_RDONLY)
        try:
            for _ in range(200):
                off = rnd.randrange(0, len(want) + 100)
                n = rnd.choice([1, 511, 9999, 10000, 10001, 65536, 300000])
                assert os.pread(fd, n, off) == want[off:off + n], (off, n)
        finally:
            os.close(fd)
    finally:
        subprocess.run(["umount", str(mnt)], timeout=T)
