# SPDX-License-Identifier: MIT
"""Layer indexes shared through the registry: `layerfs index push`, and
docker:// reads on an empty cache that use them instead of streaming.

The image (a gzip layer with files larger than a span, an uncompressed
layer, a zstd layer that is left out) is uploaded as it is to the local
registry (registry.py: Debian's docker-registry, which has no referrers
API, so the tag-schema fallback is used; or, through ReferrersFront, with
the OCI 1.1 referrers API).  Oracles: what is in the registry, read by
skopeo and by plain HTTP; the files of the same image mounted from its OCI
layout on disk (walked and hashed); the request log of a counting proxy
for what a command fetched.  Forged artifacts (another subject, an index
of another layer, damaged bytes, span digests that lie) are built here by
hand from the real one.
"""

import hashlib
import json
import os
import re
import struct
import subprocess
import sys

import pytest

import fusehelpers as fh
import oracle as O
from registry import FaultProxy, ReferrersFront, Registry, require_registry

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import mkimage as mk  # noqa: E402

T = 120
ART = "application/vnd.layerfs.index.v1"
IDX = "application/vnd.layerfs.layer-index.v%d" % int(re.search(
    r"#define LF_CACHE_VERSION\s*\\?\s*(\d+)",
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "include", "layerfs", "cache.h")).read()).group(1))
SUMS = "application/vnd.layerfs.span-digests.v1"
INDEX_T = "application/vnd.oci.image.index.v1+json"
MAN_T = "application/vnd.oci.image.manifest.v1+json"
SPAN = 512 << 10


def image():
    l1 = [mk.dir("/data"), mk.file("/data/big.bin", size=3 << 20, seed=1)]
    l1 += [mk.file("/data/r%02d" % i, size=150 << 10, seed=10 + i)
           for i in range(8)]
    l1 += [mk.file("/etc/small%d.txt" % i, "small file %d\n" % i * 20)
           for i in range(30)]
    l1 += [mk.symlink("/etc/link", "small1.txt")]
    l2 = [mk.dir("/plain"), mk.file("/plain/p.bin", size=1 << 20, seed=2),
          mk.file("/plain/t.txt", "uncompressed layer\n"),
          mk.whiteout("/data/r03")]
    l3 = [mk.dir("/z"), mk.file("/z/z.bin", size=300 << 10, seed=3)]
    return mk.Image([mk.Layer(l1, "gzip"), mk.Layer(l2, "none"),
                     mk.Layer(l3, "zstd")])


def layout_layers(layout):
    with open(os.path.join(layout, "index.json")) as f:
        man = json.load(f)["manifests"][0]["digest"][7:]
    with open(os.path.join(layout, "blobs", "sha256", man)) as f:
        return json.load(f)["layers"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, need_tools):
    require_registry()
    d = tmp_path_factory.mktemp("rindex")
    layout = str(d / "layout")
    mk.write_image(image(), layout, "oci")
    r = Registry(str(d / "registry"))
    try:
        yield r, layout, d
    finally:
        r.stop()


def run(args, cache, timeout=T):
    return subprocess.run([O.LAYERFS, *args], capture_output=True,
                          timeout=timeout,
                          env=dict(os.environ, LAYERFS_CACHE=str(cache)))


def ok(p):
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p


def fresh_repo(setup, name):
    """The image pushed as it is to repository `name`: (ref, manifest
    digest)."""
    r, layout, _ = setup
    ref = r.push_layout(layout, name + ":v1")
    st, body = r.get(name, "manifests", "v1", MAN_T)
    assert st == 200
    return ref, "sha256:" + hashlib.sha256(body).hexdigest()


def push(setup, ref, cache, *opts, host=None):
    r = setup[0]
    if host:
        ref = ref.replace(r.host, host)
    p = ok(run(["index", "push", "--tls-verify=false", "--json", *opts,
                ref], cache))
    doc = json.loads(p.stdout)
    from test_json_schema import validate
    validate("index-push", doc)
    return doc


def blob_gets(px, digest):
    return [e for e in px.blob_gets() if e[1].endswith(digest)]


def tree_of(mnt):
    t = O.walk_rootfs(mnt)
    for e in t.values():
        e.pop("ino", None)
    return t


def local_tree(setup, tmp_path):
    _, layout, _ = setup
    mnt = tmp_path / "local"
    mnt.mkdir()
    proc = fh.mount(layout, mnt, cache=str(tmp_path / "lcache"))
    try:
        return tree_of(str(mnt))
    finally:
        fh.cleanup(str(mnt), proc)


def test_push_fallback_tag_then_mount_wiped_cache(setup, tmp_path):
    r, layout, _ = setup
    ref, mdig = fresh_repo(setup, "ri/fallback")
    res = push(setup, ref, tmp_path / "c1")
    assert res["schema"] == 1 and res["subject"] == mdig
    assert res["layers"] == 2 and res["skipped_layers"] == 1
    assert res["referrers_api"] is False
    assert res["tag"] == "sha256-" + mdig[7:]
    # what the registry holds, read by skopeo: the referrers index under
    # the fallback tag lists the artifact, whose subject is the image
    p = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                        "docker://%s/ri/fallback:%s" % (r.host, res["tag"])],
                       capture_output=True, timeout=T)
    assert p.returncode == 0, p.stderr
    idx = json.loads(p.stdout)
    assert [(m["digest"], m.get("artifactType")) for m in idx["manifests"]] \
        == [(res["artifact_digest"], ART)]
    p = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                        "docker://%s/ri/fallback@%s"
                        % (r.host, res["artifact_digest"])],
                       capture_output=True, timeout=T)
    assert p.returncode == 0, p.stderr
    art = json.loads(p.stdout)
    assert art["artifactType"] == ART and art["subject"]["digest"] == mdig
    layers = layout_layers(layout)
    carried = {(d["mediaType"], d["annotations"]["io.layerfs.layer.digest"])
               for d in art["layers"]}
    assert carried == {(t, layers[i]["digest"])
                       for i in (0, 1) for t in (IDX, SUMS)}
    # a machine with an empty cache: the mount streams no blob but the
    # zstd layer's, and every file equals the local image's
    px = FaultProxy(r.port)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        proc = fh.mount(ref.replace(r.host, px.host), mnt,
                        "--tls-verify=false", cache=str(tmp_path / "c2"))
        try:
            for d in layers[:2]:
                assert blob_gets(px, d["digest"]) == [], d
            assert sum(n for *_, n in blob_gets(px, layers[2]["digest"])) \
                == layers[2]["size"]
            got = tree_of(str(mnt))
        finally:
            fh.cleanup(str(mnt), proc)
    finally:
        px.stop()
    assert got == local_tree(setup, tmp_path)


def test_referrers_api_cat_fetches_little(setup, tmp_path):
    r, layout, _ = setup
    ref, mdig = fresh_repo(setup, "ri/api")
    front = ReferrersFront(r.port)
    try:
        res = push(setup, ref, tmp_path / "c1", host=front.host)
        assert res["referrers_api"] is True and res["tag"] is None
        # no fallback tag was written
        st, _ = r.get("ri/api", "manifests", "sha256-" + mdig[7:], INDEX_T)
        assert st == 404
        px = FaultProxy(front.port)
        try:
            p = ok(run(["cat", "--tls-verify=false",
                        ref.replace(r.host, px.host), "/etc/small7.txt"],
                       tmp_path / "c2"))
            gzip = layout_layers(layout)[0]
            gets = blob_gets(px, gzip["digest"])
        finally:
            px.stop()
        assert any("/referrers/" + mdig in path
                   for _, path in front.log)
    finally:
        front.stop()
    assert p.stdout == ("small file 7\n" * 20).encode()
    # ranges of the one gzip blob, far less than the blob
    fetched = sum(n for *_, n in gets)
    assert gets and all(e[2] for e in gets)
    assert fetched <= 4 * SPAN < gzip["size"], (fetched, gzip["size"])
    print("cat on an empty cache: %d range requests, %d of %d bytes"
          % (len(gets), fetched, gzip["size"]))


def test_push_twice_is_the_same_artifact(setup, tmp_path):
    r, _, _ = setup
    ref, mdig = fresh_repo(setup, "ri/twice")
    a = push(setup, ref, tmp_path / "c1")
    b = push(setup, ref, tmp_path / "c2")
    assert a["artifact_digest"] == b["artifact_digest"]
    # indexes cached but the span digests gone (pruned): computed again
    spans = tmp_path / "c1" / "spans"
    gone = [f for f in os.listdir(spans) if f.endswith(".sums")]
    assert len(gone) == 3  # the zstd layer was streamed too
    for f in gone:
        os.unlink(spans / f)
    c = push(setup, ref, tmp_path / "c1")
    assert c["artifact_digest"] == a["artifact_digest"]
    st, body = r.get("ri/twice", "manifests", "sha256-" + mdig[7:], INDEX_T)
    assert st == 200
    assert [m["digest"] for m in json.loads(body)["manifests"]] == \
        [a["artifact_digest"]]


def test_no_remote_index_and_warm_cache_ask_nothing(setup, tmp_path):
    r, layout, _ = setup
    ref, mdig = fresh_repo(setup, "ri/off")
    push(setup, ref, tmp_path / "c1")
    gzip = layout_layers(layout)[0]
    px = FaultProxy(r.port)
    try:
        pref = ref.replace(r.host, px.host)
        ok(run(["ls", "--no-remote-index", "--tls-verify=false", pref, "/"],
               tmp_path / "c2"))
        assert not [e for e in px.log if "sha256-" in e[1]]
        assert sum(n for *_, n in blob_gets(px, gzip["digest"])) \
            == gzip["size"]
        # a cache that has every index: no lookup at all
        px.log.clear()
        ok(run(["ls", "--tls-verify=false", pref, "/"], tmp_path / "c2"))
        assert not [e for e in px.log if "sha256-" in e[1]]
    finally:
        px.stop()


# -- forged artifacts ---------------------------------------------------

def artifact(r, repo, digest):
    st, body = r.get(repo, "manifests", digest, MAN_T)
    assert st == 200
    return json.loads(body)


def blob(r, repo, digest):
    st, body = r.get(repo, "blobs", digest)
    assert st == 200
    return body


def publish(r, repo, subject, art):
    """Push manifest `art` and list it (alone) under subject's fallback
    tag."""
    body = json.dumps(art).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    r.put_manifest(repo, digest, body, MAN_T)
    lst = {"schemaVersion": 2, "mediaType": INDEX_T,
           "manifests": [{"mediaType": MAN_T, "digest": digest,
                          "size": len(body), "artifactType": ART}]}
    r.put_manifest(repo, "sha256-" + subject[7:], json.dumps(lst).encode(),
                   INDEX_T)


def sums_file(size, digests):
    n = (size + SPAN - 1) // SPAN
    head = b"lfspans1" + struct.pack("<QQQ", size, SPAN, n) + b"".join(digests)
    return head + hashlib.sha256(head).digest()


def forge(r, repo, art, layers, how):
    """A copy of artifact `art` spoiled in one way."""
    art = json.loads(json.dumps(art))
    lay = art["layers"]
    pick = [d for d in lay if d["mediaType"] == IDX
            and d["annotations"]["io.layerfs.layer.digest"]
            == layers[0]["digest"]][0]
    if how == "subject":
        art["subject"]["digest"] = "sha256:" + "ab" * 32
    elif how == "other-layer":
        other = [d for d in lay if d["mediaType"] == IDX and d is not pick][0]
        pick["digest"], pick["size"] = other["digest"], other["size"]
    elif how == "damaged-index":
        data = bytearray(blob(r, repo, pick["digest"]))
        data[len(data) // 3] ^= 0x01
        pick["digest"] = r.upload(repo, bytes(data))
    elif how == "damaged-sums":
        s = [d for d in lay if d["mediaType"] == SUMS and
             d["annotations"]["io.layerfs.layer.digest"]
             == layers[0]["digest"]][0]
        data = bytearray(blob(r, repo, s["digest"]))
        data[40] ^= 0x01
        s["digest"] = r.upload(repo, bytes(data))
    elif how == "lying-sums":
        s = [d for d in lay if d["mediaType"] == SUMS and
             d["annotations"]["io.layerfs.layer.digest"]
             == layers[0]["digest"]][0]
        size = layers[0]["size"]
        fake = sums_file(size, [hashlib.sha256(b"%d" % k).digest()
                                for k in range((size + SPAN - 1) // SPAN)])
        s["digest"], s["size"] = r.upload(repo, fake), len(fake)
    return art


@pytest.mark.parametrize("how", ["subject", "other-layer", "damaged-index",
                                 "damaged-sums"])
def test_forged_artifact_is_ignored_with_a_warning(setup, tmp_path, how):
    r, layout, _ = setup
    repo = "ri/forged-" + how
    ref, mdig = fresh_repo(setup, repo)
    res = push(setup, ref, tmp_path / "c1")
    layers = layout_layers(layout)
    art = forge(r, repo, artifact(r, repo, res["artifact_digest"]), layers,
                how)
    publish(r, repo, mdig, art)
    px = FaultProxy(r.port)
    try:
        p = ok(run(["cat", "--tls-verify=false", ref.replace(r.host, px.host),
                    "/etc/small4.txt"], tmp_path / "c2"))
        streamed = sum(n for *_, n in blob_gets(px, layers[0]["digest"]))
    finally:
        px.stop()
    assert p.stdout == ("small file 4\n" * 20).encode()
    err = p.stderr.decode()
    assert "index artifact" in err and "ignored" in err, err
    # nothing of it was used: the gzip layer was indexed by streaming it
    assert streamed >= layers[0]["size"]


def test_lying_span_digests_give_errors_not_bytes(setup, tmp_path):
    r, layout, _ = setup
    repo = "ri/lying"
    ref, mdig = fresh_repo(setup, repo)
    res = push(setup, ref, tmp_path / "c1")
    layers = layout_layers(layout)
    publish(r, repo, mdig, forge(r, repo, artifact(r, repo,
                                                   res["artifact_digest"]),
                                 layers, "lying-sums"))
    p = run(["cat", "--tls-verify=false", ref, "/data/big.bin"],
            tmp_path / "c2")
    assert p.returncode == 1
    assert p.stdout == b""
    assert "big.bin" in p.stderr.decode(), p.stderr


def test_push_needs_credentials_and_says_so(tmp_path, need_tools):
    require_registry()
    layout = str(tmp_path / "layout")
    mk.write_image(mk.Image([mk.Layer([mk.file("/a", "a\n")], "gzip")]),
                   layout, "oci")
    r = Registry(str(tmp_path / "registry"), auth=("joe", "s3cret"))
    try:
        src = "oci:" + layout
        ref = r.push(src, "ri/auth:v1")
        p = run(["index", "push", "--tls-verify=false", "--creds",
                 "joe:s3cret", ref], tmp_path / "c1")
        assert p.returncode == 0, p.stderr
        assert b"pushed index artifact sha256:" in p.stdout
        p = run(["index", "push", "--tls-verify=false", "--creds",
                 "joe:wrong", ref], tmp_path / "c2")
        assert p.returncode == 1
        assert b"credentials" in p.stderr and b"wrong" not in p.stderr
        # a reader with credentials uses it
        p = ok(run(["cat", "--tls-verify=false", "--creds", "joe:s3cret",
                    ref, "/a"], tmp_path / "c3"))
        assert p.stdout == b"a\n"
    finally:
        r.stop()


@pytest.mark.parametrize("args,msg", [
    (["index"], b"expected 'push IMAGE'"),
    (["index", "pull", "x"], b"unknown subcommand 'pull'"),
    (["index", "push"], b"expected 'push IMAGE'"),
    (["index", "push", "--no-verify", "docker://127.0.0.1:1/a/b:c"],
     b"--no-verify"),
    (["index", "push", "--layers", "2", "docker://127.0.0.1:1/a/b:c"],
     b"--layers"),
])
def test_usage_errors(args, msg, tmp_path):
    p = run(args, tmp_path)
    assert p.returncode == 2 and msg in p.stderr, p.stderr


def test_push_of_a_local_image_is_refused(setup, tmp_path):
    p = run(["index", "push", setup[1]], tmp_path)
    assert p.returncode == 2
    assert b"not a registry image" in p.stderr


def test_help():
    p = subprocess.run([O.LAYERFS, "index", "--help"], capture_output=True,
                       timeout=T)
    assert p.returncode == 0 and b"usage: layerfs index" in p.stdout
    assert b"referrers" in p.stdout
