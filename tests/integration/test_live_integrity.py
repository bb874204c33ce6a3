# SPDX-License-Identifier: MIT
"""A blob or cache file changed, damaged or swapped under layerfs: every read
is the right bytes or an error (EIO on a mount), never other bytes; no
cache file can make layerfs block or follow a link; a decompression bomb
stops at a configurable limit with an error naming the layer and leaves
nothing half-written in the cache.  Images: tests/fixtures/live.py."""

import glob
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile

import pytest

import fusehelpers as FH
import oracle as O

sys.path.insert(0, O.FIXTURES)
import live  # noqa: E402
import mkimage  # noqa: E402

EIO = 5
WANT = {p: hashlib.sha256(c).hexdigest()
        for p, c in live.expected_files().items()}
PATHS = sorted(WANT)

# reads every path given, prints {path: sha256 | "errno:N"}
READER = r"""
import hashlib, json, sys
out = {}
for p in sys.argv[2:]:
    try:
        with open(sys.argv[1] + "/" + p, "rb") as f:
            out[p] = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        out[p] = "errno:%d" % e.errno
print(json.dumps(out))
"""


def _err(p):
    return p.stderr.decode(errors="replace")


def _image(tmp_path, fmt="oci"):
    out = str(tmp_path / ("live." + fmt))
    mkimage.write_image(live.live_image(), out, fmt, key="live")
    return out


def _read_mounted(mnt, paths):
    p = subprocess.run(["/usr/bin/python3", "-c", READER, str(mnt)] + paths,
                       stdout=subprocess.PIPE, timeout=120)
    return json.loads(p.stdout)


def _unmount_log(mnt, proc):
    """Unmount, wait for the daemon and return what it logged."""
    assert FH.umount(mnt).returncode == 0
    assert proc.wait(timeout=60) == 0
    return FH.read_stderr(proc)


def _tally(got):
    """(right, eio) counts; any other answer fails the test."""
    right = eio = 0
    for path, v in got.items():
        if v == WANT[path]:
            right += 1
        elif v == "errno:%d" % EIO:
            eio += 1
        else:
            pytest.fail("%s: %s instead of the right bytes or EIO" % (path, v))
    return right, eio


def _cat_all(img, cache, paths=PATHS):
    """{path: sha256 | "error"}; a failed cat must say why."""
    out = {}
    for path in paths:
        p = O.layerfs("cat", "--cache", cache, img, path, timeout=120)
        if p.returncode == 0:
            out[path] = hashlib.sha256(p.stdout).hexdigest()
        else:
            assert p.returncode == 1 and _err(p).startswith("layerfs: "), \
                _err(p)
            out[path] = "errno:%d" % EIO
    return out


def _layer_digests(img):
    """Layer blob hex digests, in order, of a layout or an OCI archive."""
    def reader(name):
        if os.path.isdir(img):
            with open(os.path.join(img, name), "rb") as f:
                return f.read()
        with tarfile.open(img) as tf:
            return tf.extractfile(name).read()
    man = json.loads(reader("index.json"))["manifests"][0]["digest"][7:]
    layers = json.loads(reader("blobs/sha256/" + man))["layers"]
    return [d["digest"][7:] for d in layers]


def _blob_ranges(img):
    """(host file, offset, size) of every layer blob, in layer order."""
    out = []
    digests = _layer_digests(img)
    if os.path.isdir(img):
        for d in digests:
            p = os.path.join(img, "blobs", "sha256", d)
            out.append((p, 0, os.path.getsize(p)))
        return out
    with tarfile.open(img) as tf:
        members = {m.name: m for m in tf.getmembers()}
    for d in digests:
        m = members["blobs/sha256/" + d]
        out.append((img, m.offset_data, m.size))
    return out


def _overwrite_in_place(path, off, data):
    """dd conv=notrunc: same inode, same size, other bytes."""
    fd = os.open(path, os.O_WRONLY)
    try:
        assert os.pwrite(fd, data, off) == len(data)
    finally:
        os.close(fd)


def _damage_blobs(img):
    rnd = random.Random(7)
    for path, off, size in _blob_ranges(img):
        _overwrite_in_place(path, off + size // 2, rnd.randbytes(8192))


@pytest.mark.parametrize("fmt", ["oci", "oci-archive"])
def test_blob_overwritten_under_mount(fmt, tmp_path, layerfs_bin):
    """Half the files read before the blobs are overwritten in place (the
    layout's blob files, or the archive file around them), then every file:
    right bytes (what was read before) or EIO, and one log line."""
    img = _image(tmp_path, fmt)
    cache = str(tmp_path / "cache")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = FH.mount(img, mnt, cache=cache)
    try:
        before = _read_mounted(mnt, PATHS[::2])
        assert before == {p: WANT[p] for p in PATHS[::2]}
        _damage_blobs(img)
        right, eio = _tally(_read_mounted(mnt, PATHS))
        log = _unmount_log(mnt, proc)
    finally:
        FH.cleanup(mnt, proc)
    assert eio > 0 and right >= len(before) - 3, (right, eio)
    assert log.count("answering EIO") == 1, log
    assert "blob file changed since it was opened" in log, log


def test_cat_after_blob_changed(tmp_path, layerfs_bin):
    """The blobs change between runs, sizes kept: the index's block hashes
    catch what the plain and gzip layers would now give; the zstd layer is
    read from its checked copy."""
    img = _image(tmp_path)
    cache = str(tmp_path / "cache")
    assert _cat_all(img, cache) == WANT
    _damage_blobs(img)
    right, eio = _tally(_cat_all(img, cache))
    assert eio > 0 and right > 0, (right, eio)
    # nothing of the zstd layer (l2/) fails: its copy is intact
    got = _cat_all(img, cache, [p for p in PATHS if p.startswith("l2/")])
    assert all(got[p] == WANT[p] for p in got), got


def _copy_file(cache):
    copies = glob.glob(os.path.join(cache, "*.idx.tar"))
    assert len(copies) == 1, os.listdir(cache)
    return copies[0]


def _flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x40]))


def test_zstd_copy_damaged_under_mount(tmp_path, layerfs_bin):
    """A byte of the decompressed zstd copy flipped while mounted: the
    files on it answer EIO, the others are right, and the copy is dropped so
    that the next run rebuilds it."""
    img = _image(tmp_path)
    cache = str(tmp_path / "cache")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = FH.mount(img, mnt, cache=cache)
    try:
        copy = _copy_file(cache)
        # inside l2/f0.bin, the first and largest file of the layer
        _flip(copy, 2 * 1024 * 1024)
        right, eio = _tally(_read_mounted(mnt, PATHS))
        log = _unmount_log(mnt, proc)
    finally:
        FH.cleanup(mnt, proc)
    assert eio >= 1 and right == len(PATHS) - eio, (right, eio)
    assert "decompressed copy" in log and "damaged" in log, log
    assert not os.path.exists(copy)
    assert _cat_all(img, cache) == WANT


def test_zstd_copy_damaged_cat(tmp_path, layerfs_bin):
    img = _image(tmp_path)
    cache = str(tmp_path / "cache")
    assert _cat_all(img, cache) == WANT
    _flip(_copy_file(cache), 100000)
    right, eio = _tally(_cat_all(img, cache))
    assert eio >= 1, (right, eio)
    assert _cat_all(img, cache) == WANT


def _ls(img, cache, env=None):
    p = O.layerfs("ls", "-lR", "--json", "--cache", cache, img, env=env,
                  timeout=120)
    assert p.returncode == 0, _err(p)
    return p


def _cache_file(cache, kind):
    pat = {"idx": "*.idx", "copy": "*.idx.tar", "tree": "*.tree"}[kind]
    files = sorted(glob.glob(os.path.join(cache, pat)))
    assert files, os.listdir(cache)
    return files


@pytest.mark.parametrize("kind", ["idx", "copy", "tree"])
def test_flipped_cache_bytes(kind, tmp_path, layerfs_bin):
    """A byte flipped in every index, the zstd copy or the tree file: the
    listing and every file read the same as before (rebuilt, or refused)."""
    img = _image(tmp_path)
    cache = str(tmp_path / "cache")
    want = _ls(img, cache).stdout
    for f in _cache_file(cache, kind):
        _flip(f, os.path.getsize(f) // 2)
    assert _ls(img, cache).stdout == want
    right, eio = _tally(_cat_all(img, cache))
    assert right == len(PATHS) or kind == "copy", (right, eio)
    assert _cat_all(img, cache) == WANT


@pytest.mark.parametrize("swap", ["fifo", "symlink"])
@pytest.mark.parametrize("kind", ["idx", "copy", "tree"])
def test_cache_file_swapped(kind, swap, tmp_path, layerfs_bin):
    """A cache file replaced by a FIFO or by a symlink to a canary (a good
    copy of the file, outside the cache): nothing blocks, the canary is
    neither used nor changed, and the cache file is rebuilt in place."""
    img = _image(tmp_path)
    cache = str(tmp_path / "cache")
    want = _ls(img, cache).stdout
    canaries = {}
    for i, f in enumerate(_cache_file(cache, kind)):
        canary = str(tmp_path / ("canary%d" % i))
        shutil.move(f, canary)
        canaries[f] = (canary, O.file_sha256(canary))
        if swap == "fifo":
            os.mkfifo(f)
        else:
            os.symlink(canary, f)
    assert _ls(img, cache).stdout == want
    assert _cat_all(img, cache) == WANT
    for f, (canary, sha) in canaries.items():
        assert os.path.isfile(f) and not os.path.islink(f), f
        assert O.file_sha256(canary) == sha


def _no_partial_files(cache):
    names = os.listdir(cache) if os.path.isdir(cache) else []
    assert not [n for n in names if ".tmp." in n or n.endswith(".idx") or
                n.endswith(".tar")], names
    used = sum(os.path.getsize(os.path.join(cache, n)) for n in names)
    assert used < 1 << 20, used


@pytest.mark.parametrize("limit", ["size", "ratio"])
@pytest.mark.parametrize("how", ["gzip", "zstd"])
def test_decompression_bomb_stops(how, limit, tmp_path, layerfs_bin):
    """64 MiB of zeros behind a small blob, with the limits lowered to
    16 MiB: the clear error names the layer, the cache keeps nothing of
    it; with room enough the same image reads (the limit is what
    stopped it)."""
    img = str(tmp_path / "bomb")
    csize = live.write_bomb(img, how, 64 << 20)
    assert csize < 1 << 20
    cache = str(tmp_path / "cache")
    env, why = {
        "size": ({"LAYERFS_MAX_LAYER_SIZE": "16M"},
                 "exceeds the limit of 16777216 bytes"),
        "ratio": ({"LAYERFS_MAX_RATIO": "50:16M"},
                  "expands more than 50 times"),
    }[limit]
    p = O.layerfs("ls", "--cache", cache, img, env=env, timeout=120)
    assert p.returncode == 1, _err(p)
    assert ": layer 1: 'blobs/sha256/" in _err(p) and why in _err(p), \
        _err(p)
    assert _err(p).count("\n") == 1, _err(p)
    _no_partial_files(cache)
    p = O.layerfs("ls", "--cache", cache, img,
                  env={"LAYERFS_MAX_LAYER_SIZE": "65M"}, timeout=120)
    assert p.returncode == 0 and b"zeros.bin" in p.stdout, _err(p)


def test_entry_limit(tmp_path, layerfs_bin):
    img = str(tmp_path / "many")
    live.write_entries(img, 300)
    cache = str(tmp_path / "cache")
    p = O.layerfs("ls", "--cache", cache, img,
                  env={"LAYERFS_MAX_ENTRIES": "200"}, timeout=120)
    assert p.returncode == 1, _err(p)
    assert "layer 1: " in _err(p) and "more than 200 tar members" in \
        _err(p), _err(p)
    _no_partial_files(cache)
    p = O.layerfs("ls", "--cache", cache, img,
                  env={"LAYERFS_MAX_ENTRIES": "300"}, timeout=120)
    assert p.returncode == 0 and len(p.stdout.split()) == 300, _err(p)


@pytest.mark.parametrize("var,value", [
    ("LAYERFS_MAX_LAYER_SIZE", "lots"), ("LAYERFS_MAX_LAYER_SIZE", "0"),
    ("LAYERFS_MAX_RATIO", "10:"), ("LAYERFS_MAX_ENTRIES", "1Q"),
])
def test_malformed_limit(var, value, tmp_path, layerfs_bin):
    img = str(tmp_path / "many")
    live.write_entries(img, 3)
    p = O.layerfs("ls", "--no-cache", img, env={var: value}, timeout=60)
    assert p.returncode == 1 and var in _err(p), _err(p)


def _gz_points(idx):
    """(in, out) of every checkpoint of a gzip layer's index file: GZPOINTS
    is section 4, its descriptor at 280 + 4 * 16 in the header."""
    with open(idx, "rb") as f:
        b = f.read()
    off, ln = struct.unpack_from("<QQ", b, 280 + 4 * 16)
    return [struct.unpack_from("<QQ", b, off + k) for k in
            range(0, ln, 32)]


@pytest.mark.parametrize("before", [1, 2, 40])
def test_gzip_changed_next_to_a_checkpoint(before, tmp_path, layerfs_bin):
    """The bytes just before a checkpoint inflate from the previous one:
    changed there (same size, between runs) they are caught by the hash of
    that checkpoint's whole span, not served."""
    img = _image(tmp_path)
    cache = str(tmp_path / "cache")
    assert _cat_all(img, cache) == WANT
    gz = [i for i in glob.glob(os.path.join(cache, "*.idx"))
          if len(_gz_points(i)) > 2]
    assert len(gz) == 1
    pin, _ = _gz_points(gz[0])[2]
    path, off, _ = _blob_ranges(img)[0]
    _flip(path, off + pin - before)
    right, eio = _tally(_cat_all(img, cache))
    assert eio >= 1, (right, eio)
