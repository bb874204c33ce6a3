"""Copy-on-write as a normal user keeps the image's ownership.

A rootless daemon cannot chown host files nor make device nodes: it keeps
the image owner, mode and type of what it copies up or creates in the
user.containers.override_stat xattr (upper.h).  The oracle is the image
itself: the generator's tar members (read back with python tarfile) give
the owners a copy-up must keep; new objects belong to 0:0 or --owner.
Everything the user does runs through su as lftest-user.
"""
import json
import os
import shutil
import stat
import tarfile
import tempfile

import pytest

import fusehelpers as fh
import oracle as O
from test_mount_ro import USER, _as_user, _err, lftest_user, user_can_mount  # noqa: F401

SCRIPT_TIMEOUT = 120


def _image():
    from mkimage import Image, Layer, dir as d, file as f, device, fifo, \
        symlink
    return Image([
        Layer([d("etc"), f("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
               d("srv", uid=33, gid=33, mode=0o750),
               f("srv/data", "www\n", uid=33, gid=33, mode=0o640),
               f("srv/run", "#!/bin/sh\n", uid=0, gid=50, mode=0o4755),
               d("dev"), device("dev/null", "chr", 1, 3, mode=0o666),
               d("run"), fifo("run/ctl", mode=0o620, uid=7, gid=8),
               symlink("srv/link", "data", uid=33, gid=33)]),
    ])


def _members(layout):
    """{path: TarInfo} of the last layer of an OCI layout."""
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)

    def blob(d):
        return os.path.join(layout, "blobs", *d.split(":"))
    with open(blob(idx["manifests"][0]["digest"])) as f:
        man = json.load(f)
    out = {}
    with tarfile.open(blob(man["layers"][-1]["digest"]), "r:*") as t:
        for m in t:
            out[m.name.rstrip("/")] = m
            if m.isfile():
                DATA[id(m)] = t.extractfile(m).read()
    return out


DATA = {}


def data(m):
    return DATA[id(m)]


def _image_members(img):
    return _members(img)


@pytest.fixture
def work(lftest_user):  # noqa: F811
    top = tempfile.mkdtemp(prefix="lfrootless-")
    os.chmod(top, 0o755)
    img = os.path.join(top, "img")
    O.mkimage.write_image(_image(), img, "oci")
    for r, ds, fs in os.walk(img):
        for x in ds + fs:
            os.chmod(os.path.join(r, x), 0o755 if x in ds else 0o644)
    os.chmod(img, 0o755)
    paths = {"top": top, "img": img, "out": os.path.join(top, "out"),
             "out2": os.path.join(top, "out2")}
    for k in ("mnt", "cache", "upper"):
        paths[k] = os.path.join(top, k)
        if k != "upper":
            os.mkdir(paths[k])
            os.chown(paths[k], lftest_user.pw_uid, lftest_user.pw_gid)
    os.chown(top, lftest_user.pw_uid, lftest_user.pw_gid)
    yield paths
    fh.cleanup(paths["mnt"])
    shutil.rmtree(top, ignore_errors=True)


STAT = "stat -c '%n %u:%g %a %F %t:%T'"

CHANGES = (
    "echo 'u:x:1000:1000::/home/u:/bin/sh' >> {m}/etc/passwd && "
    "chmod 0600 {m}/srv/data && "
    "touch {m}/dev/null {m}/run/ctl {m}/srv/run && "
    "mkdir {m}/newdir && echo new > {m}/newdir/f && "
    "chown 5:6 {m}/newdir/f && mkfifo -m 0640 {m}/newfifo && "
    "ln -s f {m}/newdir/link && mkdir {m}/srv/sub")

PATHS = ("etc", "etc/passwd", "srv", "srv/data", "srv/run", "dev/null",
         "run/ctl", "newdir", "newdir/f", "newfifo", "srv/sub")


def _lf(*args):
    return " ".join([O.LAYERFS] + [str(a) for a in args])


def _mount_and_change(user, w, owner=None):
    extra = "--owner %s" % owner if owner else ""
    script = (_lf("mount", "--cache", w["cache"], "--upper", w["upper"],
                  extra, w["img"], w["mnt"]) + " && " +
              CHANGES.format(m=w["mnt"]) + " && cd %s && " % w["mnt"] +
              STAT + " " + " ".join(PATHS) + "; rc=$?; cd / ; " +
              _lf("umount", w["mnt"]) + "; exit $rc")
    p = _as_user(user, script, timeout=SCRIPT_TIMEOUT)
    assert p.returncode == 0, _err(p)
    return _stat_lines(p.stdout.decode())


def _stat_lines(out):
    got = {}
    for line in out.splitlines():
        name, owner, mode, rest = line.split(" ", 3)
        kind, dev = rest.rsplit(" ", 1)
        got[name] = (owner, int(mode, 8), kind, dev)
    return got


def _want(img_members, owner="0:0"):
    """What stat through the mount must show, from the image's members."""
    def of(path):
        m = img_members[path]
        return "%d:%d" % (m.uid, m.gid), m.mode & 0o7777
    want = {}
    for p in ("etc", "etc/passwd", "srv", "srv/run"):
        want[p] = of(p)
    want["srv/data"] = (of("srv/data")[0], 0o600)
    want["dev/null"] = of("dev/null")
    want["run/ctl"] = of("run/ctl")
    want["newdir"] = (owner, 0o755)
    want["newdir/f"] = ("5:6", 0o644)
    want["newfifo"] = (owner, 0o640)
    # a new dir in a setgid-less dir of 33:33 still belongs to the owner
    want["srv/sub"] = (owner, 0o755)
    return want


def _check_stat(got, want):
    for p, (owner, mode) in want.items():
        assert got[p][0] == owner, (p, got[p], owner)
        assert got[p][1] == mode, (p, oct(got[p][1]), oct(mode))
    assert got["dev/null"][2] == "character special file", got["dev/null"]
    assert got["dev/null"][3] == "1:3", got["dev/null"]
    assert got["run/ctl"][2] == "fifo", got["run/ctl"]
    assert got["newfifo"][2] == "fifo", got["newfifo"]


def test_rootless_copy_up_keeps_image_owners(user_can_mount, work):  # noqa: F811
    """A normal user's mount --upper, changes, remount, commit: stat through
    the mount and the committed layer give the image's owners and modes for
    what was copied up, 0:0 for what is new, the chown'ed owner for what
    was chown'ed, and device/FIFO types a user cannot mknod."""
    w = work
    img = _image_members(w["img"])
    got = _mount_and_change(user_can_mount, w)
    want = _want(img)
    _check_stat(got, want)
    # the host copies belong to the user: the record is what carries it
    st = os.lstat(os.path.join(w["upper"], "etc", "passwd"))
    assert st.st_uid == user_can_mount.pw_uid
    st = os.lstat(os.path.join(w["upper"], "dev", "null"))
    assert stat.S_ISREG(st.st_mode), "a user cannot mknod: a stand-in"
    # remount: the same view (the record persists)
    p = _as_user(user_can_mount,
                 _lf("mount", "--cache", w["cache"], "--upper", w["upper"],
                     w["img"], w["mnt"]) + " && cd %s && " % w["mnt"] +
                 STAT + " " + " ".join(PATHS) +
                 " && python3 -c \"import os; print(sorted("
                 "os.listxattr('etc/passwd')))\" ; rc=$?; cd /; " +
                 _lf("umount", w["mnt"]) + "; exit $rc",
                 timeout=SCRIPT_TIMEOUT)
    assert p.returncode == 0, _err(p)
    lines = p.stdout.decode().splitlines()
    _check_stat(_stat_lines("\n".join(lines[:-1])), want)
    # the record is layerfs's: never shown through the mount
    assert lines[-1] == "[]", lines[-1]
    # commit as the user: the new layer carries the image's ownership
    p = _as_user(user_can_mount,
                 _lf("commit", "-q", "--cache", w["cache"], "--upper",
                     w["upper"], w["img"], "-o", w["out"]),
                 timeout=SCRIPT_TIMEOUT)
    assert p.returncode == 0, _err(p)
    layer = _members(w["out"])
    for path, (owner, mode) in want.items():
        m = layer[path]
        assert "%d:%d" % (m.uid, m.gid) == owner, (path, m.uid, m.gid)
        assert m.mode & 0o7777 == mode, (path, oct(m.mode), oct(mode))
    assert layer["dev/null"].ischr()
    assert (layer["dev/null"].devmajor, layer["dev/null"].devminor) == (1, 3)
    assert layer["run/ctl"].isfifo() and layer["newfifo"].isfifo()
    assert data(layer["etc/passwd"]) == (
        data(img["etc/passwd"]) + b"u:x:1000:1000::/home/u:/bin/sh\n")
    assert layer["newdir/link"].issym()
    assert (layer["newdir/link"].uid, layer["newdir/link"].gid) == (0, 0)
    for m in layer.values():
        assert not any("override_stat" in k for k in m.pax_headers), m.name
    # diff sees only what was changed: a copied-up directory keeps its
    # owner, so /etc, /dev and /run are not changes (mkdir srv/sub is one
    # of /srv); the user's and root's
    # diff agree)
    p = _as_user(user_can_mount, _lf("diff", "--cache", w["cache"],
                                     "--upper", w["upper"], w["img"]),
                 timeout=SCRIPT_TIMEOUT)
    assert p.returncode == 0, _err(p)
    lines = p.stdout.decode().splitlines()
    assert lines == ["C /dev/null", "C /etc/passwd", "A /newdir",
                     "A /newdir/f", "A /newdir/link", "A /newfifo",
                     "C /run/ctl", "C /srv", "C /srv/data", "C /srv/run",
                     "A /srv/sub"], lines
    r = O.layerfs("diff", "--cache", w["cache"], "--upper", w["upper"],
                  w["img"])
    assert r.returncode == 0 and r.stdout.decode().splitlines() == lines, \
        _err(r)
    # root commits the same upper dir to the same layer
    p = O.layerfs("commit", "-q", "--cache", w["cache"], "--upper",
                      w["upper"], w["img"], "-o", w["out2"])
    assert p.returncode == 0, _err(p)
    root_layer = _members(w["out2"])
    assert sorted(root_layer) == sorted(layer)
    for path in layer:
        a, b = layer[path], root_layer[path]
        assert (a.uid, a.gid, a.mode, a.type) == (b.uid, b.gid, b.mode,
                                                  b.type), path


def test_rootless_owner_option(user_can_mount, work):  # noqa: F811
    """--owner UID:GID gives new objects that owner (copy-ups keep the
    image's); commit --owner maps the user's unrecorded symlinks too."""
    w = work
    img = _image_members(w["img"])
    got = _mount_and_change(user_can_mount, w, owner="1000:100")
    _check_stat(got, _want(img, owner="1000:100"))
    p = _as_user(user_can_mount,
                 _lf("commit", "-q", "--owner", "1000:100", "--cache",
                     w["cache"], "--upper", w["upper"], w["img"], "-o",
                     w["out"]), timeout=SCRIPT_TIMEOUT)
    assert p.returncode == 0, _err(p)
    layer = _members(w["out"])
    assert (layer["newdir"].uid, layer["newdir"].gid) == (1000, 100)
    assert (layer["newdir/link"].uid, layer["newdir/link"].gid) == (1000, 100)
    assert (layer["etc/passwd"].uid, layer["etc/passwd"].gid) == (0, 0)


@pytest.mark.parametrize("arg", ["0", "a:b", "1:", ":1", "1:2:3",
                                 "4294967295:0", "-1:0"])
def test_owner_option_rejects(arg, tmp_path):
    p = O.layerfs("commit", "--owner", arg, "--squash", "x", "-o",
                      str(tmp_path / "o"))
    assert p.returncode == 2, _err(p)
    assert "--owner" in _err(p) and arg in _err(p), _err(p)
