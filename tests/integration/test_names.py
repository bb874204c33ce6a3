# SPDX-License-Identifier: MIT
"""Names are bytes; hardlinks into lower layers; symlinks read 0777.

fixtures/names.py writes an image with one layer per tar dialect (ustar,
PAX with hdrcharset=BINARY where needed, GNU long names) whose names and
link targets use every byte value 0x01-0xff but '/', NFC and NFD forms of
one name as two files, and Latin-1.  Every reader must give the exact
bytes: `ls -R` (text), `ls --json` (`path`, or `path_hex` when the bytes
are not UTF-8), the mount (bytes listdir/readlink), `diff` and `commit`
(read back with python tarfile and umoci).  The oracles are the generator's
own list and `umoci unpack`, walked with bytes paths.
"""

import codecs
import io
import json
import os
import stat
import tarfile

import pytest

import fusehelpers as fh
from fusehelpers import fuse_required  # noqa: F401  (fixture)
import oracle as O
import mkimage
import names as N
from mkimage import Image, Layer, dir, file, hardlink, opaque, symlink, \
    whiteout

TIMEOUT = 120
TAG = "names:" + O.TAG


def _per_byte(err):
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("lf_per_byte", _per_byte)


def lf(*args, check=True):
    p = O.layerfs(*args, timeout=TIMEOUT)
    if check and p.returncode != 0:
        raise AssertionError("layerfs %s: exit %d: %s" % (
            " ".join(map(str, args)), p.returncode,
            p.stderr.decode(errors="replace")))
    return p


def json_name(e, key="path"):
    """The exact bytes of a name in layerfs JSON, checking its shown form."""
    if key + "_hex" in e:
        raw = bytes.fromhex(e[key + "_hex"])
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert e[key] == raw.decode("utf-8", "lf_per_byte")
        return raw
    return e[key].encode("utf-8")


def walk_bytes(root):
    """{relative path bytes: (kind, target, mode, ino)} below root."""
    out = {}
    stack = [b""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        for name in os.listdir(full):
            r = rel + b"/" + name if rel else name
            st = os.lstat(os.path.join(root, r))
            kind = {stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
                    stat.S_IFREG: "file"}[stat.S_IFMT(st.st_mode)]
            target = os.readlink(os.path.join(root, r)) \
                if kind == "symlink" else b""
            out[r] = (kind, target, st.st_mode & 0o7777, st.st_ino)
            if kind == "dir":
                stack.append(r)
    return out


def expected_view(upto=len(N.DIALECTS)):
    """{path: (kind, target)} as a reader shows it: hardlinks are files,
    implicit parents included."""
    out = {}
    for path, (kind, target) in N.expected(upto).items():
        out[path] = ("file", b"") if kind == "hardlink" else (kind, target)
    return out


def link_groups():
    """{hardlink path: target path} of the generated members."""
    return {p: t for p, (k, t) in N.expected().items() if k == "hardlink"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, need_tools, layerfs_bin):
    work = tmp_path_factory.mktemp("names")
    img = str(work / "img")
    mkimage.write_image(N.name_image(), img, "oci")
    cache = str(work / "cache")
    bundle = str(work / "bundle")
    rootfs = O.umoci_unpack(os.fsencode(img).decode(), bundle)
    return {"work": work, "img": img, "cache": cache,
            "umoci": walk_bytes(os.fsencode(rootfs))}


def test_umoci_agrees_with_generator(world):
    """The oracle itself: umoci's extraction has the generated names."""
    got = {p: v[:2] for p, v in world["umoci"].items()}
    assert got == expected_view()


def _ls_order(view, tar_order=True):
    """ls -R order: parents before children, each directory in tar order
    (ls -U), or in byte order (ls with LC_ALL=C, as ls(1) sorts)."""
    order = {}
    for i, d in enumerate(N.DIALECTS):
        for k, (kind, path, _) in enumerate(N.members(d)):
            order.setdefault(path, (i, k) if tar_order else path)
    kids = {}
    for p in view:
        head = p.rpartition(b"/")[0]
        kids.setdefault(head, []).append(p)
    out, stack = [], [b""]
    while stack:
        d = stack.pop()
        for p in sorted(kids.get(d, []), key=lambda p: order[p])[::-1]:
            stack.append(p)
        if d:
            out.append(d)
    return out


def test_ls_text_bytes(world):
    p = lf("ls", "-R", "-U", "--cache", world["cache"], world["img"])
    view = expected_view()
    names = sorted(view)
    assert len(p.stdout) == sum(len(n) + 1 for n in names)
    # every name with its newline, in an order that puts parents first
    assert p.stdout == b"".join(n + b"\n" for n in _ls_order(view))
    # sorted (the default): byte order in the C locale, names are bytes
    p = O.layerfs("ls", "-R", "--cache", world["cache"], world["img"],
                  env={"LC_ALL": "C"}, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"".join(n + b"\n" for n in _ls_order(view, False))


def test_ls_json_bytes(world):
    p = lf("ls", "-lR", "--json", "--cache", world["cache"], world["img"])
    got = {}
    for e in json.loads(p.stdout):
        path = json_name(e, "name")
        assert json_name(e) == b"/" + path  # the absolute form
        target = json_name(e, "target") if e["type"] == "symlink" else b""
        got[path] = (e["type"], target)
        if e["type"] == "symlink":
            assert e["mode"] == 0o777, path
        want_hex = True
        try:
            path.decode("utf-8")
            want_hex = False
        except UnicodeDecodeError:
            pass
        assert ("path_hex" in e) == want_hex == ("name_hex" in e)
    assert got == expected_view()
    # NFC and NFD stay two files, in every dialect
    for d in N.DIALECTS:
        top = b"d_" + d.encode()
        assert top + b"/caf\xc3\xa9" in got and top + b"/cafe\xcc\x81" in got


def test_hardlinks_share_inode(world):
    p = lf("ls", "-lR", "--json", "--cache", world["cache"], world["img"])
    ino = {json_name(e, "name"): e["ino"] for e in json.loads(p.stdout)}
    for link, target in link_groups().items():
        assert ino[link] == ino[target], link


@pytest.mark.usefixtures("fuse_required")
def test_mount_bytes(world):
    mnt = world["work"] / "mnt"
    mnt.mkdir(exist_ok=True)
    proc = fh.mount(world["img"], mnt, cache=world["cache"])
    try:
        got = walk_bytes(os.fsencode(str(mnt)))
    finally:
        fh.umount(mnt)
        fh.cleanup(mnt, proc)
    assert {p: v[:2] for p, v in got.items()} == expected_view()
    for p, (kind, _, mode, _) in got.items():
        if kind == "symlink":
            assert mode == 0o777, p
    for link, target in link_groups().items():
        assert got[link][3] == got[target][3], link
    # and as umoci extracts it: same names, kinds, targets and modes
    assert {p: v[:3] for p, v in got.items()} == \
        {p: v[:3] for p, v in world["umoci"].items()}


def _diff_order(paths):
    return sorted(paths, key=lambda p: p.split(b"/"))


def test_diff_bytes(world):
    """diff --from 1 --to 3 adds the PAX and GNU layers' trees, exactly."""
    added = set(expected_view()) - set(expected_view(1))
    p = lf("diff", "--cache", world["cache"], world["img"], "--from", "1",
           "--to", "3")
    assert p.stdout == b"".join(b"A /" + n + b"\n"
                                for n in _diff_order(added))
    p = lf("diff", "--json", "--cache", world["cache"], world["img"],
           "--from", "1", "--to", "3")
    doc = json.loads(p.stdout)
    got = [json_name(c) for c in doc["changes"]]
    assert [c["kind"] for c in doc["changes"]] == ["A"] * len(got)
    assert got == [b"/" + n for n in _diff_order(added)]


def test_waste_bytes(tmp_path, need_tools, layerfs_bin):
    """waste reports the shipped-but-hidden paths with their bytes."""
    img = str(tmp_path / "img")
    mkimage.write_image(N.waste_image(), img, "oci")
    cache = str(tmp_path / "cache")
    doc = json.loads(lf("waste", "--json", "--cache", cache, img).stdout)
    assert {json_name(t) for t in doc["top"]} == \
        {b"/" + p for p in N.SHADOWED}
    text = lf("waste", "--cache", cache, img).stdout
    for p in N.SHADOWED:
        assert b" /" + p + b"\n" in text


def _tar_members(layout):
    """{name bytes: (kind, target bytes, mode)} of every layer of a layout,
    read with python tarfile (gzip) in raw-bytes mode."""
    with open(os.path.join(layout, "index.json")) as f:
        d = json.load(f)["manifests"][0]["digest"]
    blobs = os.path.join(layout, "blobs", "sha256")
    with open(os.path.join(blobs, d[7:])) as f:
        man = json.load(f)
    out = []
    for layer in man["layers"]:
        members = {}
        with tarfile.open(os.path.join(blobs, layer["digest"][7:]), "r:*",
                          encoding="utf-8", errors="surrogateescape") as tf:
            for ti in tf:
                n = ti.name.encode("utf-8", "surrogateescape")
                kind = "dir" if ti.isdir() else "symlink" if ti.issym() \
                    else "hardlink" if ti.islnk() else "file"
                members[n.rstrip(b"/")] = (
                    kind, ti.linkname.encode("utf-8", "surrogateescape"),
                    ti.mode)
        out.append(members)
    return out


def test_commit_squash_bytes(world):
    """commit --squash writes every name and target byte for byte; python
    tarfile and umoci read them back."""
    out = str(world["work"] / "squash.oci")
    lf("commit", "--squash", "--tag", TAG, "--cache", world["cache"], "-o", out,
       world["img"])
    (members,) = _tar_members(out)
    view = expected_view()
    got = {p: ("file" if k == "hardlink" else k, t if k == "symlink" else b"")
           for p, (k, t, _) in members.items()}
    assert got == view
    for p, (k, t, mode) in members.items():
        if k == "symlink":
            assert mode == 0o777, p
        if k == "hardlink":
            assert members[t][0] == "file"
    bundle = str(world["work"] / "bundle-squash")
    rootfs = O.umoci_unpack(out, bundle, TAG)
    got = walk_bytes(os.fsencode(rootfs))
    assert {p: v[:2] for p, v in got.items()} == view


@pytest.mark.usefixtures("fuse_required")
def test_commit_upper_bytes(world):
    """Names an upper dir holds go into the new layer as they are."""
    upper = world["work"] / "upper"
    up = os.fsencode(str(upper))
    os.makedirs(os.path.join(up, b"new\xe9"))
    want = {b"new\xe9": ("dir", b"")}
    for n in N.short_names() + N.long_names():
        p = b"new\xe9/" + n
        with open(os.path.join(up, p), "wb") as f:
            f.write(n)
        os.symlink(n, os.path.join(up, b"new\xe9/s-" + n))
        want[p] = ("file", b"")
        want[b"new\xe9/s-" + n] = ("symlink", n)
    out = str(world["work"] / "upper.oci")
    lf("commit", "--upper", str(upper), "--tag", TAG, "--cache", world["cache"], "-o",
       out, world["img"])
    top = _tar_members(out)[-1]
    assert {p: (k, t) for p, (k, t, _) in top.items()} == want
    bundle = str(world["work"] / "bundle-upper")
    got = walk_bytes(os.fsencode(O.umoci_unpack(out, bundle, TAG)))
    full = dict(expected_view())
    full.update(want)
    assert {p: v[:2] for p, v in got.items()} == full


def test_long_pax_path(tmp_path, need_tools, layerfs_bin):
    """A 64 KiB PAX path (Latin-1 bytes) is read whole or refused cleanly."""
    img = str(tmp_path / "img")
    mkimage.write_image(Image([Layer(builder=lambda: N.pax_long_path(65536))
                               ]), img, "oci")
    p = lf("ls", "-R", "--json", "--cache", str(tmp_path / "c"), img,
           check=False)
    assert p.returncode in (0, 1), p.stderr
    if p.returncode == 1:
        assert p.stderr.startswith(b"layerfs: ") and b"\n" == p.stderr[-1:]
        return
    paths = [json_name(e, "name") for e in json.loads(p.stdout)]
    tar = N.pax_long_path(65536)
    with tarfile.open(fileobj=io.BytesIO(tar),
                      encoding="utf-8", errors="surrogateescape") as tf:
        (ti,) = tf.getmembers()
    assert paths[-1] == ti.name.encode("utf-8", "surrogateescape")


# -- symlink modes --------------------------------------------------------

def _symlink_mode_image():
    def lay(mode, mtime=mkimage.MTIME):
        op = symlink("s", "target")
        op.mode, op.mtime = mode, mtime
        return Layer([op])
    return Image([lay(0o777), lay(0o644), lay(0o600, mkimage.MTIME + 1)])


def test_symlink_mode_0777(tmp_path, need_tools, layerfs_bin):
    """A symlink is 0777 whatever its header says (umoci and the kernel
    agree), and a new header mode alone is not a change in diff."""
    img = str(tmp_path / "img")
    mkimage.write_image(_symlink_mode_image(), img, "oci")
    cache = str(tmp_path / "cache")
    for n in (1, 2, 3):
        (e,) = json.loads(lf("ls", "-l", "--json", "--layers", n, "--cache",
                             cache, img).stdout)
        assert e["mode"] == 0o777
    assert lf("diff", "--cache", cache, img, "--from", "1", "--to",
              "2").stdout == b""
    # the mtime did change in layer 3: that one is a change
    assert lf("diff", "--cache", cache, img, "--from", "2", "--to",
              "3").stdout == b"C /s\n"
    rootfs = O.umoci_unpack(img, str(tmp_path / "bundle"))
    assert stat.S_IMODE(os.lstat(os.path.join(rootfs, "s")).st_mode) == 0o777


# -- hardlinks into lower layers ------------------------------------------

LOWER_LINKS = {
    # the link precedes the whiteout of its target, as extraction allows
    "link_then_whiteout": Image([
        Layer([file("a", "lower a\n")]),
        Layer([hardlink("b", "a"), whiteout("a")])]),
    # the target's directory is made opaque after the link
    "link_then_opaque": Image([
        Layer([dir("d"), file("d/a", "lower d/a\n")]),
        Layer([hardlink("x", "d/a"), opaque("d")])]),
    # a plain link to a lower file, then its target replaced
    "link_then_replace": Image([
        Layer([file("a", "lower a\n")]),
        Layer([hardlink("b", "a"), file("a", "new a\n")])]),
    # a link to a lower symlink
    "link_to_lower_symlink": Image([
        Layer([symlink("s", "somewhere")]),
        Layer([hardlink("h", "s")])]),
}


@pytest.mark.parametrize("name", sorted(LOWER_LINKS))
def test_hardlink_to_lower_layer(tmp_path, need_tools, layerfs_bin, name):
    img = str(tmp_path / "img")
    mkimage.write_image(LOWER_LINKS[name], img, "oci")
    rootfs = O.umoci_unpack(img, str(tmp_path / "bundle"))
    want = O.walk_rootfs(rootfs)
    got, _ = O.layerfs_ls(img, cache=str(tmp_path / "cache"))
    assert sorted(got) == sorted(want)
    for p, w in want.items():
        g = got[p]
        assert (g["type"], g["nlink"]) == (w["type"], w["nlink"]), p
        if w["type"] == "symlink":
            assert g["target"] == w["target"]
        if w["type"] == "file":
            sha, _ = O.layerfs_cat_sha(img, p, cache=str(tmp_path / "cache"))
            assert sha == w["sha256"], p
