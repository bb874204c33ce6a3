# SPDX-License-Identifier: MIT
"""layerfs on images made by REAL tools (podman build, podman save, skopeo).

tests/fixtures/mkreal.py builds three images FROM scratch with podman
(overlay and vfs storage drivers, RUN steps run by Debian's static busybox)
in a private storage root, and saves each in ten forms (OCI layout, OCI
archive, docker-archive; gzip, zstd, zstd:chunked, uncompressed; written by
podman and by skopeo), plus a multi-image docker-archive.  Its docstring
lists what each layer contains and why.

Nothing expected is hard-coded; every expectation comes from a tool:
  * umoci: `umoci unpack` of skopeo's gzip OCI layout cut to its first N
    layers (mkreal.truncated_layout), walked by oracle.walk_rootfs, for
    every layer prefix; every other form carries the same diff_ids (checked
    below), so the same rootfs is the truth for them;
  * umoci via skopeo: for the docker-archive forms, `skopeo copy
    docker-archive:X oci:Y` then `umoci unpack` (as oracle.py does);
  * the tool's own view: `podman image mount` of the image podman's
    `build --layers` kept for each layer prefix: the kernel overlayfs over
    the storage's layer directories (overlay driver), or the directory the
    storage library extracted (vfs driver);
  * the build recipe (mkreal.Step + the generated context's file sizes)
    and Python's tarfile reading the layers, for `layerfs waste`.
layerfs is looked at through `ls -lR --json` + `cat` and through a
read-only FUSE mount walked with os.walk/lstat/read; both are compared with
oracle.compare (type, mode incl. setuid/sticky, uid, gid, size, mtime of
files and symlinks, symlink target, content sha256, rdev, user.* and
security.capability xattrs, hardlink groups, file nlink).

Needs root, podman (+ runc or crun), skopeo, umoci and busybox-static;
without them everything skips with the reason, and fails when CI=true.
The images are built once per session (about 20 s on 2 cores).
"""

import hashlib
import json
import os
import shutil
import sys
import time

import pytest

import fusehelpers as fh
import oracle as O
from fusehelpers import fuse_required  # noqa: F401  (fixture, see marker)

sys.path.insert(0, O.FIXTURES)
import mkreal as M  # noqa: E402

FORMATS = M.FORMATS
DOCKER_FORMATS = [f for f in FORMATS if f.endswith("docker-archive")]
IMAGES = {i.name: i for i in M.IMAGES}
LAYERS = {i.name: len(i.steps) for i in M.IMAGES}
fuse_mark = fh.fuse_marker()


# -- the session: tools, images, oracles ----------------------------------------

class Real:
    """Everything built once: the images, their umoci oracles, the tool's
    views.  Trees are dicts from oracle.walk_rootfs."""

    def __init__(self, root, stores, desc):
        self.root = root
        self.stores = stores
        self.desc = desc
        self.build_start = min(d["build_start"]
                               for d in desc["images"].values())
        self._umoci = {}
        self._via = {}
        self._views = {}
        self._intermediate = {}

    def path(self, image, fmt):
        return self.desc["images"][image]["formats"][fmt]

    def store(self, image):
        return self.stores[IMAGES[image].driver]

    def oracle_layout(self, image):
        return self.path(image, M.ORACLE_FORMAT)

    def diff_ids(self, image):
        _, config = M.read_layout(self.oracle_layout(image))
        return config["rootfs"]["diff_ids"]

    def history(self, image):
        _, config = M.read_layout(self.oracle_layout(image))
        return config.get("history", [])

    def umoci(self, image, n):
        """umoci rootfs of the first n layers (shared by every image whose
        first n diff_ids are the same)."""
        key = tuple(self.diff_ids(image)[:n])
        if key not in self._umoci:
            work = os.path.join(self.root, "umoci", "%s.L%d" % (image, n))
            os.makedirs(work)
            lay = M.truncated_layout(self.oracle_layout(image),
                                     os.path.join(work, "oci"), n)
            t0 = time.time()
            rootfs = O.umoci_unpack(lay, os.path.join(work, "bundle"))
            self._umoci[key] = O.walk_rootfs(rootfs, t0)
            shutil.rmtree(work, ignore_errors=True)
        return self._umoci[key]

    def umoci_via_skopeo(self, transport):
        """`skopeo copy TRANSPORT oci:DIR:latest`, then umoci unpack."""
        if transport not in self._via:
            work = os.path.join(self.root, "via", str(len(self._via)))
            os.makedirs(work)
            lay = os.path.join(work, "oci")
            p = O.run(["skopeo", "--insecure-policy", "copy", "-q", transport,
                       "oci:%s:%s" % (lay, O.TAG)])
            assert p.returncode == 0, "skopeo copy %s: %s" % (
                transport, p.stderr.decode(errors="replace"))
            t0 = time.time()
            rootfs = O.umoci_unpack(lay, os.path.join(work, "bundle"))
            self._via[transport] = O.walk_rootfs(rootfs, t0)
            shutil.rmtree(work, ignore_errors=True)
        return self._via[transport]

    def intermediate(self, image, n):
        """Id of an image in the store whose layers are the first n of
        `image` (podman build --layers keeps one per step)."""
        st = self.store(image)
        if not self._intermediate.get(st.driver):
            ids = st.podman("images", "-a", "-q", "--no-trunc").stdout.split()
            info = json.loads(st.podman("image", "inspect",
                                        *[i.decode() for i in ids]).stdout)
            self._intermediate[st.driver] = {
                tuple(i["RootFS"]["Layers"]): i["Id"] for i in info}
        return self._intermediate[st.driver].get(
            tuple(self.diff_ids(image)[:n]))

    def tool_view(self, image, n):
        """`podman image mount` of the n-layer image, walked; None when the
        store has no such image."""
        key = (image, n)
        if key not in self._views:
            iid = self.intermediate(image, n)
            if iid is None:
                return None
            st = self.store(image)
            mnt = st.podman("image", "mount", iid).stdout.decode().strip()
            try:
                self._views[key] = O.walk_rootfs(mnt, self.build_start)
            finally:
                st.podman("image", "unmount", iid, check=False)
        return self._views[key]

    def close(self):
        """Unmount and delete the storage roots (tens of MB of layer copies);
        the saved images stay under the session's temp dir for reproducers."""
        for st in self.stores.values():
            st.close()
            if not M._mounts_below(st.root):
                shutil.rmtree(st.root, ignore_errors=True)


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    miss = M.missing_tools()
    if shutil.which("umoci") is None:
        miss.append("umoci")
    if miss:
        fh.skip_or_fail("real-tool images need: " + ", ".join(miss))
    if os.geteuid() != 0:
        fh.skip_or_fail("real-tool images need root (rootful podman: "
                        "overlay storage, chown, mknod, security.capability;"
                        " umoci oracle)")
    root = str(tmp_path_factory.mktemp("realtools"))
    t0 = time.monotonic()
    stores, desc = M.build_all(root, log=lambda m: None)
    r = Real(root, stores, desc)
    r.build_seconds = time.monotonic() - t0
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="session")
def real_lf(real, layerfs_bin):
    return real


# -- helpers ------------------------------------------------------------------

def _cache(session_caches, image, fmt):
    return session_caches("real", image, fmt)


def cat_all(img, n, cache, tree, extra=()):
    """sha256 of `layerfs cat` of every regular file of `tree`, with one
    layerfs run (its output split by the listed sizes); file by file when
    that run fails or its length is off."""
    files = sorted(p for p, e in tree.items() if e.get("type") == "file")
    args = ["cat", "--layers", n, "--cache", cache] + list(extra) + \
        [img] + files
    p = O.layerfs(*args)
    out = {}
    if p.returncode == 0 and len(p.stdout) == sum(tree[f]["size"]
                                                  for f in files):
        at = 0
        for f in files:
            size = tree[f]["size"]
            out[f] = hashlib.sha256(p.stdout[at:at + size]).hexdigest()
            at += size
        return out
    for f in files:
        sha, q = O.layerfs_cat_sha(img, f, n, cache, extra)
        out[f] = sha if sha is not None else "cat failed (%d): %s" % (
            q.returncode, q.stderr.decode(errors="replace").strip())
    return out


def ls_and_compare(expect, img, n, cache, extra=()):
    got, entries = O.layerfs_ls(img, n, cache, extra=extra)
    paths = [e["path"] for e in entries]
    diffs = []
    if len(paths) != len(set(paths)):
        diffs.append("duplicate paths in ls output")
    shas = cat_all(img, n, cache, got, extra)
    diffs += O.compare(expect, got, cat=lambda p: shas.get(p))
    return diffs


def _msg(diffs, what):
    return "%s: %d differences:\n  %s" % (what, len(diffs),
                                          "\n  ".join(diffs[:60]))


def _reproducer(real, image, fmt, n):
    return "reproduce: %s ls -lR --json --layers %d %s" % (
        O.LAYERFS, n, real.path(image, fmt))


# -- 0. the images are what this module claims to test ---------------------------

def _tar_features(members):
    f = set()
    for m in members:
        base = m.name.rstrip("/").rpartition("/")[2]
        if base == ".wh..wh..opq":
            f.add("opaque marker")
        elif base.startswith(".wh."):
            f.add("whiteout")
            if m.linkname:
                f.add("whiteout carrying a link name")
            continue
        if m.islnk():
            f.add("hardlink")
        if m.issym():
            f.add("absolute symlink" if m.linkname.startswith("/")
                  else "relative symlink")
        if m.isreg() and m.mode & 0o4000:
            f.add("setuid")
        if m.isreg() and m.mode & 0o2000:
            f.add("setgid")
        if m.isdir() and m.mode & 0o1000:
            f.add("sticky dir")
        if m.uid == 1000:
            f.add("uid 1000")
        if m.isfifo():
            f.add("fifo")
        if m.ischr():
            f.add("char device")
        if m.isreg() and m.size >= 2 << 20:
            f.add("file >= 2 MiB")
        for k in m.pax_headers:
            if k.startswith("SCHILY.xattr.user."):
                f.add("user xattr")
            if k == "SCHILY.xattr.security.capability":
                f.add("security.capability")
    return f


WANT_FEATURES = {"whiteout", "hardlink", "absolute symlink",
                 "relative symlink", "setuid", "setgid", "sticky dir",
                 "uid 1000", "fifo", "char device", "file >= 2 MiB",
                 "user xattr", "security.capability"}


@pytest.mark.parametrize("image", list(IMAGES))
def test_tool_layers_have_the_claimed_features(real, image):
    """The layer tars podman wrote (read with Python's tarfile from skopeo's
    uncompressed OCI layout) contain what this module claims to cover:
    whiteouts, opaque markers (overlay driver), hardlinks, symlinks, special
    modes, owners, fifo, device, big files, xattrs; one layer per step."""
    lay = real.path(image, "skopeo-oci-plain")
    n = len(real.diff_ids(image))
    assert n == LAYERS[image], "podman made %d layers, the recipe has %d" % (
        n, LAYERS[image])
    found = set()
    for i in range(1, n + 1):
        found |= _tar_features(M.layer_tar_members(lay, i))
    want = set(WANT_FEATURES)
    if IMAGES[image].driver == "overlay":
        want |= {"opaque marker", "whiteout carrying a link name"}
    assert want <= found, "missing: %s" % sorted(want - found)


@pytest.mark.parametrize("image", list(IMAGES))
def test_every_format_carries_the_same_layers(real, image):
    """Each saved form (read with json/tarfile) lists the diff_ids of
    skopeo's OCI layout (so one umoci oracle per prefix holds for all), and
    the layer media types are what the format promises."""
    want = real.diff_ids(image)
    bad = []
    for fmt in FORMATS:
        d = M.describe(fmt, real.path(image, fmt))
        if d["diff_ids"] != want:
            bad.append("%s: diff_ids %r" % (fmt, d["diff_ids"]))
        mts = set(d["media_types"] or [])
        if "zstd" in fmt and mts != {
                "application/vnd.oci.image.layer.v1.tar+zstd"}:
            bad.append("%s: media types %r" % (fmt, mts))
        if fmt.endswith("plain") and mts != {
                "application/vnd.oci.image.layer.v1.tar"}:
            bad.append("%s: media types %r" % (fmt, mts))
    assert not bad, "\n".join(bad)


# -- 1. ls + cat of every prefix of every format == umoci --------------------------

LS_CASES = [pytest.param(image, fmt, n, id="%s-%s-L%d" % (image, fmt, n))
            for image in IMAGES for fmt in FORMATS
            for n in range(1, LAYERS[image] + 1)]


@pytest.mark.parametrize("image,fmt,n", LS_CASES)
def test_ls_cat_vs_umoci_prefix(real_lf, session_caches, image, fmt, n):
    """`layerfs ls -lR --json --layers N` + `layerfs cat` of the form `fmt`
    == `umoci unpack` of skopeo's OCI layout of the same image cut to N
    layers."""
    expect = real_lf.umoci(image, n)
    img = real_lf.path(image, fmt)
    diffs = ls_and_compare(expect, img, n, _cache(session_caches, image,
                                                  fmt))
    assert not diffs, _msg(diffs, _reproducer(real_lf, image, fmt, n))


@pytest.mark.parametrize("image,fmt", [
    pytest.param(i, f, id="%s-%s" % (i, f))
    for i in IMAGES for f in DOCKER_FORMATS])
def test_docker_archive_vs_umoci_via_skopeo(real_lf, session_caches, image,
                                            fmt):
    """`layerfs ls` + `cat` of a docker-archive written by podman or skopeo
    == `umoci unpack` of `skopeo copy docker-archive:THAT-FILE oci:` (the
    archive itself read by an independent tool)."""
    img = real_lf.path(image, fmt)
    expect = real_lf.umoci_via_skopeo("docker-archive:" + img)
    n = LAYERS[image]
    diffs = ls_and_compare(expect, img, n, _cache(session_caches, image,
                                                  fmt))
    assert not diffs, _msg(diffs, _reproducer(real_lf, image, fmt, n))


@pytest.mark.parametrize("image", ["rt-main", "rt-child"])
def test_multi_image_archive_ref_vs_umoci_via_skopeo(real_lf, session_caches,
                                                     image):
    """`layerfs ls/cat --ref localhost/IMAGE:latest` of podman's two-image
    docker-archive (`podman save -m`, shared layers) == umoci unpack of
    `skopeo copy docker-archive:MULTI:localhost/IMAGE:latest oci:`."""
    multi = real_lf.desc["multi"]["path"]
    ref = M.image_ref(image)
    expect = real_lf.umoci_via_skopeo("docker-archive:%s:%s" % (multi, ref))
    n = LAYERS[image]
    diffs = ls_and_compare(expect, multi, n,
                           _cache(session_caches, "multi", "multi"),
                           extra=("--ref", ref))
    assert not diffs, _msg(diffs, "reproduce: %s ls -lR --json --ref %s %s"
                           % (O.LAYERFS, ref, multi))


@pytest.mark.parametrize("fmt", [f for f in FORMATS if "zstd" in f] +
                         ["skopeo-oci"])
def test_first_run_with_no_cache_dir_yet(real_lf, session_caches, tmp_path,
                                         fmt):
    """`layerfs ls -lR --json` on a machine where the cache directory does
    not exist yet ($XDG_CACHE_HOME/layerfs missing, as on a first run) ==
    the same listing with the session's existing cache dir (the zstd forms
    keep a decompressed copy in the cache directory)."""
    image = "rt-main"
    img = real_lf.path(image, fmt)
    want, _ = O.layerfs_ls(img, None, _cache(session_caches, image, fmt))
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    p = O.layerfs("ls", "-lR", "--json", img,
                  env={"XDG_CACHE_HOME": str(xdg)})
    assert p.returncode == 0, "reproduce: XDG_CACHE_HOME=%s %s ls %s\n%s" % (
        xdg, O.LAYERFS, img, p.stderr.decode(errors="replace"))
    got = {e["path"]: e for e in O.listed(json.loads(p.stdout))}
    assert got == want


# -- 2. ls + cat == the tool's own view ------------------------------------------

def _visible_nlink(tree):
    """Replace st_nlink of non-directories by the number of names of the
    same inode in the tree.  The kernel overlayfs reports the nlink of the
    underlying layer inode, which still counts names that an upper layer
    whited out (overlayfs.rst: hardlinks in lower layers); design.md rule 3.7
    and umoci count the names that are visible."""
    count = {}
    for e in tree.values():
        if e["type"] != "dir":
            count[e["ino"]] = count.get(e["ino"], 0) + 1
    out = {}
    for p, e in tree.items():
        e = dict(e)
        if e["type"] != "dir":
            e["raw_nlink"] = e["nlink"]
            e["nlink"] = count[e["ino"]]
        out[p] = e
    return out


TOOL_CASES = [pytest.param(image, n, id="%s-L%d" % (image, n))
              for image in IMAGES for n in range(1, LAYERS[image] + 1)]


@pytest.mark.parametrize("image,n", TOOL_CASES)
def test_ls_cat_vs_podman_image_mount(real_lf, session_caches, image, n):
    """`layerfs ls -lR --json --layers N` + `cat` of podman's OCI archive ==
    `podman image mount` of the N-layer image podman's build kept (kernel
    overlayfs over the storage's layers for the overlay driver, the
    storage's extracted directory for vfs).  Directory mtimes written
    during the build and file nlink (see _visible_nlink) are not compared
    for the kernel overlay."""
    view = real_lf.tool_view(image, n)
    if view is None:
        pytest.fail("podman kept no %d-layer image for %s (podman build "
                    "--layers should keep one per step)" % (n, image))
    if IMAGES[image].driver == "overlay":
        view = _visible_nlink(view)
    fmt = "podman-oci-archive"
    img = real_lf.path(image, fmt)
    diffs = ls_and_compare(view, img, n, _cache(session_caches, image, fmt))
    assert not diffs, _msg(diffs, _reproducer(real_lf, image, fmt, n))


# -- 3. a FUSE mount == umoci ------------------------------------------------------

MOUNT_CASES = [pytest.param(image, "podman-oci-archive", n,
                            id="%s-podman-oci-archive-L%d" % (image, n))
               for image in IMAGES for n in range(1, LAYERS[image] + 1)] + \
              [pytest.param(image, fmt, LAYERS[image],
                            id="%s-%s-L%d" % (image, fmt, LAYERS[image]))
               for image in IMAGES for fmt in FORMATS
               if fmt != "podman-oci-archive"]


@fuse_mark
@pytest.mark.parametrize("image,fmt,n", MOUNT_CASES)
def test_fuse_mount_vs_umoci_prefix(real_lf, session_caches, tmp_path, image,
                                    fmt, n):
    """`layerfs mount --layers N` of the form `fmt`, walked with
    os.walk/lstat/readlink/getxattr/read == `umoci unpack` of the N-layer
    image; also dir st_nlink = 2 + subdirs and st_ino == `ls --json` ino."""
    expect = real_lf.umoci(image, n)
    img = real_lf.path(image, fmt)
    cache = _cache(session_caches, image, fmt)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = None
    try:
        proc = fh.mount(img, mnt, "--layers", n, cache=cache)
        diffs = O.mount_diffs(expect, mnt, img, n, cache)
    finally:
        fh.cleanup(str(mnt), proc)
    assert not diffs, _msg(diffs, "reproduce: %s mount --layers %d %s MNT" % (
        O.LAYERFS, n, img))


# -- 4. layerfs layers / waste == what the build did -------------------------------

@pytest.mark.parametrize("image,fmt", [
    pytest.param(i, f, id="%s-%s" % (i, f)) for i in IMAGES for f in FORMATS])
def test_layers_json_vs_saved_manifest(real_lf, session_caches, image, fmt):
    """`layerfs layers --json`: digest, diff_id, media type and created_by of
    each layer == the manifest and config the tool saved (read with
    json/tarfile); `added` == the regular-file bytes of the layer tar
    (Python's tarfile)."""
    d = M.describe(fmt, real_lf.path(image, fmt))
    p = O.layerfs("layers", "--json", "--cache",
                  _cache(session_caches, image, fmt),
                  real_lf.path(image, fmt))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    got = json.loads(p.stdout)["layers"]
    hist = [h.get("created_by") for h in d["history"]
            if not h.get("empty_layer")]
    lay = real_lf.path(image, "skopeo-oci-plain")
    bad = []
    assert len(got) == len(d["diff_ids"])
    for i, l in enumerate(got):
        want = {"index": i + 1, "diff_id": d["diff_ids"][i],
                "created_by": hist[i],
                "added": sum(m.size for m in M.layer_tar_members(lay, i + 1)
                             if m.isreg())}
        if d["digests"] is not None:
            want["digest"] = d["digests"][i]
            want["media_type"] = d["media_types"][i]
        have = {k: l.get(k) for k in want}
        if have != want:
            bad.append("layer %d: layerfs %r, saved %r" % (i + 1, have, want))
    assert not bad, "\n".join(bad)


def _recipe_waste(image, layer_of):
    """Per layer {overwritten, deleted} from the build recipe: the COPY
    steps' files (sizes of the generated context) and the paths each later
    step deletes or overwrites.  A hardlink group's bytes are hidden when its
    last visible name is (waste.h: bytes reachable through another link are
    hidden by nothing)."""
    steps = IMAGES[image].steps
    sizes = M.context_sizes()
    links = {}
    for key, (gen, prefix) in M.CONTEXTS.items():
        for cf in gen():
            if cf.kind == "hardlink":
                p = (prefix.rstrip("/") + "/" + cf.path).lstrip("/")
                t = (prefix.rstrip("/") + "/" + cf.target).lstrip("/")
                links.setdefault(t, {t}).add(p)
    exp = {l: {"overwritten": 0, "deleted": 0} for l in layer_of}

    def hits(name, paths):
        return any(name == q or name.startswith(q + "/") for q in paths)
    for i, s in enumerate(steps):
        if not s.copies:
            continue
        for path, size in sizes[s.copies].items():
            names = links.get(path, {path})
            hidden, fate = set(), None
            for t in steps[i + 1:]:
                for nm in names - hidden:
                    if hits(nm, t.deletes):
                        hidden.add(nm)
                        fate = "deleted"
                    elif nm in t.overwrites:
                        hidden.add(nm)
                        fate = "overwritten"
                if hidden == names:
                    exp[layer_of[i]][fate] += size
                    break
    return exp


@pytest.mark.parametrize("image", list(IMAGES))
def test_waste_vs_build_recipe(real_lf, session_caches, image):
    """`layerfs waste --json` of skopeo's OCI layout: per layer, overwritten
    and deleted bytes == the recipe's (sizes of the generated build context,
    the steps' rm/overwrites), `added` == the regular-file bytes of the
    layer tar (Python's tarfile); /data/big1.bin is listed as shipped by the
    base COPY and hidden by the `RUN rm` layer with its size; the fake
    private key is reported as a hidden secret of that layer."""
    steps = IMAGES[image].steps
    layer_of = M.step_layers(real_lf.history(image), steps)
    assert layer_of == list(range(1, len(steps) + 1)), layer_of
    img = real_lf.path(image, M.ORACLE_FORMAT)
    p = O.layerfs("waste", "--json", "--top", "100", "--cache",
                  _cache(session_caches, image, M.ORACLE_FORMAT), img)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    doc = json.loads(p.stdout)
    exp = _recipe_waste(image, layer_of)
    lay = real_lf.path(image, "skopeo-oci-plain")
    bad = []
    for l in doc["layers"]:
        want = dict(exp[l["index"]], index=l["index"],
                    added=sum(m.size for m in
                              M.layer_tar_members(lay, l["index"])
                              if m.isreg()))
        have = {k: l.get(k) for k in want}
        if have != want:
            bad.append("layer %d: layerfs %r, recipe %r" % (
                l["index"], have, want))
    rm_layer = layer_of[[s.marker for s in steps].index(": step=delete")]
    big1 = M.context_sizes()["base"]["data/big1.bin"]
    top = {t["path"]: t for t in doc["top"]}
    want_top = {"path": "/data/big1.bin", "cumulative": big1,
                "layers": [1, rm_layer], "hidden_by": rm_layer}
    if top.get("/data/big1.bin") != want_top:
        bad.append("top /data/big1.bin: layerfs %r, recipe %r" % (
            top.get("/data/big1.bin"), want_top))
    key = M.context_sizes()["base"]["etc/secret.key"]
    secrets = [{k: s.get(k) for k in ("path", "layer", "hidden_by", "size")}
               for s in doc["secrets"]]
    want_secret = {"path": "/etc/secret.key", "layer": 1,
                   "hidden_by": rm_layer, "size": key}
    if want_secret not in secrets:
        bad.append("secrets: layerfs %r, want %r among them" % (
            secrets, want_secret))
    assert not bad, "reproduce: %s waste --json %s\n%s" % (
        O.LAYERFS, img, "\n".join(bad))
