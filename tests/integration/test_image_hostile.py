# SPDX-License-Identifier: MIT
"""Hostile and odd images at the image reader: files of a layout that lead
outside it (symlinks to a canary copy or to /dev/zero), FIFOs, tampered
manifests and configs, archive members linking out or in loops, JSON too big
or too many; and real shapes that must read byte-exact against umoci (or
skopeo then umoci): Docker 25 `"manifests": null`, LayerSources that
describe registry blobs, symlinks that stay inside the layout.

Every layerfs run has a timeout: a FIFO must fail fast, never hang."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

import oracle as O
import hostile_images as H

SPEC = "basic"
TIMEOUT = 60
# peak RSS allowed for a refused or bounded document (ASan adds its own)
RSS_MAX_KIB = (768 if os.environ.get("LAYERFS_SANITIZED") else 200) << 10


def _err(p):
    return p.stderr.decode(errors="replace")


def _fails(p, *words):
    err = _err(p)
    assert p.returncode == 1, "exit %d; stderr: %s" % (p.returncode, err)
    assert err.startswith("layerfs: "), err
    for w in words:
        assert w.lower() in err.lower(), "%r not in %r" % (w, err)
    return err


def _ls(img, cache, *extra):
    return O.layerfs("ls", "-lR", "--json", "--cache", cache, *extra, img,
                     timeout=TIMEOUT)


def _same_as_oracle(img, oracle, cache):
    lf, _ = O.layerfs_ls(img, None, cache)

    def cat(path):
        return O.layerfs_cat_sha(img, path, None, cache)[0]
    assert O.compare(oracle, lf, cat) == []


def _peak_rss(args, tmp_path):
    out = str(tmp_path / "rss")
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, O.LAYERFS]
                       + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    with open(out) as f:
        return p, int(f.read().split()[-1])


@pytest.fixture
def layout(tmp_path, need_tools, layerfs_bin):
    return H.image_dir(SPEC, str(tmp_path / "img"))


@pytest.fixture
def oracle(oracles, need_tools):
    return oracles(SPEC, "oci", O.layer_count(SPEC))


# -- files of a layout that lead outside it ------------------------------

FILES = ("index", "oci-layout", "manifest", "config", "blob")


# the directory holding index.json or oci-layout is the layout dir itself,
# which the user names: only the blob directory can lead out
OUT_CASES = [(w, h) for h in ("canary", "canary-relative", "dev-zero",
                              "dir-outside") for w in FILES
             if not (h == "dir-outside" and w in ("index", "oci-layout"))]


@pytest.mark.parametrize("what,how", OUT_CASES)
def test_symlink_out_of_layout_refused(what, how, layout, tmp_path,
                                       cache_dir):
    """The canary is a byte-exact copy of the real file: a reader that
    follows the link would succeed, so only refusing passes."""
    p = H.paths(layout)[what]
    canary = str(tmp_path / "canary")
    shutil.copyfile(p, canary)
    if how == "canary":
        H.swap_symlink(p, canary)
    elif how == "canary-relative":
        H.swap_symlink(p, os.path.relpath(canary, os.path.dirname(p)))
    elif how == "dev-zero":
        H.swap_symlink(p, "/dev/zero")
    else:
        # the directory holding it is a link to a copy outside
        d = os.path.dirname(p)
        assert d != layout
        shutil.copytree(d, str(tmp_path / "outside"))
        shutil.rmtree(d)
        os.symlink(str(tmp_path / "outside"), d)
    err = _fails(_ls(layout, cache_dir), "outside the image")
    # a whole blobs/sha256 out: the first file read (the manifest) says so
    assert os.path.basename(p) in err or (
        how == "dir-outside" and "blobs/sha256/" in err)


@pytest.mark.parametrize("what", FILES)
def test_fifo_in_layout_fails_fast(what, layout, cache_dir):
    p = H.paths(layout)[what]
    H.swap_fifo(p)
    # the timeout is the hang check: open() of a FIFO blocks without
    # O_NONBLOCK until a writer comes, and none ever does
    _fails(_ls(layout, cache_dir), "not a regular file",
           os.path.basename(p))
    _fails(O.layerfs("layers", "--cache", cache_dir, layout,
                     timeout=TIMEOUT), "not a regular file")


def test_symlinks_inside_layout_read(layout, oracle, cache_dir):
    """Links that stay inside (a blob moved elsewhere in the layout, the
    blobs directory itself a relative link) are followed: the view is
    umoci's of the unmodified image."""
    p = H.paths(layout)
    os.makedirs(os.path.join(layout, "store"))
    moved = os.path.join(layout, "store", "layer")
    os.rename(p["blob"], moved)
    os.symlink("../../store/layer", p["blob"])
    os.rename(os.path.join(layout, "blobs"), os.path.join(layout, "b2"))
    os.symlink("b2", os.path.join(layout, "blobs"))
    _same_as_oracle(layout, oracle, cache_dir)


def test_symlink_loop_in_layout(layout, cache_dir):
    p = H.paths(layout)["config"]
    os.unlink(p)
    os.symlink("loop2", p)
    os.symlink(os.path.basename(p), os.path.join(os.path.dirname(p),
                                                 "loop2"))
    _fails(_ls(layout, cache_dir), os.path.basename(p))


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "fifo-link"])
def test_image_argument_not_a_file(kind, tmp_path, cache_dir, layerfs_bin):
    img = str(tmp_path / "img")
    if kind == "fifo":
        os.mkfifo(img)
    elif kind == "dev-zero":
        img = "/dev/zero"
    else:
        os.mkfifo(str(tmp_path / "fifo"))
        os.symlink("fifo", img)
    _fails(_ls(img, cache_dir), "neither a directory nor a file")


# -- archive members linking out, in loops, or in --------------------------

def _oci_archive(tmp_path, what, target):
    """OCI archive whose member for `what` is a symlink to target; "loop":
    to a sibling member that links back."""
    d = H.image_dir(SPEC, str(tmp_path / "d"))
    p = H.paths(d)[what]
    links = {os.path.relpath(p, d): ("sym", target)}
    if target == "loop":
        sib = os.path.join(os.path.dirname(p), "loop2")
        open(sib, "w").close()
        links = {os.path.relpath(p, d): ("sym", "loop2"),
                 os.path.relpath(sib, d): ("sym", os.path.basename(p))}
    out = str(tmp_path / "img.tar")
    H.tar_dir(d, out, links)
    return out, os.path.basename(p)


@pytest.mark.parametrize("what", ["manifest", "config", "blob"])
@pytest.mark.parametrize("target", ["../../../../etc/passwd", "/etc/passwd",
                                    "/dev/zero", "loop"])
def test_archive_member_link_refused(what, target, tmp_path, cache_dir,
                                     need_tools, layerfs_bin):
    img, name = _oci_archive(tmp_path, what, target)
    _fails(_ls(img, cache_dir), name,
           "too many links" if target == "loop" else "outside the archive")


def test_archive_member_links_inside_read(tmp_path, oracle, cache_dir,
                                          need_tools, layerfs_bin):
    """skopeo's shape: a member that is a symlink to another member, and a
    hardlink member, are read as their targets."""
    d = H.image_dir(SPEC, str(tmp_path / "d"))
    p = H.paths(d)
    shutil.copyfile(p["blob"], os.path.join(d, "layer.tar"))
    shutil.copyfile(p["config"], os.path.join(d, "config.json"))
    out = str(tmp_path / "img.tar")
    H.tar_dir(d, out, {
        os.path.relpath(p["blob"], d): ("sym", "../../layer.tar"),
        os.path.relpath(p["config"], d): ("hard", "config.json")})
    with tarfile.open(out) as tf:
        assert tf.getmember(os.path.relpath(p["blob"], d)).issym()
    _same_as_oracle(out, oracle, cache_dir)


# -- the digest chain -------------------------------------------------------

@pytest.mark.parametrize("no_verify", [False, True])
@pytest.mark.parametrize("how", ["bytes", "size"])
def test_tampered_manifest_refused(how, no_verify, layout, cache_dir):
    man = H.index(layout)["manifests"][0]["digest"]
    H.tamper_manifest(layout, how)
    extra = ("--no-verify",) if no_verify else ()
    err = _fails(_ls(layout, cache_dir, *extra), man[7:19],
                 "index.json manifests[0]")
    assert ("digest" if how == "bytes" else "bytes") in err


@pytest.mark.parametrize("how", ["bytes", "size"])
def test_tampered_config_refused(how, layout, cache_dir):
    cfg = H.manifest(layout)["config"]["digest"]
    H.tamper_config(layout, how)
    err = _fails(_ls(layout, cache_dir), cfg[7:19], "config")
    assert ("digest" if how == "bytes" else "bytes") in err


def test_nested_index_read(layout, oracle, cache_dir):
    H.nest_index(layout)
    _same_as_oracle(layout, oracle, cache_dir)


def test_nested_index_tampered_manifest_refused(layout, cache_dir):
    H.nest_index(layout, tamper=True)
    _fails(_ls(layout, cache_dir), "does not match its digest",
           "manifests[0]")


# -- Docker 25 save: "manifests": null, LayerSources -------------------------

def _docker25(tmp_path, *mutations):
    d = H.image_dir(SPEC, str(tmp_path / "d"), "docker-archive-blobs")
    for fn in mutations:
        fn(d)
    out = str(tmp_path / "img.tar")
    H.tar_dir(d, out)
    return out


@pytest.fixture
def docker_oracle(oracles, need_tools):
    # skopeo reads the docker-archive (manifest.json), umoci unpacks that
    return oracles(SPEC, "docker-archive-blobs", O.layer_count(SPEC))


def test_null_manifests_falls_back_to_manifest_json(tmp_path, docker_oracle,
                                                    cache_dir, layerfs_bin):
    img = _docker25(tmp_path, H.null_manifests)
    _same_as_oracle(img, docker_oracle, cache_dir)
    p = O.layerfs("layers", "--json", "--cache", cache_dir, img,
                  timeout=TIMEOUT)
    assert p.returncode == 0, _err(p)
    info = json.loads(p.stdout)
    assert info["format"] == "docker-archive"
    assert len(info["layers"]) == O.layer_count(SPEC)


def test_layer_sources_are_not_the_archive_file(tmp_path, docker_oracle,
                                                cache_dir, layerfs_bin):
    """Sizes, digests and media types of LayerSources are the registry's:
    the layers still read byte-exact (the diff_ids decide)."""
    img = _docker25(tmp_path, H.null_manifests, H.wrong_layer_sources)
    _same_as_oracle(img, docker_oracle, cache_dir)


def test_null_manifests_without_manifest_json(layout, cache_dir):
    H.null_manifests(layout)
    _fails(_ls(layout, cache_dir), "index.json lists no image")


def test_docker_config_tampered_refused(tmp_path, cache_dir, need_tools,
                                        layerfs_bin):
    def tamper(d):
        H.tamper_config(d, "bytes")
    img = _docker25(tmp_path, tamper, H.null_manifests)
    _fails(_ls(img, cache_dir), "does not match its digest", "Config")


# -- bounded memory -----------------------------------------------------------

def test_index_too_big(layout, cache_dir, tmp_path):
    H.json_bomb(os.path.join(layout, "index.json"), 5 << 20)
    p, rss = _peak_rss(["ls", "--cache", cache_dir, layout], tmp_path)
    _fails(p, "index.json", "too big", "4 MiB")
    assert rss < RSS_MAX_KIB, "peak RSS %d KiB" % rss


@pytest.mark.parametrize("what", ["index", "manifest"])
def test_json_value_bomb(what, layout, cache_dir, tmp_path):
    """Just under the size limit, a million of "{}": jansson would need
    ~100 bytes each; refused before parsing, in bounded memory."""
    p = H.paths(layout)[what]
    if what == "manifest":
        # a bomb that is still the manifest index.json names
        H.json_bomb(p, (4 << 20) - 100, key="layers")
        idx = H.index(layout)
        with open(p, "rb") as f:
            data = f.read()
        import hashlib
        hexd = hashlib.sha256(data).hexdigest()
        os.rename(p, os.path.join(os.path.dirname(p), hexd))
        idx["manifests"][0].update(digest="sha256:" + hexd, size=len(data))
        H.write_index(layout, idx)
    else:
        H.json_bomb(p, (4 << 20) - 100)
    res, rss = _peak_rss(["ls", "--cache", cache_dir, layout], tmp_path)
    _fails(res, "too many JSON values")
    assert rss < RSS_MAX_KIB, "peak RSS %d KiB" % rss


def test_many_manifests_bounded(layout, cache_dir, tmp_path):
    """15000 images in one index: the choice is asked for, the message
    lists a bounded number of them, memory stays small."""
    H.big_index(layout, 15000)
    p, rss = _peak_rss(["ls", "--cache", cache_dir, layout], tmp_path)
    err = _fails(p, "15000 images, choose one with --ref", "t0", "...")
    assert len(err) < 4096
    assert rss < RSS_MAX_KIB, "peak RSS %d KiB" % rss
    ok = O.layerfs("ls", "--cache", cache_dir, "--ref", "t0", layout,
                   timeout=TIMEOUT)
    assert ok.returncode == 0, _err(ok)


def test_long_history_refused(layout, cache_dir, tmp_path):
    H.long_history(layout, entries=70000)
    p, rss = _peak_rss(["ls", "--cache", cache_dir, layout], tmp_path)
    _fails(p, "history has", "65536")
    assert rss < RSS_MAX_KIB, "peak RSS %d KiB" % rss


def test_big_config_reads_in_bounded_memory(layout, cache_dir, tmp_path):
    """A 12 MiB created_by is allowed (under 16 MiB): read, in bounded
    memory, and shown as written."""
    size = H.long_history(layout, text_bytes=12 << 20)
    assert size < 16 << 20
    p, rss = _peak_rss(["layers", "--json", "--cache", cache_dir, layout],
                       tmp_path)
    assert p.returncode == 0, _err(p)
    info = json.loads(p.stdout)
    assert len(info["layers"][0]["created_by"]) == 12 << 20
    assert rss < RSS_MAX_KIB, "peak RSS %d KiB" % rss


def test_config_too_big(layout, cache_dir, tmp_path):
    H.long_history(layout, text_bytes=17 << 20)
    p, rss = _peak_rss(["ls", "--cache", cache_dir, layout], tmp_path)
    _fails(p, "config", "too big", "16 MiB")
    assert rss < RSS_MAX_KIB, "peak RSS %d KiB" % rss
