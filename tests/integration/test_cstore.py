# SPDX-License-Identifier: MIT
"""containers-storage:[STORE-SPEC]IMAGE: podman's local store as an image.

tests/fixtures/cstore.py builds mkreal's rt-main (6 layers: whiteouts, an
opaque directory, file <-> directory swaps, hardlinks, symlinks, xattrs, a
fifo and a device, metadata-only changes) with `podman build --layers` in a
private store, once with the overlay driver and once with vfs.  layerfs
then reads the store itself (images.json, layers.json, the config's "big
data" file and the layer directories), podman not running.

The oracle is podman's own view: `podman image mount` of the image podman
kept for each build step, i.e. the kernel overlayfs over the store's layer
directories (overlay) or the store's extracted root (vfs).  For EVERY layer
prefix, `layerfs ls -lR --json --layers N` + `cat` of rt-main must equal
that view (oracle.compare: type, mode, owner, mtime, size, bytes, link
target, xattrs, hardlink groups, nlink; dir mtimes written during the build
and, for the kernel overlay, file nlink are not comparable, see
test_realtools.py).

Hostile stores are made by hand (fake_store): a malformed images.json,
symlinks out of the store, a FIFO, a parent cycle in layers.json, bad IDs,
a config that is not the image's, a malformed storage.conf; each must fail
with a clear message, under a timeout, without reading the canary.

Needs root, podman (+ runc or crun) and busybox-static for the built
stores (skipped off CI without them; a failure with CI=true).
"""

import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile

import pytest

import fusehelpers as fh
import oracle as O

sys.path.insert(0, O.FIXTURES)
import cstore as CS  # noqa: E402
import mkreal as M  # noqa: E402
from test_mount_ro import _as_user, lftest_user  # noqa: E402,F401

LAYERS = len(next(i for i in M.IMAGES if i.name == CS.IMAGE).steps)
TIMEOUT = 60
fuse_mark = fh.fuse_marker()


@pytest.fixture(scope="session")
def stores(tmp_path_factory):
    miss = M.missing_tools()
    if miss:
        fh.skip_or_fail("containers-storage stores need: " + ", ".join(miss))
    if os.geteuid() != 0:
        fh.skip_or_fail("containers-storage stores need root (rootful "
                        "podman: overlay storage, chown, mknod)")
    root = str(tmp_path_factory.mktemp("cstore"))
    built = {}
    try:
        for d in CS.DRIVERS:
            built[d] = CS.build(root, d)
        yield built
    finally:
        for b in built.values():
            b.store.close()
            if not M._mounts_below(b.store.root):
                shutil.rmtree(b.store.root, ignore_errors=True)


def lf(*args, env=None):
    return O.layerfs(*args, env=env, timeout=TIMEOUT)


def podman_view(b, n):
    """`podman image mount` of the n-layer image of the build, walked."""
    iid = b.prefix_image(n)
    assert iid, "podman kept no %d-layer image" % n
    mnt = b.store.podman("image", "mount", iid).stdout.decode().strip()
    try:
        view = O.walk_rootfs(mnt, b.build_start)
    finally:
        b.store.podman("image", "unmount", iid, check=False)
    if b.driver == "overlay":
        view = visible_nlink(view)
    return view


def visible_nlink(tree):
    """The kernel overlayfs reports a lower inode's own nlink, which counts
    names an upper layer whited out; layerfs (and umoci) count the visible
    names (see test_realtools._visible_nlink)."""
    count = {}
    for e in tree.values():
        if e["type"] != "dir":
            count[e["ino"]] = count.get(e["ino"], 0) + 1
    out = {}
    for p, e in tree.items():
        e = dict(e)
        if e["type"] != "dir":
            e["nlink"] = count[e["ino"]]
        out[p] = e
    return out


def cat_shas(img, n, tree, env=None):
    """sha256 of `layerfs cat` of every regular file of tree, in one run."""
    files = sorted(p for p, e in tree.items() if e.get("type") == "file")
    p = lf("cat", "--layers", n, "--no-cache", img, *files, env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out, at = {}, 0
    for f in files:
        out[f] = hashlib.sha256(p.stdout[at:at + tree[f]["size"]]).hexdigest()
        at += tree[f]["size"]
    assert at == len(p.stdout)
    return out


def ls_tree(img, n=None, env=None):
    args = ["ls", "-lR", "--json", "--no-cache"]
    if n is not None:
        args += ["--layers", str(n)]
    p = lf(*(args + [img]), env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return {e["path"]: e for e in O.listed(json.loads(p.stdout))}


def compare_with(view, img, n, env=None):
    got = ls_tree(img, n, env)
    shas = cat_shas(img, n, got, env)
    return O.compare(view, got, cat=lambda p: shas.get(p))


# -- every prefix == podman's view ---------------------------------------------

PREFIX_CASES = [pytest.param(d, n, id="%s-L%d" % (d, n))
                for d in CS.DRIVERS for n in range(1, LAYERS + 1)]


@pytest.mark.parametrize("driver,n", PREFIX_CASES)
def test_prefix_equals_podman_image_mount(stores, driver, n):
    b = stores[driver]
    assert len(b.diff_ids) == LAYERS
    view = podman_view(b, n)
    diffs = compare_with(view, b.spec(), n)
    assert not diffs, "%s --layers %d: %d differences:\n  %s" % (
        b.spec(), n, len(diffs), "\n  ".join(diffs[:60]))


def test_the_images_have_what_the_tests_claim(stores):
    """The overlay store keeps kernel whiteouts (0/0 char devices) and an
    opaque directory in its diff dirs; vfs keeps whole root file systems.
    Otherwise the prefix tests would not test those forms."""
    ov = stores["overlay"].store.graph + "/overlay"
    chr00 = opaque = 0
    for top, dirs, files in os.walk(ov):
        if "/diff" not in top + "/":
            continue
        for n in files:
            st = os.lstat(os.path.join(top, n))
            if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0:
                chr00 += 1
        for n in dirs:
            try:
                if os.getxattr(os.path.join(top, n), "trusted.overlay.opaque",
                               follow_symlinks=False) == b"y":
                    opaque += 1
            except OSError:
                pass
    assert chr00 >= 3 and opaque >= 1, (chr00, opaque)
    vfs = stores["vfs"].store.graph + "/vfs/dir"
    tops = [set(os.listdir(os.path.join(vfs, d))) for d in os.listdir(vfs)]
    assert len(tops) == LAYERS and all("bin" in t for t in tops)


@fuse_mark
@pytest.mark.parametrize("driver", CS.DRIVERS)
def test_fuse_mount_equals_podman_image_mount(stores, driver, tmp_path):
    b = stores[driver]
    view = podman_view(b, LAYERS)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = None
    try:
        proc = fh.mount(b.spec(), mnt, "--no-cache")
        got = O.walk_rootfs(str(mnt))
        diffs = O.compare(view, got, cat=lambda p: got[p].get("sha256"))
    finally:
        fh.cleanup(str(mnt), proc)
    assert not diffs, "\n  ".join(diffs[:60])


# -- naming the image and the store ---------------------------------------------

def _digest(b):
    return b.info["Digest"]


@pytest.mark.parametrize("form", [
    "name", "short", "short-tag", "docker-io", "id", "short-id", "at-id",
    "name-at-id", "digest"])
def test_image_forms(stores, form):
    """Every way containers-transports(5) and podman name an image picks
    the same image as localhost/rt-main:latest."""
    b = stores["overlay"]
    name = {"name": "localhost/rt-main:latest",
            "short": "rt-main",
            "short-tag": "rt-main:latest",
            "docker-io": None,
            "id": b.id,
            "short-id": b.id[:12],
            "at-id": "@" + b.id[:12],
            "name-at-id": "localhost/rt-main:latest@" + b.id,
            "digest": "localhost/rt-main@" + _digest(b)}[form]
    if name is None:
        # a docker.io/library/ name, tagged by the test
        b.store.podman("tag", b.id, "docker.io/library/lfprobe:v1")
        try:
            want = ls_tree(b.spec())
            assert ls_tree(b.spec("lfprobe:v1")) == want
            assert ls_tree(b.spec("docker.io/library/lfprobe:v1")) == want
            assert ls_tree(b.spec("library/lfprobe:v1")) == want
        finally:
            b.store.podman("untag", b.id, "docker.io/library/lfprobe:v1")
        return
    assert ls_tree(b.spec(name)) == ls_tree(b.spec())


def test_prefix_image_by_id(stores):
    """An intermediate image named by its ID is the same tree as the
    --layers prefix of the final image."""
    b = stores["vfs"]
    iid = b.prefix_image(3)
    assert ls_tree(b.spec(iid)) == ls_tree(b.spec(), 3)


@pytest.mark.parametrize("parts", ["root", "driver-root"])
def test_store_spec_forms(stores, parts):
    for d, b in stores.items():
        assert ls_tree(b.spec(parts=parts)) == ls_tree(b.spec()), d


def test_storage_conf_discovery(stores, tmp_path):
    """No STORE-SPEC: CONTAINERS_STORAGE_CONF names the store; the TOML
    around the keys (comments, other tables, arrays over lines, quoted
    escapes) is skipped."""
    b = stores["vfs"]
    conf = tmp_path / "storage.conf"
    conf.write_text(
        "# a comment\n"
        "[storage]\n"
        "driver = \"vfs\"  # trailing comment\n"
        "runroot = '%s'\n"
        "graphroot = \"%s\"\n"
        "\n[storage.options]\n"
        "additionalimagestores = [\n  \"/nonexistent\", # c\n  '/x]',\n]\n"
        "pull_options = {enable_partial_images = \"false\", x = 'y'}\n"
        "[storage.options.overlay]\nmountopt = \"nodev\"\n"
        "size = 10\n" % (b.store.run,
                         b.store.graph.replace("/", "\\u002f", 1)))
    env = {"CONTAINERS_STORAGE_CONF": str(conf)}
    want = ls_tree(b.spec())
    assert ls_tree("containers-storage:localhost/rt-main", env=env) == want
    # the driver detected when neither the spec nor the file says
    conf.write_text("[storage]\ngraphroot = \"%s\"\n" % b.store.graph)
    assert ls_tree("containers-storage:rt-main", env=env) == want
    # a bracketed spec overrides the file
    ov = stores["overlay"]
    assert ls_tree("containers-storage:[overlay@%s]rt-main" % ov.store.graph,
                   env=env) == ls_tree(ov.spec())


def test_layers_and_history(stores):
    """`layerfs layers --json` lists the image's layers with the config's
    history, like for any image; --layers -1 drops the top one."""
    for d, b in stores.items():
        p = lf("layers", "--json", "--no-cache", b.spec())
        assert p.returncode == 0, p.stderr.decode()
        doc = json.loads(p.stdout)
        layers = doc["layers"] if isinstance(doc, dict) else doc
        layers = [x for x in layers if x.get("index")]
        assert len(layers) == LAYERS, d
        made = [h["created_by"] for h in b.info["History"]
                if not h.get("empty_layer")]
        assert [x.get("created_by") for x in layers] == made, d
        assert [x["diff_id"] for x in layers] == b.diff_ids, d
        assert doc["format"] == "containers-storage"
        assert doc["config_digest"] == "sha256:" + b.id
        assert ls_tree(b.spec(), -1) == ls_tree(b.spec(), LAYERS - 1)


# -- the CoW upper on top -------------------------------------------------------

@fuse_mark
def test_upper_on_a_store_image(stores, tmp_path):
    """mount --upper: writes land in the upper dir, read back through the
    mount, and never in the store."""
    b = stores["overlay"]
    before = _store_digest(b.store.graph)
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    upper.mkdir()
    proc = None
    try:
        proc = fh.mount(b.spec(), mnt, "--no-cache", "--upper", upper)
        (mnt / "etc" / "motd").write_bytes(b"rewritten\n")
        (mnt / "new.txt").write_bytes(b"new file\n")
        os.unlink(mnt / "etc" / "passwd")
        assert (mnt / "etc" / "motd").read_bytes() == b"rewritten\n"
        assert (mnt / "new.txt").read_bytes() == b"new file\n"
        assert not os.path.lexists(mnt / "etc" / "passwd")
    finally:
        fh.cleanup(str(mnt), proc)
    assert (upper / "new.txt").read_bytes() == b"new file\n"
    assert _store_digest(b.store.graph) == before


def _store_digest(root):
    """Names, sizes and mtimes of everything in the store's layer dirs."""
    h = hashlib.sha256()
    for top, dirs, files in sorted(os.walk(os.path.join(root, "overlay"))):
        dirs.sort()
        if "/merged" in top or "/work" in top:
            continue
        for n in sorted(files):
            st = os.lstat(os.path.join(top, n))
            h.update(("%s/%s %d %d\n" % (top, n, st.st_size,
                                         st.st_mtime_ns)).encode())
    return h.hexdigest()


# -- errors -----------------------------------------------------------------------

def expect_error(arg, *needles, env=None):
    p = lf("ls", "--no-cache", arg, env=env)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, (p.returncode, err)
    assert err.startswith("layerfs: "), err
    for n in needles:
        assert n in err, (n, err)
    assert p.stdout == b""
    return err


def test_no_such_image(stores):
    b = stores["overlay"]
    expect_error(b.spec("nosuch:v9"), "no image 'nosuch:v9'", b.store.graph)
    expect_error(b.spec("@abcdef"), "abcdef")


def test_unparsable_references():
    expect_error("containers-storage:[]x", "a store is written")
    expect_error("containers-storage:[@/x]img", "empty driver")
    expect_error("containers-storage:[rel/path]img", "must be absolute")
    expect_error("containers-storage:[vfs@/x]", "no image after")
    expect_error("containers-storage:[btrfs@/tmp]img",
                 "storage driver 'btrfs' is not supported")


# A hand-made store: what podman writes, minus what layerfs does not read.

def fake_store(root, driver="overlay", files=(("a.txt", b"A\n"),),
               nlayers=1):
    """A store of one image, `localhost/fake:latest`, of nlayers layers
    (each holding `files`); returns (graphroot, image id, layer ids)."""
    g = os.path.join(root, "graph")
    ids, diff_ids, recs = [], [], []
    for i in range(nlayers):
        lid = hashlib.sha256(b"layer %d" % i).hexdigest()
        d = os.path.join(g, "overlay", lid, "diff") if driver == "overlay" \
            else os.path.join(g, "vfs", "dir", lid)
        os.makedirs(d)
        for name, data in files:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        did = "sha256:" + hashlib.sha256(b"diff %d" % i).hexdigest()
        rec = {"id": lid, "diff-digest": did, "diff-size": 10}
        if ids:
            rec["parent"] = ids[-1]
        ids.append(lid)
        diff_ids.append(did)
        recs.append(rec)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "step %d" % i} for i in range(nlayers)],
    }).encode()
    iid = hashlib.sha256(config).hexdigest()
    idir = os.path.join(g, driver + "-images", iid)
    os.makedirs(idir)
    key = base64.b64encode(("sha256:" + iid).encode()).decode()
    with open(os.path.join(idir, "=" + key), "wb") as f:
        f.write(config)
    with open(os.path.join(g, driver + "-images", "images.json"), "w") as f:
        json.dump([{"id": iid, "names": ["localhost/fake:latest"],
                    "layer": ids[-1]}], f)
    os.makedirs(os.path.join(g, driver + "-layers"))
    with open(os.path.join(g, driver + "-layers", "layers.json"), "w") as f:
        json.dump(recs, f)
    return g, iid, ids


def ref(g, image="fake", driver="overlay"):
    return "containers-storage:[%s@%s]%s" % (driver, g, image)


@pytest.mark.parametrize("driver", CS.DRIVERS)
def test_fake_store_reads(tmp_path, driver):
    """The hand-made store itself reads (so the hostile variants below fail
    for the reason they name)."""
    g, iid, _ = fake_store(str(tmp_path), driver, nlayers=2)
    p = lf("cat", "--no-cache", ref(g, driver=driver), "a.txt")
    assert p.returncode == 0 and p.stdout == b"A\n", p.stderr
    p = lf("cat", "--no-cache", ref(g, iid[:5], driver), "a.txt")
    assert p.returncode == 0 and p.stdout == b"A\n", p.stderr


def _canary(tmp_path):
    c = tmp_path / "outside"
    c.mkdir()
    (c / "images.json").write_text("[]")
    (c / "secret").write_bytes(b"CANARY-SECRET\n")
    return c


def test_malformed_images_json(tmp_path):
    g, _, _ = fake_store(str(tmp_path))
    with open(os.path.join(g, "overlay-images", "images.json"), "w") as f:
        f.write('[{"id": "x",\n "names": [}')
    expect_error(ref(g), "images.json: invalid JSON at line 2")
    with open(os.path.join(g, "overlay-images", "images.json"), "w") as f:
        f.write('{"id": 1}')
    expect_error(ref(g), "images.json: not a JSON array")


def test_symlinks_out_of_the_store_are_refused(tmp_path):
    c = _canary(tmp_path)
    g, _, ids = fake_store(str(tmp_path))
    p = os.path.join(g, "overlay-images", "images.json")
    os.unlink(p)
    os.symlink(str(c / "images.json"), p)
    expect_error(ref(g), "images.json: a symbolic link")
    # a layer directory that leads out
    g2, _, ids = fake_store(str(tmp_path / "two"))
    d = os.path.join(g2, "overlay", ids[0], "diff")
    shutil.rmtree(d)
    os.symlink(str(c), d)
    err = expect_error(ref(g2), "diff")
    assert "symbolic link" in err
    # a store directory that leads out
    g3, _, _ = fake_store(str(tmp_path / "three"))
    ld = os.path.join(g3, "overlay-layers")
    shutil.move(ld, str(tmp_path / "three" / "moved"))
    os.symlink(str(tmp_path / "three" / "moved"), ld)
    expect_error(ref(g3), "overlay-layers/layers.json")


def test_fifo_images_json_no_hang(tmp_path):
    g, _, _ = fake_store(str(tmp_path))
    p = os.path.join(g, "overlay-images", "images.json")
    os.unlink(p)
    os.mkfifo(p)
    expect_error(ref(g), "images.json: not a regular file")


def test_parent_cycle(tmp_path):
    g, _, ids = fake_store(str(tmp_path), nlayers=3)
    lj = os.path.join(g, "overlay-layers", "layers.json")
    recs = json.load(open(lj))
    recs[0]["parent"] = ids[2]          # bottom -> top: a loop
    json.dump(recs, open(lj, "w"))
    expect_error(ref(g), "loops")


def test_missing_parent_and_bad_ids(tmp_path):
    g, _, ids = fake_store(str(tmp_path), nlayers=2)
    lj = os.path.join(g, "overlay-layers", "layers.json")
    recs = json.load(open(lj))
    recs[1]["parent"] = "0" * 64
    json.dump(recs, open(lj, "w"))
    expect_error(ref(g), "is not in")
    recs[1]["parent"] = "../../../etc"
    recs.append({"id": "../../../etc"})
    json.dump(recs, open(lj, "w"))
    expect_error(ref(g), "bad layer ID")


def test_config_not_the_images(tmp_path):
    g, iid, _ = fake_store(str(tmp_path))
    idir = os.path.join(g, "overlay-images", iid)
    (f,) = os.listdir(idir)
    with open(os.path.join(idir, f), "ab") as fh_:
        fh_.write(b" ")
    expect_error(ref(g), "does not match its digest")


def test_diff_digest_disagrees_with_config(tmp_path):
    g, _, _ = fake_store(str(tmp_path))
    lj = os.path.join(g, "overlay-layers", "layers.json")
    recs = json.load(open(lj))
    recs[0]["diff-digest"] = "sha256:" + "1" * 64
    json.dump(recs, open(lj, "w"))
    expect_error(ref(g), "the config says")


def test_malformed_storage_conf(tmp_path):
    conf = tmp_path / "storage.conf"
    for text, needle in [
            ("[storage]\ndriver = \"vfs\"\ngraphroot = /x\n", ":3: graphroot "
             "must be a string"),
            ("[storage]\n\ngraphroot = \"/x\n", ":3: unterminated string"),
            ("[storage\n", ":1: bad table header"),
            ("[storage]\nx = [1, 2\n", ":2: unterminated array"),
            ("[storage]\ndriver = \"a\" junk\n", ":2: garbage after")]:
        conf.write_text(text)
        expect_error("containers-storage:img", str(conf) + needle,
                     env={"CONTAINERS_STORAGE_CONF": str(conf)})
    expect_error("containers-storage:img", "does not exist",
                 env={"CONTAINERS_STORAGE_CONF": str(tmp_path / "none")})


def test_commit(stores, tmp_path):
    """commit --squash turns a store image into an OCI layout with the
    same tree; a commit that copies layers says it cannot (no blobs)."""
    b = stores["vfs"]
    out = tmp_path / "sq"
    p = lf("commit", "--no-cache", b.spec(), "--squash", "-o", out)
    assert p.returncode == 0, p.stderr.decode()
    want = ls_tree(b.spec())
    got = ls_tree(str(out))
    strip = ("ino", "layer")
    assert {k: {f: v for f, v in e.items() if f not in strip}
            for k, e in got.items()} == \
        {k: {f: v for f, v in e.items() if f not in strip}
         for k, e in want.items()}
    up = tmp_path / "up"
    up.mkdir()
    (up / "x").write_bytes(b"x")
    p = lf("commit", "--no-cache", b.spec(), "--upper", up, "-o",
           tmp_path / "c")
    assert p.returncode == 1
    assert b"is a directory of a containers-storage store" in p.stderr


# -- rootless store paths -----------------------------------------------------------

@pytest.fixture
def rootless_home():
    """A world-readable home for lftest-user (pytest's temp dirs are 0700),
    removed afterwards."""
    top = tempfile.mkdtemp(prefix="lftest-cs-")
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def _chown_tree(top, pw):
    for r, ds, fs in os.walk(top):
        for x in ds + fs:
            os.lchown(os.path.join(r, x), pw.pw_uid, pw.pw_gid)
    os.lchown(top, pw.pw_uid, pw.pw_gid)


def test_rootless_store_paths(lftest_user, rootless_home):  # noqa: F811
    """As a normal user: the default ~/.local/share/containers/storage,
    then ~/.config/containers/storage.conf's graphroot, then
    rootless_storage_path with $HOME expanded (root's graphroot in the
    system file is never a user's)."""
    pw = lftest_user
    home = rootless_home
    g, _, _ = fake_store(os.path.join(home, ".local/share/containers"))
    os.rename(g, os.path.join(home, ".local/share/containers/storage"))
    other, _, _ = fake_store(os.path.join(home, "other"),
                             files=(("a.txt", b"OTHER\n"),))
    _chown_tree(home, pw)

    def cat(extra=""):
        p = _as_user(pw, "HOME=%s XDG_CONFIG_HOME= XDG_DATA_HOME= %s "
                     "%s cat --no-cache containers-storage:fake a.txt" % (
                         home, extra, O.LAYERFS), timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr.decode(errors="replace")

    assert cat() == (0, b"A\n", "")
    os.makedirs(os.path.join(home, ".config/containers"))
    with open(os.path.join(home, ".config/containers/storage.conf"),
              "w") as f:
        f.write("[storage]\ndriver = \"overlay\"\ngraphroot = \"%s\"\n"
                % other)
    _chown_tree(home, pw)
    assert cat() == (0, b"OTHER\n", "")
    sysconf = os.path.join(home, "sys.conf")
    with open(sysconf, "w") as f:
        f.write("[storage]\ngraphroot = \"/var/lib/containers/storage\"\n"
                "rootless_storage_path = \"$HOME/other/graph\"\n")
    os.chmod(sysconf, 0o644)
    got = cat("CONTAINERS_STORAGE_CONF=" + sysconf)
    assert got == (0, b"OTHER\n", ""), got[2]


def add_image(g, names, tag, driver="overlay"):
    """Another image of the fake store's layers, named `names`; its id."""
    ij = os.path.join(g, driver + "-images", "images.json")
    images = json.load(open(ij))
    first = images[0]
    idir = os.path.join(g, driver + "-images", first["id"])
    (cf,) = os.listdir(idir)
    config = json.loads(open(os.path.join(idir, cf), "rb").read())
    config["history"][0]["comment"] = tag
    data = json.dumps(config).encode()
    iid = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(g, driver + "-images", iid))
    key = base64.b64encode(("sha256:" + iid).encode()).decode()
    with open(os.path.join(g, driver + "-images", iid, "=" + key), "wb") as f:
        f.write(data)
    images.append({"id": iid, "names": names, "layer": first["layer"]})
    json.dump(images, open(ij, "w"))
    return iid


def _comment(arg):
    p = lf("layers", "--json", "--no-cache", arg)
    assert p.returncode == 0, p.stderr.decode()
    return [h["comment"] for h in json.loads(p.stdout)["history"]]


def test_short_name_ranking(tmp_path):
    """A short name prefers docker.io/library/NAME, then localhost/NAME,
    then a unique .../NAME anywhere; several at the best rank fail."""
    g, iid, _ = fake_store(str(tmp_path))
    add_image(g, ["quay.io/a/x:latest"], "quay")
    assert _comment(ref(g, "x")) == ["quay"]
    add_image(g, ["localhost/x:latest"], "local")
    assert _comment(ref(g, "x")) == ["local"]
    add_image(g, ["docker.io/library/x:latest"], "hub")
    assert _comment(ref(g, "x")) == ["hub"]
    assert _comment(ref(g, "quay.io/a/x")) == ["quay"]
    add_image(g, ["example.com/b/y:1"], "y1")
    add_image(g, ["quay.io/c/y:1"], "y2")
    expect_error(ref(g, "y:1"), "names several images")
    expect_error(ref(g, "y"), "no image 'y'")        # :latest, there is none
    expect_error(ref(g, "Bad/Name"), "is not an image name")
    assert _comment(ref(g, iid)) == [None]


def test_volatile_and_incomplete_layers(tmp_path):
    """A layer listed in volatile-layers.json (graphroot or, for a
    transient store, runroot) is found; one flagged incomplete fails."""
    g, _, ids = fake_store(str(tmp_path), nlayers=2)
    lj = os.path.join(g, "overlay-layers", "layers.json")
    recs = json.load(open(lj))
    json.dump(recs[:1], open(lj, "w"))
    expect_error(ref(g), "is not in")
    run = tmp_path / "run"
    os.makedirs(run / "overlay-layers")
    json.dump(recs[1:], open(run / "overlay-layers" /
                             "volatile-layers.json", "w"))
    arg = "containers-storage:[overlay@%s+%s]fake" % (g, run)
    p = lf("cat", "--no-cache", arg, "a.txt")
    assert p.returncode == 0 and p.stdout == b"A\n", p.stderr
    os.rename(run / "overlay-layers" / "volatile-layers.json",
              os.path.join(g, "overlay-layers", "volatile-layers.json"))
    p = lf("cat", "--no-cache", ref(g), "a.txt")
    assert p.returncode == 0 and p.stdout == b"A\n", p.stderr
    recs[0]["flags"] = {"incomplete": True}
    json.dump(recs[:1], open(lj, "w"))
    expect_error(ref(g), "layer 1 (%s) is incomplete" % ids[0])
