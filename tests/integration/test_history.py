# SPDX-License-Identifier: MIT
"""`layerfs layers` as `docker history` shows an image's history.

The image (tests/fixtures/history.py) has history entries without a layer
(ENV, LABEL, EXPOSE, CMD, USER) around and between its 4 layers, comments,
a created_by longer than 45 characters, and created times in the middle of
go-units' HumanDuration buckets.  Expected rows come from:
  * the config the fixture wrote (read back from the archive) and the
    labels of fixtures/history.OFFSETS (docker's words for each offset);
  * podman: `podman history` of the same archive after `podman load`,
    in a private storage (vfs driver) under pytest's tmp dir: the rows,
    their order (reversed: podman lists the newest first), sizes (0 for
    an entry without a layer; a layer's uncompressed size), created_by
    with --no-trunc, created (absolute) and CreatedSince (relative).
    Skips without podman, but fails under CI=true.
"""

import json
import os
import shutil
import sys
import tarfile
import time

import pytest

import fusehelpers as fh
import oracle as O

sys.path.insert(0, O.FIXTURES)
import history as H          # noqa: E402
import mkimage as M          # noqa: E402


def make(tmp_path, fmt="docker-archive"):
    out = str(tmp_path / ("hist." + fmt))
    M.write_image(H.history_image(), out, fmt)
    return out


def config_history(archive):
    with tarfile.open(archive) as t:
        man = json.load(t.extractfile("manifest.json"))[0]
        return json.load(t.extractfile(man["Config"]))["history"]


def layers(img, *args, tmp_path):
    if not O.have_layerfs():
        pytest.skip("layerfs not built")
    p = O.layerfs("layers", "-q", img, "--cache", tmp_path / "cache",
                  *args, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def table(text):
    """[(fields before CREATED, CREATED, CREATED BY)] by header offsets."""
    lines = text.splitlines()
    head = lines[0]
    c, cb = head.index(" CREATED ") + 1, head.index("CREATED BY")
    return [(ln[:c].split(), ln[c:cb].strip(), ln[cb:]) for ln in lines[1:]]


def docker_cut(s):
    s = s.replace("\t", " ")
    return s if len(s) <= 45 else s[:44] + "\u2026"


def expected_created(entry, absolute):
    t = entry.get("created", "")
    if t.startswith("1970"):
        return "-"
    if absolute:
        return t
    labels = {H.rfc3339(int(time.time()) - off): w for off, w in H.OFFSETS}
    # the fixture's time may be 1 s older than now's: look both ways
    labels.update({H.rfc3339(int(time.time()) - off - 1): w
                   for off, w in H.OFFSETS})
    return labels[t]


# ---------------------------------------------------------------------------
# against the config the image holds
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_rows_follow_history(fmt, tmp_path):
    img = make(tmp_path, fmt)
    hist = config_history(make(tmp_path))   # same spec, same config
    rows = table(layers(img, tmp_path=tmp_path))
    assert len(rows) == len(hist) == 10
    n = 0
    for (fields, created, created_by), h in zip(rows, hist):
        if h.get("empty_layer"):
            assert fields == ["-", "-", "-", "0", "B", "0", "B", "0", "0",
                              "0", "B", "0", "B"], fields
        else:
            n += 1
            assert fields[0] == str(n) and fields[1].startswith("sha256:")
        assert created == expected_created(h, False), h
        assert created_by == docker_cut(h.get("created_by", "")), h
    assert n == 4


def test_no_trunc(tmp_path):
    img = make(tmp_path)
    hist = config_history(img)
    rows = table(layers(img, "--no-trunc", tmp_path=tmp_path))
    for (_, created, created_by), h in zip(rows, hist):
        assert created == expected_created(h, True)
        assert created_by == h.get("created_by", "").replace("\t", " ")
    assert any(len(h.get("created_by", "")) > 45 for h in hist)


def test_layers_only_and_classic(tmp_path):
    img = make(tmp_path)
    hist = config_history(img)
    made = [h for h in hist if not h.get("empty_layer")]
    rows = table(layers(img, "--layers-only", tmp_path=tmp_path))
    assert [r[0][0] for r in rows] == ["1", "2", "3", "4"]
    assert [r[2] for r in rows] == [docker_cut(h["created_by"])
                                    for h in made]
    classic = layers(img, "--classic", tmp_path=tmp_path).splitlines()
    assert classic[0].split() == ["#", "DIGEST", "COMP", "SIZE", "UNPACKED",
                                  "ENTRIES", "WH", "OVERWRITN", "DELETED",
                                  "CREATED", "BY"]
    assert len(classic) == 5
    for line, h in zip(classic[1:], made):
        assert line.endswith("  " + h["created_by"])


def test_layers_n_stops_at_layer_n(tmp_path):
    img = make(tmp_path)
    hist = config_history(img)
    # up to layer 2's entry: ENV, layer 1, layer 2 (the LABEL after it
    # belongs to the layers above)
    rows = table(layers(img, "--layers", "2", tmp_path=tmp_path))
    assert [r[2] for r in rows] == [docker_cut(h["created_by"])
                                    for h in hist[:3]]
    j = json.loads(layers(img, "--layers", "2", "--json",
                          tmp_path=tmp_path))
    assert [e["layer"] for e in j["history"]] == [None, 1, 2]


def test_json(tmp_path):
    img = make(tmp_path)
    hist = config_history(img)
    j = json.loads(layers(img, "--json", tmp_path=tmp_path))
    assert j["schema"] == 1
    assert len(j["layers"]) == 4
    for k in ("index", "digest", "diff_id", "size", "uncompressed_size",
              "entries", "whiteouts", "created_by", "created"):
        assert all(k in la for la in j["layers"]), k
    n = 0
    assert len(j["history"]) == len(hist)
    for e, h in zip(j["history"], hist):
        assert e["created"] == h.get("created")
        assert e["created_by"] == h.get("created_by")
        assert e["comment"] == h.get("comment")
        assert e["empty_layer"] is bool(h.get("empty_layer"))
        if not e["empty_layer"]:
            n += 1
            assert e["layer"] == n
            la = j["layers"][n - 1]
            assert (la["created_by"], la["created"]) == (h["created_by"],
                                                         h["created"])
        else:
            assert e["layer"] is None


def test_image_without_history(tmp_path):
    """Layers the history does not describe still get their rows."""
    img = str(tmp_path / "nohist")
    image = H.history_image()
    image.history = []
    M.write_image(image, img, "oci")
    rows = table(layers(img, tmp_path=tmp_path))
    assert [(r[0][0], r[1], r[2]) for r in rows] == [
        (str(i), "-", "") for i in range(1, 5)]


# ---------------------------------------------------------------------------
# against podman history
# ---------------------------------------------------------------------------

@pytest.fixture
def podman_store(tmp_path):
    import mkreal
    if shutil.which("podman") is None or mkreal.runtime() is None:
        fh.skip_or_fail("podman (and runc or crun) not installed")
    if os.geteuid() != 0:
        fh.skip_or_fail("podman with a private --root needs root here")
    st = mkreal.Store(str(tmp_path / "podman"), driver="vfs")
    yield st
    st.close()


def podman_history(st, img):
    st.podman("load", "-i", img, timeout=120)
    ref = "localhost/%s:%s" % (M.REF_NAME, M.REF_TAG)
    rows = json.loads(st.podman("history", "--no-trunc", "--format", "json",
                                ref, timeout=60).stdout)
    since = st.podman("history", "--format", "{{.CreatedSince}}", ref,
                      timeout=60).stdout.decode().splitlines()
    rows.reverse()
    since.reverse()
    return rows, since


def epoch(t):
    from datetime import datetime
    return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())


def test_vs_podman_history(podman_store, tmp_path):
    img = make(tmp_path)
    prow, psince = podman_history(podman_store, img)
    j = json.loads(layers(img, "--json", tmp_path=tmp_path))
    rel = table(layers(img, tmp_path=tmp_path))
    absolute = table(layers(img, "--no-trunc", tmp_path=tmp_path))
    assert len(prow) == len(j["history"]) == len(rel) == 10
    for i, (p, e) in enumerate(zip(prow, j["history"])):
        want = 0 if e["empty_layer"] else \
            j["layers"][e["layer"] - 1]["uncompressed_size"]
        assert p["size"] == want, (i, p, e)
        assert p.get("CreatedBy", "") == (e["created_by"] or ""), (i, p)
        assert p.get("Comment", p.get("comment", "")) == (e["comment"] or "")
        assert epoch(p["created"]) == epoch(e["created"])
        if e["created"].startswith("1970"):
            # docker blanks times before 2000; podman prints them; "-"
            assert rel[i][1] == absolute[i][1] == "-"
            continue
        assert epoch(absolute[i][1]) == epoch(p["created"])
        assert rel[i][1] == psince[i], (i, rel[i], psince[i])
        # podman cuts with "...", docker with an ellipsis: same 44 chars
        assert rel[i][2] == docker_cut(p.get("CreatedBy", ""))
