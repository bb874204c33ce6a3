#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cowdiff.py - differential tester of the copy-on-write upper directory
(design.md section 4) against the kernel overlayfs.

The reference is `mount -t overlay` with lowerdir = the image's layers
extracted by tests/fixtures/extract_layers.py (top first), a fresh upperdir
and workdir.  The candidate is `layerfs mount -f --upper U --cache C IMAGE
MNT` (or, for the harness self-test, a second kernel overlay of a second copy
of the same layers: two kernel mounts must never differ).

A seeded generator (Gen) writes a sequence of small operations (the Op
subclasses below; repr() reads like a shell line) over a pool of paths: every
path of the image (all layers, all depths, through symlinks too), paths that
do not exist, and paths the sequence itself creates.  run_pair() applies each
op to both sides, compares the results (errno name, or OK plus the returned
value) after every op and the whole tree (snapshot()) every SNAP_EVERY ops
and at the end.  A mismatch is shrunk by delta debugging (shrink()) to a
short subsequence that still mismatches, and printed as a script.

Every operation runs in a worker process chroot()ed into the mount point, so
the absolute and `../..` symlinks of an image resolve inside the mount (as in
a container) and never reach the host.

    cowdiff.py --image basic --seed 3 --ops 500            # layerfs vs kernel
    cowdiff.py --image basic --seed 3 --ops 500 --self-test  # kernel vs kernel
    cowdiff.py --image basic --seed 3 --ops 500 --print     # just the ops
    cowdiff.py --replay repro.py                             # a shrunk script

Needs root (mount, chroot, mknod, trusted.* xattrs).

Allowed differences (ALLOWED below, each has its own test in test_cow.py):
  dir_rename_exdev   the kernel (redirect_dir=off) answers EXDEV to a
                     rename(2) of a directory that has lower content; layerfs
                     performs the rename.  run_pair() does not apply such an
                     op to the candidate (the kernel's EXDEV changed nothing),
                     so the two trees stay comparable; test_cow checks
                     layerfs's result separately (it equals cp -a + rm -rf).
  wh_names           the kernel lets a user create `.wh.foo` (it is just a
                     name to overlayfs); in layerfs's upper dir that name
                     would be a whiteout, so layerfs refuses it.  The
                     generator never makes such names.
  dir_nlink          st_nlink of directories is never compared: the kernel
                     reports 1 for every merged directory (and the real count
                     for pure-upper or pure-lower ones).
Not compared at all: st_ino/st_dev values (only the partition of the tree
into hardlink groups), atime, ctime, directory st_size, and mtimes that fall
inside the run's wall-clock window (they read "recent"; an mtime from the
image or set by utime to a fixed value is compared to the nanosecond).
"""

import argparse
import ctypes
import errno
import hashlib
import multiprocessing.connection as mpc
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from decimal import Decimal
from dataclasses import dataclass, fields

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
for _p in (HERE, FIXTURES):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import extract_layers  # noqa: E402
import mkimage as M    # noqa: E402
import specs           # noqa: E402
from mkimage import (Image, Layer, dir, file, symlink, hardlink,  # noqa: E402
                     whiteout, opaque, device, fifo, MTIME)

LAYERFS = os.environ.get("LAYERFS", os.path.join(REPO, "build", "layerfs"))
SNAP_EVERY = 50
OP_TIMEOUT = 30.0           # a hung FUSE request counts as a mismatch
MiB = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                            ctypes.c_long]
SYS_renameat2 = {"x86_64": 316, "aarch64": 276}.get(os.uname().machine, 316)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2

_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
          stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo",
          stat.S_IFSOCK: "sock"}


# ---------------------------------------------------------------------------
# Images: the ones the differential tests run over
# ---------------------------------------------------------------------------

T2 = MTIME + 86400
COW_SPECS = {
    # whiteouts, opaque dirs, hardlinks inside a layer (overlayfs lowerdirs
    # cannot hold a hardlink *across* layers: specs "hardlinks" does not
    # extract), symlinks (absolute, relative, dangling, to dirs), xattrs,
    # a fifo, /dev/null, deep trees, a dir whose lower content spans layers
    "cow_mix": Image([
        Layer([dir("a"), dir("a/b"), dir("a/b/c"), file("a/b/c/deep", "deep"),
               file("a/f1", "one\n"), file("a/f2", "two\n" * 100),
               dir("gone"), file("gone/x", "x"), dir("gone/sub"),
               file("gone/sub/y", "y"),
               dir("op"), file("op/old", "old"), dir("op/olddir"),
               file("op/olddir/z", "z"),
               dir("h"), file("h/orig", "shared\n", mode=0o640, uid=3),
               hardlink("h/l1", "h/orig"), hardlink("h/l2", "h/orig"),
               file("h/solo", "solo"),
               file("wf", "whited out later"), file("bin/sh", size=5000,
                                                     seed=1, mode=0o755),
               symlink("bin/abs", "/bin/sh"), symlink("dotdot",
                                                      "../../../bin/sh"),
               symlink("dirlink", "a/b"), symlink("dangling", "no/such"),
               symlink("rootlink", "/"),
               file("x.attr", "x", xattrs={"user.k": b"v",
                                           "user.bin": b"\x00\x01"}),
               dir("xd", xattrs={"user.d": b"dir"}),
               fifo("pipe"), dir("dev"), device("dev/null", "chr", 1, 3),
               file("suid", "s", mode=0o4755),
               file("big", size=300000, seed=2)]),
        Layer([whiteout("gone"), whiteout("wf"), dir("op", mode=0o750,
                                                     mtime=T2),
               opaque("op"), file("op/new", "new"),
               file("a/b/l2file", "second layer"), dir("a/b/c2"),
               file("a/b/c2/e", "e"), file("a/f1", "one, replaced\n",
                                           mtime=T2),
               dir("h2"), file("h2/p", "pair"), hardlink("h2/q", "h2/p"),
               whiteout("a/f2")], compression="none"),
        Layer([file("gone/again", "recreated below a whiteout"),
               file("top", "top layer"), dir("a/b/c", mode=0o700, mtime=T2),
               file("a/b/c/deep2", "deep2")], compression="gzip"),
    ], doc="copy-on-write mix"),
    # hostile symlinks for test_cow's escape test
    "cow_hostile": Image([
        Layer([dir("etc"), file("etc/passwd", "image passwd\n"),
               symlink("root", "/"), symlink("up", "../../../../../../.."),
               symlink("etcabs", "/etc"), symlink("pw", "/etc/passwd"),
               symlink("pwrel", "../../../../etc/passwd"),
               dir("d"), symlink("d/esc", "../../../../../../tmp"),
               symlink("d/self", "."), symlink("loop", "loop")]),
        Layer([dir("lnk"), file("lnk/inside", "dir over a lower symlink"),
               file("data", "data")]),
    ], doc="symlinks that point out of the tree"),
}


def get_spec(name):
    if name in COW_SPECS:
        return COW_SPECS[name]
    return specs.SPECS[name]


def spec_usable(name):
    """None if overlayfs can use the extracted layers of spec `name`, else
    the reason."""
    if name == "hardlinks":
        return "a hardlink to a file of a lower layer (up_to_low -> " \
               "lowfile) cannot be extracted into a separate lowerdir"
    if name == "sparse":
        return "GNU sparse PAX 1.0 members: 50 MiB copies per run"
    if name in ("edge_tar",):
        return "absolute and ./ member names: tar extraction differs"
    return None


def _norm(name):
    name = name.strip("/")
    while name.startswith("./"):
        name = name[2:].lstrip("/")
    return "" if name == "." else name.replace("//", "/")


def _copy_dir_meta(src_layers, dst_layers):
    """Give the directories of an OCI-form extraction the metadata of the
    same directories in the overlayfs-form one, which
    normalize_implicit_dirs() made right (it reads whiteouts in the
    overlayfs form only)."""
    for d, sub, _files in os.walk(dst_layers):
        for n in sub + [""]:
            p = os.path.join(d, n)
            if os.path.islink(p):
                continue
            rel = os.path.relpath(p, dst_layers)
            q = os.path.join(src_layers, rel)
            try:
                st = os.lstat(q)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            os.lchown(p, st.st_uid, st.st_gid)
            os.chmod(p, stat.S_IMODE(st.st_mode), follow_symlinks=False)
    # times last: changing a child's metadata does not touch the parent's
    # mtime, but be safe and go deepest first
    for d, sub, _files in sorted(os.walk(dst_layers),
                                 key=lambda t: -t[0].count("/")):
        for n in sub + [""]:
            p = os.path.join(d, n)
            q = os.path.join(src_layers, os.path.relpath(p, dst_layers))
            if os.path.islink(p) or not os.path.isdir(q) or \
                    os.path.islink(q):
                continue
            st = os.lstat(q)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns),
                     follow_symlinks=False)


def normalize_implicit_dirs(spec, key, layers_dir):
    """GNU tar makes a missing parent directory with its own mode and the
    time of the extraction, and overlayfs shows the topmost layer's copy of
    a directory: give each implicit directory of an extracted layer the
    metadata design.md rule 3.2 gives it (the directory's metadata in the layers
    below if it is one there, else 0755 root:root mtime 0), so the kernel
    reference does not carry the extraction time."""
    import io
    import tarfile
    built = M.build_layers(spec, key)
    for i, bl in enumerate(built, 1):
        root = os.path.join(layers_dir, str(i))
        explicit = {}           # dir -> mtime ns of its (last) tar entry
        with tarfile.open(fileobj=io.BytesIO(bl.tar + b"\0" * 1024)) as tf:
            try:
                for ti in tf:
                    n = _norm(ti.name)
                    if ti.isdir():
                        pax = ti.pax_headers.get("mtime")
                        explicit[n] = int(Decimal(pax) * 10**9) if pax \
                            else int(ti.mtime) * 10**9
                    else:
                        explicit.pop(n, None)
            except tarfile.ReadError:
                pass
        dirs = [""]
        for d, sub, _files in os.walk(root):
            for n in sub:
                # os.walk lists symlinks to directories among the dirs:
                # never touch through them (cow_mix has rootlink -> /)
                if not os.path.islink(os.path.join(d, n)):
                    dirs.append(os.path.relpath(os.path.join(d, n), root))
        for rel in sorted(dirs, key=lambda p: (p.count("/"), p)):
            if rel in explicit:
                continue
            meta = _lower_dir_meta(layers_dir, i, rel)
            p = os.path.join(root, rel)
            mode, uid, gid, mtime_ns = meta or (0o755, 0, 0, 0)
            assert not os.path.islink(p), p
            os.lchown(p, uid, gid)
            os.chmod(p, mode, follow_symlinks=False)
            os.utime(p, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        # the whiteout conversion (unlink, mknod) bumped the mtime of
        # explicit dirs too: set every dir's mtime again, deepest first
        for rel in sorted(dirs, key=lambda p: -p.count("/")):
            if rel in explicit:
                ns = explicit[rel]
            else:
                ns = (_lower_dir_meta(layers_dir, i, rel) or (0, 0, 0, 0))[3]
            os.utime(os.path.join(root, rel), ns=(ns, ns),
                     follow_symlinks=False)


def _lower_dir_meta(layers_dir, layer, rel):
    parts = rel.split("/") if rel else []
    for k in range(layer - 1, 0, -1):
        root = os.path.join(layers_dir, str(k))
        stop = False
        for j in range(len(parts)):
            anc = os.path.join(root, *parts[:j + 1]) if j < len(parts) - 1 \
                else None
            if anc is None:
                break
            try:
                st = os.lstat(anc)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                stop = True             # whiteout or non-dir above rel
            elif "trusted.overlay.opaque" in os.listxattr(
                    anc, follow_symlinks=False):
                stop = True             # opaque above: lower layers hidden
        p = os.path.join(root, *parts) if parts else root
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode) and not stop:
                return (st.st_mode & 0o7777, st.st_uid, st.st_gid,
                        st.st_mtime_ns)
            return None
        if stop:
            return None
    return None


class CowImage:
    """One fixture image: its OCI layout, its extracted layers (kept
    pristine; every kernel run copies them) and its merged tree."""

    def __init__(self, name, root, spec=None):
        self.name = name
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.spec = spec or get_spec(name)
        self.layout = os.path.join(root, name + ".oci")
        if not os.path.exists(os.path.join(self.layout, "index.json")):
            M.write_image(self.spec, self.layout, "oci", key="cow:" + name)
        self.layers = os.path.join(root, name + ".layers")
        if not os.path.isdir(self.layers):
            tmp = self.layers + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            extract_layers.extract(self.layout, tmp)
            normalize_implicit_dirs(self.spec, "cow:" + name, tmp)
            os.rename(tmp, self.layers)
        self.nlayers = len([d for d in os.listdir(self.layers)
                            if d.isdigit()])
        self._tree = None
        self._oci_layers = None

    @property
    def oci_layers(self):
        """The layers extracted with their OCI whiteout files kept (for
        `layerfs --lower` in OCI form); built on first use."""
        if self._oci_layers is None:
            d = os.path.join(self.root, self.name + ".ocilayers")
            if not os.path.isdir(d):
                tmp = d + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                extract_layers.extract(self.layout, tmp, convert=False)
                _copy_dir_meta(self.layers, tmp)
                os.rename(tmp, d)
            self._oci_layers = d
        return self._oci_layers

    @property
    def tree(self):
        """The merged tree of the pristine image (kernel overlay)."""
        if self._tree is None:
            k = KernelSide(self, tempfile.mkdtemp(dir=self.root,
                                                  prefix="tree."))
            k.start()
            try:
                self._tree = k.snapshot()
            finally:
                k.close()
        return self._tree


# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------

def data_of(seed, n):
    return random.Random(seed * 7919 + n).randbytes(n)


def _q(s):
    if s and all(c.isalnum() or c in "._/-+" for c in s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"


def _fd(path, flags, mode=0o644):
    return os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)


def _bytes_result(b):
    if len(b) <= 48:
        return b.hex()
    return "%d:%s" % (len(b), hashlib.sha256(b).hexdigest()[:16])


def _stat_result(st, t0):
    t = _TYPES[stat.S_IFMT(st.st_mode)]
    r = {"type": t, "mode": oct(st.st_mode & 0o7777), "uid": st.st_uid,
         "gid": st.st_gid, "mtime": mtime_of(st, t0)}
    if t != "dir":
        r["size"] = st.st_size
        r["nlink"] = st.st_nlink
    if t in ("chr", "blk"):
        r["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return r


def mtime_of(st, t0):
    """Exact ns for a time before the run (image, utime to a fixed value)
    or far after it; "recent" for a time the run itself produced."""
    ns = st.st_mtime_ns
    if t0 is not None and (t0 - 5) * 10**9 <= ns <= (t0 + 7 * 86400) * 10**9:
        return "recent"
    return ns


class Op:
    name = "?"

    def __repr__(self):
        return self.sh()

    def sh(self):
        args = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("path", "dst", "src", "target"):
                continue
            args.append("%s=%s" % (f.name, v if not isinstance(v, int)
                                   or f.name not in ("mode",) else oct(v)))
        paths = [_q(getattr(self, n)) for n in ("target", "src", "path", "dst")
                 if hasattr(self, n)]
        return " ".join([self.name] + args + paths)

    def py(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%s" % (f.name, oct(getattr(self, f.name)) if f.name == "mode"
                       else repr(getattr(self, f.name)))
            for f in fields(self)))

    def paths(self):
        return [getattr(self, n) for n in ("path", "src", "dst")
                if hasattr(self, n)]

    def creates(self):
        """Paths this op may create (the generator adds them to the pool)."""
        return []


@dataclass(repr=False)
class Create(Op):
    path: str
    excl: bool = False
    mode: int = 0o644
    name = "create"

    def apply(self, t0):
        fl = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if self.excl else 0)
        os.close(_fd(self.path, fl, self.mode))
        return "OK"

    def creates(self):
        return [self.path]


@dataclass(repr=False)
class Write(Op):
    path: str
    how: str = "at"         # at | append | trunc | creat
    off: int = 0
    n: int = 1
    seed: int = 0
    name = "write"

    def apply(self, t0):
        fl = {"at": os.O_WRONLY, "append": os.O_WRONLY | os.O_APPEND,
              "trunc": os.O_WRONLY | os.O_TRUNC,
              "creat": os.O_RDWR | os.O_CREAT}[self.how]
        fd = _fd(self.path, fl)
        try:
            d = data_of(self.seed, self.n)
            if self.how == "append":
                w = os.write(fd, d)
            else:
                w = os.pwrite(fd, d, self.off)
            return "OK %d size=%d" % (w, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def creates(self):
        return [self.path] if self.how == "creat" else []


@dataclass(repr=False)
class Truncate(Op):
    path: str
    size: int = 0
    viafd: bool = False
    name = "truncate"

    def apply(self, t0):
        if not self.viafd:
            os.truncate(self.path, self.size)
            return "OK"
        fd = _fd(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, self.size)
        finally:
            os.close(fd)
        return "OK"


@dataclass(repr=False)
class Fallocate(Op):
    path: str
    mode: int = 0
    off: int = 0
    n: int = 1
    name = "fallocate"

    def apply(self, t0):
        fd = _fd(self.path, os.O_RDWR)
        try:
            if _libc.fallocate(fd, self.mode, self.off, self.n) != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return "OK size=%d" % os.fstat(fd).st_size
        finally:
            os.close(fd)


@dataclass(repr=False)
class Read(Op):
    path: str
    off: int = 0
    n: int = 4096
    name = "read"

    def apply(self, t0):
        fd = _fd(self.path, os.O_RDONLY)
        try:
            return "OK " + _bytes_result(os.pread(fd, self.n, self.off))
        finally:
            os.close(fd)


@dataclass(repr=False)
class Mkdir(Op):
    path: str
    mode: int = 0o755
    name = "mkdir"

    def apply(self, t0):
        os.mkdir(self.path, self.mode)
        return "OK"

    def creates(self):
        return [self.path]


@dataclass(repr=False)
class Rmdir(Op):
    path: str
    name = "rmdir"

    def apply(self, t0):
        os.rmdir(self.path)
        return "OK"


@dataclass(repr=False)
class Unlink(Op):
    path: str
    name = "unlink"

    def apply(self, t0):
        os.unlink(self.path)
        return "OK"


@dataclass(repr=False)
class Symlink(Op):
    target: str
    path: str
    name = "symlink"

    def apply(self, t0):
        os.symlink(self.target, self.path)
        return "OK"

    def creates(self):
        return [self.path]


@dataclass(repr=False)
class Link(Op):
    src: str
    dst: str
    follow: bool = False
    name = "link"

    def apply(self, t0):
        os.link(self.src, self.dst, follow_symlinks=self.follow)
        return "OK"

    def creates(self):
        return [self.dst]


@dataclass(repr=False)
class Mkfifo(Op):
    path: str
    mode: int = 0o644
    name = "mkfifo"

    def apply(self, t0):
        os.mkfifo(self.path, self.mode)
        return "OK"

    def creates(self):
        return [self.path]


@dataclass(repr=False)
class Rename(Op):
    src: str
    dst: str
    flags: int = 0          # 0 = rename(2), else renameat2 flags
    name = "rename"

    def apply(self, t0):
        if self.flags == 0:
            os.rename(self.src, self.dst)
            return "OK"
        r = _libc.syscall(SYS_renameat2, AT_FDCWD, os.fsencode(self.src),
                          AT_FDCWD, os.fsencode(self.dst), self.flags)
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return "OK"

    def creates(self):
        return [self.dst, self.src] if self.flags == RENAME_EXCHANGE \
            else [self.dst]


@dataclass(repr=False)
class Chmod(Op):
    path: str
    mode: int = 0o644
    name = "chmod"

    def apply(self, t0):
        os.chmod(self.path, self.mode)
        return "OK"


@dataclass(repr=False)
class Chown(Op):
    path: str
    uid: int = 0
    gid: int = 0
    follow: bool = True
    name = "chown"

    def apply(self, t0):
        os.chown(self.path, self.uid, self.gid,
                 follow_symlinks=self.follow)
        return "OK"


@dataclass(repr=False)
class Utime(Op):
    path: str
    mtime: int = 0          # ns; -1 = now
    follow: bool = True
    name = "utime"

    def apply(self, t0):
        if self.mtime < 0:
            os.utime(self.path, follow_symlinks=self.follow)
        else:
            os.utime(self.path, ns=(self.mtime, self.mtime),
                     follow_symlinks=self.follow)
        return "OK"


@dataclass(repr=False)
class SetXattr(Op):
    path: str
    key: str = "user.a"
    value: str = "v"
    flags: int = 0          # 0, XATTR_CREATE=1, XATTR_REPLACE=2
    name = "setxattr"

    def apply(self, t0):
        os.setxattr(self.path, self.key, self.value.encode(), self.flags)
        return "OK"


@dataclass(repr=False)
class RemoveXattr(Op):
    path: str
    key: str = "user.a"
    name = "removexattr"

    def apply(self, t0):
        os.removexattr(self.path, self.key)
        return "OK"


@dataclass(repr=False)
class GetXattr(Op):
    path: str
    key: str = "user.a"
    name = "getxattr"

    def apply(self, t0):
        return "OK " + os.getxattr(self.path, self.key).hex()


@dataclass(repr=False)
class ListXattr(Op):
    path: str
    name = "listxattr"

    def apply(self, t0):
        return "OK %s" % sorted(x for x in os.listxattr(self.path)
                                if x != "security.selinux")


@dataclass(repr=False)
class Fsync(Op):
    path: str
    data: bool = False
    name = "fsync"

    def apply(self, t0):
        fd = _fd(self.path, os.O_RDONLY)
        try:
            (os.fdatasync if self.data else os.fsync)(fd)
        finally:
            os.close(fd)
        return "OK"


OPEN_FLAGS = {
    "r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR,
    "rdir": os.O_RDONLY | os.O_DIRECTORY, "path": os.O_PATH,
    "nofollow": os.O_RDONLY | os.O_NOFOLLOW,
    "wtrunc": os.O_WRONLY | os.O_TRUNC, "rtrunc": os.O_RDONLY | os.O_TRUNC,
    "wdir": os.O_WRONLY | os.O_DIRECTORY,
    "creatdir": os.O_RDONLY | os.O_CREAT | os.O_DIRECTORY,
}


@dataclass(repr=False)
class Open(Op):
    path: str
    flags: str = "r"
    name = "open"

    def apply(self, t0):
        fd = _fd(self.path, OPEN_FLAGS[self.flags])
        try:
            return "OK " + _TYPES[stat.S_IFMT(os.fstat(fd).st_mode)]
        finally:
            os.close(fd)


@dataclass(repr=False)
class Listdir(Op):
    path: str
    name = "ls"

    def apply(self, t0):
        return "OK %s" % sorted(os.listdir(self.path))


@dataclass(repr=False)
class Stat(Op):
    path: str
    follow: bool = True
    name = "stat"

    def apply(self, t0):
        st = os.stat(self.path) if self.follow else os.lstat(self.path)
        return "OK %s" % _stat_result(st, t0)


@dataclass(repr=False)
class Readlink(Op):
    path: str
    name = "readlink"

    def apply(self, t0):
        return "OK " + os.readlink(self.path)


OPS = {c.__name__: c for c in (Create, Write, Truncate, Fallocate, Read,
                               Mkdir, Rmdir, Unlink, Symlink, Link, Mkfifo,
                               Rename, Chmod, Chown, Utime, SetXattr,
                               RemoveXattr, GetXattr, ListXattr, Fsync, Open,
                               Listdir, Stat, Readlink)}


# ---------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------

NAMES = ["a", "b", "new", "x.txt", "sub", "f1", "passwd", "c", "z z",
         "\u00e9t\u00e9"]
UTIMES = [10**18, 1234567890 * 10**9 + 123456789, 0, 4102444800 * 10**9 + 7,
          -1]


class Gen:
    """Deterministic op sequences: a function of (seed, image tree) only."""

    WEIGHTS = [("create", 7), ("write", 14), ("truncate", 6),
               ("fallocate", 3), ("read", 8), ("mkdir", 6), ("rmdir", 5),
               ("unlink", 6), ("symlink", 4), ("link", 4), ("mkfifo", 2),
               ("rename", 14), ("chmod", 4), ("chown", 3), ("utime", 4),
               ("setxattr", 4), ("removexattr", 2), ("getxattr", 2),
               ("listxattr", 2), ("fsync", 2), ("open", 4), ("ls", 5),
               ("stat", 6), ("readlink", 2)]

    def __init__(self, seed, tree):
        self.r = random.Random(seed)
        tree = {p: e for p, e in tree.items()
                if p not in (".", "__links__") and "type" in e}
        self.image = sorted(tree)
        self.dirs = sorted(p for p, e in tree.items() if e["type"] == "dir")
        self.files = sorted(p for p, e in tree.items()
                            if e["type"] == "file")
        self.created = []
        self.n = 0
        self.kinds = [k for k, w in self.WEIGHTS for _ in range(w)]

    def _fresh(self):
        r = self.r
        parent = r.choice(["", "", r.choice(self.dirs or [""]),
                           r.choice(self.created or [""]),
                           r.choice(self.image or [""]), "nodir/deeper"])
        self.n += 1
        name = r.choice(NAMES) if r.random() < 0.7 else "n%d" % self.n
        return (parent + "/" + name).lstrip("/")

    def path(self, prefer=None):
        r = self.r
        x = r.random()
        if prefer == "file" and self.files and x < 0.5:
            p = r.choice(self.files)
        elif prefer == "dir" and self.dirs and x < 0.5:
            p = r.choice(self.dirs)
        elif x < 0.55:
            p = r.choice(self.image)
        elif x < 0.85 and self.created:
            p = r.choice(self.created)
        else:
            p = self._fresh()
        if r.random() < 0.02:
            p = p + "/"                 # trailing slash
        return p

    def target(self, p):
        self.created.append(p.rstrip("/") or p)
        return p

    def op(self):
        r, k = self.r, None
        k = r.choice(self.kinds)
        P = self.path
        if k == "create":
            return Create(self.target(P()), excl=r.random() < 0.5,
                          mode=r.choice([0o644, 0o600, 0o755, 0o4755]))
        if k == "write":
            how = r.choice(["at", "at", "append", "trunc", "creat"])
            n = r.choice([1, 7, 100, 4096, 5000, 70000, 0])
            off = r.choice([0, 0, 1, 4095, 4096, 12345, 2 * MiB + 3])
            p = P("file")
            if how == "creat":
                self.target(p)
            return Write(p, how=how, off=off, n=n, seed=r.randrange(1000))
        if k == "truncate":
            return Truncate(P("file"), size=r.choice(
                [0, 1, 3, 4096, 5000, 100000, 4 * MiB]),
                viafd=r.random() < 0.4)
        if k == "fallocate":
            return Fallocate(P("file"), mode=r.choice([0, 0, FALLOC_FL_KEEP_SIZE,
                             FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE]),
                             off=r.choice([0, 1, 4096, 200000]),
                             n=r.choice([1, 4096, 10000]))
        if k == "read":
            return Read(P("file"), off=r.choice([0, 0, 1, 4096, 299990]),
                        n=r.choice([1, 16, 4096, 1 << 20]))
        if k == "mkdir":
            return Mkdir(self.target(P()), mode=r.choice([0o755, 0o700,
                                                          0o1777]))
        if k == "rmdir":
            return Rmdir(P("dir"))
        if k == "unlink":
            return Unlink(P())
        if k == "symlink":
            return Symlink(r.choice(["a", "/a/b", "../x", "no/where", ".",
                                     "/", r.choice(self.image)]),
                           self.target(P()))
        if k == "link":
            return Link(P("file"), self.target(P()),
                        follow=r.random() < 0.2)
        if k == "mkfifo":
            return Mkfifo(self.target(P()))
        if k == "rename":
            fl = r.choice([0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE])
            src = P()
            dst = P()
            if r.random() < 0.3:
                # into a directory or over a sibling
                dst = (r.choice(self.dirs + [""]) + "/" +
                       os.path.basename(src.rstrip("/"))).lstrip("/")
            self.target(dst)
            if fl == RENAME_EXCHANGE:
                self.target(src)
            return Rename(src, dst, flags=fl)
        if k == "chmod":
            return Chmod(P(), mode=r.choice([0o644, 0o755, 0o4755, 0o1777,
                                             0, 0o2750, 0o600]))
        if k == "chown":
            u = r.choice([(0, 0), (1000, 1000), (-1, 5), (3000000, 2200000),
                          (7, -1)])
            return Chown(P(), uid=u[0], gid=u[1], follow=r.random() < 0.7)
        if k == "utime":
            return Utime(P(), mtime=r.choice(UTIMES),
                         follow=r.random() < 0.8)
        if k == "setxattr":
            return SetXattr(P(), key=r.choice(["user.a", "user.b", "user.k",
                                               "user.d"]),
                            value=r.choice(["v", "", "x" * 300, "w"]),
                            flags=r.choice([0, 0, 1, 2]))
        if k == "removexattr":
            return RemoveXattr(P(), key=r.choice(["user.a", "user.k",
                                                  "user.d", "user.bin"]))
        if k == "getxattr":
            return GetXattr(P(), key=r.choice(["user.a", "user.k",
                                               "user.bin"]))
        if k == "listxattr":
            return ListXattr(P())
        if k == "fsync":
            return Fsync(P("file"), data=r.random() < 0.5)
        if k == "open":
            fl = r.choice(sorted(OPEN_FLAGS))
            p = P()
            if fl == "creatdir":
                self.target(p)
            return Open(p, flags=fl)
        if k == "ls":
            return Listdir(r.choice([P("dir"), "."]))
        if k == "stat":
            return Stat(P(), follow=r.random() < 0.6)
        if k == "readlink":
            return Readlink(P())
        raise AssertionError(k)

    def seq(self, n):
        return [self.op() for _ in range(n)]


def generate(seed, tree, n):
    return Gen(seed, tree).seq(n)


# ---------------------------------------------------------------------------
# Worker: a child chroot()ed into the mount point
# ---------------------------------------------------------------------------

def snapshot_here(t0, root="/"):
    """path -> attributes of everything below root (root itself is "."),
    plus "__links__": the hardlink groups (partition of the non-directories
    by st_ino, groups of 2 or more)."""
    out, by_ino = {}, {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in [None] + sorted(dirs + files):
            if name is None:
                if dirpath != root:
                    continue
                full, rel = root, "."
            else:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
            try:
                st = os.lstat(full)
            except OSError as e:
                out[rel] = {"error": errno.errorcode.get(e.errno, e.errno)}
                continue
            e = _stat_result(st, t0)
            t = e["type"]
            if t == "file":
                try:
                    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW |
                                 os.O_NONBLOCK)
                    h = hashlib.sha256()
                    with os.fdopen(fd, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    e["sha256"] = h.hexdigest()
                except OSError as ex:
                    e["sha256"] = "error " + errno.errorcode.get(ex.errno, "?")
            if t == "symlink":
                e["target"] = os.readlink(full)
            if t in ("file", "dir"):
                xa = {}
                for k in os.listxattr(full, follow_symlinks=False):
                    if k == "security.selinux":
                        continue
                    try:
                        xa[k] = os.getxattr(full, k,
                                            follow_symlinks=False).hex()
                    except OSError as ex:
                        xa[k] = "error " + errno.errorcode.get(ex.errno, "?")
                e["xattrs"] = xa
            if t != "dir":
                by_ino.setdefault(st.st_ino, []).append(rel)
            out[rel] = e
    out["__links__"] = sorted(sorted(g) for g in by_ino.values()
                              if len(g) > 1)
    return out


def _errname(e):
    return errno.errorcode.get(e.errno, "E%d" % e.errno) \
        if isinstance(e, OSError) and e.errno else "EXC " + repr(e)


def apply_op(op, t0):
    try:
        return op.apply(t0)
    except OSError as e:
        return _errname(e)
    except Exception as e:          # noqa: BLE001 - a harness bug
        return "PYEXC %s: %s" % (type(e).__name__, e)


def _worker_main(conn, mnt, t0):
    os.chroot(mnt)
    os.chdir("/")
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            os._exit(0)
        kind, arg = msg
        try:
            if kind == "op":
                res = apply_op(arg, t0)
            elif kind == "snapshot":
                res = snapshot_here(t0)
            elif kind == "call":
                res = arg[0](*arg[1:])
            else:
                os._exit(0)
        except Exception:           # noqa: BLE001
            res = "PYEXC " + traceback.format_exc()
        conn.send(res)


class Worker:
    """A forked child chroot()ed into mnt that applies ops."""

    def __init__(self, mnt, t0):
        a, b = socket.socketpair()
        self.conn = mpc.Connection(a.detach())
        child = mpc.Connection(b.detach())
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                self.conn.close()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _worker_main(child, mnt, t0)
            finally:
                os._exit(1)
        child.close()
        self.pid = pid

    def call(self, kind, arg=None, timeout=OP_TIMEOUT):
        self.conn.send((kind, arg))
        if not self.conn.poll(timeout):
            self.kill()
            return "TIMEOUT after %.0fs" % timeout
        try:
            return self.conn.recv()
        except EOFError:
            self.kill()
            return "WORKER DIED"

    def kill(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = 0
            self.conn.close()

    def close(self):
        if self.pid:
            try:
                self.conn.send(("quit", None))
            except OSError:
                pass
            for _ in range(200):
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        self.pid = 0
                        self.conn.close()
                        return
                except ChildProcessError:
                    self.pid = 0
                    return
                time.sleep(0.01)
            self.kill()


# ---------------------------------------------------------------------------
# Sides
# ---------------------------------------------------------------------------

def _run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          **kw)


def _umount(mnt):
    if not os.path.ismount(mnt) and not _in_proc_mounts(mnt):
        return
    p = _run(["umount", mnt])
    if p.returncode != 0:
        _run(["umount", "-l", mnt])


def _in_proc_mounts(mnt):
    mnt = os.path.realpath(mnt).encode()
    with open("/proc/self/mounts", "rb") as f:
        return any(line.split()[1].replace(b"\\040", b" ") == mnt
                   for line in f)


class Side:
    """A mounted merged view with a worker inside it."""
    label = "?"

    def __init__(self, image, work):
        self.image = image
        self.work = work
        self.mnt = os.path.join(work, "m")
        self.upper = os.path.join(work, "u")
        self.worker = None
        self.t0 = time.time()

    def op(self, op):
        return self.worker.call("op", op)

    def snapshot(self):
        return self.worker.call("snapshot", timeout=120)

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        self._mount()
        self.worker = Worker(self.mnt, self.t0)

    def stop(self):
        if self.worker:
            self.worker.close()
            self.worker = None
        self._umount()

    def remount(self):
        self.stop()
        self.start()

    def close(self, keep=False):
        try:
            self.stop()
        finally:
            # never rmtree through a mount that is still there
            if not keep and not _in_proc_mounts(self.mnt):
                shutil.rmtree(self.work, ignore_errors=True)


class KernelSide(Side):
    label = "kernel"

    def __init__(self, image, work):
        super().__init__(image, work)
        self.lower = os.path.join(work, "l")
        self.wdir = os.path.join(work, "w")
        os.makedirs(self.upper, exist_ok=True)
        os.makedirs(self.wdir, exist_ok=True)
        p = _run(["cp", "-a", image.layers, self.lower])
        if p.returncode:
            raise RuntimeError("cp -a layers: " + p.stderr.decode())
        # the kernel shows the upperdir's own inode as the root: give it
        # the image root's metadata (what a copy-up of the root would do)
        st = os.lstat(os.path.join(self.lower, str(image.nlayers)))
        os.chown(self.upper, st.st_uid, st.st_gid)
        os.chmod(self.upper, st.st_mode & 0o7777)
        os.utime(self.upper, ns=(st.st_mtime_ns, st.st_mtime_ns))

    def lowerdir(self):
        return ":".join(os.path.join(self.lower, str(i))
                        for i in range(self.image.nlayers, 0, -1))

    def _mount(self):
        p = _run(["mount", "-t", "overlay", "overlay", "-o",
                  "lowerdir=%s,upperdir=%s,workdir=%s" % (
                      self.lowerdir(), self.upper, self.wdir), self.mnt])
        if p.returncode:
            raise RuntimeError("mount -t overlay: " + p.stderr.decode())

    def _umount(self):
        _umount(self.mnt)


class BuggyKernelSide(KernelSide):
    """A kernel side with a planted bug, to prove the harness finds and
    shrinks a difference: chmod to 0755 gives 0750 but answers OK."""
    label = "buggy-kernel"

    def op(self, op):
        if isinstance(op, Chmod) and op.mode == 0o755:
            op = Chmod(op.path, 0o750)
        return self.worker.call("op", op)


def layerfs_has_upper():
    if not (os.path.isfile(LAYERFS) and os.access(LAYERFS, os.X_OK)):
        return False
    p = _run([LAYERFS, "mount", "--help"])
    return b"--upper" in p.stdout + p.stderr


class LayerfsSide(Side):
    label = "layerfs"

    def __init__(self, image, work, cache=None, extra=()):
        super().__init__(image, work)
        self.cache = cache or os.path.join(image.root, "cache")
        os.makedirs(self.cache, exist_ok=True)
        self.extra = list(extra)
        self.proc = None
        self.errf = None

    def _mount(self):
        self.errf = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.pop("LAYERFS_CACHE", None)
        self.proc = subprocess.Popen(
            [LAYERFS, "mount", "-f", "--upper", self.upper, "--cache",
             self.cache] + self.extra + [self.image.layout, self.mnt],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.errf, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.ismount(self.mnt):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("layerfs exited %d before mounting: %s" % (
                    self.proc.returncode, self.stderr()))
            time.sleep(0.02)
        raise RuntimeError("layerfs did not mount in 60 s: " + self.stderr())

    def stderr(self):
        if not self.errf:
            return ""
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def kill9(self):
        """SIGKILL the daemon (crash test); the mount is left dead."""
        if self.worker:
            self.worker.kill()
            self.worker = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._umount()

    def _umount(self):
        if _in_proc_mounts(self.mnt):
            p = _run(["fusermount3", "-u", self.mnt])
            if p.returncode:
                _run(["fusermount3", "-u", "-z", self.mnt])
                _run(["umount", "-l", self.mnt])
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None


class LayerfsDirSide(LayerfsSide):
    """layerfs over the extracted layers as plain directories, mounted the
    way union test suites mount overlayfs: `layerfs none MNT -o
    lowerdir=A:B,upperdir=U,workdir=W` (what mount -t fuse.layerfs runs).
    oci=False: overlayfs-form whiteouts (0/0 devices, opaque xattrs);
    oci=True: OCI `.wh.` files."""
    label = "layerfs-dirs"

    def __init__(self, image, work, oci=False):
        super().__init__(image, work)
        self.oci = oci
        if oci:
            self.label = "layerfs-ocidirs"
        self.wdir = os.path.join(work, "w")
        os.makedirs(self.wdir, exist_ok=True)

    def _mount(self):
        base = self.image.oci_layers if self.oci else self.image.layers
        lower = ":".join(os.path.join(base, str(i))
                         for i in range(self.image.nlayers, 0, -1))
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [LAYERFS, "none", self.mnt, "-f", "-o",
             "lowerdir=%s,upperdir=%s,workdir=%s,cache=%s" % (
                 lower, self.upper, self.wdir, self.cache)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.errf)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.ismount(self.mnt):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("layerfs exited %d before mounting: %s" % (
                    self.proc.returncode, self.stderr()))
            time.sleep(0.02)
        raise RuntimeError("layerfs did not mount in 60 s: " + self.stderr())


def make_side(kind, image, root):
    work = tempfile.mkdtemp(dir=root, prefix=kind + ".")
    if kind == "kernel":
        return KernelSide(image, work)
    if kind == "buggy-kernel":
        return BuggyKernelSide(image, work)
    if kind == "layerfs-dirs":
        return LayerfsDirSide(image, work)
    if kind == "layerfs-ocidirs":
        return LayerfsDirSide(image, work, oci=True)
    return LayerfsSide(image, work)


# ---------------------------------------------------------------------------
# Allowed differences
# ---------------------------------------------------------------------------

def _is_exdev_dir_rename(op, ref_result):
    return isinstance(op, Rename) and ref_result == "EXDEV"


def _has_wh_name(op, ref_result):
    return any(os.path.basename(p.rstrip("/")).startswith(".wh.")
               for p in op.paths())


DATA_OPS = (Create, Write, Truncate, Fallocate, Read, Fsync, Open)


def _on_device(side, op):
    """True when a data op targets a device node on the reference side.
    layerfs mounts are nodev (design.md 3.10): opening a device there gives
    EACCES where the kernel overlay (mounted dev) opens the device.  Such
    ops change nothing in the tree, so they are not applied to the
    candidate; test_cow checks layerfs's EACCES on its own."""
    if not isinstance(op, DATA_OPS):
        return False
    for p in op.paths():
        st = _stat_in(side.mnt, p)
        if st and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            return True
    return False


def _stat_in(root, path, depth=0):
    """stat() of path inside root, following symlinks as a chroot would
    (absolute targets restart at root, ".." stops at root); None if it
    does not resolve."""
    parts = [c for c in path.split("/") if c not in ("", ".")]
    cur = []
    while parts:
        c = parts.pop(0)
        if c == "..":
            cur = cur[:-1]
            continue
        try:
            st = os.lstat(os.path.join(root, *(cur + [c])))
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            if depth > 40:
                return None
            t = os.readlink(os.path.join(root, *(cur + [c])))
            if t.startswith("/"):
                cur = []
            parts = [x for x in t.split("/") if x not in ("", ".")] + parts
            depth += 1
            continue
        cur.append(c)
    try:
        return os.lstat(os.path.join(root, *cur)) if cur else os.lstat(root)
    except OSError:
        return None


# name -> (predicate(op, reference result) -> bool, reason).  When a
# predicate holds, the op is not applied to the candidate at all.
ALLOWED = {
    "dir_rename_exdev": (
        _is_exdev_dir_rename,
        "directory rename with lower content: the kernel (redirect_dir=off) "
        "answers EXDEV, layerfs performs the rename (design.md 4)"),
    "wh_names": (
        _has_wh_name,
        "names starting with .wh. are plain names to the kernel overlayfs; "
        "layerfs stores whiteouts under such names, so it never shows them "
        "and refuses to create them (the generator never makes them)"),
    "nodev": (
        lambda op, res: False,
        "layerfs mounts are nodev: data ops on device nodes (EACCES in "
        "layerfs, the device's own answer in the kernel) are not applied "
        "to the candidate; see _on_device()"),
    "dir_nlink": (
        lambda op, res: False,
        "st_nlink of a directory is not compared: the kernel reports 1 for a "
        "merged directory"),
}


def allowed(op, ref_result):
    for name, (pred, _reason) in ALLOWED.items():
        if pred(op, ref_result):
            return name
    return None


# ---------------------------------------------------------------------------
# Differential run
# ---------------------------------------------------------------------------

def diff_snapshots(a, b, la="ref", lb="cand", limit=40):
    out = []
    for p in sorted(set(a) - set(b)):
        out.append("only in %s: %s %s" % (la, p, a[p]))
    for p in sorted(set(b) - set(a)):
        out.append("only in %s: %s %s" % (lb, p, b[p]))
    for p in sorted(set(a) & set(b)):
        if a[p] != b[p]:
            if isinstance(a[p], dict) and isinstance(b[p], dict):
                ks = sorted(k for k in set(a[p]) | set(b[p])
                            if a[p].get(k) != b[p].get(k))
                out.append("%s: %s" % (p, ", ".join(
                    "%s %s=%r %s=%r" % (k, la, a[p].get(k), lb, b[p].get(k))
                    for k in ks)))
            else:
                out.append("%s: %s=%r %s=%r" % (p, la, a[p], lb, b[p]))
    return out[:limit] + (["... %d more" % (len(out) - limit)]
                          if len(out) > limit else [])


@dataclass
class Mismatch:
    index: int              # op index (len(seq) for the final snapshot)
    kind: str               # "result" | "snapshot"
    ref: object
    cand: object
    details: list

    def __str__(self):
        if self.kind == "result":
            return "op #%d: reference %r, candidate %r" % (
                self.index, self.ref, self.cand)
        return "snapshot after op #%d differs:\n  %s" % (
            self.index - 1, "\n  ".join(self.details))


class Pair:
    """Reference and candidate sides over one image."""

    def __init__(self, image, root, cand="layerfs"):
        self.image, self.root, self.cand_kind = image, root, cand

    def sides(self):
        ref = make_side("kernel", self.image, self.root)
        cand = make_side(self.cand_kind, self.image, self.root)
        return ref, cand


def run(seq, mnt, t0=None):
    """Apply seq to the tree mounted on mnt; list of results."""
    w = Worker(mnt, t0 if t0 is not None else time.time())
    try:
        return [w.call("op", op) for op in seq]
    finally:
        w.close()


def snapshot(mnt, t0=None):
    w = Worker(mnt, t0 if t0 is not None else time.time())
    try:
        return w.call("snapshot", timeout=300)
    finally:
        w.close()


def run_pair(pair, seq, snap_every=SNAP_EVERY, keep=False, log=None,
             after=None):
    """Apply seq to fresh reference and candidate sides.  Returns
    (first Mismatch or None, stats dict).  after(ref, cand) runs at the end
    while both are still mounted (persistence checks etc.)."""
    ref, cand = pair.sides()
    stats = {"skipped": {}, "results": []}
    try:
        ref.start()
        cand.start()
        for i, op in enumerate(seq):
            dev = _on_device(ref, op)
            a = ref.op(op)
            why = "nodev" if dev else allowed(op, a)
            if why:
                stats["skipped"][why] = stats["skipped"].get(why, 0) + 1
                b = a
            else:
                b = cand.op(op)
            stats["results"].append(a)
            if log:
                log("%4d %-60s %s%s" % (i, op, a, "" if a == b else
                                        "   <> " + str(b)))
            if a != b:
                return Mismatch(i, "result", a, b, []), stats
            if (i + 1) % snap_every == 0 or i + 1 == len(seq):
                sa, sb = ref.snapshot(), cand.snapshot()
                if sa != sb:
                    return Mismatch(i + 1, "snapshot", None, None,
                                    diff_snapshots(sa, sb, ref.label,
                                                   cand.label + "'")), stats
        if not seq:
            sa, sb = ref.snapshot(), cand.snapshot()
            if sa != sb:
                return Mismatch(0, "snapshot", None, None,
                                diff_snapshots(sa, sb)), stats
        if after:
            after(ref, cand)
        return None, stats
    finally:
        ref.close(keep)
        cand.close(keep)


def shrink(pair, seq, first, max_tries=150, log=None):
    """ddmin: the shortest subsequence (within max_tries reruns) that still
    mismatches.  Everything after the first mismatching op is cut first."""
    cut = seq[:first.index + 1] if first.kind == "result" else \
        seq[:first.index]
    tries = [0]

    def fails(s):
        if tries[0] >= max_tries:
            return None
        tries[0] += 1
        m, _ = run_pair(pair, s)
        return m

    cur = cut
    m0 = fails(cur)
    if m0 is None:
        return seq, first, tries[0]          # flaky: keep the original
    best = m0
    n = 2
    while len(cur) >= 2 and tries[0] < max_tries:
        chunk = max(1, len(cur) // n)
        reduced = False
        for start in range(0, len(cur), chunk):
            comp = cur[:start] + cur[start + chunk:]
            if not comp:
                continue
            m = fails(comp)
            if m is not None:
                cur, best, reduced = comp, m, True
                if m.kind == "result":
                    cur = cur[:m.index + 1]
                n = max(n - 1, 2)
                if log:
                    log("shrink: %d ops (try %d)" % (len(cur), tries[0]))
                break
        if not reduced:
            if n >= len(cur):
                break
            n = min(len(cur), n * 2)
    return cur, best, tries[0]


def repro_script(image_name, seed, seq, mismatch, cand="layerfs"):
    lines = ["#!/usr/bin/python3",
             "# cowdiff reproducer: image %s, seed %s, candidate %s" % (
                 image_name, seed, cand),
             "# %s" % str(mismatch).replace("\n", "\n# "),
             "# as shell lines:"]
    lines += ["#   %3d  %s" % (i, op) for i, op in enumerate(seq)]
    lines += ["import sys",
              "sys.path.insert(0, %r)" % HERE,
              "from cowdiff import *",
              "IMAGE = %r" % image_name,
              "CANDIDATE = %r" % cand,
              "SEQ = ["]
    lines += ["    %s," % op.py() for op in seq]
    lines += ["]",
              "if __name__ == '__main__':",
              "    sys.exit(replay_main(IMAGE, SEQ, CANDIDATE))"]
    return "\n".join(lines) + "\n"


def work_root():
    r = os.environ.get("LAYERFS_COW_WORK") or os.path.join(
        tempfile.gettempdir(), "layerfs-cowdiff")
    os.makedirs(r, exist_ok=True)
    return r


def replay_main(image_name, seq, cand="layerfs"):
    root = tempfile.mkdtemp(dir=work_root(), prefix="replay.")
    img = CowImage(image_name, os.path.join(work_root(), "images"))
    m, _ = run_pair(Pair(img, root, cand), seq, log=print)
    shutil.rmtree(root, ignore_errors=True)
    print("MISMATCH: %s" % m if m else "no mismatch")
    return 1 if m else 0


def check_seed(image, seed, nops, root, cand="layerfs", shrink_tries=150,
               log=None, out_dir=None):
    """Generate, run, and on a mismatch shrink and write a reproducer.
    Returns (None, stats) or (report text, stats)."""
    seq = generate(seed, image.tree, nops)
    pair = Pair(image, root, cand)
    m, stats = run_pair(pair, seq)
    if m is None:
        return None, stats
    small, sm, tries = shrink(pair, seq, m, max_tries=shrink_tries, log=log)
    script = repro_script(image.name, seed, small, sm, cand)
    path = None
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "cowdiff-%s-%s-seed%d.py" % (
            image.name, cand, seed))
        with open(path, "w") as f:
            f.write(script)
    if m.kind == "result":
        first = "first mismatch at op #%d\n  op: %s\n  reference: %r\n" \
            "  candidate: %r\n" % (m.index, seq[m.index], m.ref, m.cand)
    else:
        first = "first mismatch: the snapshot after op #%d\n  %s\n" % (
            m.index - 1, "\n  ".join(m.details))
    rep = ("cowdiff: image %s seed %d, %d ops: %s"
           "shrunk to %d ops in %d tries%s:\n%s" % (
               image.name, seed, nops, first,
               len(small), tries,
               " (reproducer: %s)" % path if path else "", script))
    return rep, stats


# ---------------------------------------------------------------------------
# OCI view of an upper directory
# ---------------------------------------------------------------------------

def kernel_upper_to_oci(upper, out):
    """Copy a kernel overlayfs upper dir to `out` in OCI form: 0/0 char
    devices become .wh.NAME, trusted.overlay.opaque=y becomes .wh..wh..opq,
    trusted.overlay.* xattrs are dropped (the harness self-test of
    upper_as_layer)."""
    _run(["cp", "-a", upper, out]).check_returncode()
    for d, dirs, files in os.walk(out):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                os.unlink(p)
                with open(os.path.join(d, ".wh." + name), "w"):
                    pass
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            for k in os.listxattr(p, follow_symlinks=False):
                if k.startswith("trusted.overlay."):
                    if k == "trusted.overlay.opaque" and os.getxattr(
                            p, k, follow_symlinks=False) == b"y":
                        with open(os.path.join(p, ".wh..wh..opq"), "w"):
                            pass
                    os.removexattr(p, k, follow_symlinks=False)
    for k in os.listxattr(out):
        if k.startswith("trusted.overlay."):
            os.removexattr(out, k)
    return out


def tar_upper(upper):
    """Uncompressed tar of an OCI-form upper dir, `.wh.` files as they are,
    hardlinks, devices, user.* and security.capability xattrs."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8") as tf:
        for d, dirs, files in os.walk(upper):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(d, name)
                arc = os.path.relpath(full, upper)
                ti = tf.gettarinfo(full, arc)
                ti.uname = ti.gname = ""
                ti.mtime = os.lstat(full).st_mtime_ns / 1e9
                if not os.path.islink(full) and ti.type != tarfile.LNKTYPE:
                    pax = {}
                    for k in os.listxattr(full, follow_symlinks=False):
                        if k.startswith(("user.", "security.capability")):
                            pax["SCHILY.xattr." + k] = os.getxattr(
                                full, k, follow_symlinks=False).decode(
                                    "utf-8", "surrogateescape")
                    ti.pax_headers = pax
                if ti.isreg():
                    with open(full, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
    return buf.getvalue()


def image_plus_layer(image, tar, out):
    """OCI layout: the image's layers (zstd stored as gzip, for umoci 0.4.7)
    plus `tar` as an uncompressed top layer."""
    built = M.build_layers(image.spec, "cow:" + image.name)
    built = [M.BuiltLayer(b.tar, M.compress(b.tar, "gzip"), "gzip",
                          b.created_by) if b.compression == "zstd" else b
             for b in built]
    built.append(M.BuiltLayer(tar, tar, "none", "cow upper"))
    cfg = M.make_config(Image(list(image.spec.layers) + [Layer()]), built)
    if os.path.exists(out):
        shutil.rmtree(out)
    M.write_oci_layout(out, built, cfg)
    return out


def umoci_tree(layout, work, t0=None):
    bundle = os.path.join(work, "bundle")
    p = _run(["umoci", "unpack", "--image", layout + ":" + M.REF_TAG, bundle])
    if p.returncode:
        raise RuntimeError("umoci unpack: " + p.stderr.decode())
    rootfs = os.path.join(bundle, "rootfs")
    return snapshot_here(t0, rootfs)


def comparable(tree, with_mtime=False):
    """Drop what a tar round trip cannot keep: sub-µs mtimes, the root, and
    xattrs with an empty value (a PAX record with an empty value means
    "delete the record": SCHILY.xattr.user.k= never reaches umoci)."""
    out = {}
    for p, e in tree.items():
        if p in (".",):
            continue
        if p == "__links__":
            out[p] = e
            continue
        e = dict(e)
        if "xattrs" in e:
            e["xattrs"] = {k: v for k, v in e["xattrs"].items() if v}
        if not with_mtime or e.get("type") == "dir":
            e.pop("mtime", None)
        elif isinstance(e.get("mtime"), int):
            e["mtime"] = e["mtime"] // 1000
        out[p] = e
    return out


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="basic",
                    help="spec name (specs.SPECS or cowdiff.COW_SPECS)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=1,
                    help="run seeds seed .. seed+N-1")
    ap.add_argument("--ops", type=int, default=500)
    ap.add_argument("--self-test", action="store_true",
                    help="kernel overlay vs kernel overlay")
    ap.add_argument("--candidate", choices=("layerfs", "layerfs-dirs",
                                            "layerfs-ocidirs", "kernel",
                                            "buggy-kernel"),
                    help="candidate side (buggy-kernel: a planted bug)")
    ap.add_argument("--print", action="store_true",
                    help="print the generated ops and exit")
    ap.add_argument("--verbose", "-v", action="store_true",
                    help="log every op and both results (no shrinking)")
    ap.add_argument("--replay", help="run a reproducer script")
    ap.add_argument("--shrink-tries", type=int, default=150)
    a = ap.parse_args(argv)
    if a.replay:
        return subprocess.call([sys.executable, a.replay])
    if os.geteuid() != 0:
        print("cowdiff: needs root", file=sys.stderr)
        return 2
    cand = "kernel" if a.self_test else "layerfs"
    if a.candidate:
        cand = a.candidate
    if cand == "layerfs" and not a.print and not layerfs_has_upper():
        print("cowdiff: layerfs --upper not implemented (%s)" % LAYERFS,
              file=sys.stderr)
        return 2
    img = CowImage(a.image, os.path.join(work_root(), "images"))
    rc = 0
    for seed in range(a.seed, a.seed + a.seeds):
        seq = generate(seed, img.tree, a.ops)
        if a.print:
            for i, op in enumerate(seq):
                print("%4d  %s" % (i, op))
            continue
        root = tempfile.mkdtemp(dir=work_root(), prefix="run.")
        t = time.time()
        if a.verbose:
            m, stats = run_pair(Pair(img, root, cand), seq, log=print)
            rep = str(m) if m else None
        else:
            rep, stats = check_seed(img, seed, a.ops, root, cand,
                                    a.shrink_tries, log=print,
                                    out_dir=work_root())
        shutil.rmtree(root, ignore_errors=True)
        ok = sum(1 for r in stats["results"] if r.startswith("OK"))
        print("seed %d: %s in %.1fs (%d ops, %d OK, skipped %s)" % (
            seed, "MISMATCH" if rep else "ok", time.time() - t,
            len(stats["results"]), ok, stats["skipped"] or "none"))
        if rep:
            print(rep)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
