# SPDX-License-Identifier: MIT
"""`layerfs waste`: per-layer byte accounting, dive's efficiency score and
wasted bytes, the secret finder, and the --ci gates.

Expected values come from two independent places that must agree:
  * hand-computed numbers for the fixtures of specs_waste.py (written from
    the spec's file sizes, see WASTE_MIX below);
  * a small Python model (model_layers / model_dive below) run over the
    spec's ops, not over anything layerfs produced:
      - per layer (OCI semantics, design.md 3): added = sizes of the layer's
        regular-file entries (hardlinks carry none, whiteouts are empty);
        each such entry's fate is the first later event that touches it:
        a later entry at its path in the same layer, or in a later layer
        (whiteouts and opaque markers of that layer first) a whiteout of
        the path or an ancestor / an opaque marker in an ancestor
        (deleted), an entry at the path (overwritten), or a non-directory
        at an ancestor (deleted);
      - dive (filetree/efficiency.go): one tree per layer (a path once per
        layer, the later entry wins; `.wh..wh..` names are not added), its
        leaves visited; a whiteout counts as the path it deletes, with the
        sizes of everything under it in the stacked tree of the layers
        below when that was a directory, else 0; cumulative = sum over
        occurrences, minimum = smallest occurrence; efficiency =
        sum(min)/sum(cumulative) (1.0 when 0); wasted = sum of cumulative of
        paths with 2 or more occurrences; user size = sum of the regular-file
        entry sizes of every layer but the first.
The model runs over the fixtures of specs.SPECS too (MODEL_SPECS: those
where the contract and dive cannot disagree: no whiteout of an absent path,
no file and its whiteout in one layer, no whiteout under a path that became
a file; a same-layer duplicate follows dive: one node, the later entry).
Directories are never leaves here (the contract: non-directory entries and
whiteouts; dive would also visit empty directories, always 0 bytes).
"top" entries: path, cumulative, layers (1-based, a whiteout's layer
included) and hidden_by (the layer whose entry hides the earlier copies:
the overwriting layer or the whiteout's layer).

Floats are compared to within 1e-6 (JSON may print 6 decimals).
Everything skips with "not implemented yet" while `layerfs waste --help`
does not exit 0.
"""

import json
import os
import sys

import pytest

import oracle as O

sys.path.insert(0, O.FIXTURES)
import mkimage as M          # noqa: E402
import specs_waste as SW     # noqa: E402

NOT_IMPLEMENTED = "not implemented yet"
TOL = 1e-6
# a layer object's waste fields (it also has layers --json's)
WASTE_KEYS = ("index", "added", "overwritten", "deleted")


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

def norm(p):
    p = p.replace("//", "/")
    while p.startswith("./") or p.startswith("/"):
        p = p[2:] if p.startswith("./") else p[1:]
    p = p.rstrip("/")
    return "" if p == "." else p


def entries(spec):
    """Per layer: list of (kind, path, size); kind file|dir|symlink|
    hardlink|chr|blk|fifo|wh (path = what it deletes)|opq (path = dir)."""
    out = []
    for layer in spec.layers:
        if layer.builder is not None:
            raise ValueError("raw-tar layers are not modelled")
        ents = []
        for op in layer.ops:
            p = norm(op.path)
            head, _, base = p.rpartition("/")
            if base == ".wh..wh..opq":
                ents.append(("opq", head, 0))
            elif base.startswith(".wh."):
                ents.append(("wh", (head + "/" if head else "") + base[4:],
                             0))
            elif p == "":
                continue            # the root entry
            else:
                ents.append((op.kind, p,
                             len(op.content) if op.kind == "file" else 0))
        out.append(ents)
    return out


def _under(p, anc):
    return anc == "" or p.startswith(anc + "/")


def model_layers(layers):
    """[{index, added, overwritten, deleted}] with OCI semantics."""
    res = []
    for i, ents in enumerate(layers):
        added = over = dele = 0
        for k, (kind, path, size) in enumerate(ents):
            if kind != "file":
                continue
            added += size
            fate = None
            for kind2, p2, _ in ents[k + 1:]:
                if kind2 in ("wh", "opq"):
                    continue
                if p2 == path:
                    fate = "over"
                elif _under(path, p2) and kind2 != "dir":
                    fate = "del"
                if fate:
                    break
            for later in layers[i + 1:]:
                if fate:
                    break
                for kind2, p2, _ in later:
                    if (kind2 == "wh" and (p2 == path or _under(path, p2))) \
                            or (kind2 == "opq" and _under(path, p2)):
                        fate = "del"
                        break
                if fate:
                    break
                for kind2, p2, _ in later:
                    if kind2 in ("wh", "opq"):
                        continue
                    if p2 == path:
                        fate = "over"
                    elif _under(path, p2) and kind2 != "dir":
                        fate = "del"
                    if fate:
                        break
            if fate == "over":
                over += size
            elif fate == "del":
                dele += size
        res.append({"index": i + 1, "added": added, "overwritten": over,
                    "deleted": dele})
    return res


def _dive_tree(ents, implicit_is_dir=True):
    """dive's per-layer tree: node path (whiteout names kept) -> (kind,
    size); implicit parents are dirs of size 0 (dive itself gives them an
    empty FileInfo, IsDir false: implicit_is_dir=False models that)."""
    t = {}
    imp = ("dir", 0) if implicit_is_dir else ("implicit", 0)
    for kind, p, size in ents:
        if kind == "wh":
            head, _, base = p.rpartition("/")
            node = (head + "/" if head else "") + ".wh." + base
        elif kind == "opq":
            node = (p + "/" if p else "") + ".wh..wh..opq"
        else:
            node = p
        parts = node.split("/")
        for j in range(1, len(parts)):
            t.setdefault("/".join(parts[:j]), imp)
        if kind == "opq":
            continue                # AddPath drops `.wh..wh..` names
        t[node] = (kind, size)
    return t


def _strip(node):
    head, _, base = node.rpartition("/")
    if base.startswith(".wh."):
        return (head + "/" if head else "") + base[4:], True
    return node, False


def model_dive(layers, implicit_is_dir=True):
    trees = [_dive_tree(e, implicit_is_dir) for e in layers]
    stacked = {}                # merged view of the layers below
    data = {}                   # path -> [cumulative, min, [layers]]
    for idx, t in enumerate(trees):
        parents = {n.rpartition("/")[0] for n in t}
        for node in sorted(t):
            if node in parents or t[node][0] in ("dir", "implicit"):
                continue        # not a leaf, or a directory (the contract
                # counts non-directories and whiteouts; dive would also
                # visit empty directories, always 0 bytes)
            path, wh = _strip(node)
            if wh:
                if path not in stacked:
                    raise ValueError("dive fails: whiteout of absent "
                                     + path)
                size = 0
                if stacked[path][0] == "dir":
                    size = sum(v[1] for q, v in stacked.items()
                               if q.startswith(path + "/"))
            else:
                size = t[node][1]
            d = data.setdefault(path, [0, None, []])
            d[0] += size
            d[1] = size if d[1] is None else min(d[1], size)
            d[2].append(idx + 1)
        # stack this layer (whiteouts remove, everything else adds)
        for node in sorted(t, key=lambda n: -n.count("/")):
            path, wh = _strip(node)
            if wh:
                for q in [q for q in stacked
                          if q == path or q.startswith(path + "/")]:
                    del stacked[q]
        for node in sorted(t):
            path, wh = _strip(node)
            if not wh:
                parts = path.split("/")
                for j in range(1, len(parts)):
                    stacked.setdefault("/".join(parts[:j]), t.get(
                        "/".join(parts[:j]), ("dir", 0)))
                stacked[path] = t[node]
    cum = sum(d[0] for d in data.values())
    mn = sum(d[1] for d in data.values())
    wasted = sum(d[0] for d in data.values() if len(d[2]) >= 2)
    user = sum(s for ents in layers[1:] for k, _, s in ents if k == "file")
    top = sorted(((p, d[0], d[2]) for p, d in data.items()
                  if len(d[2]) >= 2), key=lambda x: (-x[1], x[0]))
    return {"efficiency": 1.0 if cum == 0 else mn / cum,
            "wasted_bytes": wasted, "user_size": user,
            "wasted_user_percent": (wasted / user) if user else 0.0,
            "top": top}


# ---------------------------------------------------------------------------
# Hand-computed values for specs_waste "waste_mix" (sizes from the spec)
# ---------------------------------------------------------------------------

# layer 1: base/os 1000 + app/big.bin 10000 + app/tmp.tar 20000 + cache/a,b,c
# 1000+2000+3000 + op/x 4000 + op/y 500 + h/data 700 (h/link 0) + rep/f 600
# = 42800; overwritten: app/big.bin 10000; deleted: tmp.tar 20000 (whiteout)
# + cache 6000 (dir whiteout) + op 4500 (opaque) + rep/f 600 (rep became a
# file) = 31100.
# layer 2: big.bin 12000 + dup 300 + dup 800 + logs/l 50 = 13150;
# overwritten: the first dup 300 (same layer); deleted 0.
# layer 3: op/z 100 + rep 10 = 110.
WASTE_MIX_LAYERS = [
    {"index": 1, "added": 42800, "overwritten": 10000, "deleted": 31100},
    {"index": 2, "added": 13150, "overwritten": 300, "deleted": 0},
    {"index": 3, "added": 110, "overwritten": 0, "deleted": 0},
]
# dive: leaf path -> (cumulative, minimum)
#   /app/big.bin 10000+12000 = 22000, min 10000      (2 layers: wasted)
#   /app/tmp.tar 20000 + whiteout of a file 0, min 0  (2 layers: wasted)
#   /cache (whiteout of a dir: 1000+2000+3000) 6000, min 6000
#   /cache/a,b,c 1000, 2000, 3000; /op/x 4000, /op/y 500 (the opaque
#   marker is not a leaf for dive); /op/z 100; /base/os 1000; /h/data 700;
#   /h/link 0; /rep/f 600; /rep 10; /dup 800 (once: one node per path per
#   layer); /logs/l 50
# sum cumulative = 61760, sum minimum = 29760
WASTE_MIX_EFFICIENCY = 29760 / 61760
WASTE_MIX_WASTED = 42000
WASTE_MIX_USER = 13150 + 110
WASTE_MIX_PCT = 42000 / 13260
# hidden_by: the layer whose entry hides the earlier copies (the
# overwriting layer, or the whiteout's layer)
WASTE_MIX_TOP = [("app/big.bin", 22000, [1, 2], 2),
                 ("app/tmp.tar", 20000, [1, 3], 3)]


def test_model_agrees_with_hand_values():
    ents = entries(SW.WASTE_SPECS["waste_mix"])
    assert model_layers(ents) == WASTE_MIX_LAYERS
    d = model_dive(ents)
    assert d["efficiency"] == pytest.approx(WASTE_MIX_EFFICIENCY, abs=1e-12)
    assert d["wasted_bytes"] == WASTE_MIX_WASTED
    assert d["user_size"] == WASTE_MIX_USER
    assert d["wasted_user_percent"] == pytest.approx(WASTE_MIX_PCT)
    assert [t[:3] for t in d["top"]] == [t[:3] for t in WASTE_MIX_TOP]


def test_model_on_dive_examples():
    """The model on dive's own TestEfficency (filetree/efficiency_test.go):
    nginx.conf 2000 then 5000, public 3000, athing 10000, then /etc/nginx
    whited out.  dive's nginx dir is implicit (an empty FileInfo, not
    IsDir), so its whiteout counts 0 and dive expects 0.75 with one wasted
    path of 7000 bytes in layers 0 and 1."""
    layers = [[("file", "etc/nginx/nginx.conf", 2000),
               ("file", "etc/nginx/public", 3000)],
              [("file", "etc/nginx/nginx.conf", 5000),
               ("file", "etc/athing", 10000)],
              [("wh", "etc/nginx", 0)]]
    d = model_dive(layers, implicit_is_dir=False)
    assert d["efficiency"] == 0.75
    assert d["top"] == [("etc/nginx/nginx.conf", 7000, [1, 2])]
    assert d["wasted_bytes"] == 7000
    # the contract: a whiteout of a directory counts what was under it
    # (5000 + 3000), implicit directory or not
    d = model_dive(layers)
    assert d["efficiency"] == pytest.approx(23000 / 28000)
    assert d["wasted_bytes"] == 7000


# ---------------------------------------------------------------------------
# Running layerfs waste
# ---------------------------------------------------------------------------

def _implemented():
    if not O.have_layerfs():
        return False
    return O.layerfs("waste", "--help", timeout=30).returncode == 0


@pytest.fixture(scope="session")
def waste_bin():
    if not _implemented():
        pytest.skip(NOT_IMPLEMENTED)
    return O.LAYERFS


@pytest.fixture(scope="session")
def wimages(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("waste-images"))
    made = {}

    def get(name, fmt="oci"):
        if (name, fmt) not in made:
            if name in SW.WASTE_SPECS:
                out = os.path.join(root, name + "." + fmt +
                                   ("" if fmt == "oci" else ".tar"))
                M.write_image(SW.WASTE_SPECS[name], out, fmt,
                              key="waste:" + name)
            else:
                out = O.generate(name, fmt, root)
            made[(name, fmt)] = out
        return made[(name, fmt)]
    return get


def waste(img, *args, cache):
    p = O.layerfs("waste", img, "--cache", cache, *args)
    return p


def waste_json(img, *args, cache):
    p = waste(img, "--json", *args, cache=cache)
    assert p.returncode == 0, (p.returncode, p.stderr)
    return json.loads(p.stdout)


def _spec(name):
    return SW.WASTE_SPECS.get(name) or O.specs.SPECS[name]


# ---------------------------------------------------------------------------
# Per-layer bytes, efficiency, wasted bytes
# ---------------------------------------------------------------------------

def test_waste_mix_exact(wimages, cache_dir, waste_bin):
    doc = waste_json(wimages("waste_mix"), cache=cache_dir)
    msgs = []
    layers = [{k: l.get(k) for k in ("index", "added", "overwritten",
                                     "deleted")} for l in doc["layers"]]
    if layers != WASTE_MIX_LAYERS:
        for want, got in zip(WASTE_MIX_LAYERS, layers + [{}] * 3):
            if want != got:
                msgs.append("layer %d: expected %r, got %r" % (
                    want["index"], want, got))
    if abs(doc["efficiency"] - WASTE_MIX_EFFICIENCY) > TOL:
        msgs.append("efficiency %r, expected %r" % (doc["efficiency"],
                                                    WASTE_MIX_EFFICIENCY))
    for k, want in (("wasted_bytes", WASTE_MIX_WASTED),
                    ("user_size", WASTE_MIX_USER)):
        if doc[k] != want:
            msgs.append("%s %r, expected %r" % (k, doc[k], want))
    if abs(doc["wasted_user_percent"] - WASTE_MIX_PCT) > TOL:
        msgs.append("wasted_user_percent %r, expected %r" % (
            doc["wasted_user_percent"], WASTE_MIX_PCT))
    top = [(t["path"], t["cumulative"], t["layers"], t.get("hidden_by"))
           for t in doc["top"]]
    want_top = [("/" + p, c, l, h) for p, c, l, h in WASTE_MIX_TOP]
    if top != want_top:
        msgs.append("top %r, expected %r" % (top, want_top))
    assert not msgs, "layerfs waste waste_mix:\n  " + "\n  ".join(msgs)


def test_same_layer_duplicate(wimages, cache_dir, waste_bin):
    """dive keeps one node per path per layer (the later entry): a path
    written twice in one layer occurs once, so nothing is wasted; the
    per-layer count still says the first copy was overwritten."""
    doc = waste_json(wimages("waste_dup"), cache=cache_dir)
    assert [(l["added"], l["overwritten"], l["deleted"])
            for l in doc["layers"]] == [(100, 0, 0), (1100, 300, 0)]
    got = (doc["efficiency"], doc["wasted_bytes"], doc["user_size"],
           [t["path"] for t in doc["top"]])
    assert got == (1.0, 0, 1100, []), got


def test_hardlinked_bytes_stay_while_a_link_does(wimages, cache_dir,
                                                 waste_bin):
    """Per-layer bytes follow the data, not the name: f (10 bytes, also
    reachable as g) is replaced in layer 2 and k (20 bytes, also reachable
    as m) deleted, but both byte ranges are still readable through the
    other link, so nothing of layer 1 is hidden (layerfs's choice, stated
    in waste.h; the per-path model above would say 10 and 20)."""
    ents = entries(SW.WASTE_SPECS["waste_hardlink"])
    want = model_layers(ents)
    assert want[0] == {"index": 1, "added": 30, "overwritten": 10,
                       "deleted": 20}
    doc = waste_json(wimages("waste_hardlink"), cache=cache_dir)
    assert {k: doc["layers"][0][k] for k in WASTE_KEYS} == {
        "index": 1, "added": 30, "overwritten": 0, "deleted": 0}


def test_top_n(wimages, cache_dir, waste_bin):
    img = wimages("waste_mix")
    doc = waste_json(img, "--top", "1", cache=cache_dir)
    assert [t["path"] for t in doc["top"]] == ["/app/big.bin"]
    doc = waste_json(img, "--top", "0", cache=cache_dir)
    assert doc["top"] == []


# the fixtures where the OCI semantics of the contract and dive's
# algorithm cannot disagree (see the module docstring)
MODEL_SPECS = ["basic", "delete_file", "delete_dir", "opaque_dir",
               "opaque_recreate", "replace_types", "whiteout_hardlink",
               "implicit_parents", "hardlinks", "symlink_parent", "symlinks",
               "names", "xattrs", "devices", "mixed_compression", "edge_tar",
               "demo", "waste_mix", "waste_secrets"]


HARDLINK_SPECS = ("hardlinks",)


@pytest.mark.parametrize("name", MODEL_SPECS)
def test_matches_model(name, wimages, cache_dir, waste_bin):
    ents = entries(_spec(name))
    want_layers = model_layers(ents)
    want = model_dive(ents)
    doc = waste_json(wimages(name), "--top", "1000", cache=cache_dir)
    msgs = []
    got_layers = [{k: l.get(k) for k in ("index", "added", "overwritten",
                                         "deleted")} for l in doc["layers"]]
    for w, g in zip(want_layers, got_layers):
        # per-layer bytes follow data, not names (see the hardlink test):
        # the per-path model differs where a hidden name has a live link
        if name in HARDLINK_SPECS:
            continue
        if w != g:
            msgs.append("layer %d: expected %r, got %r" % (w["index"], w, g))
    if len(got_layers) != len(want_layers):
        msgs.append("%d layers, expected %d" % (len(got_layers),
                                                len(want_layers)))
    for k in ("efficiency", "wasted_user_percent"):
        if abs(doc[k] - want[k]) > TOL:
            msgs.append("%s %r, expected %r" % (k, doc[k], want[k]))
    for k in ("wasted_bytes", "user_size"):
        if doc[k] != want[k]:
            msgs.append("%s %r, expected %r" % (k, doc[k], want[k]))
    got_top = sorted((t["path"], t["cumulative"], t["layers"])
                     for t in doc["top"])
    want_top = sorted(("/" + p, c, l) for p, c, l in want["top"])
    if got_top != want_top:
        msgs.append("top %r, expected %r" % (got_top, want_top))
    cums = [t["cumulative"] for t in doc["top"]]
    if cums != sorted(cums, reverse=True):
        msgs.append("top not sorted by cumulative size: %r" % cums)
    assert not msgs, "layerfs waste %s:\n  %s" % (name, "\n  ".join(msgs))


def test_text_output(wimages, cache_dir, waste_bin):
    """The text report shows the same numbers as --json."""
    img = wimages("waste_mix")
    doc = waste_json(img, cache=cache_dir)
    p = waste(img, cache=cache_dir)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    for t in doc["top"]:
        assert t["path"] in out
    assert str(doc["wasted_bytes"]) in out
    assert "%.4f" % doc["efficiency"] in out
    assert str(WASTE_MIX_WASTED) in out, out


def test_archive_formats_agree(wimages, tmp_path, waste_bin):
    docs = []
    for fmt in O.FORMATS:
        c = tmp_path / fmt
        c.mkdir()
        docs.append(waste_json(wimages("waste_mix", fmt), cache=str(c)))
    for d in docs[1:] + docs[:1]:
        # a layer's digests and media type depend on the format
        d["layers"] = [{k: e[k] for k in WASTE_KEYS} for e in d["layers"]]
    for d in docs[1:]:
        assert {k: d[k] for k in ("layers", "efficiency", "wasted_bytes",
                                  "user_size", "top", "secrets")} == \
            {k: docs[0][k] for k in ("layers", "efficiency", "wasted_bytes",
                                     "user_size", "top", "secrets")}


# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------

def _secrets(doc):
    return sorted((s["path"], s["layer"], s.get("hidden_by"))
                  for s in doc["secrets"])


def test_secrets_found(wimages, cache_dir, waste_bin):
    doc = waste_json(wimages("waste_secrets"), cache=cache_dir)
    assert _secrets(doc) == [("/app/.env", 2, 4),
                             ("/tmp/build-cache.bin", 2, 3)], doc["secrets"]
    for s in doc["secrets"]:
        assert s.get("reason"), s


def test_secret_by_content_reason(wimages, cache_dir, waste_bin):
    doc = waste_json(wimages("waste_secrets"), cache=cache_dir)
    r = {s["path"]: s["reason"].lower() for s in doc["secrets"]}
    assert "private" in r.get("/tmp/build-cache.bin", "") or \
        "key" in r.get("/tmp/build-cache.bin", ""), r


def test_demo_secret(wimages, cache_dir, waste_bin):
    doc = waste_json(wimages("demo"), cache=cache_dir)
    assert _secrets(doc) == [("/app/secret.key", 2, 3)]


@pytest.mark.parametrize("name", ["basic", "delete_file", "delete_dir"])
def test_no_secrets_on_clean_images(name, wimages, cache_dir, waste_bin):
    assert waste_json(wimages(name), cache=cache_dir)["secrets"] == []


def test_visible_secrets_not_reported(wimages, cache_dir, waste_bin):
    doc = waste_json(wimages("waste_secrets"), cache=cache_dir)
    paths = {s["path"] for s in doc["secrets"]}
    assert "/app/server.pem" not in paths
    assert "/home/u/.ssh/id_ed25519" not in paths
    assert "/tmp/build.log" not in paths


def test_secrets_with_layer_prefix(wimages, cache_dir, waste_bin):
    """--layers 3: the .env is still visible, only the key is hidden."""
    doc = waste_json(wimages("waste_secrets"), "--layers", "3",
                     cache=cache_dir)
    assert _secrets(doc) == [("/tmp/build-cache.bin", 2, 3)]


# ---------------------------------------------------------------------------
# --ci gates
# ---------------------------------------------------------------------------

def _ci(img, cache, *args):
    return waste(img, "--ci", *args, cache=cache)


def test_ci_wasteful_fails_with_defaults(wimages, cache_dir, waste_bin):
    p = _ci(wimages("waste_mix"), cache_dir)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)


def test_ci_wasteful_passes_loose(wimages, cache_dir, waste_bin):
    img = wimages("waste_mix")
    # its wasted / user ratio is 3.16: beyond any limit dive accepts (0..1)
    loose = ["--min-efficiency", "0.4", "--max-wasted-percent", "off"]
    p = _ci(img, cache_dir, *loose)
    assert p.returncode == 0, (p.stdout, p.stderr)
    # each gate on its own, just either side of the value
    for args, rc in ((["--min-efficiency", "0.49",
                       "--max-wasted-percent", "off"], 1),
                     (["--min-efficiency", "0.48",
                       "--max-wasted-percent", "off"], 0),
                     (["--min-efficiency", "0.4",
                       "--max-wasted-percent", "1"], 1),
                     (["--min-efficiency", "0.4",
                       "--max-wasted-percent", "4"], 2),    # out of range
                     (loose + ["--max-wasted-bytes", "41999"], 1),
                     (loose + ["--max-wasted-bytes", "42000"], 0),
                     (loose + ["--max-wasted-bytes", "42kB"], 0),
                     (loose + ["--max-wasted-bytes", "41.999 KB"], 1)):
        p = _ci(img, cache_dir, *args)
        assert p.returncode == rc, (args, p.returncode, p.stdout, p.stderr)


def test_ci_clean_passes(wimages, cache_dir, waste_bin):
    want = model_dive(entries(O.specs.SPECS["basic"]))
    assert want["efficiency"] >= 0.9 and want["wasted_user_percent"] <= 0.1
    p = _ci(wimages("basic"), cache_dir)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_ci_json(wimages, cache_dir, waste_bin):
    img = wimages("waste_mix")
    p = waste(img, "--ci", "--json", cache=cache_dir)
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    ci = doc["ci"]
    assert ci["pass"] is False
    rules = {r["name"]: r for r in ci["rules"]}
    assert len(rules) >= 2, ci
    for r in ci["rules"]:
        assert isinstance(r["pass"], bool)
    # every rule's verdict follows from its value and limit
    failing = [r for r in ci["rules"] if not r["pass"]]
    assert len(failing) == 2, ci          # efficiency and wasted percent
    p = waste(img, "--ci", "--json", "--min-efficiency", "0.4",
              "--max-wasted-percent", "off", cache=cache_dir)
    assert p.returncode == 0
    assert json.loads(p.stdout)["ci"]["pass"] is True


def test_no_ci_exits_0(wimages, cache_dir, waste_bin):
    p = waste(wimages("waste_mix"), cache=cache_dir)
    assert p.returncode == 0


def test_help_exits_0(waste_bin):
    p = O.layerfs("waste", "--help")
    assert p.returncode == 0
    out = (p.stdout + p.stderr).decode()
    for opt in ("--json", "--top", "--ci", "--min-efficiency",
                "--max-wasted-bytes", "--max-wasted-percent"):
        assert opt in out, opt
