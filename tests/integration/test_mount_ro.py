# SPDX-License-Identifier: MIT
"""`layerfs mount` (read-only FUSE) against the umoci oracle.

The expected trees are oracle.py's: `umoci unpack` of the first N layers,
walked with oracle.walk_rootfs.  The mount is walked with the very same
function (os.lstat, readlink, listxattr/getxattr, sha256 of the content)
and compared with oracle.compare; nothing is hard-coded.

Every mount goes through a fixture whose finalizer runs
fusehelpers.cleanup(): fusermount3 -u, then -z -u, then kills the daemon,
so no mount outlives a test, even a failing one.
"""

import errno
import os
import random
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time

import pytest

import fusehelpers as fh
import oracle as O
import test_cli
from fusehelpers import fuse_required  # noqa: F401  (fixture, see marker)

pytestmark = fh.fuse_marker()

MiB = 1 << 20
USER = "lftest-user"


def _err(p):
    return p.stderr.decode(errors="replace") if isinstance(
        p.stderr, bytes) else (p.stderr or "")


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _no_mount_left(tmp_path_factory):
    """Safety net: after the module, no layerfs mount below our temp dirs
    (the per-test finalizers should already have removed them all)."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for src, mnt, typ, _ in fh.layerfs_mounts():
        if mnt.startswith(base) or mnt.startswith(_SHARED_PREFIX):
            fh.cleanup(mnt)


@pytest.fixture
def mnt(tmp_path):
    """A fresh empty mountpoint; whatever gets mounted there (background
    daemons, mount(8)) is cleaned up afterwards."""
    d = tmp_path / "mnt"
    d.mkdir()
    yield str(d)
    fh.cleanup(str(d))


@pytest.fixture
def mounter(tmp_path):
    """mounter(image, *opts, cache=..., mnt=...) -> (mnt, proc): a `layerfs
    mount -f` on a fresh directory, cleaned up at teardown."""
    made = []

    def do(image, *opts, cache=None, mnt=None):
        if mnt is None:
            mnt = str(tmp_path / ("m%d" % len(made)))
            os.mkdir(mnt)
        proc = fh.mount(image, mnt, *opts, cache=cache, wait=False)
        made.append((mnt, proc))
        fh.wait_for_mount(proc, mnt)
        return mnt, proc
    yield do
    for m, p in reversed(made):
        fh.cleanup(m, p)


class _Rootfs:
    """umoci rootfs trees kept on disk (the `oracles` fixture deletes its
    bundles after walking them): for grep -rl and byte comparisons."""

    def __init__(self, root):
        self.root = root
        self.paths = {}

    def __call__(self, name, n=None):
        n = O.layer_count(name) if n is None else n
        if (name, n) not in self.paths:
            self.paths[(name, n)] = O.oracle_rootfs(name, "oci", n,
                                                    self.root)[0]
        return self.paths[(name, n)]


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory, need_tools):
    return _Rootfs(str(tmp_path_factory.mktemp("rootfs")))


def _layerfs_ok(*args, timeout=120):
    p = O.layerfs(*args, timeout=timeout)
    assert p.returncode == 0, "layerfs %s: exit %d: %s" % (
        " ".join(map(str, args)), p.returncode, _err(p))
    return p


def _diffs_msg(diffs):
    return "%d differences:\n  %s" % (len(diffs), "\n  ".join(diffs[:60]))


# -- 1. the tree of every prefix ---------------------------------------------

def _case(name, fmt, n):
    first, reason = O.specs.UMOCI_DIFFERS.get(name, (None, None))
    marks = []
    if first is not None and n >= first:
        marks = [pytest.mark.xfail(reason=reason, strict=False)]
    return pytest.param(name, fmt, n, marks=marks,
                        id="%s-%s-L%d" % (name, fmt, n))


TREE_CASES = [_case(name, "oci", n)
              for name in O.specs.SPECS
              for n in range(1, O.layer_count(name) + 1)] + \
             [_case(name, fmt, O.layer_count(name))
              for name in O.specs.SPECS
              for fmt in O.FORMATS if fmt != "oci"]


@pytest.mark.parametrize("name,fmt,n", TREE_CASES)
def test_tree_matches_umoci(name, fmt, n, images, oracles, session_caches,
                            mounter, layerfs_bin):
    """One mount per (spec, format, prefix), walked once: type, mode, owner,
    size, mtime, content, symlink target, xattrs, hardlink groups (same
    st_ino), rdev, file nlink (oracle.compare); dir st_nlink = 2 + subdirs;
    st_ino == the `ino` of `layerfs ls -lR --json`."""
    img = images(name, fmt)
    cache = session_caches(name, fmt)
    expect = oracles(name, fmt, n)
    m, _ = mounter(img, "--layers", n, cache=cache)
    diffs = O.mount_diffs(expect, m, img, n, cache)
    assert not diffs, _diffs_msg(diffs)


# -- 2. ordinary tools over the mount ----------------------------------------

def _known_string(tree, root):
    """A line of text of some small regular file in the oracle rootfs."""
    for p in sorted(tree):
        e = tree[p]
        if e["type"] != "file" or not 4 <= e["size"] <= 4096:
            continue
        with open(os.path.join(root, p), "rb") as f:
            data = f.read()
        for line in data.split(b"\n"):
            line = line.strip()
            if len(line) >= 4 and all(32 <= c < 127 for c in line):
                return p, line.decode()
    return None, None


def _grep_l(pattern, top):
    p = subprocess.run(["grep", "-r", "-l", "-F", "--", pattern, top],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode in (0, 1), "grep -rl %r %s: %d %s" % (
        pattern, top, p.returncode, _err(p))
    return {os.path.relpath(x, top)
            for x in p.stdout.decode(errors="surrogateescape").splitlines()}


TOOL_SPECS = list(O.specs.SPECS)


@pytest.mark.parametrize("name", TOOL_SPECS)
def test_tools(name, images, oracles, rootfs, session_caches, mounter,
               layerfs_bin):
    n = O.layer_count(name)
    expect = oracles(name, "oci", n)
    if name in O.specs.UMOCI_DIFFERS:
        pytest.xfail(O.specs.UMOCI_DIFFERS[name][1])
    root = rootfs(name, n)
    m, _ = mounter(images(name), cache=session_caches(name, "oci"))

    # grep -r: a string known from the oracle, and one common letter; the
    # same files match as over the umoci rootfs
    path, known = _known_string(expect, root)
    if known is not None:
        p = subprocess.run(["grep", "-r", "-F", "--", known, m],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.returncode == 0, _err(p)
        assert path in _grep_l(known, m)
        assert _grep_l(known, m) == _grep_l(known, root)
    assert _grep_l("e", m) == _grep_l("e", root)

    # find -ls and find -print0: every path, no error
    p = subprocess.run(["find", m, "-ls"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert p.returncode == 0 and not p.stderr, _err(p)
    p = subprocess.run(["find", m, "-mindepth", "1", "-print0"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, _err(p)
    found = {os.path.relpath(x.decode(errors="surrogateescape"), m)
             for x in p.stdout.split(b"\0") if x}
    assert found == set(expect)

    # du --apparent-size: at least the unique regular file bytes
    p = subprocess.run(["du", "-s", "-b", m], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert p.returncode == 0 and not p.stderr, _err(p)
    p2 = subprocess.run(["du", "-s", "--apparent-size", m],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p2.returncode == 0 and not p2.stderr, _err(p2)
    sizes = {}
    for e in expect.values():
        if e["type"] == "file":
            sizes[e["ino"]] = e["size"]
    assert int(p.stdout.split()[0]) >= sum(sizes.values())

    # tar -c | tar -t: the same paths as the oracle
    c = subprocess.Popen(["tar", "-c", "-C", m, "."], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    t = subprocess.run(["tar", "-t", "--quoting-style=literal"],
                       stdin=c.stdout, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    c.stdout.close()
    cerr = c.stderr.read()
    c.stderr.close()
    assert c.wait() == 0, "tar -c: %s" % cerr.decode(errors="replace")
    assert t.returncode == 0, _err(t)
    listed = set()
    for line in t.stdout.decode(errors="surrogateescape").splitlines():
        line = line.rstrip("/")
        if line.startswith("./"):
            line = line[2:]
        if line not in (".", ""):
            listed.add(line)
    assert listed == set(expect), (sorted(listed - set(expect))[:10],
                                   sorted(set(expect) - listed)[:10])


def test_access_x_ok_matches_modes(images, rootfs, session_caches, mounter,
                                   layerfs_bin):
    """access(X_OK) agrees with execve and with the umoci rootfs: a file
    without any x bit is not executable, even for root (`test -x`,
    `find -executable`, `which` rely on it)."""
    n = O.layer_count("basic")
    m, _ = mounter(images("basic"), cache=session_caches("basic", "oci"))
    root = rootfs("basic", n)

    def executables(top):
        p = subprocess.run(["find", top, "-type", "f", "-executable"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.returncode == 0, _err(p)
        return sorted(os.path.relpath(x, top)
                      for x in p.stdout.decode().splitlines())
    assert executables(m) == executables(root)
    assert not os.access(os.path.join(m, "etc/passwd"), os.X_OK)
    assert os.access(os.path.join(m, "usr/bin/tool"), os.X_OK)


def _big_dir_image():
    from mkimage import Image, Layer, dir as d, file as f, hardlink as h
    ops = [d("big")]
    for i in range(3000):
        ops.append(f("big/f%05d-%s" % (i, "n" * (i % 230)), "%d\n" % i))
    ops += [d("big/sub"), h("big/zz-link", "big/f00007-nnnnnnn")]
    return Image([Layer(ops), Layer([f("big/f00001-n", "replaced\n")])])


def test_big_directory(tmp_path, cache_dir, mounter, layerfs_bin,
                       need_tools):
    """3000 entries with long names in one directory: readdir needs many
    requests (readdirplus offsets); compared with umoci; d_ino == st_ino."""
    img = O.mkimage.write_image(_big_dir_image(), str(tmp_path / "img"),
                                "oci", key="lftest-bigdir")
    expect = O.walk_rootfs(O.umoci_unpack(img, str(tmp_path / "bundle")),
                           time.time() - 1)
    m, _ = mounter(img, cache=cache_dir)
    names = os.listdir(os.path.join(m, "big"))
    assert len(names) == len(set(names)) == 3002
    for e in os.scandir(os.path.join(m, "big")):
        assert e.inode() == os.lstat(e.path).st_ino, e.name
    got = O.walk_rootfs(m)
    diffs = O.compare(expect, got, cat=lambda x: got[x].get("sha256"))
    assert not diffs, _diffs_msg(diffs)


# -- 3. concurrent random reads ----------------------------------------------

READ_CASES = [("basic", None), ("sparse", 2), ("sparse", 3), ("demo", None),
              ("mixed_compression", None)]


@pytest.mark.parametrize("name,n", READ_CASES,
                         ids=["%s-L%s" % c for c in READ_CASES])
def test_concurrent_random_reads(name, n, images, oracles, rootfs,
                                 session_caches, mounter, layerfs_bin):
    """8 threads of random (offset, length) preads of random regular files,
    each compared byte for byte with the umoci rootfs file."""
    n = O.layer_count(name) if n is None else n
    expect = oracles(name, "oci", n)
    root = rootfs(name, n)
    m, proc = mounter(images(name), "--layers", n,
                      cache=session_caches(name, "oci"))
    files = sorted(p for p, e in expect.items() if e["type"] == "file")
    # the 3 MiB+ and 50 MiB (sparse) files, and anything over 64 KiB
    big = [p for p in files if expect[p]["size"] >= 64 * 1024]
    assert big, "no large file in %s" % name
    errors = []
    stats = {"reads": 0, "bytes": 0}
    lock = threading.Lock()

    def reader(seed):
        rnd = random.Random(seed)
        fds = {}
        try:
            for i in range(60):
                p = rnd.choice(big if rnd.random() < 0.7 else files)
                size = expect[p]["size"]
                r = rnd.random()
                if r < 0.15:
                    off = max(0, size - rnd.randint(0, 70000))
                elif r < 0.2:
                    off = size + rnd.randint(0, 4096)
                else:
                    off = rnd.randint(0, max(0, size - 1))
                length = rnd.choice((1, 4095, 4096, 65537, 131072 + 13,
                                     rnd.randint(1, 2 * MiB)))
                if p not in fds or rnd.random() < 0.1:
                    if p in fds:
                        os.close(fds.pop(p))
                    fds[p] = os.open(os.path.join(m, p), os.O_RDONLY)
                got = os.pread(fds[p], length, off)
                with open(os.path.join(root, p), "rb") as f:
                    f.seek(off)
                    want = f.read(length)
                if got != want:
                    errors.append("%s: pread(%d, %d) gave %d bytes, "
                                  "want %d%s" % (
                                      p, off, length, len(got), len(want),
                                      "" if len(got) != len(want) else
                                      " (contents differ)"))
                with lock:
                    stats["reads"] += 1
                    stats["bytes"] += len(got)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("thread %d: %r" % (seed, e))
        finally:
            for fd in fds.values():
                os.close(fd)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "readers hang"
    assert not errors, "\n".join(errors[:20])
    assert stats["reads"] == 8 * 60
    assert proc.poll() is None, "daemon died: " + fh.read_stderr(proc)


# -- 4. error paths ----------------------------------------------------------

BAD_CASES = test_cli.BAD_CASES


def _bg_mount(img, mnt, *opts, cache=None, timeout=120):
    args = ["mount"]
    if cache:
        args += ["--cache", cache]
    return O.layerfs(*(args + list(opts) + [img, mnt]), timeout=timeout)


@pytest.mark.parametrize("fmt", ["oci", "oci-archive"])
@pytest.mark.parametrize("name,words,any_of", BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_bad_image_refused(name, words, any_of, fmt, bad_images, cache_dir,
                           mnt, layerfs_bin):
    """Background `layerfs mount` of each bad image of test_cli.py: exit 1
    with the same message as `layerfs ls`, before anything is mounted."""
    p = _bg_mount(bad_images(name, fmt), mnt, cache=cache_dir)
    mounted = fh.is_mounted(mnt)
    assert not mounted, "mounted despite the error"
    test_cli._assert_error(p, 1, *words, any_of=any_of)
    assert not fh.daemon_pids(mnt), "a daemon is left running"


def test_mountpoint_missing(images, cache_dir, tmp_path, layerfs_bin):
    where = str(tmp_path / "no" / "such-dir")
    p = _bg_mount(images("basic"), where, cache=cache_dir)
    assert p.returncode == 1, _err(p)
    assert "layerfs: " in _err(p) and where in _err(p)


def test_mountpoint_not_a_directory(images, cache_dir, tmp_path,
                                    layerfs_bin):
    where = tmp_path / "plainfile"
    where.write_text("x")
    p = _bg_mount(images("basic"), str(where), cache=cache_dir)
    assert p.returncode == 1, _err(p)
    assert "layerfs: " in _err(p) and str(where) in _err(p)
    assert not fh.is_mounted(str(where))


def test_mountpoint_already_mounted(images, session_caches, mounter,
                                    layerfs_bin):
    img = images("basic")
    cache = session_caches("basic", "oci")
    m, proc = mounter(img, cache=cache)
    before = [r for r in fh.mounts() if r[1] == m]
    p = _bg_mount(img, m, cache=cache)
    after = [r for r in fh.mounts() if r[1] == m]
    assert p.returncode == 1, _err(p)
    assert "layerfs: " in _err(p) and m in _err(p)
    assert before == after, "a second mount was stacked on %s" % m
    assert "etc" in os.listdir(m) and proc.poll() is None


WRITES = {
    "create": lambda m: os.open(os.path.join(m, "new"),
                                os.O_CREAT | os.O_WRONLY, 0o644),
    "create_excl": lambda m: os.open(os.path.join(m, "etc", "new"),
                                     os.O_CREAT | os.O_EXCL | os.O_RDWR),
    "mkdir": lambda m: os.mkdir(os.path.join(m, "newdir")),
    "unlink": lambda m: os.unlink(os.path.join(m, "etc/passwd")),
    "rmdir": lambda m: os.rmdir(os.path.join(m, "tmp")),
    "rename": lambda m: os.rename(os.path.join(m, "etc/passwd"),
                                  os.path.join(m, "etc/passwd2")),
    "chmod": lambda m: os.chmod(os.path.join(m, "etc/passwd"), 0o600),
    "chown": lambda m: os.chown(os.path.join(m, "etc/passwd"), 1, 1),
    "utime": lambda m: os.utime(os.path.join(m, "etc/passwd"), (0, 0)),
    "setxattr": lambda m: os.setxattr(os.path.join(m, "etc/passwd"),
                                      "user.x", b"1"),
    "removexattr": lambda m: os.removexattr(os.path.join(m, "etc/passwd"),
                                            "user.x"),
    "truncate": lambda m: os.truncate(os.path.join(m, "etc/passwd"), 0),
    "open_wronly": lambda m: os.open(os.path.join(m, "etc/passwd"),
                                     os.O_WRONLY),
    "open_rdwr": lambda m: os.open(os.path.join(m, "etc/passwd"), os.O_RDWR),
    "open_trunc": lambda m: os.open(os.path.join(m, "etc/passwd"),
                                    os.O_RDONLY | os.O_TRUNC),
    "symlink": lambda m: os.symlink("x", os.path.join(m, "sym")),
    "link": lambda m: os.link(os.path.join(m, "etc/passwd"),
                              os.path.join(m, "etc/hard")),
    "mkfifo": lambda m: os.mkfifo(os.path.join(m, "fifo")),
}


def test_writes_fail_erofs(images, session_caches, oracles, mounter,
                           layerfs_bin):
    n = O.layer_count("basic")
    m, proc = mounter(images("basic"), cache=session_caches("basic", "oci"))
    before = O.walk_rootfs(m)
    wrong = []
    for what, op in WRITES.items():
        try:
            fd = op(m)
        except OSError as e:
            if e.errno != errno.EROFS:
                wrong.append("%s: %s, want EROFS" % (
                    what, errno.errorcode.get(e.errno, e.errno)))
        else:
            if isinstance(fd, int):
                os.close(fd)
            wrong.append("%s: succeeded" % what)
    assert not wrong, "\n".join(wrong)
    assert O.walk_rootfs(m) == before
    assert not O.compare(oracles("basic", "oci", n), before)
    assert proc.poll() is None


def _drop_caches():
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def _copy_image(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def _largest_blob(layout):
    d = os.path.join(layout, "blobs", "sha256")
    return max((os.path.join(d, f) for f in os.listdir(d)),
               key=os.path.getsize)


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
def test_image_truncated_while_mounted(fmt, images, oracles, rootfs,
                                       tmp_path, mounter, layerfs_bin):
    """Data that is not cached yet gives EIO once the image file is cut
    short; the daemon keeps serving metadata and cached data."""
    img = _copy_image(images("basic", fmt), str(tmp_path / "img"))
    cache = str(tmp_path / "cache")
    os.mkdir(cache)
    _layerfs_ok("ls", "-lR", "--json", "--cache", cache, img)  # warm index
    m, proc = mounter(img, cache=cache)
    expect = oracles("basic", "oci", O.layer_count("basic"))
    victim = img if fmt != "oci" else _largest_blob(img)
    os.truncate(victim, os.path.getsize(victim) // 8)
    _drop_caches()
    fd = os.open(os.path.join(m, "big.bin"), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with pytest.raises(OSError) as ei:
            os.pread(fd, 65536, 2 * MiB + 12345)
        assert ei.value.errno == errno.EIO, ei.value
        # another fresh region: still EIO
        with pytest.raises(OSError) as ei:
            os.pread(fd, 4096, 3 * MiB)
        assert ei.value.errno == errno.EIO, ei.value
    finally:
        os.close(fd)
    time.sleep(0.1)
    assert proc.poll() is None, "daemon died (%s): %s" % (
        proc.returncode, fh.read_stderr(proc))
    # metadata is in memory: still served
    assert set(os.listdir(m)) == {p for p in expect if "/" not in p}
    assert os.lstat(os.path.join(m, "big.bin")).st_size == \
        expect["big.bin"]["size"]
    # every file, whatever its layer and compression (gzip, plain, zstd):
    # the right bytes or EIO, never short or wrong data
    wrong = []
    root = rootfs("basic", O.layer_count("basic"))
    for p in sorted(x for x in expect if expect[x]["type"] == "file"):
        try:
            with open(os.path.join(m, p), "rb") as f:
                data = f.read()
        except OSError as e:
            if e.errno != errno.EIO:
                wrong.append("%s: %s" % (p, e))
            continue
        with open(os.path.join(root, p), "rb") as f:
            if data != f.read():
                wrong.append("%s: %d bytes of wrong data" % (p, len(data)))
    assert not wrong, "\n".join(wrong)
    assert proc.poll() is None, "daemon died (%s): %s" % (
        proc.returncode, fh.read_stderr(proc))


@pytest.mark.parametrize("fmt", ["oci", "oci-archive"])
def test_image_deleted_while_mounted(fmt, images, oracles, tmp_path,
                                     mounter, rootfs, layerfs_bin):
    """Deleting the image under a mount: reads work (open descriptors) or
    give EIO, never a crash."""
    img = _copy_image(images("basic", fmt), str(tmp_path / "img"))
    cache = str(tmp_path / "cache")
    os.mkdir(cache)
    m, proc = mounter(img, cache=cache)
    n = O.layer_count("basic")
    expect = oracles("basic", fmt, n)
    root = rootfs("basic", n)
    if os.path.isdir(img):
        shutil.rmtree(img)
    else:
        os.unlink(img)
    _drop_caches()
    outcomes = {}
    for p in sorted(expect):
        if expect[p]["type"] != "file":
            continue
        try:
            with open(os.path.join(m, p), "rb") as f:
                data = f.read()
        except OSError as e:
            assert e.errno == errno.EIO, (p, e)
            outcomes[p] = "EIO"
            continue
        with open(os.path.join(root, p), "rb") as f:
            assert data == f.read(), p
        outcomes[p] = "ok"
    assert proc.poll() is None, "daemon died (%s): %s" % (
        proc.returncode, fh.read_stderr(proc))
    # metadata comes from memory
    assert set(os.listdir(m)) == {p for p in expect if "/" not in p}
    print("reads after deletion:", outcomes)   # shown with -s


@pytest.mark.parametrize("how", ["layerfs", "fusermount3"])
def test_umount_busy(how, images, session_caches, mounter, layerfs_bin):
    """Unmounting while a reader holds a file open: plain umount may refuse
    (EBUSY); -z always detaches; the daemon then ends cleanly once the
    last descriptor is closed."""
    m, proc = mounter(images("basic"), cache=session_caches("basic", "oci"))
    path = os.path.join(m, "big.bin")
    f = open(path, "rb")
    try:
        head = f.read(4096)
        if how == "layerfs":
            plain = O.layerfs("umount", m)
            plain_err = _err(plain)
        else:
            plain = fh.umount(m)
            plain_err = _err(plain)
        if plain.returncode != 0:
            assert fh.is_mounted(m)
            if how == "layerfs":
                assert plain.returncode == 1
                assert "layerfs: " in plain_err and m in plain_err, \
                    plain_err
            assert "busy" in plain_err.lower(), plain_err
            assert proc.poll() is None
            assert f.read(4096) and os.listdir(m)
            if how == "layerfs":
                lazy = O.layerfs("umount", "-z", m)
            else:
                lazy = fh.umount(m, lazy=True)
            assert lazy.returncode == 0, _err(lazy)
        assert not fh.is_mounted(m)
        # the detached mount still serves the open descriptor
        f.seek(0)
        assert f.read(4096) == head
    finally:
        f.close()
    try:
        rc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("daemon still running 15 s after the last close")
    assert rc == 0, "daemon exit %s: %s" % (rc, fh.read_stderr(proc))


# -- 5. background mode, umount, signals -------------------------------------

def test_background_mount_usable_at_once(images, oracles, cache_dir, mnt,
                                         layerfs_bin):
    """`layerfs mount` returns 0 only once the mount works; `layerfs
    umount` ends it and the daemon."""
    name = "sparse"                     # cold cache: indexes 50 MiB first
    img = images(name)
    expect = oracles(name, "oci", O.layer_count(name))
    p = _bg_mount(img, mnt, cache=cache_dir)
    top = set(os.listdir(mnt))          # straight away, no polling
    assert p.returncode == 0, _err(p)
    assert top == {x for x in expect if "/" not in x}
    row = fh.mount_entry(mnt)
    assert row is not None
    src, _, typ, opts = row
    opts = opts.split(",")
    assert typ == "fuse.layerfs", row
    assert src == img, row
    for o in ("ro", "nodev", "nosuid"):
        assert o in opts, row
    assert "allow_other" not in opts and "default_permissions" not in opts
    pids = fh.daemon_pids(mnt)
    assert len(pids) == 1, pids
    assert not O.compare(expect, O.walk_rootfs(mnt))
    u = O.layerfs("umount", mnt)
    assert u.returncode == 0, _err(u)
    assert not fh.is_mounted(mnt)
    assert fh._wait_gone(pids, 10), "daemon still running after umount"


def test_background_relative_paths(images, oracles, tmp_path, layerfs_bin):
    """The daemon runs in "/": relative IMAGE, MOUNTPOINT and --cache given
    from another cwd still work after it has detached."""
    name = "mixed_compression"
    n = O.layer_count(name)
    work = tmp_path / "cwd"
    work.mkdir()
    _copy_image(images(name, "oci"), str(work / "img"))
    (work / "m").mkdir()
    (work / "c").mkdir()
    m = str(work / "m")
    try:
        p = subprocess.run([O.LAYERFS, "mount", "--cache", "c", "img", "m"],
                           cwd=str(work), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, _err(p)
        assert fh.is_mounted(m)
        got = O.walk_rootfs(m)
        diffs = O.compare(oracles(name, "oci", n), got,
                          cat=lambda x: got[x].get("sha256"))
        assert not diffs, _diffs_msg(diffs)
        assert os.listdir(str(work / "c")), "relative --cache not used"
        u = subprocess.run([O.LAYERFS, "umount", "m"], cwd=str(work),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert u.returncode == 0, _err(u)
        assert not fh.is_mounted(m)
    finally:
        fh.cleanup(m)


def test_statfs_mmap_and_special_files(images, oracles, rootfs,
                                       session_caches, mounter, layerfs_bin):
    """statvfs says read-only; mmap reads what read reads; device nodes
    cannot be opened (nodev); a fifo opens as a fifo."""
    n = O.layer_count("basic")
    m, proc = mounter(images("basic"), cache=session_caches("basic", "oci"))
    sv = os.statvfs(m)
    assert sv.f_flag & os.ST_RDONLY and sv.f_flag & os.ST_NODEV
    assert sv.f_namemax == 255
    import mmap
    with open(os.path.join(m, "big.bin"), "rb") as f, \
            mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
        with open(os.path.join(rootfs("basic", n), "big.bin"), "rb") as g:
            assert mm[:] == g.read()
    d, dproc = mounter(images("devices"),
                       cache=session_caches("devices", "oci"))
    with pytest.raises(OSError) as ei:
        os.open(os.path.join(d, "dev/null"), os.O_RDONLY)
    assert ei.value.errno == errno.EACCES, ei.value
    fd = os.open(os.path.join(d, "dev/initctl"),
                 os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert stat.S_ISFIFO(os.fstat(fd).st_mode)
        assert os.read(fd, 10) == b""
    finally:
        os.close(fd)
    assert proc.poll() is None and dproc.poll() is None


def test_fuse_option_max_read(images, session_caches, mnt, layerfs_bin):
    """A FUSE option passed through -o either works or is refused with
    exit 1 before detaching; never exit 0 with nothing mounted."""
    img = images("basic")
    p = _bg_mount(img, mnt, "-o", "max_read=65536",
                  cache=session_caches("basic", "oci"))
    if p.returncode != 0:
        assert p.returncode == 1 and "layerfs: " in _err(p), _err(p)
        assert not fh.is_mounted(mnt)
        return
    time.sleep(0.2)
    assert fh.is_mounted(mnt), "exit 0, but %s is not mounted" % mnt
    with open(os.path.join(mnt, "big.bin"), "rb") as f:
        assert len(f.read()) == os.path.getsize(os.path.join(mnt, "big.bin"))


def test_noexec_honoured(images, session_caches, mnt, layerfs_bin):
    """-o noexec (fstab, mount(8)) is a real restriction: it must reach the
    mount, or be refused; it must not be dropped silently."""
    p = _bg_mount(images("basic"), mnt, "-o", "noexec",
                  cache=session_caches("basic", "oci"))
    if p.returncode != 0:
        assert p.returncode == 1 and "layerfs: " in _err(p), _err(p)
        return
    row = fh.mount_entry(mnt)
    assert row is not None
    assert "noexec" in row[3].split(","), row


def test_umount_not_mounted(mnt, layerfs_bin):
    p = O.layerfs("umount", mnt)
    assert p.returncode == 1, _err(p)
    assert "layerfs: " in _err(p) and mnt in _err(p)
    assert "not mounted" in _err(p)


def test_umount_returns_when_the_daemon_is_gone(images, session_caches,
                                                mounter, tmp_path,
                                                layerfs_bin):
    """layerfs umount waits for the daemon: a lower directory it held is
    free at once (umount of its tmpfs right after is not EBUSY)."""
    low = tmp_path / "low"
    low.mkdir()
    for i in range(3):
        m = None
        subprocess.run(["mount", "-t", "tmpfs", "none", str(low)],
                       check=True, timeout=30)
        try:
            (low / "f").write_bytes(b"lower %d\n" % i)
            m, proc = mounter(images("basic"), "--lower", str(low),
                              cache=session_caches("basic", "oci"))
            with open(os.path.join(m, "f"), "rb") as f:
                assert f.read() == b"lower %d\n" % i
            pid = "/run/layerfs/%d:%d.pid" % (os.major(os.stat(m).st_dev),
                                              os.minor(os.stat(m).st_dev))
            with open(pid) as f:
                assert int(f.read()) == proc.pid
            p = O.layerfs("umount", m)
            assert p.returncode == 0, _err(p)
            # umount waits at most 10 s; a sanitizer build may take longer
            # to exit under load, so only a normal build must be gone now
            if not os.environ.get("LAYERFS_SANITIZED"):
                assert proc.poll() is not None, "umount returned first"
            proc.wait(timeout=60)
            assert not os.path.exists(pid)
        finally:
            r = subprocess.run(["umount", str(low)], capture_output=True,
                               timeout=30)
            if r.returncode:  # the test failed above: leave nothing behind
                if m:
                    fh.cleanup(m)
                subprocess.run(["umount", str(low)], timeout=30)
        assert r.returncode == 0, r.stderr


def test_umount_leaves_other_mounts_alone(images, session_caches, mounter,
                                          mnt, layerfs_bin):
    """A tmpfs is not unmounted by layerfs umount, not even one mounted on
    top of a layerfs mount; a layerfs mount whose daemon died is."""
    subprocess.run(["mount", "-t", "tmpfs", "none", mnt], check=True,
                   timeout=30)
    try:
        p = O.layerfs("umount", mnt)
        assert p.returncode == 1 and "not a layerfs mount" in _err(p)
        assert fh.mount_entry(mnt) is not None
    finally:
        subprocess.run(["umount", mnt], timeout=30)
    m, proc = mounter(images("basic"), cache=session_caches("basic", "oci"))
    subprocess.run(["mount", "-t", "tmpfs", "none", m], check=True,
                   timeout=30)
    try:
        p = O.layerfs("umount", m + "/")
        assert p.returncode == 1 and "tmpfs" in _err(p), _err(p)
    finally:
        subprocess.run(["umount", m], timeout=30)
    assert "etc" in os.listdir(m)
    proc.kill()
    proc.wait(timeout=15)
    p = O.layerfs("umount", m)
    assert p.returncode == 0, _err(p)
    assert not fh.is_mounted(m)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_foreground(sig, images, session_caches, mounter,
                                    layerfs_bin):
    m, proc = mounter(images("basic"), cache=session_caches("basic", "oci"))
    assert "etc" in os.listdir(m)
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("-f daemon ignores %s" % sig.name)
    assert rc == 0, "exit %s: %s" % (rc, fh.read_stderr(proc))
    assert not fh.is_mounted(m)


def test_sigterm_to_background_daemon(images, session_caches, mnt,
                                      layerfs_bin):
    p = _bg_mount(images("basic"), mnt, cache=session_caches("basic", "oci"))
    assert p.returncode == 0, _err(p)
    pids = fh.daemon_pids(mnt)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGTERM)
    assert fh._wait_gone(pids, 15), "daemon ignores SIGTERM"
    assert not fh.is_mounted(mnt)


# -- 6. unprivileged user ----------------------------------------------------

_SHARED_PREFIX = os.path.join(tempfile.gettempdir(), "lftest-")

SECRET = "top secret, root only\n"


def _secret_image():
    from mkimage import Image, Layer, dir as d, file as f
    return Image([Layer([d("etc"), f("etc/hello", "hello world\n"),
                         f("secret", SECRET, mode=0o600)])])


@pytest.fixture(scope="module")
def lftest_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to create %s and to su" % USER)
    if subprocess.run(["id", "-u", USER], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        if shutil.which("useradd") is None:
            fh.skip_or_fail("useradd not found: cannot create " + USER)
        p = subprocess.run(["useradd", "-m", USER], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if p.returncode != 0:
            fh.skip_or_fail("useradd %s failed: %s" % (USER, _err(p)))
    import pwd
    pw = pwd.getpwnam(USER)
    # the user must reach the binary
    p = _as_user(pw, "test -x %s" % O.LAYERFS)
    if p.returncode != 0:
        fh.skip_or_fail("%s cannot execute %s" % (USER, O.LAYERFS))
    return pw


@pytest.fixture(scope="module")
def user_can_mount(lftest_user):
    """lftest_user, when a normal user can mount FUSE on this machine."""
    pw = lftest_user
    reason = fh.fusermount_setuid()
    if reason:
        fh.skip_or_fail(reason + ": a normal user cannot mount")
    # libfuse opens /dev/fuse itself before it falls back to fusermount3
    # (fuse_mount_sys gives up on EACCES), so the device must be rw for all,
    # as Debian's udev rule makes it (crw-rw-rw-).  Some VMs and containers
    # create it 0600: as root, make it what Debian ships for this test.
    old_mode = None
    p = _as_user(pw, "test -r /dev/fuse -a -w /dev/fuse")
    if p.returncode != 0 and os.geteuid() == 0:
        old_mode = os.stat("/dev/fuse").st_mode & 0o7777
        os.chmod("/dev/fuse", 0o666)
        p = _as_user(pw, "test -r /dev/fuse -a -w /dev/fuse")
    try:
        if p.returncode != 0:
            mode = stat.filemode(os.stat("/dev/fuse").st_mode)
            fh.skip_or_fail("/dev/fuse is %s: %s cannot open it, so no "
                            "normal user can mount FUSE here" % (mode, USER))
        yield pw
    finally:
        if old_mode is not None:
            os.chmod("/dev/fuse", old_mode)


def _as_user(pw, script, timeout=120):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
           "LANG": "C"}
    # the sanitizer build's settings (suppressions, exit codes) go along
    for k in ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return subprocess.run(["su", "-s", "/bin/sh", pw.pw_name, "-c",
                           "cd / && " + script], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


@pytest.fixture
def shared(lftest_user):
    """A world-readable work dir outside pytest's 0700 tmp: the image, and
    a mountpoint and a cache dir owned by the user."""
    top = tempfile.mkdtemp(prefix="lftest-")
    os.chmod(top, 0o755)
    img = os.path.join(top, "img")
    O.mkimage.write_image(_secret_image(), img, "oci", key="lftest-secret")
    for r, ds, fs in os.walk(img):
        for x in ds + fs:
            os.chmod(os.path.join(r, x), 0o755 if x in ds else 0o644)
    os.chmod(img, 0o755)
    paths = {"top": top, "img": img}
    for k in ("mnt", "cache"):
        paths[k] = os.path.join(top, k)
        os.mkdir(paths[k])
        os.chown(paths[k], lftest_user.pw_uid, lftest_user.pw_gid)
    yield paths
    fh.cleanup(paths["mnt"])
    shutil.rmtree(top, ignore_errors=True)


def test_user_reads_root_only_file(user_can_mount, shared, layerfs_bin):
    """Without allow_other layerfs checks no permissions: the mounting user
    reads a root-owned 0600 file of the image (design.md 3.11)."""
    s = shared
    p = _as_user(user_can_mount,
                 "{b} mount --cache {c} {i} {m} && cat {m}/secret && "
                 "{b} umount {m}".format(b=O.LAYERFS, c=s["cache"],
                                         i=s["img"], m=s["mnt"]))
    mounted = fh.is_mounted(s["mnt"])
    assert p.returncode == 0, _err(p)
    assert p.stdout.decode() == SECRET
    assert not mounted, "layerfs umount as %s left the mount" % USER
    assert os.listdir(s["cache"]), "the user's cache dir was not used"


def test_user_allow_other(lftest_user, shared, request, layerfs_bin):
    """A normal user's allow_other mount (needs user_allow_other in
    /etc/fuse.conf: as root, the test adds it for its own duration)."""
    conf = "/etc/fuse.conf"
    old = open(conf).read() if os.path.exists(conf) else None
    if "user_allow_other" not in [x.strip() for x in (old or "").split("\n")]:
        if os.geteuid() != 0:
            pytest.skip("/etc/fuse.conf has no user_allow_other")
        with open(conf, "w") as f:
            f.write((old or "") + "\nuser_allow_other\n")

        def restore():
            if old is None:
                os.unlink(conf)
            else:
                with open(conf, "w") as f:
                    f.write(old)
        request.addfinalizer(restore)
    user_can_mount = request.getfixturevalue("user_can_mount")
    s = shared
    p = _as_user(user_can_mount,
                 "{b} mount -o allow_other --cache {c} {i} {m} && "
                 "cat {m}/etc/hello && (cat {m}/secret; echo rc=$?) && "
                 "{b} umount {m}".format(b=O.LAYERFS, c=s["cache"],
                                         i=s["img"], m=s["mnt"]))
    assert p.returncode == 0, _err(p)
    out = p.stdout.decode()
    # default_permissions: the user's own mount still checks the modes
    assert out.startswith("hello world\n") and "rc=1" in out, out


@pytest.mark.parametrize("how", ["--allow-other", "-o allow_other"])
def test_root_allow_other_checks_permissions(how, lftest_user, shared,
                                             mounter, layerfs_bin):
    """As root with allow_other, default_permissions is on: another user
    reads 0644 files but gets EACCES on the 0600 one."""
    s = shared
    m, proc = mounter(s["img"], *how.split(), cache=s["cache"], mnt=s["mnt"])
    opts = fh.mount_entry(m)[3].split(",")
    assert "allow_other" in opts and "default_permissions" in opts, opts
    p = _as_user(lftest_user, "cat %s/etc/hello" % m)
    assert p.returncode == 0, _err(p)
    assert p.stdout == b"hello world\n"
    p = _as_user(lftest_user, "cat %s/secret" % m)
    assert p.returncode != 0 and p.stdout == b""
    assert "Permission denied" in _err(p), _err(p)
    with open(os.path.join(m, "secret")) as f:     # root still can
        assert f.read() == SECRET


def test_root_mount_closed_to_others(lftest_user, shared, mounter,
                                     layerfs_bin):
    """Without allow_other, nobody but the mounting user enters."""
    s = shared
    m, _ = mounter(s["img"], cache=s["cache"], mnt=s["mnt"])
    p = _as_user(lftest_user, "ls %s" % m)
    assert p.returncode != 0, p.stdout
    assert "Permission denied" in _err(p), _err(p)


# -- 7. mount(8) -------------------------------------------------------------

# mount(8) (util-linux 2.38) runs /sbin/mount.fuse3 with PATH removed from
# the environment, and mount.fuse3 runs `layerfs IMAGE MNT -o ...` through
# /bin/sh, whose default PATH is this one: `mount -t fuse.layerfs` only
# finds a layerfs installed in one of these directories.
SH_DEFAULT_PATH = ("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                   "/sbin:/bin")


@pytest.fixture
def helper_path(tmp_path):
    """Environment whose PATH starts with a temp dir holding a `layerfs`
    symlink to the binary, as mount.fuse3 needs it."""
    if shutil.which("mount.fuse3", path=SH_DEFAULT_PATH) is None:
        fh.skip_or_fail("mount.fuse3 not found (fuse3 package)")
    if os.geteuid() != 0:
        pytest.skip("mount(8) needs root")
    d = tmp_path / "bin"
    d.mkdir()
    os.symlink(os.path.realpath(O.LAYERFS), str(d / "layerfs"))
    env = dict(os.environ)
    env.pop("LAYERFS_CACHE", None)
    env["PATH"] = "%s:%s" % (d, env.get("PATH", SH_DEFAULT_PATH))
    return env


@pytest.fixture
def installed_layerfs(helper_path):
    """`layerfs` reachable through mount(8)'s sanitised PATH: the one found
    there if it is this binary, else a symlink in /usr/local/sbin for the
    duration of the test (removed afterwards; refused if another layerfs
    is installed)."""
    real = os.path.realpath(O.LAYERFS)
    found = shutil.which("layerfs", path=SH_DEFAULT_PATH)
    if found is not None:
        if os.path.realpath(found) != real:
            pytest.skip("another layerfs is installed at %s; mount(8) "
                        "would run that one" % found)
        yield helper_path
        return
    link = "/usr/local/sbin/layerfs"
    try:
        os.makedirs("/usr/local/sbin", exist_ok=True)
        os.symlink(real, link)
    except OSError as e:
        fh.skip_or_fail("cannot install %s for mount(8): %s" % (link, e))
    try:
        yield helper_path
    finally:
        if os.path.islink(link) and os.readlink(link) == real:
            os.unlink(link)


def _sys_mount(env, img, mnt, opts, helper=False):
    cmd = ["mount.fuse3", img, mnt, "-o", opts, "-t", "fuse.layerfs"] \
        if helper else ["mount", "-t", "fuse.layerfs", img, mnt, "-o", opts]
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


MOUNT8_CASES = [
    ("basic", "oci", "layers=1", 1),
    ("hardlinks", "oci-archive", "layers=-1,ro,nosuid", 2),
    ("basic", "docker-archive", "ref=layerfs-test:latest,layers=2", 2),
]


def _check_mount8(name, fmt, n, mnt, cache_dir, oracles, umount_cmd):
    row = fh.mount_entry(mnt)
    assert row is not None and row[2] == "fuse.layerfs", row
    for o in ("ro", "nodev", "nosuid"):    # mount.fuse3 adds rw,dev,suid
        assert o in row[3].split(","), row
    got = O.walk_rootfs(mnt)
    diffs = O.compare(oracles(name, fmt, n), got,
                      cat=lambda x: got[x].get("sha256"))
    assert not diffs, _diffs_msg(diffs)
    assert os.listdir(cache_dir), "cache= not used"
    pids = fh.daemon_pids(mnt)
    assert len(pids) == 1, pids
    u = subprocess.run(umount_cmd + [mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert u.returncode == 0, _err(u)
    assert not fh.is_mounted(mnt)
    assert fh._wait_gone(pids, 10), "daemon still running after umount"


@pytest.mark.parametrize("name,fmt,opts,n", MOUNT8_CASES,
                         ids=["layers1", "negative", "ref"])
def test_mount8(name, fmt, opts, n, installed_layerfs, images, oracles,
                cache_dir, mnt, layerfs_bin):
    """`mount -t fuse.layerfs IMAGE MNT -o layers=1,cache=DIR`; umount."""
    img = images(name, fmt)
    p = _sys_mount(installed_layerfs, img, mnt,
                   "%s,cache=%s" % (opts, cache_dir))
    assert p.returncode == 0, _err(p)
    _check_mount8(name, fmt, n, mnt, cache_dir, oracles, ["umount"])


@pytest.mark.parametrize("name,fmt,opts,n", MOUNT8_CASES,
                         ids=["layers1", "negative", "ref"])
def test_mount_fuse3_helper(name, fmt, opts, n, helper_path, images, oracles,
                            cache_dir, mnt, layerfs_bin):
    """What mount(8) runs: /sbin/mount.fuse3 (which adds rw,dev,suid), here
    with the temp dir in front of PATH; `layerfs umount` ends it."""
    img = images(name, fmt)
    p = _sys_mount(helper_path, img, mnt, "%s,cache=%s" % (opts, cache_dir),
                   helper=True)
    assert p.returncode == 0, _err(p)
    _check_mount8(name, fmt, n, mnt, cache_dir, oracles,
                  [O.LAYERFS, "umount"])


def test_mount8_no_verify(helper_path, bad_images, cache_dir, mnt,
                          layerfs_bin):
    """no_verify reaches the digest check; without it the mount fails."""
    img = bad_images("wrong_digest")
    p = _sys_mount(helper_path, img, mnt, "cache=" + cache_dir, helper=True)
    assert p.returncode != 0 and not fh.is_mounted(mnt)
    assert "layerfs: " in _err(p), _err(p)
    p = _sys_mount(helper_path, img, mnt, "no_verify,cache=" + cache_dir,
                   helper=True)
    assert p.returncode == 0, _err(p)
    assert "etc" in os.listdir(mnt)


def test_helper_form_direct(images, oracles, cache_dir, mnt, layerfs_bin):
    """What mount.fuse3 runs: `layerfs IMAGE MNT -o layers=1,cache=DIR`."""
    img = images("basic")
    p = O.layerfs(img, mnt, "-o", "layers=1,cache=" + cache_dir)
    assert p.returncode == 0, _err(p)
    got = O.walk_rootfs(mnt)
    assert not O.compare(oracles("basic", "oci", 1), got)


def _overlay_lowers(base):
    """Two plain directory layers, the top one deleting `gone` with an
    overlayfs whiteout (a 0/0 char device, which both readers know)."""
    low, top = base / "low", base / "top"
    for d in (low / "d", top / "d"):
        d.mkdir(parents=True)
    (low / "a").write_text("low a\n")
    (low / "d" / "x").write_text("low x\n")
    (low / "gone").write_text("deleted above\n")
    (top / "b").write_text("top b\n")
    (top / "d" / "x").write_text("top x\n")
    os.mknod(top / "gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    return "lowerdir=%s:%s" % (top, low)


def _names_types_bytes(tree):
    return {p: (e["type"], e.get("sha256")) for p, e in tree.items()}


@pytest.mark.parametrize("label", ["none", "overlay", "layerfs"])
def test_mount8_overlay_style_label(label, installed_layerfs, tmp_path,
                                   layerfs_bin):
    """`mount -t fuse.layerfs LABEL MNT -o lowerdir=...,upperdir=...,
    workdir=...` takes LABEL as the kernel overlayfs does: a name, not an
    image (upstream unionmount-testsuite mounts with its fs name). The
    merged view equals `mount -t overlay` of the same dirs, /proc/mounts
    shows the label as the source and allow_other,default_permissions (a
    mount by root), and a write lands in upperdir."""
    lowers = _overlay_lowers(tmp_path)
    for d in ("u", "w", "ku", "kw", "m", "k"):
        (tmp_path / d).mkdir()
    m, k = str(tmp_path / "m"), str(tmp_path / "k")
    opts = "%s,upperdir=%s,workdir=%s" % (lowers, tmp_path / "u",
                                          tmp_path / "w")
    p = subprocess.run(["mount", "-t", "fuse.layerfs", label, m, "-o", opts],
                       env=installed_layerfs, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, _err(p)
    row = fh.mount_entry(m)
    assert row is not None and row[0] == label and \
        row[2] == "fuse.layerfs", row   # /proc/mounts names the label
    # mounted by root, like the kernel's overlay (and fuse-overlayfs):
    # every user may enter, permissions are checked from the modes
    for o in ("allow_other", "default_permissions"):
        assert o in row[3].split(","), row
    try:
        kopts = "%s,upperdir=%s,workdir=%s" % (lowers, tmp_path / "ku",
                                               tmp_path / "kw")
        subprocess.run(["mount", "-t", "overlay", "overlay", k, "-o", kopts],
                       check=True)
        try:
            want = _names_types_bytes(O.walk_rootfs(k))
        finally:
            subprocess.run(["umount", k], check=True)
        assert _names_types_bytes(O.walk_rootfs(m)) == want
        assert "gone" not in want and want["d/x"][1] == \
            O.file_sha256(str(tmp_path / "top" / "d" / "x"))
        with open(os.path.join(m, "new"), "w") as f:
            f.write("upper\n")
    finally:
        fh.cleanup(m, None)
    assert (tmp_path / "u" / "new").read_text() == "upper\n"


def test_mistyped_command_not_a_mount(tmp_path, layerfs_bin):
    """Without lowerdir=, an unknown first word that is no path is a
    mistyped command (exit 2), not mount(8)'s source."""
    p = O.layerfs("lyers", str(tmp_path), "-o", "ro")
    assert p.returncode == 2, _err(p)
    assert "unknown command 'lyers'" in _err(p), _err(p)
