"""`layerfs cache` and the cache's size cap.

The oracle for sizes is os.stat over the cache directory's own files; for
bytes read through a mount after the cache was pruned, python tarfile over
the generated layers.  A canary outside the cache, a user's file inside it
and a symlink named like an index check that nothing else is touched.
"""
import json
import os
import subprocess
import tarfile

import pytest

import fusehelpers as fh
import oracle as O
from mkimage import Image, Layer, dir as d, file as f

MB = 1 << 20


def _image(seed, compression="zstd"):
    return Image([Layer([d("data"), f("data/a.bin", size=3 * MB, seed=seed),
                         f("data/small", "small %d\n" % seed)],
                        compression=compression)])


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cachecmd")
    out = {}
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        p = str(root / (name + ".tar"))
        O.mkimage.write_image(_image(seed), p, "oci-archive")
        out[name] = p
    return out


def lf(cache, *args, check=True):
    p = O.layerfs(*args[:1], "--cache", cache, *args[1:])
    if check:
        assert p.returncode == 0, p.stderr
    return p


def cache_json(cache, sub):
    return json.loads(lf(cache, "cache", "--json", sub).stdout)


def disk_files(cache):
    """{relative path: size} of the cache's own files (not the user's)."""
    out = {}
    for root, dirs, files in os.walk(cache):
        for n in files:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, cache)
            if os.path.islink(p) or rel.startswith("mine"):
                continue
            out[rel] = os.lstat(p).st_size
    return out


def test_ls_and_du_equal_the_files(imgs, tmp_path):
    cache = str(tmp_path / "c")
    lf(cache, "ls", "-R", imgs["a"])
    lf(cache, "cat", imgs["b"], "data/a.bin")
    items = cache_json(cache, "ls")["items"]
    files = disk_files(cache)
    assert sum(i["size"] for i in items) == sum(files.values())
    assert {i["name"] for i in items} == set(files)
    kinds = {i["kind"] for i in items}
    assert {"index", "zstd-copy", "tree"} <= kinds, kinds
    du = cache_json(cache, "du")
    assert du["total_bytes"] == sum(files.values())
    assert du["items"] == len(items)
    for k, v in du["kinds"].items():
        assert v["bytes"] == sum(i["size"] for i in items if i["kind"] == k)
    text = lf(cache, "cache", "du").stdout.decode()
    assert "total %12d bytes" % sum(files.values()) in " ".join(
        text.split("  ")) or str(sum(files.values())) in text


def test_cap_bounds_the_cache(imgs, tmp_path):
    """The zstd copies are the big part (3 MiB each); with a 5 MiB cap the
    older images' items go as a new image is read, the current one's stay."""
    cache = str(tmp_path / "c")
    for k in ("a", "b", "c"):
        lf(cache, "cat", "--cache-max", "5M", imgs[k], "data/small")
        assert sum(disk_files(cache).values()) <= 5 * MB, k
    # the last image's copy is what remains
    items = cache_json(cache, "ls")["items"]
    copies = [i for i in items if i["kind"] == "zstd-copy"]
    assert len(copies) == 1
    # and without a cap below it everything stays (default 2G)
    cache2 = str(tmp_path / "c2")
    for k in ("a", "b", "c"):
        lf(cache2, "cat", imgs[k], "data/small")
    assert len([i for i in cache_json(cache2, "ls")["items"]
                if i["kind"] == "zstd-copy"]) == 3


def test_prune_is_lru(imgs, tmp_path):
    cache = str(tmp_path / "c")
    for k in ("a", "b", "c"):
        lf(cache, "ls", imgs[k])
    lf(cache, "ls", imgs["a"])          # a is used again: b is the oldest
    items = cache_json(cache, "ls")["items"]
    by_digest = {}
    for i in items:
        by_digest.setdefault(i["digest"], []).append(i)
    total = sum(i["size"] for i in items)
    # the oldest index + its copy is image b's layer
    oldest = [i for i in items if i["kind"] == "index"][0]
    b_size = sum(i["size"] for i in by_digest[oldest["digest"]])
    lf(cache, "cache", "prune", "--max-size", str(total - b_size))
    left = {i["digest"] for i in cache_json(cache, "ls")["items"]}
    assert oldest["digest"] not in left
    # a's and c's layers are still cached: ls needs no re-index (same
    # index files, untouched)
    assert len([i for i in cache_json(cache, "ls")["items"]
                if i["kind"] == "index"]) == 2
    # b really was the least recently used image: its index is gone
    p = lf(cache, "layers", "--json", imgs["b"])
    assert json.loads(p.stdout)["layers"][0]["digest"] == oldest["digest"]


def test_live_mount_survives_clear(imgs, tmp_path):
    fh.require_fuse()
    cache = str(tmp_path / "c")
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    lf(cache, "ls", imgs["b"])        # not in use: will go
    p = O.layerfs("mount", "--cache", cache, imgs["a"], mnt)
    assert p.returncode == 0, p.stderr
    try:
        items = cache_json(cache, "ls")["items"]
        used = [i["name"] for i in items if i["in_use"]]
        assert any(n.endswith(".idx") for n in used), items
        assert any(n.endswith(".idx.tar") for n in used), items
        lf(cache, "cache", "clear")
        left = cache_json(cache, "ls")["items"]
        assert sorted(i["name"] for i in left) == sorted(used)
        # the mount still reads the right bytes
        with tarfile.open(imgs["a"]) as t:
            idx = json.load(t.extractfile("index.json"))
            man = json.load(t.extractfile("blobs/sha256/" + idx[
                "manifests"][0]["digest"][7:]))
            blob = t.extractfile("blobs/sha256/" +
                                 man["layers"][0]["digest"][7:]).read()
        raw = subprocess.run(["zstd", "-dc"], input=blob,
                             stdout=subprocess.PIPE, check=True).stdout
        import io
        with tarfile.open(fileobj=io.BytesIO(raw)) as lt:
            want = lt.extractfile("data/a.bin").read()
        with open(os.path.join(mnt, "data", "a.bin"), "rb") as fp:
            assert fp.read() == want
    finally:
        fh.cleanup(mnt)
    lf(cache, "cache", "clear")
    assert cache_json(cache, "ls")["items"] == []


def test_only_the_caches_files_go(imgs, tmp_path):
    cache = str(tmp_path / "c")
    lf(cache, "ls", imgs["a"])
    canary = tmp_path / "canary"
    canary.write_text("keep\n")
    name = [i["name"] for i in cache_json(cache, "ls")["items"]
            if i["kind"] == "index"][0]
    fake = "sha256-" + "0" * 64 + ".idx"
    os.symlink(str(canary), os.path.join(cache, fake))
    with open(os.path.join(cache, "mine.txt"), "w") as fp:
        fp.write("a user's file\n")
    os.mkdir(os.path.join(cache, "spans"))
    os.symlink(str(tmp_path), os.path.join(cache, "spans", "1" * 64))
    lf(cache, "cache", "clear")
    assert canary.read_text() == "keep\n"
    assert os.path.islink(os.path.join(cache, fake))
    assert os.path.exists(os.path.join(cache, "mine.txt"))
    assert os.path.islink(os.path.join(cache, "spans", "1" * 64))
    assert not os.path.exists(os.path.join(cache, name))
    assert os.listdir(str(tmp_path)) and canary.exists()


@pytest.mark.parametrize("args,code", [
    (("cache",), 2), (("cache", "nope"), 2), (("cache", "ls", "du"), 2),
    (("cache", "--max-size", "1M", "ls"), 2),
    (("cache", "--max-size", "x", "prune"), 2),
    (("cache", "--json", "clear"), 2),
])
def test_usage_errors(args, code, tmp_path):
    p = O.layerfs(*args, "--cache", str(tmp_path / "c"))
    assert p.returncode == code, p.stderr
    assert p.stderr.startswith(b"layerfs: cache: ")


def test_cache_dir_not_a_directory(tmp_path):
    f_ = tmp_path / "file"
    f_.write_text("x")
    p = O.layerfs("cache", "--cache", str(f_), "ls")
    assert p.returncode == 1
    assert str(f_).encode() in p.stderr
    # a missing cache directory is an empty cache
    p = O.layerfs("cache", "--cache", str(tmp_path / "none"), "du")
    assert p.returncode == 0 and b"total" in p.stdout


def test_gzip_archive_points_listed(tmp_path):
    """A gzip'd archive's checkpoints are an item of their own."""
    import gzip
    tar = str(tmp_path / "img.tar")
    O.mkimage.write_image(_image(7, "gzip"), tar, "docker-archive")
    with open(tar, "rb") as src, gzip.open(tar + ".gz", "wb") as dst:
        dst.write(src.read())
    cache = str(tmp_path / "c")
    lf(cache, "ls", tar + ".gz")
    kinds = [i["kind"] for i in cache_json(cache, "ls")["items"]]
    assert "gzip-points" in kinds, kinds
    assert sum(i["size"] for i in cache_json(cache, "ls")["items"]) == \
        sum(disk_files(cache).values())
