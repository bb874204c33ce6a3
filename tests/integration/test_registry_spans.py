# SPDX-License-Identifier: MIT
"""docker:// blobs streamed once, then read by verified spans.

An image of a gzip, an uncompressed and a zstd layer, with files larger
than a span, is uploaded as it is to the local registry (registry.py; skopeo
would compress the uncompressed layer) and read
through a counting proxy.  The oracle for bytes is the OCI layout it was
pushed from (read by layerfs from disk, and Python's tarfile over its
layers); the oracle for what was fetched is the proxy's request log.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading

import pytest

import fusehelpers as fh
import oracle as O
from registry import FaultProxy, Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402

SPAN = 512 << 10
T = 120
BIG = "/data/big.bin"  # 3 MiB of random bytes in the gzip layer


def image():
    l1 = [mk.dir("/data"), mk.file(BIG, size=3 << 20, seed=1)]
    l1 += [mk.file("/data/r%02d" % i, size=150 << 10, seed=10 + i)
           for i in range(12)]
    l1 += [mk.file("/etc/small%d.txt" % i, "small file %d\n" % i * 20)
           for i in range(40)]
    l2 = [mk.dir("/plain"), mk.file("/plain/p.bin", size=1 << 20, seed=2),
          mk.file("/plain/t.txt", "uncompressed layer\n")]
    l3 = [mk.dir("/z"), mk.file("/z/z.bin", size=700 << 10, seed=3),
          mk.whiteout("/data/r03")]
    return mk.Image([mk.Layer(l1, "gzip"), mk.Layer(l2, "none"),
                     mk.Layer(l3, "zstd")])


@pytest.fixture(scope="module")
def reg(tmp_path_factory, need_tools):
    require_registry()
    d = tmp_path_factory.mktemp("spans")
    layout = str(d / "layout")
    mk.write_image(image(), layout, "oci")
    r = Registry(str(d / "registry"))
    try:
        # as it is: skopeo would compress the uncompressed layer
        ref = r.push_layout(layout, "test/spans:v1")
        p = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                            "--format", "{{.Digest}}", ref],
                           capture_output=True, timeout=T)
        assert p.returncode == 0, p.stderr.decode()
        yield r, layout, p.stdout.decode().strip()
    finally:
        r.stop()


@pytest.fixture
def proxy(reg):
    px = FaultProxy(reg[0].port)
    yield px
    px.stop()


def run(lf, args, cache, timeout=T):
    return subprocess.run([lf, *args], capture_output=True, timeout=timeout,
                          env=dict(os.environ, LAYERFS_CACHE=str(cache)))


def layers_of(layout):
    """(digest, media type, size, tar bytes) of each layer of the layout."""
    return [(d["digest"], d["mediaType"], d["size"], tar)
            for d, tar in O.layer_tars(layout)]


def norm(name):
    while name.startswith(("./", "/")):
        name = name[1:] if name[0] == "/" else name[2:]
    return name


def member(tarbytes, name):
    mode = "r:gz" if tarbytes[:2] == b"\x1f\x8b" else "r:"
    with tarfile.open(fileobj=io.BytesIO(tarbytes), mode=mode) as t:
        for m in t.getmembers():
            if norm(m.name) == norm(name):
                return t.extractfile(m).read()
    raise KeyError(name)


def names(tarbytes):
    with tarfile.open(fileobj=io.BytesIO(tarbytes)) as t:
        return {norm(n) for n in t.getnames()}


def span_files(cache, digest=None):
    root = os.path.join(str(cache), "spans")
    out = []
    for d in os.listdir(root) if os.path.isdir(root) else []:
        p = os.path.join(root, d)
        if os.path.isdir(p) and (digest is None or d == digest[7:]):
            out += [os.path.join(p, f) for f in os.listdir(p)]
    return out


def fetched(gets):
    """Bytes each Range asked for: every one must be a bytes=A-Z range."""
    out = []
    for _, _, rng, n in gets:
        assert rng and rng.startswith("bytes="), rng
        a, z = rng[6:].split("-")
        assert n == int(z) - int(a) + 1
        out.append((int(a), int(z)))
    return out


def test_first_use_streams_each_blob_once(reg, proxy, layerfs_bin, tmp_path):
    r, layout, _ = reg
    img = "docker://%s/test/spans:v1" % proxy.host
    cache = tmp_path / "c"
    got = run(layerfs_bin, ["ls", "-R", "-l", "--tls-verify=false", img],
              cache)
    want = run(layerfs_bin, ["ls", "-R", "-l", layout], tmp_path / "c2")
    assert got.returncode == 0, got.stderr.decode()
    assert got.stdout == want.stdout
    for digest, mt, size, _ in layers_of(layout):
        ranges = sorted(fetched(proxy.blob_gets(digest)))
        # the blob, once, in order, no byte twice
        assert ranges[0][0] == 0 and ranges[-1][1] == size - 1, mt
        assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:])), mt
        # large windows, not a request per read
        assert len(ranges) <= 2 + size // (4 << 20), (mt, len(ranges))
    # nothing kept but the index and the span digests
    assert span_files(cache) == []
    for digest, mt, size, _ in layers_of(layout):
        sums = os.path.join(str(cache), "spans", digest[7:] + ".sums")
        assert os.path.getsize(sums) < 200 + 32 * (1 + size // SPAN), mt


def test_cat_fetches_at_most_two_spans(reg, proxy, layerfs_bin, tmp_path):
    r, layout, _ = reg
    img = "docker://%s/test/spans:v1" % proxy.host
    cache = tmp_path / "c"
    assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
               cache).returncode == 0
    gz, plain, zst = layers_of(layout)
    for path, layer in (("/etc/small7.txt", gz), ("/plain/t.txt", plain),
                        ("/data/r05", gz)):
        proxy.log.clear()
        p = run(layerfs_bin, ["cat", "--tls-verify=false", img, path], cache)
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout == member(layer[3], path), path
        ranges = fetched(proxy.blob_gets())
        assert len(ranges) <= 2, (path, ranges)
        assert sum(z - a + 1 for a, z in ranges) <= 2 * SPAN, path
        # the second time: from the span cache, no blob request
        proxy.log.clear()
        p = run(layerfs_bin, ["cat", "--tls-verify=false", img, path], cache)
        assert p.stdout == member(layer[3], path)
        assert proxy.blob_gets() == [], path
    # zstd: the decompressed copy made by the first pass serves reads
    proxy.log.clear()
    p = run(layerfs_bin, ["cat", "--tls-verify=false", img, "/z/z.bin"],
            cache)
    assert p.stdout == member(zst[3], "/z/z.bin")
    assert proxy.blob_gets() == []


def test_sequential_reader_reads_ahead(reg, proxy, layerfs_bin, tmp_path):
    _, layout, _ = reg
    img = "docker://%s/test/spans:v1" % proxy.host
    cache = tmp_path / "c"
    assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
               cache).returncode == 0
    gz = layers_of(layout)[0]
    proxy.log.clear()
    p = run(layerfs_bin, ["cat", "--tls-verify=false", img, BIG], cache)
    assert p.returncode == 0 and p.stdout == member(gz[3], BIG)
    ranges = fetched(proxy.blob_gets(gz[0]))
    nspans = sum((z - a + 1 + SPAN - 1) // SPAN for a, z in ranges)
    # about 6 spans of random bytes: fewer requests than spans
    assert nspans >= 6 and len(ranges) < nspans, ranges


def test_offline_remount_by_digest(reg, layerfs_bin, tmp_path):
    r, layout, digest = reg
    px = FaultProxy(r.port)
    img = "docker://%s/test/spans@%s" % (px.host, digest)
    cache = tmp_path / "c"
    gz = layers_of(layout)[0]
    try:
        first = run(layerfs_bin, ["ls", "-R", "-l", "--tls-verify=false",
                                  img], cache)
        assert first.returncode == 0, first.stderr.decode()
        assert run(layerfs_bin, ["cat", "--tls-verify=false", img,
                                 "/etc/small3.txt"], cache).returncode == 0
        px.log.clear()
        again = run(layerfs_bin, ["ls", "-R", "-l", "--tls-verify=false",
                                  img], cache)
        assert again.stdout == first.stdout
        assert px.log == []  # no request at all
    finally:
        px.stop()
    # the registry is gone: metadata and cached spans still serve
    p = run(layerfs_bin, ["ls", "-R", "-l", "--tls-verify=false", img],
            cache, timeout=60)
    assert p.returncode == 0 and p.stdout == first.stdout, p.stderr.decode()
    p = run(layerfs_bin, ["cat", "--tls-verify=false", img,
                          "/etc/small3.txt"], cache, timeout=60)
    assert p.returncode == 0 and p.stdout == member(gz[3], "/etc/small3.txt")
    # an uncached span: an error naming the registry, no hang
    p = run(layerfs_bin, ["cat", "--tls-verify=false", img, BIG],
            cache, timeout=60)
    assert p.returncode == 1 and p.stdout == b""
    assert px.host.encode() in p.stderr, p.stderr


def test_offline_mount_reads_fail_with_eio(reg, layerfs_bin, tmp_path):
    fh.require_fuse()
    r, layout, digest = reg
    px = FaultProxy(r.port)
    img = "docker://%s/test/spans@%s" % (px.host, digest)
    cache = tmp_path / "c"
    try:
        assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
                   cache).returncode == 0
    finally:
        px.stop()
    mnt = tmp_path / "m"
    mnt.mkdir()
    p = run(layerfs_bin, ["mount", "--tls-verify=false", img, str(mnt)],
            cache, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    try:
        assert sorted(os.listdir(mnt / "data"))[:2] == ["big.bin", "r00"]
        with pytest.raises(OSError) as e:
            with open(mnt / "data" / "r07", "rb") as f:
                f.read()
        assert e.value.errno == 5
    finally:
        subprocess.run(["umount", str(mnt)], timeout=T)


def test_mount_every_file_and_one_fetch_per_span(reg, proxy, layerfs_bin,
                                                 tmp_path):
    fh.require_fuse()
    _, layout, _ = reg
    img = "docker://%s/test/spans:v1" % proxy.host
    cache = tmp_path / "c"
    mnt = tmp_path / "m"
    mnt.mkdir()
    p = run(layerfs_bin, ["mount", "--tls-verify=false", img, str(mnt)],
            cache)
    assert p.returncode == 0, p.stderr.decode()
    try:
        proxy.log.clear()
        results = []

        def reader():
            with open(mnt / "data" / "r08", "rb") as f:
                results.append(hashlib.sha256(f.read()).hexdigest())

        ts = [threading.Thread(target=reader) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        gz = layers_of(layout)[0]
        assert set(results) == {hashlib.sha256(
            member(gz[3], "/data/r08")).hexdigest()} and len(results) == 8
        ranges = fetched(proxy.blob_gets())
        assert len(ranges) == len(set(ranges)), ranges  # none twice
        # every file against the layout's own tar members
        layers = layers_of(layout)
        for root, _, ents in os.walk(mnt):
            for n in ents:
                path = os.path.join(root, n)[len(str(mnt)):]
                if os.path.islink(os.path.join(root, n)):
                    continue
                with open(os.path.join(root, n), "rb") as f:
                    data = f.read()
                src = [lay for lay in layers
                       if norm(path) in names(lay[3])][-1]
                assert data == member(src[3], path), path
    finally:
        subprocess.run(["umount", str(mnt)], timeout=T)


def test_damaged_span_file_is_fetched_again(reg, proxy, layerfs_bin,
                                            tmp_path):
    _, layout, _ = reg
    img = "docker://%s/test/spans:v1" % proxy.host
    cache = tmp_path / "c"
    gz = layers_of(layout)[0]
    assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
               cache).returncode == 0
    assert run(layerfs_bin, ["cat", "--tls-verify=false", img, "/data/r01"],
               cache).returncode == 0
    files = span_files(cache, gz[0])
    assert files
    for f in files:
        with open(f, "r+b") as fp:
            b = fp.read(1)
            fp.seek(0)
            fp.write(bytes([b[0] ^ 1]))
    proxy.log.clear()
    p = run(layerfs_bin, ["cat", "--tls-verify=false", img, "/data/r01"],
            cache)
    assert p.returncode == 0 and p.stdout == member(gz[3], "/data/r01")
    assert proxy.blob_gets(gz[0])  # fetched again
    assert b"damaged span" in p.stderr


def test_lying_span_is_eio_and_not_kept(reg, layerfs_bin, tmp_path):
    r, layout, _ = reg
    cache = tmp_path / "c"
    gz = layers_of(layout)[0]
    # the index and span digests from the honest registry
    assert run(layerfs_bin, ["ls", "--tls-verify=false",
                             "docker://%s/test/spans:v1" % r.host],
               cache).returncode == 0
    px = FaultProxy(r.port, "flip")
    try:
        p = run(layerfs_bin, ["cat", "--tls-verify=false",
                              "docker://%s/test/spans:v1" % px.host,
                              "/data/r02"], cache)
    finally:
        px.stop()
    assert p.returncode == 1 and p.stdout == b""
    assert b"do not match their digest" in p.stderr, p.stderr
    # spans of the same answer that did match may be kept: nothing else
    with open(os.path.join(layout, "blobs", "sha256", gz[0][7:]), "rb") as f:
        blob = f.read()
    for path in span_files(cache, gz[0]):
        k = int(os.path.basename(path), 16)
        with open(path, "rb") as f:
            assert f.read() == blob[k * SPAN:(k + 1) * SPAN], path
    p = run(layerfs_bin, ["cat", "--tls-verify=false",
                          "docker://%s/test/spans:v1" % r.host, "/data/r02"],
            cache)
    assert p.returncode == 0 and p.stdout == member(gz[3], "/data/r02")


def test_cache_max(reg, proxy, layerfs_bin, tmp_path):
    _, layout, _ = reg
    img = "docker://%s/test/spans:v1" % proxy.host
    gz = layers_of(layout)[0]
    cache = tmp_path / "c"
    assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
               cache).returncode == 0
    for i in range(12):
        if i == 3:
            continue  # deleted by the top layer
        p = run(layerfs_bin, ["cat", "--tls-verify=false", "--cache-max",
                              "1M", img, "/data/r%02d" % i], cache)
        assert p.returncode == 0
        assert p.stdout == member(gz[3], "/data/r%02d" % i)
        kept = sum(os.path.getsize(f) for f in span_files(cache))
        assert kept <= 1 << 20, (i, kept)
    nocache = tmp_path / "n"
    assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
               nocache).returncode == 0
    p = run(layerfs_bin, ["cat", "--tls-verify=false", "--cache-max", "0",
                          img, "/data/r04"], nocache)
    assert p.returncode == 0 and p.stdout == member(gz[3], "/data/r04")
    assert span_files(nocache) == []
    for bad in ("lots", "-1", "5X", ""):
        p = run(layerfs_bin, ["cat", "--cache-max", bad, img, "/x"], cache)
        assert p.returncode == 2 and b"--cache-max" in p.stderr, bad


def test_sums_missing_but_index_cached(reg, proxy, layerfs_bin, tmp_path):
    """The index built from a local copy of the same blobs: the span
    digests come from one more pass before any span is trusted."""
    _, layout, _ = reg
    cache = tmp_path / "c"
    assert run(layerfs_bin, ["ls", layout], cache).returncode == 0
    img = "docker://%s/test/spans:v1" % proxy.host
    gz = layers_of(layout)[0]
    p = run(layerfs_bin, ["cat", "--tls-verify=false", img, "/data/r06"],
            cache)
    assert p.returncode == 0 and p.stdout == member(gz[3], "/data/r06")
    assert os.path.exists(os.path.join(str(cache), "spans",
                                       gz[0][7:] + ".sums"))
    shutil.rmtree(os.path.join(str(cache), "spans"))


@pytest.mark.parametrize("delta,msg", [
    (-1, b"other bytes"),           # the stream ends early: wrong digest
    (1, b"asked for bytes"),        # a range past the blob's end
    (1 << 62, b"more than layerfs reads"),
])
def test_descriptor_size_lies(reg, layerfs_bin, tmp_path, delta, msg):
    r, layout, _ = reg
    bad = str(tmp_path / "bad")
    shutil.copytree(layout, bad)
    with open(os.path.join(bad, "index.json")) as f:
        index = json.load(f)
    desc = index["manifests"][0]
    with open(os.path.join(bad, "blobs", "sha256", desc["digest"][7:])) as f:
        man = json.load(f)
    man["layers"][0]["size"] += delta
    data = json.dumps(man).encode()
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(bad, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    desc.update(digest="sha256:" + hexd, size=len(data))
    with open(os.path.join(bad, "index.json"), "w") as f:
        json.dump(index, f)
    name = "test/lies%d:v1" % abs(hash(delta))
    img = r.push_layout(bad, name)
    p = run(layerfs_bin, ["ls", "-R", "--tls-verify=false", img],
            tmp_path / "c", timeout=60)
    assert p.returncode == 1 and p.stdout == b"", p.stdout
    assert msg in p.stderr, p.stderr
    assert b"Sanitizer" not in p.stderr


def test_plain_http_found_by_concurrent_readers(reg, layerfs_bin, tmp_path):
    """--tls-verify=false, a digest reference, the index cached: the first
    requests are blob reads from several threads at once, all trying
    HTTPS first; each must fall back to plain HTTP, not just the first."""
    r, layout, digest = reg
    img = "docker://%s/test/spans@%s" % (r.host, digest)
    gz = layers_of(layout)[0]
    for i in range(4):
        cache = tmp_path / ("c%d" % i)
        assert run(layerfs_bin, ["ls", "--tls-verify=false", img],
                   cache).returncode == 0
        p = run(layerfs_bin, ["cat", "--tls-verify=false", img, BIG], cache)
        assert p.returncode == 0 and p.stderr == b"", p.stderr
        assert p.stdout == member(gz[3], BIG)
