# SPDX-License-Identifier: MIT
"""fusehelpers.py - mount, unmount and clean up layerfs FUSE mounts.

Shaped like libfuse's former test/util.py: mount() starts `layerfs mount -f`
as a child and polls os.path.ismount while checking that the child is still
alive (wait_for_mount); umount() runs `fusermount3 -u`; cleanup() is the
finalizer every mount goes through, whatever the test did: `fusermount3 -u`,
then `fusermount3 -z -u`, then terminate, then kill the daemon.

A daemon that detached into the background (plain `layerfs mount`, mount(8))
has no Popen object: daemon_pids() finds it in /proc by its mountpoint.
"""

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

import oracle as O

FUSERMOUNT = "fusermount3"
MOUNT_TIMEOUT = 30.0


def in_ci():
    return os.environ.get("CI", "").lower() == "true"


def fuse_unavailable():
    """None when FUSE mounts can be tested here, else the reason why not."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (load the fuse module; in a " \
               "container pass --device /dev/fuse)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by uid %d" % \
               os.geteuid()
    if shutil.which(FUSERMOUNT) is None:
        return "%s not found in PATH (install the fuse3 package)" % \
               FUSERMOUNT
    return None


def fusermount_setuid():
    """None when fusermount3 can mount for a normal user, else why not."""
    path = shutil.which(FUSERMOUNT)
    if path is None:
        return "%s not found in PATH" % FUSERMOUNT
    st = os.stat(path)
    if st.st_uid != 0 or not st.st_mode & stat.S_ISUID:
        return "%s is not setuid root" % path
    return None


def skip_or_fail(reason):
    """A missing capability skips with its reason, but fails under CI=true
    (CI must never go green by skipping the FUSE tests)."""
    if in_ci():
        pytest.fail("CI=true but: " + reason, pytrace=False)
    pytest.skip(reason)


def require_fuse():
    reason = fuse_unavailable()
    if reason:
        skip_or_fail(reason)


@pytest.fixture
def fuse_required():
    """Fixture form of require_fuse(); fuse_marker() uses it under CI."""
    require_fuse()


def fuse_marker():
    """libfuse's fuse_test_marker: a mark for every FUSE test.

    Outside CI a missing capability is a skip with the reason.  Under CI=true
    the mark pulls in the `fuse_required` fixture, which fails the test (the
    module using the mark must import that fixture)."""
    reason = fuse_unavailable()
    if reason is None:
        return pytest.mark.usefixtures()
    if in_ci():
        return pytest.mark.usefixtures("fuse_required")
    return pytest.mark.skip(reason=reason)


# -- /proc -------------------------------------------------------------------

def _unescape(field):
    # /proc/mounts escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts():
    """(source, mountpoint, fstype, options) of every mount, from
    /proc/mounts (os.path.ismount is False for a mount whose daemon died:
    stat gives ENOTCONN)."""
    with open("/proc/mounts") as f:
        rows = [line.split() for line in f]
    return [(_unescape(r[0]), _unescape(r[1]), r[2], r[3]) for r in rows]


def mount_entry(mnt):
    mnt = os.path.realpath(mnt)
    for row in mounts():
        if row[1] == mnt:
            return row
    return None


def is_mounted(mnt):
    return mount_entry(mnt) is not None


def layerfs_mounts():
    return [r for r in mounts() if "layerfs" in r[2]]


def daemon_pids(mnt):
    """pids of layerfs processes whose command line names mountpoint mnt
    (background daemons: `layerfs mount ... MNT`, `layerfs IMG MNT -o`)."""
    want = {mnt, os.path.realpath(mnt)}
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if argv and os.path.basename(argv[0]) == "layerfs" and \
                want & set(argv):
            pids.append(int(d))
    return pids


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- mounting ----------------------------------------------------------------

def wait_for_mount(proc, mnt, timeout=MOUNT_TIMEOUT):
    """Poll until mnt is a mount point; fail with the daemon's stderr if it
    exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mnt):
            return True
        if proc.poll() is not None:
            pytest.fail("layerfs exited with %s before mounting %s: %s" % (
                proc.returncode, mnt, read_stderr(proc)), pytrace=False)
        time.sleep(0.02)
    pytest.fail("%s not mounted after %.0f s; stderr: %s" % (
        mnt, timeout, read_stderr(proc)), pytrace=False)


def read_stderr(proc):
    f = getattr(proc, "lf_stderr", None)
    if f is None:
        return ""
    f.flush()
    f.seek(0)
    return f.read().decode(errors="replace")


def _default_signals():
    """A suite started as a background job (`cmd &` in a script) inherits
    SIGINT and SIGQUIT ignored, and layerfs, like libfuse and every Unix
    program, keeps an inherited SIG_IGN; give the daemon the dispositions
    it has when a user starts it, so the signal tests test layerfs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def mount(image, mnt, *opts, env=None, cache=None, wait=True):
    """Start `layerfs mount -f [opts] image mnt`; return the Popen once mnt
    is mounted.  stderr goes to a temp file (a pipe nobody reads could fill
    up and stall the daemon); read it with read_stderr(proc)."""
    require_fuse()
    args = ["mount", "-f"]
    if cache is not None:
        args += ["--cache", cache]
    args += [str(o) for o in opts] + [str(image), str(mnt)]
    e = dict(os.environ)
    e.pop("LAYERFS_CACHE", None)
    if env:
        e.update(env)
    errf = tempfile.TemporaryFile()
    proc = subprocess.Popen([O.LAYERFS] + args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=errf, env=e,
                            preexec_fn=_default_signals)
    proc.lf_stderr = errf
    proc.lf_mnt = str(mnt)
    if wait:
        try:
            wait_for_mount(proc, str(mnt))
        except BaseException:
            cleanup(str(mnt), proc)
            raise
    return proc


def umount(mnt, lazy=False):
    """fusermount3 -u [-z] MNT; returns the CompletedProcess."""
    args = [FUSERMOUNT, "-u"] + (["-z"] if lazy else []) + [str(mnt)]
    return subprocess.run(args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)


def _wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def cleanup(mnt, proc=None, pids=()):
    """Leave nothing behind: fusermount3 -u, then -z -u, then terminate and
    kill the daemon (proc, the given pids, and any layerfs process whose
    command line names mnt).  Never raises."""
    mnt = str(mnt)
    try:
        found = set(pids) | set(daemon_pids(mnt))
    except OSError:
        found = set(pids)
    if proc is not None:
        found.discard(proc.pid)
    if is_mounted(mnt):
        umount(mnt)
    if is_mounted(mnt):
        umount(mnt, lazy=True)
    if is_mounted(mnt) and os.geteuid() == 0:
        subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if proc is not None and proc.poll() is None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if found and not _wait_gone(found, 5):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in found:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            if _wait_gone(found, 5):
                break
    if proc is not None and getattr(proc, "lf_stderr", None):
        proc.lf_stderr.close()
        proc.lf_stderr = None
