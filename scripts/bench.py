#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench.py - the table of scripts/bench (run that, not this).

Builds once, in WORKDIR, an OCI image from directories of this machine (five
layers of real files, > 300 MB uncompressed and > 10,000 files, plus a cleanup
layer with whiteouts), extracts its layers once for the peers, then measures:

  cold mount   mount with an empty index cache, until the mount answers
  warm mount   the same with the cache filled
  find -ls     every stat of the tree (page cache dropped first)
  grep -r      a string that is nowhere, so every byte is read: first with
               the page cache dropped, then three times again (repeat)
  tar -c | wc  the whole tree through tar
  peak RSS     of the daemon (VmHWM)

for layerfs, the same layerfs build on zlib (LAYERFS_INFLATE=zlib: the
inflater before ISA-L, in the same run), the kernel overlayfs over the
extracted layers, fuse-overlayfs over the same layers, and the
extract-then-grep workflow (umoci unpack + grep -r).  Ratios are against the
kernel overlayfs of the same run.  Then the inflate floor: gzip -dc and
igzip -dc of every blob in turn, the cold index (`layerfs layers`, empty
cache) on each inflater, the cold mount over gzip -dc, and (with perf) the
share of each library in a cold index.

--scale 2,4 also builds images with the same directories inserted 2 and 4
times and prints, for each size, the cached commands (layers, ls -R, diff,
waste), the warm mount and the daemon's RSS after find -ls; the RSS slope
between the smallest and the largest is the per-entry memory figure.

--registry also serves the image from a registry on 127.0.0.1 (Debian's
docker-registry, blobs uploaded as they are) and prints: the time to GET
every blob once, the first mount of docker://…@digest with an empty cache
(against the local cold mount plus that GET time), the second mount with
the index cached, the requests and bytes a mount and a `cat` of one small
file make (counted by a proxy), and `grep -r` over the mounted registry
image (spans fetched on demand) next to `skopeo copy` + local mount + grep
and `podman pull` + `podman image mount` + grep.  --registry-only skips
the local peers (the local cold mount is still measured).

The "layerfs grep" column is `layerfs grep NEEDLE IMAGE` with the index
cached and no mount (its "grep --all first" searches every layer's files,
hidden versions included), next to grep -r over the mounts and over the
extracted tree.

--all-layers measures only a generated 24-layer image mounted as one
prefix and with --all-layers (every view walked by find -ls): mount time,
daemon RSS after the mount and after the walk.

--million [ENTRIES] measures only a generated image of ENTRIES tar members
(default 1,000,000) in 10 gzip layers, built once in the workdir: cold
index next to gzip -dc / igzip -dc of the blobs, cold and warm mount, ls of
one directory and of a 100,000-name one, ls -R and find on fresh mounts,
diff of two prefixes, waste, cached layers, and the daemon's RSS after the
mount and after find above a tiny image's (B/entry).

--cow measures only copy-on-write mounts (`mount --upper`, a generated
2,000-file image, a fresh upper dir each time): the stat(2) rate of the
newest file before and after 100k creates in one directory, then RSS once
they are unlinked and the kernel forgot them (drop_caches); a chain of
2,500 directories made level by level through the mount and walked again
after a remount; and 8 reader + 4 writer processes for --cow-seconds
(default 600) with the daemon's RSS and the reads/s and writes/s printed
every 10 s.  Readers stat, read and list lower and upper files; writers
create, rename and delete files (at most 200 kept each), copy lower files
up and rewrite them, make and remove small subtrees.  With --compare both
builds are measured one after the other.  scripts/floodnames.py makes the
images for the name-flooding figure (docs/performance.md).

--compare BINARY measures another layerfs build (an older commit, say) in the
same run, on the same image, and prints this build's figures over its.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import extract_layers  # noqa: E402

SOURCES = ["/usr/share/doc", "/usr/lib/gcc", "/usr/include",
           "/usr/lib/python3.11", "/usr/share/locale"]
CLEANUP = ["usr/share/locale/de", "usr/include/linux"]
NEEDLE = "layerfs-bench-needle-that-is-nowhere"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def drop_caches():
    sh("sync")
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def build_image(img, work, scale=1):
    """scale k: the same directories inserted k times, copy j under /cj/
    (so k times the files, entries and bytes, all distinct paths)."""
    shutil.rmtree(img, ignore_errors=True)
    sh(["umoci", "init", "--layout", img])
    sh(["umoci", "new", "--image", img + ":bench"])
    for j in range(scale):
        for d in SOURCES:
            if os.path.isdir(d):
                dst = d if j == 0 else "/c%d%s" % (j, d)
                sh(["umoci", "insert", "--image", img + ":bench", d, dst],
                   stdout=subprocess.DEVNULL)
    bundle = os.path.join(work, "bundle")
    shutil.rmtree(bundle, ignore_errors=True)
    sh(["umoci", "unpack", "--image", img + ":bench", bundle],
       stdout=subprocess.DEVNULL)
    for p in CLEANUP:
        shutil.rmtree(os.path.join(bundle, "rootfs", p), ignore_errors=True)
    sh(["umoci", "repack", "--image", img + ":bench", bundle],
       stdout=subprocess.DEVNULL)
    shutil.rmtree(bundle)


def wait_mount(mnt, proc=None, timeout=600):
    t = time.monotonic()
    while not os.path.ismount(mnt):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("daemon exited: %s" % proc.stderr.read())
        if time.monotonic() - t > timeout:
            raise RuntimeError("mount timed out")
        time.sleep(0.002)


def umount(mnt):
    subprocess.run(["umount", mnt], check=False)
    if os.path.ismount(mnt):
        subprocess.run(["umount", "-l", mnt], check=False)


def vm_field(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def vm_hwm(pid):
    return vm_field(pid, "VmHWM")


def vm_rss(pid):
    return vm_field(pid, "VmRSS")


class Peer:
    daemon = None

    def mount(self, mnt):
        raise NotImplementedError

    def stop(self, mnt):
        rss = vm_hwm(self.daemon.pid) if self.daemon else None
        umount(mnt)
        if self.daemon:
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
            self.daemon = None
        return rss


class Layerfs(Peer):
    name = "layerfs"

    def __init__(self, binary, img, cache, env=None):
        self.binary, self.img, self.cache = binary, img, cache
        self.env = dict(os.environ, **env) if env else None

    def mount(self, mnt):
        self.daemon = subprocess.Popen(
            [self.binary, "mount", "-f", "-q", "--cache", self.cache,
             self.img, mnt], stderr=subprocess.PIPE, text=True,
            env=self.env)
        wait_mount(mnt, self.daemon)


class KernelOverlay(Peer):
    name = "kernel overlayfs"

    def __init__(self, lower):
        self.lower = lower

    def mount(self, mnt):
        sh(["mount", "-t", "overlay", "overlay", "-o",
            "ro,lowerdir=" + self.lower, mnt])


class FuseOverlay(Peer):
    name = "fuse-overlayfs"

    def __init__(self, lower):
        self.lower = lower

    def mount(self, mnt):
        self.daemon = subprocess.Popen(
            ["fuse-overlayfs", "-f", "-o", "lowerdir=" + self.lower, mnt],
            stderr=subprocess.PIPE, text=True)
        wait_mount(mnt, self.daemon)


def measure(peer, mnt, runs, cold_setup=None):
    """One dict of figures (seconds, bytes) for a mounted peer."""
    r = {}
    if cold_setup:
        cold_setup()
    drop_caches()
    r["cold mount"] = timed(lambda: peer.mount(mnt))
    peer.stop(mnt)
    warm = []
    for _ in range(runs):
        warm.append(timed(lambda: peer.mount(mnt)))
        peer.stop(mnt)
    r["warm mount"] = statistics.median(warm)
    peer.mount(mnt)
    null = subprocess.DEVNULL

    def find():
        sh(["find", mnt, "-ls"], stdout=null)

    def grep():
        subprocess.run(["grep", "-r", NEEDLE, mnt], stdout=null)

    def tar():
        sh("tar -cf - -C %s . | wc -c" % mnt, stdout=null, stderr=null)

    vals = {"find -ls": [], "grep -r first": [], "grep -r repeat": [],
            "tar -c | wc -c": []}
    for i in range(runs):
        drop_caches()
        vals["find -ls"].append(timed(find))
        if i == 0 and peer.daemon:
            # metadata only so far: what the tree and indexes cost
            r["RSS after find"] = vm_rss(peer.daemon.pid)
        drop_caches()
        vals["grep -r first"].append(timed(grep))
        # repeats are page-cache reads whose time varies by +-30 % on this
        # VM from one grep to the next: three per run, for every peer
        for _ in range(3):
            vals["grep -r repeat"].append(timed(grep))
        vals["tar -c | wc -c"].append(timed(tar))
    for k, v in vals.items():
        r[k] = statistics.median(v)
    r["peak RSS"] = peer.stop(mnt)
    return r


def extract_then_grep(img, work):
    bundle = os.path.join(work, "unpacked")
    shutil.rmtree(bundle, ignore_errors=True)
    drop_caches()
    t = time.monotonic()
    sh(["umoci", "unpack", "--image", img + ":bench", bundle],
       stdout=subprocess.DEVNULL)
    unpack = time.monotonic() - t
    g = timed(lambda: subprocess.run(["grep", "-r", NEEDLE,
                                      bundle + "/rootfs"],
                                     stdout=subprocess.DEVNULL))
    shutil.rmtree(bundle)
    return {"cold mount": unpack, "grep -r first": unpack + g}


def layerfs_grep(binary, img, cache, runs):
    """`layerfs grep` of the needle, no mount (the index cached): first with
    the page cache dropped, then repeated; --all over every layer's files."""
    cmd = [binary, "grep", "-q", "--cache", cache, NEEDLE, img]
    subprocess.run([binary, "layers", "-q", "--cache", cache, img],
                   stdout=subprocess.DEVNULL, check=True)
    drop_caches()
    first = timed(lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL))
    again = statistics.median(
        timed(lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL))
        for _ in range(max(runs, 3)))
    drop_caches()
    every = timed(lambda: subprocess.run(cmd[:2] + ["--all"] + cmd[2:],
                                         stdout=subprocess.DEVNULL))
    return {"grep -r first": first, "grep -r repeat": again,
            "grep --all first": every}


def all_layers_figures(binary, work):
    """A generated 24-layer image (2,000 files a layer, each layer also
    rewriting 200 files of the one below and deleting 100): one prefix
    mounted vs --all-layers, time and daemon RSS after the mount and after
    find -ls of every view (48 of them) or of the one prefix."""
    import mkimage as mk
    img = os.path.join(work, "image-24")
    if not os.path.exists(os.path.join(img, "index.json")):
        layers = []
        for k in range(24):
            ops = [mk.file("/l%02d/d%02d/f%04d" % (k, i % 40, i),
                           "layer %d file %d\n" % (k, i) * (1 + i % 7))
                   for i in range(2000)]
            if k:
                ops += [mk.file("/l%02d/d%02d/f%04d" % (k - 1, i % 40, i),
                                "rewritten by %d\n" % k)
                        for i in range(0, 2000, 10)]
                ops += [mk.whiteout("/l%02d/d%02d/f%04d"
                                    % (k - 1, i % 40, i))
                        for i in range(5, 2000, 20)]
            layers.append(mk.Layer(ops, "gzip"))
        mk.write_image(mk.Image(layers), img, "oci")
    cache = os.path.join(work, "cache-24")
    mnt = os.path.join(work, "mnt-24")
    os.makedirs(mnt, exist_ok=True)
    out = {}
    for name, extra, walk in (("one prefix", [], [mnt]),
                              ("--all-layers", ["--all-layers"], [mnt])):
        t = time.monotonic()
        d = subprocess.Popen([binary, "mount", "-f", "-q", *extra,
                              "--cache", cache, img, mnt],
                             stderr=subprocess.PIPE, text=True)
        wait_mount(mnt, d)
        out[name + ": mount"] = time.monotonic() - t
        out[name + ": RSS after mount"] = vm_rss(d.pid)
        t = time.monotonic()
        sh(["find", *walk, "-ls"], stdout=subprocess.DEVNULL)
        out[name + ": find -ls"] = time.monotonic() - t
        out[name + ": RSS after find"] = vm_rss(d.pid)
        umount(mnt)
        d.wait(timeout=60)
    return out


# --- copy-on-write: long sessions, many files, deep paths ---------------

COW_DIRS, COW_FILES = 40, 50  # the generated image: /data/dNN/fNNNN


def cow_image(work):
    """One gzip layer of 2,000 small files in 40 directories."""
    import mkimage as mk
    img = os.path.join(work, "image-cow")
    if not os.path.exists(os.path.join(img, "index.json")):
        ops = [mk.file("/data/d%02d/f%04d" % (d, f),
                       "lower file %d/%d\n" % (d, f) * (1 + f % 9))
               for d in range(COW_DIRS) for f in range(COW_FILES)]
        mk.write_image(mk.Image([mk.Layer(ops, "gzip")]), img, "oci")
    return img


class CowMount:
    """`layerfs mount --upper` of the cow image on a fresh upper dir."""

    def __init__(self, binary, work, tag):
        self.binary, self.work = binary, work
        self.img = cow_image(work)
        self.cache = os.path.join(work, "cache-cow-" + tag)
        self.upper = os.path.join(work, "upper-cow-" + tag)
        self.mnt = os.path.join(work, "mnt-cow-" + tag)
        self.daemon = None

    def __enter__(self):
        shutil.rmtree(self.upper, ignore_errors=True)
        os.makedirs(self.mnt, exist_ok=True)
        if os.path.ismount(self.mnt):
            umount(self.mnt)
        self.start()
        return self

    def start(self):
        self.daemon = subprocess.Popen(
            [self.binary, "mount", "-f", "-q", "--cache", self.cache,
             "--upper", self.upper, self.img, self.mnt],
            stderr=subprocess.PIPE, text=True)
        wait_mount(self.mnt, self.daemon)

    def stop(self):
        umount(self.mnt)
        try:
            self.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    def __exit__(self, *exc):
        self.stop()
        # an upper dir deeper than a path can name: rm -r copes
        subprocess.run(["rm", "-rf", self.upper], check=False)

    def rss(self):
        return vm_rss(self.daemon.pid)


def _cow_reader(mnt, k, stop, counts):
    """Lower and upper files read, stat'ed and listed, over and over."""
    import random
    rnd = random.Random(k)
    n = 0
    while not stop.value:
        d = rnd.randrange(COW_DIRS)
        try:
            if n % 16 == 0:
                os.listdir(os.path.join(mnt, "data", "d%02d" % d))
            elif n % 4 == 0:
                w = os.path.join(mnt, "w%d" % rnd.randrange(4))
                for name in os.listdir(w)[:8]:
                    os.stat(os.path.join(w, name))
            else:
                p = os.path.join(mnt, "data", "d%02d" % d,
                                 "f%04d" % rnd.randrange(COW_FILES))
                os.stat(p)
                with open(p, "rb") as f:
                    f.read()
        except OSError:
            pass  # a writer's file gone meanwhile
        n += 1
        counts[k] = n


def _cow_writer(mnt, k, stop, counts):
    """New files made, written, renamed and deleted (at most 200 kept),
    lower files copied up and rewritten, a subdirectory made and removed:
    nodes, inode numbers and cached directories come and go."""
    import random
    rnd = random.Random(100 + k)
    w = os.path.join(mnt, "w%d" % k)
    os.makedirs(w, exist_ok=True)
    n = made = gone = 0
    data = b"x" * 4096
    while not stop.value:
        op = n % 10
        if op < 5:
            with open(os.path.join(w, "n%09d" % made), "wb") as f:
                f.write(data)
            made += 1
        elif op == 5 and made - gone > 1:
            os.rename(os.path.join(w, "n%09d" % gone),
                      os.path.join(w, "r%09d" % gone))
            os.unlink(os.path.join(w, "r%09d" % gone))
            gone += 1
        elif op == 6:
            p = os.path.join(mnt, "data", "d%02d" % rnd.randrange(COW_DIRS),
                             "f%04d" % rnd.randrange(COW_FILES))
            with open(p, "r+b") as f:
                f.write(b"rewritten by writer %d\n" % k)
        elif op == 7:
            sub = os.path.join(w, "sub%d" % (n // 10 % 4))
            os.makedirs(os.path.join(sub, "a", "b"), exist_ok=True)
            open(os.path.join(sub, "a", "b", "f"), "w").close()
        elif op == 8:
            sub = os.path.join(w, "sub%d" % (n // 10 % 4))
            shutil.rmtree(sub, ignore_errors=True)
        else:
            while made - gone > 200:
                os.unlink(os.path.join(w, "n%09d" % gone))
                gone += 1
        n += 1
        counts[k] = n


def cow_mixed(binary, work, tag, seconds):
    """8 readers + 4 writers for `seconds`; every 10 s the daemon's RSS and
    the ops/s of each kind since the last sample."""
    import multiprocessing as mp
    series = []
    with CowMount(binary, work, tag) as m:
        for k in range(4):
            os.makedirs(os.path.join(m.mnt, "w%d" % k), exist_ok=True)
        stop = mp.Value("i", 0)
        counts, wcounts = mp.Array("q", 8), mp.Array("q", 4)
        procs = [mp.Process(target=_cow_reader,
                            args=(m.mnt, k, stop, counts))
                 for k in range(8)]
        procs += [mp.Process(target=_cow_writer,
                             args=(m.mnt, k, stop, wcounts))
                  for k in range(4)]
        rss0 = m.rss()
        t0 = time.monotonic()
        for p in procs:
            p.start()
        last_r = last_w = 0
        last_t = t0
        while True:
            time.sleep(max(0.0, last_t + 10 - time.monotonic()))
            now = time.monotonic()
            r, w = sum(counts[:]), sum(wcounts[:])
            series.append({"t": round(now - t0), "RSS": m.rss(),
                           "reads/s": (r - last_r) / (now - last_t),
                           "writes/s": (w - last_w) / (now - last_t)})
            print("  %4d s  RSS %6.1f MiB  reads %7.0f/s  writes %6.0f/s" % (
                series[-1]["t"], series[-1]["RSS"] / 1048576,
                series[-1]["reads/s"], series[-1]["writes/s"]),
                file=sys.stderr, flush=True)
            last_r, last_w, last_t = r, w, now
            if now - t0 >= seconds:
                break
        stop.value = 1
        for p in procs:
            p.join(timeout=60)
        time.sleep(10)
        idle = m.rss()
        drop_caches()  # the kernel forgets its inodes: FUSE forgets
        time.sleep(5)
        forgot = m.rss()
    at30 = next((x["RSS"] for x in series if x["t"] >= 30), series[0]["RSS"])
    return {"series": series, "RSS at mount": rss0, "RSS at 30 s": at30,
            "RSS at end": series[-1]["RSS"], "RSS idle 10 s after": idle,
            "RSS after drop_caches": forgot}


def cow_creates(binary, work, tag, count=100000):
    """stat(2) rate of the newest file before and after `count` creates in
    one directory (attributes are not cached: each stat is a getattr)."""
    def stat_rate(p, secs=2.0):
        n, t = 0, time.monotonic()
        while time.monotonic() - t < secs:
            for _ in range(200):
                os.stat(p)
            n += 200
        return n / (time.monotonic() - t)

    out = {}
    with CowMount(binary, work, tag) as m:
        d = os.path.join(m.mnt, "many")
        os.mkdir(d)
        open(os.path.join(d, "first"), "w").close()
        out["stat/s, 1 file"] = stat_rate(os.path.join(d, "first"))
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        t = time.monotonic()
        for i in range(count):
            os.close(os.open("f%06d" % i, os.O_WRONLY | os.O_CREAT, 0o644,
                             dir_fd=dfd))
        out["%d creates" % count] = time.monotonic() - t
        os.close(dfd)
        newest = os.path.join(d, "f%06d" % (count - 1))
        out["stat/s after creates"] = stat_rate(newest)
        out["RSS after creates"] = m.rss()
        # all gone again, and forgotten by the kernel: the daemon's
        # tables and heap back to where they were
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        for i in range(count):
            os.unlink("f%06d" % i, dir_fd=dfd)
        os.close(dfd)
        drop_caches()
        time.sleep(2)
        out["RSS after unlink + drop_caches"] = m.rss()
    return out


def cow_depth(binary, work, tag, depth=2500):
    """A chain of `depth` directories made through the mount (mkdir, then
    open, from the previous level's fd), then walked again level by level
    after a remount (every lookup cold), a file read at the bottom."""
    out = {}
    with CowMount(binary, work, tag) as m:
        fd = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
        reached = 0
        t = time.monotonic()
        try:
            for _ in range(depth):
                os.mkdir("d", dir_fd=fd)
                nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = nfd
                reached += 1
            with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644,
                              dir_fd=fd), "w") as f:
                f.write("leaf\n")
        except OSError as e:
            out["error"] = "%s at depth %d" % (e.strerror, reached + 1)
        os.close(fd)
        out["make: levels"] = reached
        out["make: seconds"] = time.monotonic() - t
        m.stop()
        m.start()
        fd = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
        walked = 0
        t = time.monotonic()
        try:
            for _ in range(reached):
                nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = nfd
                walked += 1
            if reached == depth:
                with open(os.open("leaf", os.O_RDONLY, dir_fd=fd)) as f:
                    f.read()
        except OSError as e:
            out.setdefault("error", "walk: %s at depth %d"
                           % (e.strerror, walked + 1))
        os.close(fd)
        out["walk: levels"] = walked
        out["walk: seconds"] = time.monotonic() - t
    return out


def cow_figures(binaries, work, seconds):
    """The copy-on-write figures of each (label, binary)."""
    out = {}
    for label, binary in binaries:
        print("copy-on-write figures of %s (%s) ..." % (label, binary),
              file=sys.stderr, flush=True)
        tag = label.replace(" ", "-")
        out[label] = {"creates": cow_creates(binary, work, tag),
                      "depth": cow_depth(binary, work, tag),
                      "mixed": cow_mixed(binary, work, tag, seconds)}
    return out


def print_cow(fig, seconds):
    mib = 1048576
    for label, f in fig.items():
        c, d, m = f["creates"], f["depth"], f["mixed"]
        print("copy-on-write, %s:" % label)
        print("  stat of the newest file: %.0f/s with 1 file, %.0f/s after "
              "100k creates (%.1f s to make them; RSS then %.1f MiB)" % (
                  c["stat/s, 1 file"], c["stat/s after creates"],
                  c["100000 creates"], c["RSS after creates"] / mib))
        print("  RSS once they are deleted and the kernel forgot them: "
              "%.1f MiB" % (c["RSS after unlink + drop_caches"] / mib))
        print("  depth chain: made %d levels in %.2f s, walked %d after a "
              "remount in %.2f s%s" % (
                  d["make: levels"], d["make: seconds"], d["walk: levels"],
                  d["walk: seconds"],
                  " (%s)" % d["error"] if "error" in d else ""))
        print("  %d s of 8 readers + 4 writers, every 10 s:" % seconds)
        for x in m["series"]:
            print("    %4d s  RSS %6.1f MiB  reads %7.0f/s  writes %6.0f/s"
                  % (x["t"], x["RSS"] / mib, x["reads/s"], x["writes/s"]))
        s = m["series"]
        half = [x for x in s if x["t"] > 30]
        if half:
            w = [x["writes/s"] for x in half]
            r = [x["reads/s"] for x in half]
            print("    after 30 s: writes/s %.0f..%.0f (mean %.0f), reads/s "
                  "%.0f..%.0f (mean %.0f)" % (
                      min(w), max(w), statistics.mean(w), min(r), max(r),
                      statistics.mean(r)))
        print("    RSS: %.1f MiB at mount, %.1f at 30 s, %.1f at the end "
              "(%.2fx of 30 s), %.1f idle 10 s later, %.1f after "
              "drop_caches" % (
                  m["RSS at mount"] / mib, m["RSS at 30 s"] / mib,
                  m["RSS at end"] / mib, m["RSS at end"] / m["RSS at 30 s"],
                  m["RSS idle 10 s after"] / mib,
                  m["RSS after drop_caches"] / mib))


def command_figures(binary, img, cache, runs):
    """Cached-image commands and the warm mount: medians of `runs`."""
    out = {}
    subprocess.run([binary, "layers", "-q", "--cache", cache, img],
                   stdout=subprocess.DEVNULL, check=True)
    for name, args in (("layers", ["layers"]), ("ls -R", ["ls", "-R"]),
                       ("diff", ["diff"]), ("waste", ["waste"])):
        out[name] = statistics.median(
            timed(lambda: sh([binary] + args + ["-q", "--cache", cache,
                                                img],
                             stdout=subprocess.DEVNULL))
            for _ in range(max(runs, 3)))
    mnt = img + ".mnt"
    os.makedirs(mnt, exist_ok=True)
    peer = Layerfs(binary, img, cache)
    warm = []
    for _ in range(max(runs, 3)):
        warm.append(timed(lambda: peer.mount(mnt)))
        peer.stop(mnt)
    out["warm mount"] = statistics.median(warm)
    # memory: RSS of the daemon after a metadata walk of the whole tree
    peer.mount(mnt)
    sh(["find", mnt, "-ls"], stdout=subprocess.DEVNULL)
    out["RSS after find"] = vm_rss(peer.daemon.pid)
    peer.stop(mnt)
    names = subprocess.run([binary, "ls", "-R", "-q", "--cache", cache, img],
                           stdout=subprocess.PIPE, check=True).stdout
    out["name bytes"] = sum(len(l.rsplit(b"/", 1)[-1])
                            for l in names.splitlines())
    return out


MILLION_MTIME = 1600000000

def _member(out, name, kind, data=b"", target=""):
    ti = tarfile.TarInfo(name)
    ti.mtime = MILLION_MTIME
    if kind == "d":
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    elif kind == "l":
        ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, target
    elif kind == "h":
        ti.type, ti.mode, ti.linkname = tarfile.LNKTYPE, 0o644, target
    else:
        ti.mode, ti.size = 0o644, len(data)
    out.write(ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    if data:
        out.write(data)
        pad = -len(data) % 512
        if pad:
            out.write(b"\0" * pad)

def million_layer(k, per, out):
    """Layer k of a generated image: `per` tar members.  Most are files in
    2,000 directories (50 x 40) that every layer shares, written a
    directory at a time as a tar of a tree is; then a 100,000-name
    directory every layer adds to, a 48-level chain, symlinks, hardlinks,
    and from layer 2 on rewrites, whiteouts and an opaque directory over
    the layer below."""
    n = 0
    per_dir = max(1, per * 8 // 10 // 2000)

    def where(i):
        d = (i // per_dir) % 2000
        return d // 40, d % 40

    def m(*a, **kw):
        nonlocal n
        _member(out, *a, **kw)
        n += 1
    # deep: a 48-level chain per layer with a file at every level
    path = "deep/k%d" % k
    m(path + "/", "d")
    for lvl in range(48):
        path += "/d%02d" % lvl
        m(path + "/", "d")
        m(path + "/f", "f", b"deep %d %d\n" % (k, lvl))
    # wide: one directory every layer adds to (per/10 names a layer)
    if k == 0:
        m("wide/", "d")
    for i in range(per // 10):
        m("wide/w%d_%06d" % (k, i), "f", b"w%d\n" % i)
    # changes to the layer below: rewrites, whiteouts, an opaque directory
    if k:
        for i in range(0, per // 2, 20):
            m("t/p%02d/q%02d/k%df%06d" % (*where(i), k - 1, i), "f",
              b"rewritten by %d\n" % k)
        for i in range(5, per // 2, 50):
            m("t/p%02d/q%02d/.wh.k%df%06d" % (*where(i), k - 1, i), "f")
        m("t/p%02d/q%02d/.wh..wh..opq" % (k, 1), "f")
    # the bulk, a directory at a time
    for a in range(50):
        m("t/p%02d/" % a, "d")
        for b in range(40):
            m("t/p%02d/q%02d/" % (a, b), "d")
    i = 0
    while n < per:
        a, b = where(i)
        name = "t/p%02d/q%02d/k%df%06d" % (a, b, k, i)
        if i % 100 == 7:
            m(name, "l", target="../q%02d/k%df%06d" % ((b + 1) % 40, k, i - 1))
        elif i % 100 == 9:
            m(name, "h", target="t/p%02d/q%02d/k%df%06d" % (
                *where(i - 1), k, i - 1))
        else:
            m(name, "f", b"layer %d file %d\n" % (k, i) * (i % 13))
        i += 1
    out.write(b"\0" * 1024)
    return n


class _Tee:
    def __init__(self, f):
        self.f, self.h, self.buf = f, hashlib.sha256(), []
        self.size = 0
    def write(self, b):
        self.buf.append(b)
        self.size += len(b)
        if self.size >= 1 << 20:
            self.flush()
    def flush(self):
        b = b"".join(self.buf)
        self.h.update(b)
        self.f.write(b)
        self.buf, self.size = [], 0


def _blob(img, data_path):
    h = hashlib.sha256()
    with open(data_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    os.replace(data_path, os.path.join(img, "blobs", "sha256", d))
    return "sha256:" + d, os.path.getsize(os.path.join(img, "blobs", "sha256", d))


def _json_blob(img, obj):
    b = json.dumps(obj, sort_keys=True).encode()
    d = hashlib.sha256(b).hexdigest()
    with open(os.path.join(img, "blobs", "sha256", d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)


def build_million(img, entries, layers=10):
    os.makedirs(os.path.join(img, "blobs", "sha256"), exist_ok=True)
    descs, diff_ids, total = [], [], 0
    for k in range(layers):
        tmp = os.path.join(img, "layer.tmp")
        with open(tmp, "wb") as gzf:
            gz = subprocess.Popen(["gzip", "-n", "-6"], stdin=subprocess.PIPE,
                                  stdout=gzf)
            tee = _Tee(gz.stdin)
            total += million_layer(k, entries // layers, tee)
            tee.flush()
            gz.stdin.close()
            if gz.wait():
                raise RuntimeError("gzip failed")
        diff_ids.append("sha256:" + tee.h.hexdigest())
        dg, size = _blob(img, tmp)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": dg, "size": size})
    cfg = {"architecture": "amd64", "os": "linux",
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}
    cd, cs = _json_blob(img, cfg)
    man = {"schemaVersion": 2,
           "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": cd, "size": cs}, "layers": descs}
    md, ms = _json_blob(img, man)
    with open(os.path.join(img, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(img, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": md, "size": ms,
             "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
    return total


def million_figures(binary, work, entries, runs):
    """A generated image of `entries` tar members in 10 gzip layers (see
    --million): cold index next to inflating the blobs, warm mount, listings
    and walks of the mount, diff, waste, daemon RSS above a tiny image's."""
    img = os.path.join(work, "image-m%d" % entries)
    if not os.path.exists(os.path.join(img, "index.json")):
        print("building the %d-entry image in %s ..." % (entries, img),
              file=sys.stderr)
        shutil.rmtree(img, ignore_errors=True)
        build_million(img, entries)
    tiny = os.path.join(work, "image-m-tiny")
    if not os.path.exists(os.path.join(tiny, "index.json")):
        shutil.rmtree(tiny, ignore_errors=True)
        build_million(tiny, 1000, layers=1)
    cache = os.path.join(work, "cache-m%d" % entries)
    mnt = os.path.join(work, "mnt-m")
    os.makedirs(mnt, exist_ok=True)
    umount(mnt)
    null = subprocess.DEVNULL
    out = {"entries": entries}
    with open(os.path.join(img, "index.json")) as f:
        mdig = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(img, "blobs", *mdig.split(":"))) as f:
        blobs = [os.path.join(img, "blobs", *l["digest"].split(":"))
                 for l in json.load(f)["layers"]]
    out["compressed bytes"] = sum(os.path.getsize(b) for b in blobs)
    drop_caches()
    out["gzip -dc (serial)"] = timed(lambda: [
        sh(["gzip", "-dc", b], stdout=null) for b in blobs])
    if shutil.which("igzip"):
        drop_caches()
        out["igzip -dc (serial)"] = timed(lambda: [
            sh(["igzip", "-dc", b], stdout=null) for b in blobs])
    peer = Layerfs(binary, img, cache)
    cold, warm = [], []
    for _ in range(runs):
        shutil.rmtree(cache, ignore_errors=True)
        drop_caches()
        cold.append(timed(lambda: sh([binary, "layers", "-q", "--cache",
                                      cache, img], stdout=null)))
    out["cold index (layers)"] = statistics.median(cold)
    cold = []
    for _ in range(runs):
        shutil.rmtree(cache, ignore_errors=True)
        drop_caches()
        cold.append(timed(lambda: peer.mount(mnt)))
        peer.stop(mnt)
    out["cold mount"] = statistics.median(cold)
    for _ in range(max(runs, 3)):
        warm.append(timed(lambda: peer.mount(mnt)))
        peer.stop(mnt)
    out["warm mount"] = statistics.median(warm)
    walks = {"ls one dir": ["ls", os.path.join(mnt, "t/p07/q13")],
             "ls -l one dir": ["ls", "-l", os.path.join(mnt, "t/p07/q13")],
             "ls wide dir": ["ls", os.path.join(mnt, "wide")],
             "ls -R": ["ls", "-R", mnt],
             "find": ["find", mnt]}
    vals = {k: [] for k in walks}
    for i in range(max(runs, 3)):
        for k, cmd in walks.items():
            # each on a fresh mount: nothing in the kernel's caches yet
            peer.mount(mnt)
            if i == 0 and k == "find":
                out["RSS after mount"] = vm_rss(peer.daemon.pid)
            vals[k].append(timed(lambda: sh(cmd, stdout=null)))
            if i == 0 and k == "find":
                out["RSS after find"] = vm_rss(peer.daemon.pid)
            peer.stop(mnt)
    for k, v in vals.items():
        out[k] = statistics.median(v)
    peer.mount(mnt)
    out["dir entries (one dir / wide)"] = "%d / %d" % (
        len(os.listdir(os.path.join(mnt, "t/p07/q13"))),
        len(os.listdir(os.path.join(mnt, "wide"))))
    peer.stop(mnt)
    for name, args in (("diff (5 -> 10 layers)", ["diff", "--from", "5"]),
                       ("diff (9 -> 10 layers)", ["diff"]),
                       ("waste", ["waste"]), ("layers (cached)", ["layers"]),
                       ("ls -R (cli)", ["ls", "-R"])):
        out[name] = statistics.median(
            timed(lambda: sh([binary] + args + ["-q", "--cache", cache,
                                                img], stdout=null))
            for _ in range(max(runs, 3)))
    tpeer = Layerfs(binary, tiny, os.path.join(work, "cache-m-tiny"))
    tpeer.mount(mnt)
    sh(["find", mnt], stdout=null)
    out["RSS tiny image after find"] = vm_rss(tpeer.daemon.pid)
    tpeer.stop(mnt)
    return out


def print_million(m):
    n = m["entries"]
    print("generated image: %d entries in 10 gzip layers, %.1f MiB "
          "compressed" % (n, m["compressed bytes"] / 1048576))
    for k, v in m.items():
        if k in ("entries", "compressed bytes"):
            continue
        if isinstance(v, str):
            print("  %-30s %s" % (k, v))
        elif "RSS" in k:
            print("  %-30s %.1f MiB" % (k, v / 1048576))
        else:
            print("  %-30s %.3f s" % (k, v))
    base = m["RSS tiny image after find"]
    for k in ("RSS after mount", "RSS after find"):
        print("  %-30s %.0f B/entry above the tiny image" % (
            k, (m[k] - base) / n))
    print("  cold index / gzip -dc           %.2f" % (
        m["cold index (layers)"] / m["gzip -dc (serial)"]))
    if m.get("igzip -dc (serial)"):
        print("  cold index / igzip -dc          %.2f" % (
            m["cold index (layers)"] / m["igzip -dc (serial)"]))


class RegistryLayerfs(Layerfs):
    def mount(self, mnt):
        self.daemon = subprocess.Popen(
            [self.binary, "mount", "-f", "-q", "--tls-verify=false",
             "--cache", self.cache, self.img, mnt],
            stderr=subprocess.PIPE, text=True)
        wait_mount(mnt, self.daemon)


def registry_figures(binary, img, info, work, mnt):
    """Figures of docker:// reads from a loopback registry (see --help)."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
    from registry import FaultProxy, Registry
    out = {}
    root = os.path.join(work, "registry")
    shutil.rmtree(root, ignore_errors=True)
    reg = Registry(root)
    null = subprocess.DEVNULL
    try:
        reg.push_layout(img, "bench/image:v1")
        with open(os.path.join(img, "index.json")) as f:
            digest = json.load(f)["manifests"][0]["digest"]
        ref = "docker://%s/bench/image@%s" % (reg.host, digest)
        out["GET every blob once"] = timed(lambda: [sh(
            ["curl", "-sf", "-o", "/dev/null", "http://%s/v2/bench/image/"
             "blobs/%s" % (reg.host, l["digest"])]) for l in info["layers"]])
        cache = os.path.join(work, "cache-registry")
        shutil.rmtree(cache, ignore_errors=True)
        peer = RegistryLayerfs(binary, ref, cache)
        drop_caches()
        out["first mount"] = timed(lambda: peer.mount(mnt))
        peer.stop(mnt)
        again = []
        for _ in range(3):
            again.append(timed(lambda: peer.mount(mnt)))
            peer.stop(mnt)
        out["second mount"] = statistics.median(again)
        # what a mount and a cat ask for, counted by a proxy
        px = FaultProxy(reg.port)
        try:
            pref = "docker://%s/bench/image@%s" % (px.host, digest)
            ppeer = RegistryLayerfs(binary, pref, cache)
            ppeer.mount(mnt)
            ppeer.stop(mnt)
            out["second mount requests"] = len(px.log)
            out["second mount blob requests"] = len(px.blob_gets())
            listing = json.loads(subprocess.run(
                [binary, "ls", "-R", "--json", "-q", "--tls-verify=false",
                 "--cache", cache, pref], check=True,
                stdout=subprocess.PIPE).stdout)
            small = [e["path"] for e in listing if e["type"] == "file"
                     and 100 < e["size"] < 4096][len(listing) // 7]
            px.log.clear()
            sh([binary, "cat", "-q", "--tls-verify=false", "--cache", cache,
                pref, "/" + small], stdout=null)
            out["cat: file"] = small
            out["cat: requests"] = len(px.blob_gets())
            out["cat: bytes"] = sum(e[3] for e in px.blob_gets())
        finally:
            px.stop()
        out.update(artifact_figures(binary, reg, ref, info, work, mnt,
                                    cache))
        # grep over the mount, every span fetched on demand (index kept)
        spans = os.path.join(cache, "spans")
        for d in os.listdir(spans):
            if os.path.isdir(os.path.join(spans, d)):
                shutil.rmtree(os.path.join(spans, d))
        peer.mount(mnt)
        drop_caches()
        out["grep -r, lazy mount"] = timed(lambda: subprocess.run(
            ["grep", "-r", NEEDLE, mnt], stdout=null))
        peer.stop(mnt)
        # skopeo copy + local mount (cold) + grep
        copy = os.path.join(work, "skopeo-copy")
        shutil.rmtree(copy, ignore_errors=True)
        ccache = os.path.join(work, "cache-copy")
        shutil.rmtree(ccache, ignore_errors=True)
        drop_caches()
        t = time.monotonic()
        sh(["skopeo", "--insecure-policy", "copy", "-q",
            "--src-tls-verify=false", ref, "oci:" + copy + ":bench"])
        lpeer = Layerfs(binary, copy, ccache)
        lpeer.mount(mnt)
        subprocess.run(["grep", "-r", NEEDLE, mnt], stdout=null)
        out["skopeo copy + mount + grep"] = time.monotonic() - t
        lpeer.stop(mnt)
        shutil.rmtree(copy, ignore_errors=True)
        out["podman pull + mount + grep"] = podman_grep(reg, digest, work)
    finally:
        reg.stop()
    return out


def artifact_figures(binary, reg, ref, info, work, mnt, cache):
    """`index push`, then a mount on an empty cache that finds the
    artifact, and a cat of one small file after it (counted by a proxy)."""
    from registry import FaultProxy
    out = {}
    total = sum(l["size"] for l in info["layers"])
    out["index push (index cached)"] = timed(lambda: sh(
        [binary, "index", "push", "-q", "--tls-verify=false", "--cache",
         cache, ref], stdout=subprocess.DEVNULL))
    fresh = os.path.join(work, "cache-artifact")
    px = FaultProxy(reg.port)
    try:
        pref = ref.replace(reg.host, px.host)
        times = []
        for _ in range(3):
            shutil.rmtree(fresh, ignore_errors=True)
            px.log.clear()
            peer = RegistryLayerfs(binary, pref, fresh)
            drop_caches()
            times.append(timed(lambda: peer.mount(mnt)))
            peer.stop(mnt)
        out["mount, empty cache, artifact"] = statistics.median(times)
        out["  its requests"] = len(px.log)
        out["  its bytes"] = sum(e[3] for e in px.log)
        digests = [l["digest"] for l in info["layers"]]
        out["  of it, layer blob bytes"] = sum(
            e[3] for e in px.blob_gets()
            if any(e[1].endswith(d) for d in digests))
        listing = json.loads(subprocess.run(
            [binary, "ls", "-R", "--json", "-q", "--tls-verify=false",
             "--cache", fresh, pref], check=True,
            stdout=subprocess.PIPE).stdout)
        small = [e["path"] for e in listing if e["type"] == "file"
                 and 100 < e["size"] < 4096][len(listing) // 5]
        px.log.clear()
        sh([binary, "cat", "-q", "--tls-verify=false", "--cache", fresh,
            pref, small], stdout=subprocess.DEVNULL)
        n = sum(e[3] for e in px.blob_gets())
        out["cat after it: requests"] = len(px.blob_gets())
        out["cat after it: bytes"] = n
        out["cat after it: % of compressed image"] = (
            "%.3f %% of %d" % (100.0 * n / total, total))
    finally:
        px.stop()
        shutil.rmtree(fresh, ignore_errors=True)
    return out


def podman_grep(reg, digest, work):
    """podman pull + podman image mount + grep -r, in a private store."""
    if not shutil.which("podman"):
        return None
    store = ["--root", os.path.join(work, "podman-root"), "--runroot",
             os.path.join(work, "podman-run"), "--storage-driver", "overlay"]
    for d in store[1::2][:2]:
        shutil.rmtree(d, ignore_errors=True)
    name = "%s/bench/image@%s" % (reg.host, digest)
    drop_caches()
    t = time.monotonic()
    p = subprocess.run(["podman", *store, "pull", "-q", "--tls-verify=false",
                        name], capture_output=True, text=True)
    if p.returncode:
        print("podman pull failed: " + p.stderr.strip(), file=sys.stderr)
        return None
    path = subprocess.run(["podman", *store, "image", "mount", name],
                          capture_output=True, text=True).stdout.strip()
    if not path:
        return None
    subprocess.run(["grep", "-r", NEEDLE, path], stdout=subprocess.DEVNULL)
    took = time.monotonic() - t
    subprocess.run(["podman", *store, "image", "unmount", "-a"],
                   capture_output=True)
    subprocess.run(["podman", *store, "rmi", "-a", "-f"],
                   capture_output=True)
    return took


def print_registry(reg, local_cold):
    print("\nregistry on 127.0.0.1 (docker://…@digest, --tls-verify=false):")
    for k, v in reg.items():
        if isinstance(v, float):
            v = "%.3f s" % v
        elif v is None:
            v = "-"
        print("  %-34s %s" % (k, v))
    if reg.get("first mount") and local_cold:
        floor = local_cold + reg["GET every blob once"]
        print("  first mount / (local cold mount %.3f s + GET %.3f s) = "
              "%.2f" % (local_cold, reg["GET every blob once"],
                        reg["first mount"] / floor))
    for k in ("skopeo copy + mount + grep", "podman pull + mount + grep"):
        if reg.get(k):
            print("  grep -r, lazy mount / %s = %.2f" % (
                k, reg["grep -r, lazy mount"] / reg[k]))


def fmt_val(k, v):
    if v is None:
        return "-"
    if k in ("peak RSS", "RSS after find"):
        return "%.1f MiB" % (v / 1048576)
    return "%.3f s" % v


# what each shared object does in a cold index
DSO_ROLE = (("libisal", "inflate (ISA-L)"), ("libz.", "zlib (inflate, or "
            "windows)"), ("libcrypto", "sha256 (blob digest + diff_id)"),
            ("layerfs", "layerfs (tar parsing, span hashes, index)"),
            ("libc.", "libc (memcpy, malloc)"), ("kernel", "kernel (reads, "
            "cache write)"))


def profile_cold_index(binary, img, work, env=None):
    """perf's share of each library in `layerfs layers` on an empty cache
    (None without perf): where a cold index's time goes."""
    if not shutil.which("perf"):
        return None
    cache = os.path.join(work, "cache-profile")
    data = os.path.join(work, "perf.data")
    shutil.rmtree(cache, ignore_errors=True)
    e = dict(os.environ, **(env or {}))
    r = subprocess.run(["perf", "record", "-q", "-o", data, "--", binary,
                        "layers", "-q", "--cache", cache, img],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=e)
    shutil.rmtree(cache, ignore_errors=True)
    if r.returncode:
        return None
    out = subprocess.run(["perf", "report", "-i", data, "--no-children",
                          "--sort", "dso", "--stdio"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    os.unlink(data)
    shares = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) != 2 or not f[0].endswith("%"):
            continue
        role = next((r for k, r in DSO_ROLE if k in f[1]), "other")
        shares[role] = shares.get(role, 0) + float(f[0][:-1])
    return shares


def inflate_figures(binary, img, blobs, work):
    """The inflate floor and the cold index on each inflater."""
    r = {}
    drop_caches()
    r["gzip -dc (serial)"] = timed(
        lambda: [sh(["gzip", "-dc", b], stdout=subprocess.DEVNULL)
                 for b in blobs])
    if shutil.which("igzip"):
        drop_caches()
        r["igzip -dc (serial)"] = timed(
            lambda: [sh(["igzip", "-dc", b], stdout=subprocess.DEVNULL)
                     for b in blobs])
    for eng in ("isa-l", "zlib"):
        cache = os.path.join(work, "cache-index")
        env = dict(os.environ, LAYERFS_INFLATE=eng.replace("-", ""))
        shutil.rmtree(cache, ignore_errors=True)
        drop_caches()
        r["cold index, " + eng] = timed(lambda: sh(
            [binary, "layers", "-q", "--cache", cache, img],
            stdout=subprocess.DEVNULL, env=env))
        shutil.rmtree(cache, ignore_errors=True)
    r["profile"] = profile_cold_index(binary, img, work)
    return r


def print_inflate(inf, results):
    print("\ninflate: the floor, and the cold index (`layerfs layers`, "
          "empty cache, both layers' cores):")
    for k, v in inf.items():
        if k != "profile":
            print("  %-26s %.3f s" % (k, v))
    gz = inf["gzip -dc (serial)"]
    lk = results["layerfs"]
    print("  cold mount / gzip -dc:     %.2f (ISA-L)" % (
        lk["cold mount"] / gz), end="")
    if "layerfs (zlib)" in results:
        print(", %.2f (zlib)" % (results["layerfs (zlib)"]["cold mount"] /
                                 gz), end="")
    print()
    if inf.get("profile"):
        print("  where a cold index's time goes (perf, ISA-L): " + ", ".join(
            "%s %.0f%%" % (k, v) for k, v in sorted(
                inf["profile"].items(), key=lambda kv: -kv[1]) if v >= 0.5))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layerfs", required=True)
    ap.add_argument("--workdir", default=os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "layerfs-bench"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--registry", action="store_true",
                    help="also the docker:// figures (a local registry)")
    ap.add_argument("--registry-only", action="store_true",
                    help="the docker:// figures and the local cold mount")
    ap.add_argument("--all-layers", action="store_true",
                    help="only the --all-layers figures (a generated "
                         "24-layer image)")
    ap.add_argument("--scale", default="",
                    help="K[,K...]: also build K times larger images and "
                         "print the cached-command and warm-mount figures "
                         "of each (e.g. 2,4: about 47k and 93k entries)")
    ap.add_argument("--compare", metavar="BINARY",
                    help="also measure this other layerfs binary (e.g. a "
                         "build of an older commit) in the same run, "
                         "with its own cold cache, and print new/old")
    ap.add_argument("--million", nargs="?", type=int, const=1000000,
                    metavar="ENTRIES",
                    help="only the figures of a generated image of ENTRIES "
                         "tar members (default 1,000,000) in 10 gzip layers")
    ap.add_argument("--cow", action="store_true",
                    help="only the copy-on-write figures (a generated "
                         "image, a fresh upper dir): stat rate after 100k "
                         "creates, a 2,500-level chain, and a mixed load "
                         "with RSS and ops/s every 10 s")
    ap.add_argument("--cow-seconds", type=int, default=600,
                    help="length of the --cow mixed load (default 600)")
    a = ap.parse_args()
    work = os.path.abspath(a.workdir)
    os.makedirs(work, exist_ok=True)
    if a.million:
        m = million_figures(a.layerfs, work, a.million, a.runs)
        if a.json:
            print(json.dumps(m, indent=2))
        else:
            print_million(m)
        return
    if a.cow:
        bins = [("layerfs", a.layerfs)]
        if a.compare:
            bins.append(("compare", os.path.abspath(a.compare)))
        fig = cow_figures(bins, work, a.cow_seconds)
        if a.json:
            print(json.dumps(fig, indent=2))
        else:
            print_cow(fig, a.cow_seconds)
        return
    if a.all_layers:
        fig = all_layers_figures(a.layerfs, work)
        if a.json:
            print(json.dumps(fig, indent=2))
        for k, v in fig.items():
            print("  %-34s %s" % (k, "%.1f MiB" % (v / 1048576)
                                  if "RSS" in k else "%.3f s" % v))
        return
    img = os.path.join(work, "image")
    if not os.path.exists(os.path.join(img, "index.json")):
        print("building the bench image in %s ..." % img, file=sys.stderr)
        build_image(img, work)
    layers = os.path.join(work, "layers")
    if not os.path.exists(os.path.join(layers, "done")):
        shutil.rmtree(layers, ignore_errors=True)
        lower = extract_layers.extract(img, layers, "bench")
        with open(os.path.join(layers, "done"), "w") as f:
            f.write(lower)
    with open(os.path.join(layers, "done")) as f:
        lower = f.read()
    info = json.loads(subprocess.run(
        [a.layerfs, "layers", "--json", "-q", "--cache",
         os.path.join(work, "cache"), img], check=True,
        stdout=subprocess.PIPE).stdout)
    entries = sum(l["entries"] for l in info["layers"])
    csize = sum(l["size"] for l in info["layers"])
    usize = sum(l["uncompressed_size"] for l in info["layers"])
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    umount(mnt)

    cache = os.path.join(work, "cache")
    results = {}
    if a.registry_only:
        shutil.rmtree(cache, ignore_errors=True)
        drop_caches()
        lpeer = Layerfs(a.layerfs, img, cache)
        cold = timed(lambda: lpeer.mount(mnt))
        lpeer.stop(mnt)
        reg = registry_figures(a.layerfs, img, info, work, mnt)
        if a.json:
            print(json.dumps({"local cold mount": cold, "registry": reg},
                             indent=2))
        else:
            print("local cold mount: %.3f s" % cold)
            print_registry(reg, cold)
        return
    results["layerfs"] = measure(
        Layerfs(a.layerfs, img, cache), mnt, a.runs,
        cold_setup=lambda: shutil.rmtree(cache, ignore_errors=True))
    # the same build on zlib: the inflater's share, in the same run
    zcache = os.path.join(work, "cache-zlib")
    results["layerfs (zlib)"] = measure(
        Layerfs(a.layerfs, img, zcache, env={"LAYERFS_INFLATE": "zlib"}),
        mnt, a.runs,
        cold_setup=lambda: shutil.rmtree(zcache, ignore_errors=True))
    if a.compare:
        ocache = os.path.join(work, "cache-compare")
        results["layerfs (compare)"] = measure(
            Layerfs(os.path.abspath(a.compare), img, ocache), mnt, a.runs,
            cold_setup=lambda: shutil.rmtree(ocache, ignore_errors=True))
    results["kernel overlayfs"] = measure(KernelOverlay(lower), mnt, a.runs)
    results["fuse-overlayfs"] = measure(FuseOverlay(lower), mnt, a.runs)
    results["extract-then-grep"] = extract_then_grep(img, work)
    results["layerfs grep"] = layerfs_grep(a.layerfs, img, cache, a.runs)
    # the floor of a cold layerfs mount: inflate every blob once
    blobs = [os.path.join(img, "blobs", *l["digest"].split(":"))
             for l in info["layers"]]
    inf = inflate_figures(a.layerfs, img, blobs, work)
    results["gzip -dc (all blobs)"] = {"cold mount": inf["gzip -dc (serial)"]}
    if "igzip -dc (serial)" in inf:
        results["igzip -dc (all blobs)"] = {
            "cold mount": inf["igzip -dc (serial)"]}
    rss = results["layerfs"]["peak RSS"]
    reg = (registry_figures(a.layerfs, img, info, work, mnt)
           if a.registry else None)

    scaled = {}
    scales = sorted({int(k) for k in a.scale.split(",") if k.strip()} - {1})
    if scales or a.compare:
        scaled["x1"] = dict(command_figures(a.layerfs, img, cache, a.runs),
                            entries=entries)
    if a.compare:
        scaled["x1 (compare)"] = dict(
            command_figures(os.path.abspath(a.compare), img,
                            os.path.join(work, "cache-compare"), a.runs),
            entries=entries)
    for k in scales:
        big = os.path.join(work, "image-x%d" % k)
        if not os.path.exists(os.path.join(big, "index.json")):
            print("building the x%d image in %s ..." % (k, big),
                  file=sys.stderr)
            build_image(big, work, k)
        bcache = os.path.join(work, "cache-x%d" % k)
        binfo = json.loads(subprocess.run(
            [a.layerfs, "layers", "--json", "-q", "--cache", bcache, big],
            check=True, stdout=subprocess.PIPE).stdout)
        scaled["x%d" % k] = dict(
            command_figures(a.layerfs, big, bcache, a.runs),
            entries=sum(l["entries"] for l in binfo["layers"]))

    if a.json:
        print(json.dumps({"scaled": scaled, "registry": reg,
                          "inflate": inf,
                          "image": {"layers": len(info["layers"]),
                                    "entries": entries,
                                    "compressed": csize,
                                    "uncompressed": usize},
                          "results": results}, indent=2))
        return
    print("image: %d layers, %d entries, %.0f MiB compressed, %.0f MiB "
          "uncompressed; runs: %d (medians)" % (
              len(info["layers"]), entries, csize / 1048576,
              usize / 1048576, a.runs))
    keys = ["cold mount", "warm mount", "find -ls", "grep -r first",
            "grep -r repeat", "grep --all first", "tar -c | wc -c",
            "RSS after find", "peak RSS"]
    base = results["kernel overlayfs"]
    cols = list(results)
    print("%-16s" % "" + "".join("%22s" % c for c in cols))
    for k in keys:
        row = "%-16s" % k
        for c in cols:
            v = results[c].get(k)
            cell = fmt_val(k, v)
            if v is not None and base.get(k) and c != "kernel overlayfs":
                cell += " (%.2fx)" % (v / base[k])
            row += "%22s" % cell
        print(row)
    print_inflate(inf, results)
    if scaled:
        print("\ncached image, medians of %d runs:" % max(a.runs, 3))
        cols = list(scaled)
        print("%-14s" % "" + "".join("%16s" % c for c in cols))
        for k in ("entries", "warm mount", "layers", "ls -R", "diff",
                  "waste"):
            print("%-14s" % k + "".join(
                "%16s" % (scaled[c][k] if k == "entries"
                          else "%.3f s" % scaled[c][k]) for c in cols))
    sizes = {c: v for c, v in scaled.items() if "compare" not in c}
    if len(sizes) >= 2:
        by_size = sorted(sizes.items(), key=lambda kv: kv[1]["entries"])
        (c1, s1), (c4, s4) = by_size[0], by_size[-1]
        de = s4["entries"] - s1["entries"]
        dr = s4["RSS after find"] - s1["RSS after find"]
        print("%-14s" % "RSS after find" + "".join(
            "%16s" % fmt_val("RSS after find", scaled[c]["RSS after find"])
            for c in sizes))
        print("layerfs daemon, %s -> %s: %.0f bytes of RSS per added entry "
              "after find -ls; names average %.1f bytes per entry" % (
                  c1, c4, dr / max(de, 1),
                  s4["name bytes"] / max(s4["entries"], 1)))
    if a.compare:
        print("\nlayerfs / layerfs (compare), same run (above 1.00: this "
              "build is slower):")
        new, old = results["layerfs"], results["layerfs (compare)"]
        for k in keys:
            if new.get(k) and old.get(k):
                print("  %-16s %.2f" % (k, new[k] / old[k]))
        new, old = scaled["x1"], scaled["x1 (compare)"]
        for k in ("warm mount", "layers", "ls -R", "diff", "waste",
                  "RSS after find"):
            if new.get(k) and old.get(k):
                print("  %-16s %.2f (cached command)" % (k, new[k] / old[k]))
    if reg:
        print_registry(reg, results["layerfs"]["cold mount"])
    meta = results["layerfs"].get("RSS after find")
    if meta:
        print("layerfs daemon: RSS after find -ls / entries = %.0f bytes "
              "(the ~9 MiB of code and libraries included); peak %.1f MiB "
              "with the 64 MiB chunk cache" %
              (meta / max(entries, 1), (rss or 0) / 1048576))


if __name__ == "__main__":
    main()
