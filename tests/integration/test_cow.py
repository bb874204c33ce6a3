# SPDX-License-Identifier: MIT
"""Copy-on-write upper directory (design.md section 4): layerfs mount --upper
against the kernel overlayfs, with the engine in cowdiff.py.

Seeds: CI=true runs 20 seeds x 500 ops per image; locally 6 seeds.
LAYERFS_COW_SEEDS / LAYERFS_COW_OPS override both.

The self-test (kernel overlay vs kernel overlay, and the harness's own
checks) always runs; every test of layerfs itself skips with "layerfs
--upper not implemented" while `layerfs mount --help` does not mention
--upper - under CI=true too: the one allowed skip, the feature is being
built.  Any other missing capability (root, overlayfs, /dev/fuse, umoci)
is a skip locally and a failure under CI=true.

Images: "basic" (specs.SPECS: modes, owners, suid/sgid/sticky, 3
compressions) and "cow_mix" (cowdiff.COW_SPECS: whiteouts, opaque dirs,
hardlinks, symlinks, xattrs, a fifo, /dev/null).  specs "hardlinks" is not
used: its layer 2 hardlinks a file of layer 1, which no lowerdir can hold
(GNU tar fails extracting it on its own); "sparse" is skipped for size.
"""

import hashlib
import os
import shutil
import stat
import subprocess
import threading
import time

import pytest

import cowdiff as C

IN_CI = os.environ.get("CI", "").lower() == "true"
N_SEEDS = int(os.environ.get("LAYERFS_COW_SEEDS", "20" if IN_CI else "6"))
N_OPS = int(os.environ.get("LAYERFS_COW_OPS", "500"))
IMAGES = ["basic", "cow_mix"]
NOT_IMPLEMENTED = "layerfs --upper not implemented"


def _skip_or_fail(reason):
    if IN_CI:
        pytest.fail("CI=true but: " + reason, pytrace=False)
    pytest.skip(reason)


def _overlay_unavailable():
    if os.geteuid() != 0:
        return "needs root (mount -t overlay, chroot, mknod, trusted.*)"
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            p = subprocess.run(["modprobe", "overlay"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if p.returncode:
                return "kernel overlayfs not available"
    return None


@pytest.fixture(scope="session")
def cow_root(tmp_path_factory):
    reason = _overlay_unavailable()
    if reason:
        _skip_or_fail(reason)
    return str(tmp_path_factory.mktemp("cow"))


@pytest.fixture(scope="session")
def cow_image(cow_root):
    made = {}

    def get(name, spec=None):
        if name not in made:
            made[name] = C.CowImage(name, os.path.join(cow_root, "images"),
                                    spec=spec)
        return made[name]
    return get


@pytest.fixture
def runs(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    return str(d)


@pytest.fixture(scope="session")
def layerfs_upper():
    """Every layerfs test goes through here."""
    if not C.layerfs_has_upper():
        pytest.skip(NOT_IMPLEMENTED)
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        _skip_or_fail("/dev/fuse or fusermount3 missing")
    return C.LAYERFS


def _report(rep):
    if rep:
        pytest.fail(rep, pytrace=False)


# ---------------------------------------------------------------------------
# Self-test of the harness: always runs (only root and overlayfs needed)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("seed", range(1, 6))
def test_selftest_kernel_vs_kernel(cow_image, runs, image, seed):
    """Two kernel overlay mounts of the same layers never differ: the
    generator, the worker, the result encoding and the snapshot are
    deterministic."""
    img = cow_image(image)
    rep, stats = C.check_seed(img, seed, N_OPS, runs, cand="kernel")
    _report(rep)
    ok = sum(1 for r in stats["results"] if r.startswith("OK"))
    assert ok > N_OPS // 5, "too few ops succeed: the pool is too thin"


def test_selftest_finds_and_shrinks_a_planted_bug(cow_image, runs, tmp_path):
    """A candidate that turns chmod 0755 into 0750 (and answers OK) is
    caught by a snapshot and shrunk to the one chmod."""
    img = cow_image("cow_mix")
    for seed in range(1, 30):
        seq = C.generate(seed, img.tree, N_OPS)
        if any(isinstance(o, C.Chmod) and o.mode == 0o755 for o in seq):
            break
    rep, _ = C.check_seed(img, seed, N_OPS, runs, cand="buggy-kernel",
                          out_dir=str(tmp_path))
    assert rep is not None
    assert "shrunk to 1 ops" in rep, rep
    assert "Chmod(" in rep and "mode=0o755" in rep, rep
    script = [p for p in os.listdir(tmp_path) if p.endswith(".py")]
    assert script, "no reproducer written"
    p = subprocess.run([C.sys.executable, str(tmp_path / script[0])],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert b"MISMATCH" in p.stdout, p.stdout.decode()


def test_selftest_generator_is_deterministic(cow_image):
    img = cow_image("cow_mix")
    a = [repr(o) for o in C.generate(7, img.tree, 300)]
    b = [repr(o) for o in C.generate(7, img.tree, 300)]
    assert a == b
    kinds = {type(o).__name__ for o in C.generate(7, img.tree, 2000)}
    assert kinds == set(C.OPS), set(C.OPS) - kinds
    # paths from every layer and every depth are in the pool
    paths = {p for o in C.generate(7, img.tree, 2000) for p in o.paths()}
    for p in ("a/b/c/deep", "a/b/c2/e", "gone/again", "op/new", "h/l1",
              "h2/q", "dev/null", "pipe", "dirlink"):
        assert p in paths, p
    assert not any(os.path.basename(p.rstrip("/")).startswith(".wh.")
                   for p in paths)


def test_selftest_lower_layers_stay_pristine(cow_image, runs):
    img = cow_image("cow_mix")
    before = _tree_digest(img.layers)
    rep, _ = C.check_seed(img, 3, N_OPS, runs, cand="kernel")
    _report(rep)
    assert _tree_digest(img.layers) == before


def _tree_digest(root):
    h = hashlib.sha256()
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            h.update(("%s %o %d %d %d %d\n" % (
                os.path.relpath(p, root), st.st_mode, st.st_uid, st.st_gid,
                st.st_size, st.st_mtime_ns)).encode())
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
            for k in sorted(os.listxattr(p, follow_symlinks=False)):
                h.update(k.encode() + os.getxattr(p, k,
                                                  follow_symlinks=False))
    return h.hexdigest()


# -- the allowed differences, each checked (kernel side: the reason holds) ---

def _kernel(img, runs):
    k = C.KernelSide(img, C.tempfile.mkdtemp(dir=runs, prefix="k."))
    k.start()
    return k


def test_allowed_dir_rename_exdev_kernel(cow_image, runs):
    """The reason of ALLOWED["dir_rename_exdev"]: redirect_dir is off and
    the kernel answers EXDEV to renaming a lower or merged directory, but
    renames a directory that only exists in the upper dir."""
    img = cow_image("cow_mix")
    k = _kernel(img, runs)
    try:
        assert k.op(C.Rename("a", "a2")) == "EXDEV"           # merged
        assert k.op(C.Rename("xd", "xd2")) == "EXDEV"         # lower only
        assert k.op(C.Rename("a/b/c2", "c2", C.RENAME_NOREPLACE)) == "EXDEV"
        assert k.op(C.Rename("a", "h", C.RENAME_EXCHANGE)) == "EXDEV"
        assert k.op(C.Mkdir("new")) == "OK"
        assert k.op(C.Rename("new", "new2")) == "OK"          # pure upper
        assert k.op(C.Rmdir("xd")) == "OK"
        assert k.op(C.Mkdir("xd")) == "OK"                    # opaque
        assert k.op(C.Rename("xd", "xd3")) == "OK"
        assert C.allowed(C.Rename("a", "a2"), "EXDEV") == "dir_rename_exdev"
        assert C.allowed(C.Rename("a", "a2"), "OK") is None
    finally:
        k.close()
    assert open("/sys/module/overlay/parameters/redirect_dir").read()[0] \
        in "Nn", "redirect_dir is on here: the kernel reference changes"


def test_allowed_wh_names_kernel(cow_image, runs):
    """The reason of ALLOWED["wh_names"]: to the kernel a `.wh.` name is a
    plain name (it stores whiteouts as 0/0 char devices), so all of these
    succeed there; layerfs must refuse them (test_wh_names_layerfs)."""
    img = cow_image("cow_mix")
    k = _kernel(img, runs)
    try:
        assert k.op(C.Create(".wh.foo")) == "OK"
        assert k.op(C.Mkdir("a/.wh.d")) == "OK"
        assert k.op(C.Listdir(".")).count(".wh.foo") == 1
        assert k.op(C.Stat(".wh.wf")) == "ENOENT"    # whiteout of wf
        assert k.op(C.Stat("wf")) == "ENOENT"
        for op in (C.Create(".wh.foo"), C.Mkdir("a/.wh.x"),
                   C.Rename("a/f1", ".wh.top")):
            assert C.allowed(op, "OK") == "wh_names"
    finally:
        k.close()


def test_allowed_dir_nlink_kernel(cow_image, runs):
    """The reason of ALLOWED["dir_nlink"]: a merged directory has
    st_nlink 1 in the kernel overlay, a lower-only one its real count."""
    img = cow_image("cow_mix")
    k = _kernel(img, runs)
    try:
        nl = k.worker.call("call", (_nlink, "a"))
        assert nl == 1, nl                              # merged: layers 1-3
        assert k.worker.call("call", (_nlink, "xd")) == 2   # lower only
    finally:
        k.close()


def _nlink(p):
    return os.lstat(p).st_nlink


# -- persistence, OCI form of the upper dir, concurrency: kernel side -------

def _persist(side_pair, seq):
    """run seq on the candidate, snapshot, unmount, remount with the same
    upper dir, snapshot again."""
    ref, cand = side_pair
    ref.start()
    cand.start()
    try:
        for op in seq:
            a = ref.op(op)
            if not C.allowed(op, a):
                cand.op(op)
        s1 = cand.snapshot()
        cand.remount()
        s2 = cand.snapshot()
        return ref.snapshot(), s1, s2
    finally:
        ref.close()
        cand.close()


def test_selftest_persistence_kernel(cow_image, runs):
    img = cow_image("cow_mix")
    seq = C.generate(11, img.tree, N_OPS)
    r, s1, s2 = _persist(C.Pair(img, runs, "kernel").sides(), seq)
    assert C.diff_snapshots(s1, s2) == []
    assert C.diff_snapshots(r, s2) == []


def _upper_oci_check(img, side_upper_oci, mounted_snapshot, work, t0):
    tar = C.tar_upper(side_upper_oci)
    layout = C.image_plus_layer(img, tar, os.path.join(work, "plus.oci"))
    tree = C.umoci_tree(layout, os.path.join(work, "umoci"), t0)
    a = C.comparable(mounted_snapshot, with_mtime=True)
    b = C.comparable(tree, with_mtime=True)
    for t in (a, b):
        for e in t.values():
            if isinstance(e, dict):
                e.pop("nlink", None)    # the kernel's stale lower nlink
    return C.diff_snapshots(a, b, "mount", "umoci")


def _need_umoci():
    if shutil.which("umoci") is None:
        _skip_or_fail("umoci not installed")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_selftest_upper_as_oci_layer_kernel(cow_image, runs, seed):
    """The harness's OCI-layer check against the kernel: its upper dir,
    converted to OCI whiteouts, added as a layer and unpacked by umoci,
    equals the mount."""
    _need_umoci()
    img = cow_image("cow_mix")
    k = _kernel(img, runs)
    try:
        for op in C.generate(seed, img.tree, 300):
            k.op(op)
        snap = k.snapshot()
        k.stop()
        oci = C.kernel_upper_to_oci(k.upper, os.path.join(k.work, "oci-u"))
        diffs = _upper_oci_check(img, oci, snap, k.work, k.t0)
    finally:
        k.close()
    assert diffs == [], "\n".join(diffs)


def _concurrent_plan(img):
    """4 writers (own files + disjoint 4 KiB blocks of shared lower files)
    and 4 readers; returns (writer op lists, reader op lists)."""
    shared = ["big", "a/f2" if "a/f2" in img.tree else "bin/sh", "bin/sh"]
    own_lower = ["a/b/c/deep", "h/solo", "top", "a/b/l2file"]
    writers = []
    for w in range(4):
        ops = [C.Create("cw%d" % w, excl=True)]
        for i in range(60):
            ops.append(C.Write("cw%d" % w, "append", 0, 1000 + i, w * 100 + i))
            ops.append(C.Write(own_lower[w], "at", i * 97, 50, w * 1000 + i))
            for s in shared:
                ops.append(C.Write(s, "at", (i * 4 + w) * 4096, 4096,
                                   w * 10000 + i))
            if i % 10 == 5:
                ops.append(C.Fsync(shared[0]))
                ops.append(C.SetXattr("cw%d" % w, "user.i", str(i)))
                ops.append(C.Chmod(own_lower[w], 0o600 + w))
        writers.append(ops)
    readers = []
    for r in range(4):
        ops = []
        for i in range(150):
            ops.append(C.Read(shared[i % len(shared)], (i * 4096) % 300000,
                              8192))
            ops.append(C.Stat(shared[(i + r) % len(shared)]))
            ops.append(C.Listdir("."))
            ops.append(C.Read(own_lower[(i + r) % 4], 0, 100))
        readers.append(ops)
    return writers, readers


def _concurrent(side, writers, readers):
    """Run all lists at once, one chrooted worker each; returns results."""
    workers = [C.Worker(side.mnt, side.t0) for _ in writers + readers]
    results = [None] * len(workers)

    def go(i, ops):
        results[i] = [workers[i].call("op", op) for op in ops]
    threads = [threading.Thread(target=go, args=(i, ops))
               for i, ops in enumerate(writers + readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    for w in workers:
        w.close()
    return results


def _check_concurrent(img, runs, cand):
    writers, readers = _concurrent_plan(img)
    side = C.make_side(cand, img, runs)
    ref = C.make_side("kernel", img, runs)
    try:
        side.start()
        res = _concurrent(side, writers, readers)
        for i, rs in enumerate(res):
            assert rs is not None, "worker %d hung" % i
            bad = [(op, r) for op, r in zip((writers + readers)[i], rs)
                   if not r.startswith("OK")]
            assert not bad, "%s %d: %s" % ("writer" if i < 4 else "reader",
                                           i % 4, bad[:5])
        got = side.snapshot()
        ref.start()
        for ops in writers:            # sequential replay
            for op in ops:
                assert ref.op(op).startswith("OK")
        want = ref.snapshot()
        return C.diff_snapshots(want, got, "sequential", "concurrent")
    finally:
        side.close()
        ref.close()


def test_selftest_concurrency_kernel(cow_image, runs):
    diffs = _check_concurrent(cow_image("cow_mix"), runs, "kernel")
    assert diffs == [], "\n".join(diffs)


# ---------------------------------------------------------------------------
# layerfs --upper
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("seed", range(1, N_SEEDS + 1))
def test_cow_differential(layerfs_upper, cow_image, runs, image, seed,
                          tmp_path):
    img = cow_image(image)
    rep, _ = C.check_seed(img, seed, N_OPS, runs, cand="layerfs",
                          out_dir=str(tmp_path))
    _report(rep)


@pytest.mark.parametrize("cand", ["layerfs-dirs", "layerfs-ocidirs"])
@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("seed", range(101, 101 + max(2, N_SEEDS // 4)))
def test_cow_differential_dir_lowers(layerfs_upper, cow_image, runs, cand,
                                     image, seed, tmp_path):
    """Plain directories as layers (issue: drop-in for overlayfs): the
    extracted layers given as lowerdir=A:B,upperdir=U,workdir=W to
    `layerfs none MNT -o ...` (what mount -t fuse.layerfs runs), with
    overlayfs-form whiteouts (0/0 devices, opaque xattrs) and with OCI
    `.wh.` files; the same operations as on the kernel overlayfs over the
    same directories."""
    img = cow_image(image)
    rep, _ = C.check_seed(img, seed, N_OPS, runs, cand=cand,
                          out_dir=str(tmp_path))
    _report(rep)


def test_persistence(layerfs_upper, cow_image, runs):
    img = cow_image("cow_mix")
    for seed in (21, 22):
        seq = C.generate(seed, img.tree, N_OPS)
        r, s1, s2 = _persist(C.Pair(img, runs, "layerfs").sides(), seq)
        assert C.diff_snapshots(s1, s2, "before", "after") == []
        assert C.diff_snapshots(r, s2, "kernel", "layerfs") == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_upper_is_an_oci_layer(layerfs_upper, cow_image, runs, seed):
    """The upper dir, tarred as it is (`.wh.` files included) and added as
    a layer on top of the image, unpacks (umoci) to the mounted tree."""
    _need_umoci()
    img = cow_image("cow_mix")
    side = C.make_side("layerfs", img, runs)
    side.start()
    try:
        for op in C.generate(seed, img.tree, 300):
            side.op(op)
        snap = side.snapshot()
        side.stop()
        # the upper dir is OCI form already: no trusted.overlay.*, no 0/0
        for d, dirs, files in os.walk(side.upper):
            for n in dirs + files:
                p = os.path.join(d, n)
                st = os.lstat(p)
                assert not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0), p
                if not stat.S_ISLNK(st.st_mode):
                    assert not [k for k in os.listxattr(p) if
                                k.startswith("trusted.overlay.")], p
        diffs = _upper_oci_check(img, side.upper, snap, side.work,
                                 side.t0)
    finally:
        side.close()
    assert diffs == [], "\n".join(diffs)


def _cp_a_rm_rf(side, src, dst):
    """What a directory rename means: cp -a SRC DST && rm -rf SRC, done
    from the host on the kernel mount (neither follows symlinks)."""
    s, d = os.path.join(side.mnt, src), os.path.join(side.mnt, dst)
    if os.path.isdir(d) and not os.path.islink(d):
        os.rmdir(d)                     # rename over an empty dir
    subprocess.run(["cp", "-a", "--no-target-directory", s, d], check=True)
    subprocess.run(["rm", "-rf", "--one-file-system", s], check=True)


def test_dir_rename_with_lower_content(layerfs_upper, cow_image, runs):
    """ALLOWED["dir_rename_exdev"], layerfs side: the rename succeeds and
    the tree equals the kernel's after cp -a + rm -rf; the old name, made
    again, is empty (opaque); it all survives a remount."""
    img = cow_image("cow_mix")
    lf = C.make_side("layerfs", img, runs)
    k = C.make_side("kernel", img, runs)
    renames = [("a", "a.moved", 0), ("op", "h/op2", C.RENAME_NOREPLACE),
               ("xd", "emptyd", 0), ("a.moved/b", "b2", 0)]
    try:
        lf.start()
        k.start()
        for op in (C.Mkdir("emptyd"), C.Write("a/b/c/deep", "at", 0, 3, 1)):
            assert lf.op(op) == k.op(op)
        for src, dst, fl in renames:
            kr = k.op(C.Rename(src, dst, fl))
            assert lf.op(C.Rename(src, dst, fl)) == "OK", (src, dst)
            if kr == "EXDEV":
                _cp_a_rm_rf(k, src, dst)
            else:   # a.moved/b is pure upper in the kernel after cp -a
                assert kr == "OK", (src, dst, kr)
        after = [C.Mkdir("a"), C.Listdir("a"), C.Mkdir("xd"), C.Listdir("xd"),
                 C.Listdir("b2"), C.Write("b2/c/deep2", "at", 1, 5, 2),
                 C.Unlink("b2/l2file"), C.Stat("a.moved/f1")]
        for op in after:
            assert lf.op(op) == k.op(op), op
        want = k.snapshot()
        got = lf.snapshot()
        assert C.diff_snapshots(want, got, "cp-a", "layerfs") == []
        lf.remount()
        assert C.diff_snapshots(want, lf.snapshot(), "cp-a",
                                "layerfs-remounted") == []
    finally:
        lf.close()
        k.close()


def test_wh_names_layerfs(layerfs_upper, cow_image, runs):
    """ALLOWED["wh_names"], layerfs side: `.wh.` names are never shown and
    cannot be made; the whiteouts layerfs writes stay invisible."""
    img = cow_image("cow_mix")
    lf = C.make_side("layerfs", img, runs)
    try:
        lf.start()
        for op in (C.Unlink("a/f1"), C.Rmdir("a/b/c2") , C.Unlink("a/b/c2/e")):
            lf.op(op)
        assert lf.op(C.Rmdir("a/b/c2")) == "OK"
        assert lf.op(C.Rmdir("op/olddir")) in ("ENOENT",)
        for op in (C.Create(".wh.foo"), C.Create(".wh.foo", excl=True),
                   C.Mkdir("a/.wh.d"), C.Symlink("x", ".wh.s"),
                   C.Mkfifo(".wh.p"), C.Link("top", ".wh.l"),
                   C.Rename("top", ".wh.top"), C.Create("a/.wh..wh..opq"),
                   C.Write(".wh.w", "creat", 0, 3, 1)):
            r = lf.op(op)
            assert r.startswith("E"), "%s: %s" % (op, r)
        for p in (".wh.foo", "a/.wh.f1", ".wh.wf", ".wh.gone",
                  "op/.wh..wh..opq", "a/b/.wh.c2", ".wh..wh..opq"):
            assert lf.op(C.Stat(p, follow=False)) == "ENOENT", p
        snap = lf.snapshot()
        names = [p for p in snap if ".wh." in p]
        assert names == [], names
        # the upper dir does hold the whiteouts
        assert os.path.exists(os.path.join(lf.upper, "a", ".wh.f1"))
        assert os.path.exists(os.path.join(lf.upper, "a", "b", ".wh.c2"))
    finally:
        lf.close()


def test_dir_nlink_layerfs(layerfs_upper, cow_image, runs):
    """ALLOWED["dir_nlink"], layerfs side: any st_nlink >= 1 is fine."""
    img = cow_image("cow_mix")
    lf = C.make_side("layerfs", img, runs)
    try:
        lf.start()
        for p in (".", "a", "xd", "op", "a/b/c"):
            assert lf.worker.call("call", (_nlink, p)) >= 1
    finally:
        lf.close()


def test_concurrency(layerfs_upper, cow_image, runs):
    """4 writers + 4 readers, the writers racing on the copy-up of the same
    lower files: no error, no hang, and the tree equals the sequential
    replay on the kernel (the writes are disjoint, so it is defined)."""
    diffs = _check_concurrent(cow_image("cow_mix"), runs, "layerfs")
    assert diffs == [], "\n".join(diffs)


# -- hostile symlinks ---------------------------------------------------------

def _hostile_spec(canary_dir):
    from mkimage import Image, Layer, symlink
    base = C.COW_SPECS["cow_hostile"]
    extra = Layer([symlink("canary", os.path.join(canary_dir, "file")),
                   symlink("canarydir", canary_dir),
                   symlink("d/canary", "../../../../../../../" +
                           os.path.join(canary_dir, "file").lstrip("/"))])
    return Image(list(base.layers) + [extra])


def _hostile_ops(tag):
    ops = []
    paths = ["root/etc/passwd", "up/etc/passwd", "etcabs/passwd", "pw",
             "pwrel", "d/esc/" + tag, "canary", "canarydir/file",
             "canarydir/" + tag, "d/canary", "lnk/inside", "loop/x",
             "d/self/self/" + tag, "root/" + tag, "up/up/" + tag]
    for i, p in enumerate(paths):
        ops += [C.Write(p, "creat", 0, 10, i), C.Write(p, "at", 3, 5, i),
                C.Write(p, "trunc", 0, 3, i), C.Truncate(p, 1),
                C.Chmod(p, 0o600), C.Chown(p, 1000, 1000),
                C.Utime(p, 10**18), C.SetXattr(p, "user.evil", "1"),
                C.Mkdir(p + ".d"), C.Symlink("/", p + ".s"),
                C.Link("data", p + ".l"), C.Rename("data", p + ".r"),
                C.Create("data"), C.Rename(p, p + ".moved"),
                C.Unlink(p + ".moved"), C.Read(p, 0, 100)]
    for p in ("root", "up", "etcabs", "canarydir", "d/esc", "d/self"):
        ops += [C.Chmod(p, 0o700), C.Chown(p, 5, 5, follow=True),
                C.Utime(p, 10**18, follow=True), C.Rmdir(p + "/"),
                C.Unlink(p), C.Mkdir(p), C.Listdir(p)]
    return ops


def _host_state(paths):
    out = {}
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError as e:
            out[p] = e.errno
            continue
        e = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
             sorted(os.listxattr(p, follow_symlinks=False)))
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                e += (hashlib.sha256(f.read()).hexdigest(),)
        if stat.S_ISDIR(st.st_mode):
            e += (sorted(os.listdir(p)),)
        out[p] = e
    return out


@pytest.mark.parametrize("cand", ["kernel", "layerfs"])
def test_hostile_symlinks(request, cow_root, runs, tmp_path, cand):
    """An image whose symlinks point to /, ../../.. chains, /etc/passwd and
    a canary outside: every write through them (from a process chrooted
    into the mount, as in a container) stays inside the upper dir or fails,
    equals the kernel's answer, and nothing outside the upper dir changes.
    cand=kernel is the self-test of this test."""
    if cand == "layerfs":
        request.getfixturevalue("layerfs_upper")
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "file").write_text("canary\n")
    os.utime(canary / "file", ns=(10**18, 10**18))
    img = C.CowImage("cow_hostile", str(tmp_path / "img"),
                     spec=_hostile_spec(str(canary)))
    tag = "cowdiff-escape-%d" % os.getpid()
    watch = [str(canary), str(canary / "file"), "/etc/passwd", "/etc",
             "/" + tag, "/tmp/" + tag, "/etc/" + tag]
    before = _host_state(watch)
    layout_before = _tree_digest(img.layout)
    layers_before = _tree_digest(img.layers)
    m, stats = C.run_pair(C.Pair(img, runs, cand), _hostile_ops(tag),
                          snap_every=25)
    assert m is None, str(m)
    assert _host_state(watch) == before
    assert _tree_digest(img.layout) == layout_before
    assert _tree_digest(img.layers) == layers_before
    assert any(r.startswith("OK") for r in stats["results"])


# -- crash safety ------------------------------------------------------------

BIG = 200 * C.MiB


def _big_content():
    import random
    # 4 bits of entropy per byte: gzip works, and decompressing the copy-up
    # takes long enough to kill the daemon in the middle of it
    blk = bytes(b & 0x0f for b in random.Random(5).randbytes(4 * C.MiB))
    return b"".join(blk[i:] + blk[:i] for i in range(50))


def _crash_image(root):
    from mkimage import Image, Layer, file
    spec = Image([Layer([file("big", _big_content()),
                         file("small", "small")])])
    return C.CowImage("crash", root, spec=spec)


def test_crash_during_copy_up(layerfs_upper, tmp_path):
    """kill -9 the daemon while it copies up a 200 MiB lower file; after a
    remount the file is the old content or the whole new one, never a
    part, and no temp file shows in the mount."""
    img = _crash_image(str(tmp_path / "img"))
    old = _big_content()
    old_sha = hashlib.sha256(old).hexdigest()
    new = bytearray(old)
    new[100 * C.MiB] = 0xAB
    new_sha = hashlib.sha256(bytes(new)).hexdigest()
    del new
    names = sorted(p for p in img.tree if p not in (".", "__links__"))
    seen = []
    for attempt, delay in enumerate((0.0, 0.05, 0.2, 0.5)):
        side = C.LayerfsSide(img, str(tmp_path / ("run%d" % attempt)))
        side.start()
        w = C.Worker(side.mnt, side.t0)
        w.conn.send(("call", (_write_byte, "big", 100 * C.MiB, 0xAB)))
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            time.sleep(0.005)
        # wait until something is being written in the upper dir
        for _ in range(400):
            if _upper_bytes(side.upper) > 0 or w.conn.poll(0):
                break
            time.sleep(0.005)
        pending = not w.conn.poll(0)    # the write had not returned yet
        upper_now = _upper_bytes(side.upper)
        side.kill9()
        w.kill()
        side.start()
        try:
            snap = side.snapshot()
            sha = snap.get("big", {}).get("sha256")
            assert sha in (old_sha, new_sha), \
                "attempt %d: big is partial (size %s)" % (
                    attempt, snap.get("big", {}).get("size"))
            seen.append("%s (killed %s, %d MiB in upper)" % (
                "old" if sha == old_sha else "new",
                "during the write" if pending else "after it",
                upper_now >> 20))
            assert sorted(p for p in snap if p not in (".", "__links__")) \
                == names, "temp files visible after the crash"
            assert side.op(C.Read("small", 0, 10)) == "OK " + b"small".hex()
        finally:
            side.close()
    print("crash attempts saw:", seen)


def _upper_bytes(upper):
    n = 0
    for d, dirs, files in os.walk(upper):
        for f in files:
            try:
                # blocks, not st_size: a copy-up may size its temp file
                # first and fill it afterwards
                n += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return n


def _write_byte(path, off, val):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes([val]), off)
    finally:
        os.close(fd)
    return "OK"


def test_d_ino_equals_st_ino(layerfs_upper, cow_image, runs):
    """Inode numbers stay stable across copy-up, and d_ino from readdir
    equals st_ino, for lower, copied-up, new and hardlinked objects."""
    img = cow_image("cow_mix")
    side = C.make_side("layerfs", img, runs)
    try:
        side.start()
        m = side.mnt
        before = os.lstat(os.path.join(m, "h/solo")).st_ino
        with open(os.path.join(m, "h/solo"), "ab") as f:   # copy-up
            f.write(b"more")
        assert os.lstat(os.path.join(m, "h/solo")).st_ino == before
        with open(os.path.join(m, "fresh"), "w") as f:
            f.write("new")
        os.link(os.path.join(m, "fresh"), os.path.join(m, "fresh2"))
        os.mkdir(os.path.join(m, "a/newdir"))
        checked = 0
        for d, dirs, files in os.walk(m):
            for e in os.scandir(d):
                assert e.inode() == os.lstat(e.path).st_ino, e.path
                checked += 1
        assert checked > 10
        a, b = (os.lstat(os.path.join(m, n)).st_ino
                for n in ("fresh", "fresh2"))
        assert a == b
    finally:
        side.close()


def test_ino_across_remount(layerfs_upper, cow_image, runs):
    """st_ino survives a remount with the same upper dir for what the
    upper dir alone can tell (the kernel overlayfs keeps these too): a
    copied-up file and a copied-up directory keep the lower number, a new
    file its own, and a directory made anew over a deleted lower one (an
    opaque upper dir) keeps its own number instead of taking the lower
    one's after the remount."""
    img = cow_image("cow_mix")
    side = C.make_side("layerfs", img, runs)
    names = ("h/solo", "a", "a/b/c", "fresh", "gone2", "a/b")
    try:
        side.start()
        m = side.mnt

        def inos():
            return {n: os.lstat(os.path.join(m, n)).st_ino for n in names}
        with open(os.path.join(m, "h/solo"), "ab") as f:   # copy-up
            f.write(b"more")
        os.mkdir(os.path.join(m, "a/newdir"))   # copies a/ up
        with open(os.path.join(m, "fresh"), "w") as f:
            f.write("new")
        os.mkdir(os.path.join(m, "gone2"))
        shutil.rmtree(os.path.join(m, "a/b"))   # lower a/b and subtree
        os.makedirs(os.path.join(m, "a/b/c"))   # opaque a/b, new a/b/c
        before = inos()
        assert os.path.exists(os.path.join(side.upper, "a/b/.wh..wh..opq"))
        side.remount()
        assert inos() == before
    finally:
        side.close()


def test_nodev_layerfs(layerfs_upper, cow_image, runs):
    """Allowed difference "nodev": layerfs mounts are nodev (design.md 3.10),
    so a device node of the image cannot be opened as a device (EACCES),
    while its metadata can still be read and changed."""
    img = cow_image("cow_mix")
    side = C.make_side("layerfs", img, runs)
    try:
        side.start()
        dev = os.path.join(side.mnt, "dev/null")
        st = os.lstat(dev)
        assert stat.S_ISCHR(st.st_mode)
        for flags in (os.O_RDONLY, os.O_WRONLY):
            with pytest.raises(PermissionError):
                os.close(os.open(dev, flags))
        os.chmod(dev, 0o600)
        assert stat.S_IMODE(os.lstat(dev).st_mode) == 0o600
        opts = [l.split()[3] for l in open("/proc/mounts")
                if l.split()[1] == side.mnt][0].split(",")
        assert "nodev" in opts
    finally:
        side.close()
