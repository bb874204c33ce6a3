# SPDX-License-Identifier: MIT
"""The cache files beyond the layer index: merged trees (tree_cache.h) and
the lazily checked gzip checkpoint windows (cache.h).  Whatever is in the
cache directory, layerfs prints what umoci's unpack says (the oracle), warns
about what it could not use, and replaces it."""
import glob
import json
import os
import struct

import pytest

import oracle as O

M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F,
                      0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _mix(acc, v):
    return (_rotl((acc + v * P2) & M64, 31) * P1) & M64


def hash64(data):
    """A port of cache.c's XXH64-style hash, to forge well-sealed files."""
    p, n, h = 0, len(data), 0
    if n >= 32:
        v = [(P1 + P2) & M64, P2, 0, (-P1) & M64]
        while p + 32 <= n:
            for i in range(4):
                v[i] = _mix(v[i], struct.unpack_from("<Q", data, p + 8 * i)[0])
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) +
             _rotl(v[3], 18)) & M64
        for i in range(4):
            h = ((h ^ _mix(0, v[i])) * P1 + P4) & M64
    else:
        h = P5
    h = (h + n) & M64
    while p + 8 <= n:
        k = struct.unpack_from("<Q", data, p)[0]
        h = (_rotl(h ^ _mix(0, k), 27) * P1 + P4) & M64
        p += 8
    while p < n:
        h = (_rotl(h ^ ((data[p] * P5) & M64), 11) * P1) & M64
        p += 1
    h ^= h >> 33
    h = (h * P2) & M64
    h ^= h >> 29
    h = (h * P3) & M64
    return h ^ (h >> 32)


# struct tree_header (tree_cache.c): magic, version, header_size, key[72],
# nlayers, ninodes, ndirents, nslots, off_inodes, off_dirents, off_slots,
# off_names, names_len, size, hkey[2], body_hash, header_hash
TREE_HDR = struct.Struct("<8sII72sIIIIQQQQQQQQQQ")
BODY_HASH, HEADER_HASH = 16, 17


def _err(p):
    return p.stderr.decode(errors="replace")


def _trees(d):
    return sorted(glob.glob(os.path.join(d, "tree-*.tree")))


def _ls(img, cache, *extra):
    p = O.layerfs("ls", "-lR", "--json", "--cache", cache, *extra, img)
    assert p.returncode == 0, _err(p)
    return p


def _reseal(path, edit):
    """Apply edit(bytearray, header fields) to a tree file and seal it
    again, so only validate() can tell."""
    with open(path, "rb") as f:
        b = bytearray(f.read())
    h = list(TREE_HDR.unpack_from(b, 0))
    edit(b, h)
    h[BODY_HASH] = hash64(bytes(b[TREE_HDR.size:]))
    TREE_HDR.pack_into(b, 0, *h)
    h[HEADER_HASH] = hash64(bytes(b[:TREE_HDR.size - 8]))
    TREE_HDR.pack_into(b, 0, *h)
    with open(path, "wb") as f:
        f.write(b)


def test_hash_port_matches(images, cache_dir, layerfs_bin):
    """The forging helper agrees with layerfs's own seal."""
    _ls(images("basic"), cache_dir)
    (t,) = _trees(cache_dir)
    with open(t, "rb") as f:
        b = f.read()
    h = TREE_HDR.unpack_from(b, 0)
    assert h[BODY_HASH] == hash64(b[TREE_HDR.size:])
    assert h[HEADER_HASH] == hash64(b[:TREE_HDR.size - 8])


def test_tree_stored_per_prefix_and_reused(images, oracles, cache_dir,
                                           layerfs_bin):
    img = images("basic")
    n = O.layer_count("basic")
    first = _ls(img, cache_dir)
    assert len(_trees(cache_dir)) == 1
    # reused, not rewritten: the same inode (a store renames a new file in;
    # mtime is the LRU mark and moves on every use)
    before = {t: os.stat(t).st_ino for t in _trees(cache_dir)}
    again = _ls(img, cache_dir)
    assert again.stdout == first.stdout
    assert not _err(again), _err(again)
    assert {t: os.stat(t).st_ino for t in _trees(cache_dir)} == before
    for k in range(1, n):
        _ls(img, cache_dir, "--layers", str(k))
    assert len(_trees(cache_dir)) == n, "one tree per prefix"
    # each prefix, from its stored tree, is still umoci's view
    for k in range(1, n + 1):
        got, _ = O.layerfs_ls(img, k, cache_dir)

        def cat(path, k=k):
            sha, p = O.layerfs_cat_sha(img, path, k, cache_dir)
            return sha if sha is not None else _err(p)

        diffs = O.compare(oracles("basic", "oci", k), got, cat)
        assert not diffs, "prefix %d: %s" % (k, diffs[:20])


def test_no_tree_without_cache(images, tmp_path, layerfs_bin):
    d = tmp_path / "c"
    p = O.layerfs("ls", "-lR", "--no-cache", images("basic"),
                  env={"LAYERFS_CACHE": str(d)})
    assert p.returncode == 0, _err(p)
    assert not d.exists() or not _trees(str(d))


def test_tree_of_other_layers_not_used(images, cache_dir, layerfs_bin):
    img = images("basic")
    full = _ls(img, cache_dir)
    (mine,) = _trees(cache_dir)
    _ls(img, cache_dir, "--layers", "1")
    other = [t for t in _trees(cache_dir) if t != mine][0]
    os.replace(other, mine)
    p = _ls(img, cache_dir)
    assert p.stdout == full.stdout
    assert "tree" in _err(p) and "other layers" in _err(p), _err(p)
    assert not _err(_ls(img, cache_dir)), "the tree was not replaced"


@pytest.mark.parametrize("damage,why,at_load", [
    ("dirent-loop", "a directory loop", False),
    ("dirent-ino", "a directory entry names no inode", False),
    ("name-off", "a directory entry whose name", False),
    ("name-len", "a directory entry whose name", False),
    ("inode-entry", "an inode record out of bounds", False),
    ("slots-full", None, False),
    ("count-overflow", "the root's record out of bounds", True),
    ("link-target", "an inode record out of bounds", False),
    ("name-dotdot", "a directory entry whose name", False),
    ("name-slash", "a directory entry whose name", False)])
def test_forged_tree_rejected(damage, why, at_load, images, cache_dir,
                              layerfs_bin):
    """Files that pass the hashes but point anywhere: nothing loops or
    crashes.  The root and the hash table are checked at load (the file
    refused and rebuilt, the output right); any other record where it is
    used (tree_cache.h): that query fails, the damage is reported once, and
    the file is removed, so the next run builds the tree again and is
    right."""
    img = images("symlinks")
    want = _ls(img, cache_dir).stdout
    links = [e["ino"] for e in json.loads(want) if e["type"] == "symlink"]
    assert links, "no symlink in the fixture"
    (t,) = _trees(cache_dir)
    TI, TD = struct.Struct("<iIIIII"), struct.Struct("<III")

    def edit(b, h):
        ninodes, ndirents, nslots = h[5], h[6], h[7]
        oi, od, os_ = h[8], h[9], h[10]
        root = list(TI.unpack_from(b, oi + TI.size))
        if damage == "dirent-loop":
            # the root's first subdirectory entry points back at the root
            d = list(TD.unpack_from(b, od + root[4] * TD.size))
            d[2] = 1
            TD.pack_into(b, od + root[4] * TD.size, *d)
        elif damage == "dirent-ino":
            d = list(TD.unpack_from(b, od))
            d[2] = ninodes + 5
            TD.pack_into(b, od, *d)
        elif damage == "name-off":
            d = list(TD.unpack_from(b, od))
            d[0] = 0xFFFFFF00
            TD.pack_into(b, od, *d)
        elif damage == "name-len":
            d = list(TD.unpack_from(b, od))
            d[1] = h[12] + 1
            TD.pack_into(b, od, *d)
        elif damage == "inode-entry":
            x = list(TI.unpack_from(b, oi + 2 * TI.size))
            x[1] = 10 ** 9
            TI.pack_into(b, oi + 2 * TI.size, *x)
        elif damage == "slots-full":
            for i in range(nslots):
                struct.pack_into("<I", b, os_ + 4 * i, i % max(ndirents, 1))
        elif damage == "link-target":
            at = oi + links[0] * TI.size
            x = list(TI.unpack_from(b, at))
            x[4] = h[12]
            TI.pack_into(b, at, *x)
        elif damage in ("name-dotdot", "name-slash"):
            # the first name becomes ".." or "a/b" (same length or less)
            d = list(TD.unpack_from(b, od))
            new = b".." if damage == "name-dotdot" else b"a/"
            if d[1] < 2:
                d[1] = 2
            b[h[11] + d[0]:h[11] + d[0] + 2] = new
            d[1] = 2
            TD.pack_into(b, od, *d)
        elif damage == "count-overflow":
            root[5] = 0xFFFFFFF0
            TI.pack_into(b, oi + TI.size, *root)

    _reseal(t, edit)
    p = O.layerfs("ls", "-lR", "--json", "--cache", cache_dir, img,
                  timeout=60)
    if at_load:
        assert p.returncode == 0, _err(p)
        assert p.stdout == want
        assert "ignoring tree cache file" in _err(p) and why in _err(p), \
            _err(p)
        return
    assert p.returncode in (0, 1), _err(p)
    if why is not None:
        # met on the walk: reported, and the file gone
        assert "tree cache file" in _err(p) and why in _err(p), _err(p)
        assert not os.path.exists(t)
    # a full hash table answers every lookup after a bounded probe; the
    # names it finds are checked like any other
    again = _ls(img, cache_dir)
    assert again.stdout == want
    if why is not None:
        assert not _err(again), _err(again)


def _windows_section(idx):
    # struct lf_cache_header: sect[8] {off, len} (GZWINDOWS last) sits
    # before toc_sha256[32] and checksum[32] at the end of the 472-byte
    # header
    with open(idx, "rb") as f:
        h = f.read(472)
    off, ln = struct.unpack_from("<QQ", h, 472 - 32 - 32 - 16)
    return off, ln


def test_damaged_windows_rebuilt_on_first_read(images, oracles, cache_dir,
                                               layerfs_bin):
    """The windows are checked on first use, not at load: damage there
    still reads right (checkpoints rebuilt from the blob, a warning), and
    the file is dropped so the next run indexes the layer again."""
    img = images("basic")
    _ls(img, cache_dir)
    damaged = []
    for idx in glob.glob(os.path.join(cache_dir, "*.idx")):
        off, ln = _windows_section(idx)
        if ln:
            with open(idx, "r+b") as f:
                f.seek(off + ln // 2)
                old = f.read(8)
                f.seek(off + ln // 2)
                f.write(bytes(x ^ 0x5A for x in old))
            damaged.append(idx)
    assert damaged, "no gzip layer with checkpoint windows in 'basic'"
    # metadata is not affected: no warning for a listing
    p = _ls(img, cache_dir)
    assert "windows" not in _err(p), _err(p)
    n = O.layer_count("basic")
    want = oracles("basic", "oci", n)["big.bin"]["sha256"]
    sha, p = O.layerfs_cat_sha(img, "big.bin", None, cache_dir)
    assert p.returncode == 0, _err(p)
    assert sha == want
    assert "checkpoint windows damaged" in _err(p), _err(p)
    assert not any(os.path.exists(d) for d in damaged)
    sha, p = O.layerfs_cat_sha(img, "big.bin", None, cache_dir)
    assert sha == want and "windows" not in _err(p), _err(p)


def _reseal_index(path, edit):
    """Apply edit(bytearray) to an index file and seal it again (cache.c's
    three hashes), so only lf_index_attach()'s checks can tell."""
    with open(path, "rb") as f:
        b = bytearray(f.read())
    edit(b)
    off, ln = _windows_section(path)
    w = off if ln and 472 <= off <= len(b) else len(b)
    sums = [hash64(bytes(b[:440])), hash64(bytes(b[472:w])),
            hash64(bytes(b[w:]))]
    b[440:472] = struct.pack("<QQQQ", *sums, 0)
    with open(path, "wb") as f:
        f.write(b)


@pytest.mark.parametrize("damage", ["dotdot", "absolute", "wh-flag"])
def test_forged_index_entry_rejected(damage, images, cache_dir,
                                     layerfs_bin):
    """An index whose hashes are right but whose entries could not have
    come from the indexer (a path with '..', a leading '/', a whiteout flag
    on an ordinary name) is rebuilt, never merged: the upper dir creates
    files by these names."""
    img = images("basic")
    want = _ls(img, cache_dir).stdout
    target = b"etc/passwd\0"
    forged = 0
    for idx in glob.glob(os.path.join(cache_dir, "*.idx")):
        with open(idx, "rb") as f:
            data = f.read()
        at = data.find(target)
        if at < 0:
            continue

        def edit(b, at=at):
            if damage == "dotdot":
                b[at:at + len(target)] = b"../passwd\0\0"
            elif damage == "absolute":
                b[at:at + len(target)] = b"/etc/passw\0"
            else:
                # ENTRIES is the first section; in each 72-byte record
                # kind is byte 66 and flags byte 67 (then padding): mark
                # every entry a whiteout
                eoff, elen = struct.unpack_from("<QQ", b, 472 - 32 - 32 - 128)
                for r in range(eoff, eoff + elen, 72):
                    assert 1 <= b[r + 66] <= 8
                    b[r + 67] |= 1
        _reseal_index(idx, edit)
        forged += 1
    assert forged, "no index holds etc/passwd"
    p = _ls(img, cache_dir)
    assert p.stdout == want
    assert "inconsistent index contents" in _err(p), _err(p)
