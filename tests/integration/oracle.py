# SPDX-License-Identifier: MIT
"""oracle.py - shared helpers: fixture generation, the umoci oracle, layerfs.

The oracle for "what layers 1..N look like" is `umoci unpack` of an image
whose manifest lists only those N layers (design.md section 3).  docker-archive
fixtures go through `skopeo copy docker-archive:X oci:DIR:TAG` first, so the
docker-archive reader is checked against an independent tool too.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
if FIXTURES not in sys.path:
    sys.path.insert(0, FIXTURES)

import mkimage  # noqa: E402
import specs    # noqa: E402

LAYERFS = os.environ.get("LAYERFS", os.path.join(REPO, "build", "layerfs"))
FORMATS = mkimage.FORMATS
TAG = mkimage.REF_TAG
XATTR_PREFIXES = ("user.", "security.capability")

_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
          stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo",
          stat.S_IFSOCK: "sock"}


def have_layerfs():
    return os.path.isfile(LAYERFS) and os.access(LAYERFS, os.X_OK)


def image_path(root, name, fmt, layers=None):
    suffix = "" if layers is None else ".L%d" % layers
    ext = "" if fmt == "oci" else ".tar"
    return os.path.join(root, "%s.%s%s%s" % (name, fmt, suffix, ext))


def generate(name, fmt, root, layers=None, no_zstd=False):
    """Write spec `name` in `fmt` under directory root; return its path."""
    out = image_path(root, name, fmt, layers)
    if no_zstd:
        out += ".nozstd"
    mkimage.write_image(specs.SPECS[name], out, fmt, layers, key=name,
                        no_zstd=no_zstd)
    return out


def layer_count(name):
    return len(specs.SPECS[name].layers)


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(cmd, **kw)


def _check(p, what):
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (
            what, p.returncode, p.stderr.decode(errors="replace")))


def umoci_unpack(layout, bundle, tag=TAG):
    """umoci unpack of the image named `tag` (layerfs commit --tag N:T
    names it N:T whole; generated images are named TAG)."""
    p = run(["umoci", "unpack", "--image", "%s:%s" % (layout, tag), bundle])
    _check(p, "umoci unpack " + layout)
    return os.path.join(bundle, "rootfs")


def layer_tars(layout):
    """(descriptor, uncompressed tar bytes) of each layer of the first
    image of an OCI layout, bottom first (gzip and zstd undone by Python's
    gzip and the zstd tool)."""
    import gzip
    with open(os.path.join(layout, "index.json")) as f:
        man = json.load(f)["manifests"][0]["digest"][7:]
    with open(os.path.join(layout, "blobs", "sha256", man)) as f:
        descs = json.load(f)["layers"]
    out = []
    for d in descs:
        with open(os.path.join(layout, "blobs", "sha256", d["digest"][7:]),
                  "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            data = subprocess.run(["zstd", "-dc"], input=data,
                                  capture_output=True, check=True).stdout
        out.append((d, data))
    return out


def skopeo_to_oci(archive, layout):
    p = run(["skopeo", "--insecure-policy", "copy", "-q",
             "docker-archive:" + archive, "oci:%s:%s" % (layout, TAG)])
    _check(p, "skopeo copy " + archive)
    return layout


def oracle_rootfs(name, fmt, n, root):
    """umoci rootfs of the first n layers of fixture `name` as read via fmt.

    Returns (rootfs path, unpack start time)."""
    work = os.path.join(root, "%s.%s.L%d" % (name, fmt, n))
    os.makedirs(work, exist_ok=True)
    if fmt in ("oci", "oci-archive"):
        layout = generate(name, "oci", work, n, no_zstd=True)
    else:
        arch = generate(name, fmt, work, n)
        layout = skopeo_to_oci(arch, os.path.join(work, "skopeo-oci"))
    t0 = time.time()
    return umoci_unpack(layout, os.path.join(work, "bundle")), t0


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def walk_rootfs(rootfs, unpack_start=None):
    """path -> attribute dict for everything below rootfs (root excluded).

    mtime is None for directories umoci made up itself (implicit parents get
    the time of the unpack: design.md rule 3.2 says 0; not comparable)."""
    out = {}
    for dirpath, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, rootfs)
            st = os.lstat(full)
            typ = _TYPES[stat.S_IFMT(st.st_mode)]
            e = {"type": typ, "mode": st.st_mode & 0o7777, "uid": st.st_uid,
                 "gid": st.st_gid, "mtime": int(st.st_mtime_ns // 10**9),
                 "mtime_nsec": st.st_mtime_ns % 10**9, "ino": st.st_ino,
                 "nlink": st.st_nlink}
            if typ == "dir" and unpack_start is not None and \
                    st.st_mtime >= unpack_start - 2:
                e["mtime"] = e["mtime_nsec"] = None
            if typ == "file":
                e["size"] = st.st_size
                e["sha256"] = file_sha256(full)
            if typ == "symlink":
                e["target"] = os.readlink(full)
            if typ in ("chr", "blk"):
                e["rdev_major"] = os.major(st.st_rdev)
                e["rdev_minor"] = os.minor(st.st_rdev)
            xa = {}
            if typ in ("file", "dir"):
                for k in os.listxattr(full, follow_symlinks=False):
                    if k.startswith(XATTR_PREFIXES):
                        xa[k] = os.getxattr(full, k,
                                            follow_symlinks=False).hex()
            e["xattrs"] = xa
            out[rel] = e
    return out


def link_groups(tree):
    """Partition of the non-directories that share an inode (groups > 1):
    hardlinks, including hardlinks to symlinks, devices and fifos."""
    by = {}
    for p, e in tree.items():
        if e["type"] != "dir":
            by.setdefault(e["ino"], set()).add(p)
    return sorted(sorted(g) for g in by.values() if len(g) > 1)


# -- layerfs ----------------------------------------------------------------

def layerfs(*args, env=None, timeout=300, **kw):
    """Run layerfs; LAYERFS_CACHE from the caller's environment never leaks
    in (tests pass --cache or env= explicitly)."""
    e = dict(os.environ)
    e.pop("LAYERFS_CACHE", None)
    if env:
        e.update(env)
    return run([LAYERFS] + [str(a) for a in args], env=e, timeout=timeout,
               **kw)


def layerfs_ls(image, n=None, cache=None, path=None, extra=()):
    args = ["ls", "-lR", "--json"]
    if n is not None:
        args += ["--layers", str(n)]
    if cache is not None:
        args += ["--cache", cache]
    args += list(extra) + [image]
    if path is not None:
        args.append(path)
    p = layerfs(*args)
    if p.returncode != 0:
        raise AssertionError("layerfs %s exited %d: %s" % (
            " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    entries = listed(json.loads(p.stdout), path)
    return {e["path"]: e for e in entries}, entries


def listed(entries, path=None):
    """ls --json entries keyed on the listed form: "path" is absolute in the
    image, "name" relative to the listed PATH as ls prints it; callers here
    compare with rootfs-relative paths, so "path" becomes "name"."""
    for e in entries:
        top = "/" + path.strip("/") if path and path.strip("/") else ""
        assert e["path"] == top + "/" + e["name"], (e["path"], e["name"])
        assert ("path_hex" in e) == ("name_hex" in e)
        e["path"] = e.pop("name")
        if "name_hex" in e:
            e.pop("path_hex")
            e["path_hex"] = e.pop("name_hex")
    return entries


def layerfs_cat_sha(image, path, n=None, cache=None, extra=()):
    args = ["cat"]
    if n is not None:
        args += ["--layers", str(n)]
    if cache is not None:
        args += ["--cache", cache]
    args += list(extra) + [image, path]
    p = layerfs(*args)
    if p.returncode != 0:
        return None, p
    return hashlib.sha256(p.stdout).hexdigest(), p


# -- comparison --------------------------------------------------------------

FIELDS = ("type", "mode", "uid", "gid")


def compare(oracle, lf, cat=None):
    """List of human-readable differences between the umoci tree and the
    layerfs listing.  cat(path) -> sha256 of `layerfs cat` (or None)."""
    diffs = []
    for p in sorted(set(oracle) - set(lf)):
        diffs.append("missing in layerfs: %s (%s)" % (p, oracle[p]["type"]))
    for p in sorted(set(lf) - set(oracle)):
        diffs.append("extra in layerfs: %s (%s)" % (p, lf[p].get("type")))
    for p in sorted(set(oracle) & set(lf)):
        o, l = oracle[p], lf[p]

        def ne(field, ov, lv):
            if ov != lv:
                diffs.append("%s: %s umoci=%r layerfs=%r" % (p, field, ov, lv))
        for f in FIELDS:
            ne(f, o[f], l.get(f))
        if o["type"] != l.get("type"):
            continue
        if o["mtime"] is not None:
            ne("mtime", o["mtime"], l.get("mtime"))
            ne("mtime_nsec", o["mtime_nsec"], l.get("mtime_nsec"))
        t = o["type"]
        if t == "file":
            ne("size", o["size"], l.get("size"))
        if t != "dir":
            ne("nlink", o["nlink"], l.get("nlink"))
        if t == "symlink":
            ne("target", o["target"], l.get("target"))
        if t in ("chr", "blk"):
            ne("rdev", (o["rdev_major"], o["rdev_minor"]),
               (l.get("rdev_major"), l.get("rdev_minor")))
        lx = {k: v for k, v in (l.get("xattrs") or {}).items()
              if k.startswith(XATTR_PREFIXES)}
        ne("xattrs", o["xattrs"], lx)
    og, lg = link_groups(oracle), link_groups(
        {p: e for p, e in lf.items() if p in oracle})
    if og != lg:
        diffs.append("hardlink groups: umoci=%r layerfs=%r" % (og, lg))
    if cat is not None:
        for p in sorted(set(oracle) & set(lf)):
            if oracle[p]["type"] == "file" and lf[p].get("type") == "file":
                got = cat(p)
                if got != oracle[p]["sha256"]:
                    diffs.append("%s: content sha256 umoci=%s layerfs=%s" % (
                        p, oracle[p]["sha256"], got))
    return diffs


def _subdirs(tree):
    count = {"": 0}
    for p, e in tree.items():
        if e["type"] == "dir":
            parent = p.rpartition("/")[0]
            count[parent] = count.get(parent, 0) + 1
    return count


def mount_diffs(expect, mnt, image, n, cache):
    """Differences of a mounted view at `mnt` from the oracle tree
    `expect`: everything compare() checks, plus what only a mount has —
    dir st_nlink = 2 + subdirectories (the root too) and st_ino equal to
    the `ino` of `layerfs ls -lR --json` of the same prefix."""
    got = walk_rootfs(str(mnt))
    diffs = compare(expect, got, cat=lambda p: got[p].get("sha256"))
    subdirs = _subdirs(expect)
    root_st = os.lstat(mnt)
    if root_st.st_nlink != 2 + subdirs[""]:
        diffs.append("/: dir nlink %d, want 2 + %d subdirs" % (
            root_st.st_nlink, subdirs[""]))
    for p, e in sorted(got.items()):
        if e["type"] == "dir" and p in expect and \
                e["nlink"] != 2 + subdirs.get(p, 0):
            diffs.append("%s: dir nlink %d, want 2 + %d subdirs" % (
                p, e["nlink"], subdirs.get(p, 0)))
    ls, _ = layerfs_ls(image, n, cache)
    for p in sorted(set(ls) & set(got)):
        if ls[p]["ino"] != got[p]["ino"]:
            diffs.append("%s: st_ino %d in the mount, ls --json ino %d" % (
                p, got[p]["ino"], ls[p]["ino"]))
    return diffs
