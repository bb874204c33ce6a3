# SPDX-License-Identifier: MIT
"""Session fixtures: every image is generated once, every umoci oracle is
unpacked once, and each test gets a private layerfs cache directory."""

import os
import shutil

import pytest

import oracle as O


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache_home(tmp_path_factory):
    # nothing a test runs may touch the real ~/.cache
    home = tmp_path_factory.mktemp("xdg-cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(home)
    os.environ.pop("LAYERFS_CACHE", None)
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def layerfs_bin():
    if not O.have_layerfs():
        pytest.skip("layerfs binary not found at %s (set LAYERFS)" %
                    O.LAYERFS)
    return O.LAYERFS


@pytest.fixture(scope="session")
def need_tools():
    missing = [t for t in ("umoci", "skopeo", "zstd", "gzip", "tar")
               if shutil.which(t) is None]
    if missing:
        pytest.skip("missing tools: " + ", ".join(missing))
    if os.geteuid() != 0:
        pytest.skip("the umoci oracle needs root (devices, owners, "
                    "security.capability)")


class _Images:
    """Lazily generated fixture images, one per (spec, format)."""

    def __init__(self, root):
        self.root = root
        self.paths = {}

    def __call__(self, name, fmt="oci"):
        key = (name, fmt)
        if key not in self.paths:
            self.paths[key] = O.generate(name, fmt, self.root)
        return self.paths[key]


class _Oracles:
    """umoci rootfs trees, one per (spec, oracle kind, prefix)."""

    def __init__(self, root):
        self.root = root
        self.trees = {}

    def __call__(self, name, fmt, n):
        kind = "oci" if fmt in ("oci", "oci-archive") else fmt
        key = (name, kind, n)
        if key not in self.trees:
            rootfs, t0 = O.oracle_rootfs(name, kind, n, self.root)
            self.trees[key] = O.walk_rootfs(rootfs, t0)
            # the bundle itself is no longer needed; keep disk use small
            shutil.rmtree(os.path.dirname(rootfs), ignore_errors=True)
        return self.trees[key]


class _Bad:
    def __init__(self, root):
        self.root = root
        self.paths = {}

    def __call__(self, name, fmt="oci"):
        key = (name, fmt)
        if key not in self.paths:
            out = os.path.join(self.root, "%s.%s%s" % (
                name, fmt, "" if fmt == "oci" else ".tar"))
            O.specs.write_bad(name, out, fmt)
            self.paths[key] = out
        return self.paths[key]


@pytest.fixture(scope="session")
def images(tmp_path_factory, need_tools):
    return _Images(str(tmp_path_factory.mktemp("images")))


@pytest.fixture(scope="session")
def oracles(tmp_path_factory, need_tools):
    return _Oracles(str(tmp_path_factory.mktemp("oracle")))


@pytest.fixture(scope="session")
def bad_images(tmp_path_factory, need_tools):
    return _Bad(str(tmp_path_factory.mktemp("bad")))


@pytest.fixture(scope="session")
def session_caches(tmp_path_factory):
    """One layerfs cache dir per (spec, format): the first prefix of an
    image indexes cold, the later ones read the cache."""
    root = tmp_path_factory.mktemp("caches")
    made = {}

    def get(*key):
        if key not in made:
            d = root / "-".join(str(k) for k in key)
            d.mkdir()
            made[key] = str(d)
        return made[key]
    return get


@pytest.fixture
def cache_dir(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    return str(d)


@pytest.fixture(autouse=True)
def _no_tsan_report():
    """Under ThreadSanitizer, scripts/test sets LAYERFS_TSAN_LOGS to the
    directory TSAN_OPTIONS's log_path writes into: a report from any process
    the test ran (a daemon, a CLI command) fails the test, even when the
    process's own exit status went unnoticed."""
    logs = os.environ.get("LAYERFS_TSAN_LOGS")
    if not logs:
        yield
        return
    before = set(os.listdir(logs))
    yield
    new = sorted(set(os.listdir(logs)) - before)
    if new:
        with open(os.path.join(logs, new[0]), errors="replace") as f:
            text = f.read(8000)
        pytest.fail("ThreadSanitizer report(s) %s:\n%s" % (
            ", ".join(new), text), pytrace=False)
