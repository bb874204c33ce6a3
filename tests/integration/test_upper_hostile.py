# SPDX-License-Identifier: MIT
"""A hostile upper directory: changed from outside while mounted, or made
by someone else before (`layerfs mount --upper`, `diff --upper`, `commit`).

- a file of the upper swapped for a FIFO, then opened through the mount:
  the open answers (an error) and other readers are never held up;
- a directory or file of the upper swapped for a symlink to a directory
  outside holding a canary, then every kind of change through the mount:
  the canary (mode, owner, times, content, xattrs, its directory) stays;
- an upper dir 20,000 levels deep: diff, commit and find on a mount end
  without a crash (an explicit error is allowed);
- whiteouts and opaque markers of odd types (directory, symlink, FIFO),
  device nodes: still read by name as the OCI layer format says, nothing
  opened, nothing blocks.
Every command runs under a timeout.  The kernel overlayfs is no reference
here: it reads whiteouts as 0/0 devices and has no `.wh.` names.
"""

import os
import stat
import subprocess
import sys
import threading

import pytest

import fusehelpers as fh
import oracle as O
from fusehelpers import fuse_required  # noqa: F401  (fixture, see marker)

pytestmark = fh.fuse_marker()

T = 60  # seconds: every command and every mount finishes well within this


def _wait_unfrozen(proc, daemon, why):
    """Wait for a process working through the mount; if it hangs, the mount
    is frozen: killing the daemon is the only way to free it, then fail."""
    try:
        proc.wait(timeout=T / 3)
    except subprocess.TimeoutExpired:
        daemon.kill()
        proc.wait()
        pytest.fail(why)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if not O.have_layerfs():
        pytest.skip("layerfs binary not found at %s" % O.LAYERFS)
    return O.generate("basic", "oci", str(tmp_path_factory.mktemp("img")))


@pytest.fixture
def work(tmp_path):
    return tmp_path


@pytest.fixture
def mounted(image, work):
    """mounted() -> (mnt, upper, daemon): `layerfs mount -f --upper`."""
    made = []

    def do():
        # two levels deeper than the upper dir: see _canary()
        mnt, upper = str(work / "m" / "n" / "mnt"), str(work / "upper")
        os.makedirs(mnt)
        proc = fh.mount(image, mnt, "--upper", upper,
                        cache=str(work / "cache"))
        made.append((mnt, proc))
        return mnt, upper, proc
    yield do
    for mnt, proc in made:
        fh.cleanup(mnt, proc)
        assert proc.returncode in (0, None, -9), fh.read_stderr(proc)


def _py(code, *args, timeout=T):
    return subprocess.run([sys.executable, "-c", code] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def _in_fuse_wait(pid):
    """Whether process pid sleeps in a FUSE request (or is gone)."""
    try:
        with open("/proc/%d/wchan" % pid) as f:
            w = f.read()
    except OSError:
        return True
    return "fuse" in w or "request" in w


OPENER = r"""
import os, sys
print("opening", flush=True)
try:
    fd = os.open(sys.argv[1], int(sys.argv[2]))
    print("opened", flush=True)
    os.close(fd)
except OSError as e:
    print("error", e.errno, flush=True)
"""

READER = r"""
import os, sys
n = 0
for i in range(200):
    for p in sys.argv[2:]:
        os.stat(p)
        with open(p, "rb") as f:
            n += len(f.read())
print(n)
"""


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY],
                         ids=["rdonly", "wronly"])
def test_fifo_swapped_in_blocks_nobody(mounted, flags):
    mnt, upper, daemon = mounted()
    m = lambda p: os.path.join(mnt, p)  # noqa: E731
    with open(m("victim"), "w") as f:
        f.write("v")
    with open(m("etc/passwd"), "a") as f:  # copied up: an upper file
        f.write("x\n")
    os.stat(m("victim"))
    # from outside, while mounted
    os.unlink(os.path.join(upper, "victim"))
    os.mkfifo(os.path.join(upper, "victim"))
    opener = subprocess.Popen([sys.executable, "-c", OPENER, m("victim"),
                               str(flags)], stdout=subprocess.PIPE)
    try:
        assert opener.stdout.readline() == b"opening\n"
        for _ in range(100000):  # until it waits on FUSE or is done
            if opener.poll() is not None or _in_fuse_wait(opener.pid):
                break
        reader = subprocess.Popen([sys.executable, "-c", READER, "",
                                   m("etc/passwd"), m("etc/shadow"),
                                   m("usr/bin/su")], stdout=subprocess.PIPE)
        _wait_unfrozen(reader, daemon,
                       "a FIFO open through the mount froze other readers")
        assert reader.returncode == 0
        want = 200 * (len(open(m("etc/passwd"), "rb").read()) +
                      len(b"root:*::::::\n") + 3000)
        assert int(reader.stdout.read()) == want
        opener.wait(timeout=T)
        out = opener.stdout.read()  # not communicate(): readline buffered
    finally:
        if opener.poll() is None:
            opener.kill()
            opener.wait()
            pytest.fail("opening a FIFO swapped into the upper dir blocked")
    # the node was a file: the FIFO is never opened as one (the kernel
    # opens FIFOs itself, and calls a node whose type changed bad: EIO)
    assert out.startswith(b"error"), out
    assert stat.S_ISFIFO(os.lstat(os.path.join(upper, "victim")).st_mode)


def _canary(outside):
    """A directory outside the upper dir and what it looks like.  Symlinks
    to it are relative: from the upper dir they lead to it, from the mount
    (two levels deeper) they do not, so the canary can only change if
    layerfs itself follows one."""
    os.mkdir(outside, 0o750)
    f = os.path.join(outside, "f")
    with open(f, "w") as fp:
        fp.write("canary\n")
    os.chmod(f, 0o640)
    os.setxattr(f, "user.canary", b"1")
    os.setxattr(outside, "user.canary", b"2")
    # atime after mtime: our own reads leave it (relatime)
    os.utime(f, ns=(3 * 10**18, 10**18))
    os.utime(outside, ns=(3 * 10**18, 2 * 10**18))
    return _look(outside)


def _look(outside):
    def one(p):
        st = os.lstat(p)
        return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                st.st_atime_ns, st.st_ctime_ns, st.st_size,
                sorted((x, os.getxattr(p, x)) for x in os.listxattr(p)))
    f = os.path.join(outside, "f")
    return (one(outside), one(f), open(f, "rb").read(),
            sorted(os.listdir(outside)))


CHANGES = [
    ("chmod", lambda p: os.chmod(p, 0o777)),
    ("chown", lambda p: os.chown(p, 1234, 1234)),
    ("lchown", lambda p: os.lchown(p, 1234, 1234)),
    ("utime", lambda p: os.utime(p, ns=(5, 5))),
    ("utime_now", lambda p: os.utime(p)),
    ("setxattr", lambda p: os.setxattr(p, "user.canary", b"evil")),
    ("removexattr", lambda p: os.removexattr(p, "user.canary")),
    ("truncate", lambda p: os.truncate(p, 0)),
    ("truncate_f", lambda p: os.truncate(os.path.join(p, "f"), 0)),
    ("chmod_f", lambda p: os.chmod(os.path.join(p, "f"), 0o777)),
    ("unlink_f", lambda p: os.unlink(os.path.join(p, "f"))),
    ("rename_f", lambda p: os.rename(os.path.join(p, "f"),
                                     os.path.join(p, "g"))),
    ("create", lambda p: open(os.path.join(p, "new"), "w").close()),
    ("mkdir", lambda p: os.mkdir(os.path.join(p, "newd"))),
    ("write_f", lambda p: open(os.path.join(p, "f"), "w").write("evil")),
    ("rmdir", lambda p: os.rmdir(p)),
    ("unlink", lambda p: os.unlink(p)),
]


@pytest.mark.parametrize("what", ["lower_dir", "new_dir", "file"])
def test_symlink_swapped_in_changes_nothing_outside(mounted, work, what):
    mnt, upper, daemon = mounted()
    outside = str(work / "outside")
    before = _canary(outside)
    if what == "lower_dir":
        name = "home"
        os.chmod(os.path.join(mnt, name), 0o755)  # copied up
    elif what == "new_dir":
        name = "newdir"
        os.mkdir(os.path.join(mnt, name))
        open(os.path.join(mnt, name, "f"), "w").close()
    else:
        name = "etc/passwd"
        with open(os.path.join(mnt, name), "a") as fp:  # copied up
            fp.write("x\n")
    p = os.path.join(mnt, name)
    # a file opened before the swap: f*() calls reach its own upper file
    fd = os.open(p if what == "file" else os.path.join(mnt, "etc/shadow"),
                 os.O_RDWR)
    os.stat(p)
    up = os.path.join(upper, name)
    # relative, so that it leads to the canary only from the upper dir: a
    # process following the symlink the view now shows ends elsewhere
    target = os.path.relpath(os.path.join(outside, "f") if what == "file"
                             else outside, os.path.dirname(up))
    os.rename(up, up + ".moved")
    os.symlink(target, up)
    results = []
    for label, change in CHANGES:
        try:
            change(p)
            results.append((label, 0))
        except OSError as e:
            results.append((label, e.errno))
    for change in (lambda: os.fchmod(fd, 0o600),
                   lambda: os.fchown(fd, 4321, 4321),
                   lambda: os.utime(fd, ns=(7, 7)),
                   lambda: os.ftruncate(fd, 3)):
        try:  # EIO once the kernel saw the type change
            change()
        except OSError as e:
            results.append(("f*", e.errno))
    try:
        os.close(fd)
    except OSError as e:  # flush of a node gone bad
        results.append(("close", e.errno))
    assert _look(outside) == before, results


def _deep(upper, levels):
    """upper/d/d/.../d, made through directory fds (no long paths)."""
    os.mkdir(upper)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644,
                          dir_fd=fd), "w") as f:
            f.write("leaf\n")
    finally:
        os.close(fd)


def _rm_deep(top):
    """Remove what _deep made: lift top/d/d to top/d, one level a step."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            try:
                os.rename("d/d", "t", src_dir_fd=fd, dst_dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                break
            os.rmdir("d", dir_fd=fd)
            os.rename("t", "d", src_dir_fd=fd, dst_dir_fd=fd)
        if os.path.isdir(os.path.join(top, "d")):
            d = os.path.join(top, "d")
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
            os.rmdir(d)
    finally:
        os.close(fd)
    for n in os.listdir(top):
        os.unlink(os.path.join(top, n))
    os.rmdir(top)


def _no_crash(p):
    """Exit 0, or 1 with a one-line 'layerfs: ...' message; no signal."""
    err = p.stderr.decode(errors="replace")
    assert p.returncode in (0, 1), (p.returncode, err[-2000:])
    if p.returncode:
        assert "layerfs: " in err, err[-2000:]
    return err


@pytest.fixture(scope="module")
def deep_upper(tmp_path_factory):
    upper = str(tmp_path_factory.mktemp("deep") / "upper")
    _deep(upper, 20000)
    yield upper
    _rm_deep(upper)


def test_deep_upper_diff(image, deep_upper, work):
    p = O.layerfs("diff", "--cache", str(work / "cache"), image, "--upper",
                  deep_upper, timeout=T * 3)
    _no_crash(p)
    if p.returncode == 0:
        assert b"A /d\n" in p.stdout


def test_deep_upper_commit(image, deep_upper, work):
    p = O.layerfs("commit", "--cache", str(work / "cache"), image,
                  "--upper", deep_upper, "-o", str(work / "out"),
                  timeout=T * 3)
    _no_crash(p)


def test_deep_upper_mount(image, deep_upper, work):
    mnt = str(work / "mnt")
    os.mkdir(mnt)
    proc = fh.mount(image, mnt, "--upper", deep_upper,
                    cache=str(work / "cache"))
    try:
        f = subprocess.run(["find", mnt], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=T * 3)
    finally:
        fh.cleanup(mnt, proc)
    assert proc.returncode == 0, fh.read_stderr(proc)
    # the levels layerfs serves are all there; past its depth limit an
    # explicit error (ENAMETOOLONG), never a hang or a crash
    assert f.stdout.count(b"/d\n") >= 2048, f.stderr[-500:]
    if f.returncode:
        assert b"too long" in f.stderr, f.stderr[-500:]


def _odd_upper(upper, outside):
    os.makedirs(os.path.join(upper, "etc"))
    os.makedirs(os.path.join(upper, "home"))
    os.makedirs(os.path.join(upper, "usr/bin"))
    os.mkdir(os.path.join(upper, "etc/.wh.passwd"))            # dir
    os.symlink(os.path.join(outside, "f"),
               os.path.join(upper, "etc/.wh.shadow"))          # symlink
    os.mkfifo(os.path.join(upper, ".wh.empty"))                 # fifo
    os.mkfifo(os.path.join(upper, "home/.wh..wh..opq"))         # fifo opq
    os.symlink("../../..", os.path.join(upper, "usr/bin/.wh..wh..opq"))
    os.mknod(os.path.join(upper, "null"), 0o666 | stat.S_IFCHR,
             os.makedev(1, 3))
    os.mkfifo(os.path.join(upper, "pipe"))
    os.symlink("/etc/shadow", os.path.join(upper, "abs"))
    os.symlink("../../../../etc", os.path.join(upper, "dotdot"))
    os.mkdir(os.path.join(upper, ".wh.nsec"))
    open(os.path.join(upper, ".wh.nsec", "inside"), "w").close()


ODD_GONE = ["etc/passwd", "etc/shadow", "empty", "nsec", "home/user",
            "usr/bin/su", "usr/bin/wall", "usr/bin/tool"]


def test_odd_whiteouts_and_specials(mounted, image, work):
    outside = str(work / "outside")
    before = _canary(outside)
    upper = str(work / "upper")
    _odd_upper(upper, outside)
    cache = str(work / "cache")
    p = O.layerfs("diff", "--cache", cache, image, "--upper", upper,
                  timeout=T)
    _no_crash(p)
    assert p.returncode == 0
    lines = set(p.stdout.decode().splitlines())
    for gone in ["etc/passwd", "etc/shadow", "empty", "nsec"]:
        assert "D /" + gone in lines, p.stdout
    for new in ["null", "pipe", "abs", "dotdot"]:
        assert "A /" + new in lines, p.stdout
    p = O.layerfs("commit", "--cache", cache, image, "--upper", upper,
                  "-o", str(work / "out"), timeout=T)
    _no_crash(p)
    p = O.layerfs("commit", "--cache", cache, image, "--squash", "--upper",
                  upper, "-o", str(work / "sq"), timeout=T)
    _no_crash(p)

    mnt, _, _ = mounted()
    m = lambda q: os.path.join(mnt, q)  # noqa: E731
    f = subprocess.run(["find", mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=T)
    assert f.returncode == 0, f.stderr
    seen = {os.path.relpath(x, mnt) for x in f.stdout.decode().split()}
    for gone in ODD_GONE:
        assert gone not in seen, gone
    assert not any(".wh." in x for x in seen), seen
    assert "etc" in seen and "home" in seen and "usr/bin" in seen
    assert stat.S_ISFIFO(os.lstat(m("pipe")).st_mode)
    assert stat.S_ISCHR(os.lstat(m("null")).st_mode)
    assert os.readlink(m("abs")) == "/etc/shadow"
    with pytest.raises(PermissionError):  # nodev
        open(m("null"), "rb")
    # changes over the odd markers: errors allowed, no hang, nothing out
    cmds = [["rm", "-rf", m("etc")], ["rm", "-rf", m("usr")],
            ["mkdir", m("empty")], ["touch", m("nsec")],
            ["mv", m("home"), m("home2")], ["chmod", "-R", "700", mnt]]
    for c in cmds:
        subprocess.run(c, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=T)
    assert _look(outside) == before
    assert not os.path.exists(m("etc"))
    assert os.path.isdir(m("empty"))


def test_many_entries_and_wh_names(mounted, work):
    """A huge upper dir with whiteouts for names nobody has."""
    upper = str(work / "upper")
    os.mkdir(upper)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(20000):
            os.close(os.open("f%05d" % i, os.O_WRONLY | os.O_CREAT,
                             dir_fd=fd))
            os.close(os.open(".wh.x%05d" % i, os.O_WRONLY | os.O_CREAT,
                             dir_fd=fd))
    finally:
        os.close(fd)
    mnt, _, _ = mounted()
    names = os.listdir(mnt)
    assert sum(n.startswith("f") for n in names) == 20000
    assert not any(n.startswith(".wh.") for n in names)
    assert "etc" in names


def test_readers_run_while_one_open_waits(mounted):
    """Two FIFOs swapped in, opened by many threads at once: every open
    answers and stat of other files goes on (counted, not timed)."""
    mnt, upper, daemon = mounted()
    for n in ("a", "b"):
        open(os.path.join(mnt, n), "w").close()
        os.stat(os.path.join(mnt, n))
        os.unlink(os.path.join(upper, n))
        os.mkfifo(os.path.join(upper, n))
    code = r"""
import os, sys, threading
res = []
def op(p):
    try:
        os.close(os.open(p, os.O_RDONLY)); res.append(0)
    except OSError as e:
        res.append(e.errno)
ts = [threading.Thread(target=op, args=(os.path.join(sys.argv[1], n),))
      for n in ("a", "b") * 4]
for t in ts: t.start()
for i in range(100):
    os.stat(os.path.join(sys.argv[1], "etc/passwd"))
for t in ts: t.join()
print(len(res))
"""
    p = subprocess.Popen([sys.executable, "-c", code, mnt],
                         stdout=subprocess.PIPE)
    _wait_unfrozen(p, daemon, "FIFO opens through the mount froze it")
    assert p.returncode == 0
    assert p.stdout.read() == b"8\n"
