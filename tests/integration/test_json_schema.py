"""Every --json output validates against the schema docs/json.md documents.

The JSON Schema blocks of docs/json.md (each after a `<!-- schema: NAME -->`
line) are read here; every command is run on generated images chosen to
reach every optional field (symlinks, devices, xattrs, names that are not
UTF-8, whiteouts, an upper dir, secrets) and its output must validate.
The schemas forbid unknown fields, so the document must list them all.
"""
import json
import os
import re

import pytest

import oracle as O
from mkimage import Image, Layer, dir as d, file as f, symlink, device, \
    whiteout

jsonschema = pytest.importorskip("jsonschema")

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "json.md")


def _schemas():
    text = open(DOC, encoding="utf-8").read()
    blocks = re.findall(r"<!-- schema: (\S+) -->\s*```json\n(.*?)```", text,
                        re.S)
    out = {name: json.loads(body) for name, body in blocks}
    assert "$defs" in out
    return out


SCHEMAS = _schemas()


def validate(name, doc):
    schema = dict(SCHEMAS[name])
    schema["$defs"] = SCHEMAS["$defs"]
    v = jsonschema.Draft202012Validator(schema)
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "%s: %s" % (name, "; ".join(
        "%s: %s" % ("/".join(map(str, e.path)), e.message)
        for e in errors[:5]))
    if isinstance(doc, dict):
        assert next(iter(doc)) == "schema", "schema must be the first key"


def _image():
    return Image([
        Layer([d("etc"), f("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
               f("etc/shadow", "root:*:1::::::\n", mode=0o600),
               f("big", size=300000, seed=3),
               d("dev"), device("dev/null", "chr", 1, 3),
               symlink("etc/link", "passwd"),
               f("x", "x\n", xattrs={"user.k": b"\x00\x01"}),
               # a Latin-1 name: not UTF-8, so path and path_hex
               f(b"caf\xe9".decode("utf-8", "surrogateescape"), "l1\n"),
               symlink("l1link", b"caf\xe9".decode("utf-8",
                                                  "surrogateescape")),
               f("app/.env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/"
                 "bPxRfiCYzK8XqLkD2v\n")]),
        Layer([f("big", size=1000, seed=4), whiteout("app/.env"),
               f("etc/passwd", "root:x:0:0::/root:/bin/bash\n")]),
    ])


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsonschema")
    out = str(root / "img.tar")
    O.mkimage.write_image(_image(), out, "oci-archive")
    return {"img": out, "cache": str(root / "cache"), "root": root}


def lf_json(w, *args):
    p = O.layerfs(args[0], "--json", "--cache", w["cache"], *args[1:])
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("args", [(), ("-R",), ("-lR",), ("-R", "etc"),
                                  ("dev/null",)])
def test_ls(img, args):
    opts = [a for a in args if a.startswith("-")]
    path = [a for a in args if not a.startswith("-")]
    doc = lf_json(img, "ls", *opts, img["img"], *path)
    assert doc, "nothing listed"
    validate("ls", doc)


@pytest.mark.parametrize("path", ["/", "etc/passwd", "etc/link", "dev/null",
                                  "x", "l1link"])
def test_stat(img, path):
    doc = lf_json(img, "stat", img["img"], path)
    validate("stat", doc)


def test_stat_path_is_absolute(img):
    doc = lf_json(img, "stat", img["img"], "etc/../etc/./shadow")
    assert doc["path"] == "/etc/shadow"
    assert lf_json(img, "stat", img["img"], "/")["path"] == "/"


@pytest.mark.parametrize("args", [(), ("--stat",), ("--from", "0")])
def test_diff(img, args):
    doc = lf_json(img, "diff", *args, img["img"])
    validate("diff", doc)


def test_diff_upper(img, tmp_path):
    up = tmp_path / "up"
    (up / "etc").mkdir(parents=True)
    (up / "etc" / "new").write_text("n\n")
    (up / ".wh.big").write_text("")
    doc = lf_json(img, "diff", img["img"], "--upper", str(up))
    validate("diff", doc)
    assert {c["kind"] for c in doc["changes"]} >= {"A", "D"}


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_commit(img, tmp_path, fmt):
    up = tmp_path / "up"
    up.mkdir()
    (up / "new").write_text("n\n")
    doc = lf_json(img, "commit", "-q", "--format", fmt, "--upper", str(up),
                  img["img"], "-o", str(tmp_path / "out"))
    validate("commit", doc)
    assert doc["layer"] == doc["layer_digest"]
    assert doc["layers"] == doc["layer_count"] == 3


@pytest.mark.parametrize("args", [(), ("--layers", "1"), ("--layers-only",)])
def test_layers(img, args):
    doc = lf_json(img, "layers", *args, img["img"])
    validate("layers", doc)


@pytest.mark.parametrize("args", [(), ("--ci",), ("--ci",
                                                  "--max-wasted-bytes", "1"),
                                  ("--secrets", "all")])
def test_waste(img, args):
    p = O.layerfs("waste", "--json", "--cache", img["cache"], *args,
                  img["img"])
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    validate("waste", doc)
    assert doc["layers"] == lf_json(img, "layers", img["img"])["layers"], \
        "a layer is the same object in waste and layers"
    assert doc["secrets"] and doc["top"], "every part of the schema reached"
    if "--ci" in args:
        assert doc["ci"]["rules"]


def test_version():
    p = O.layerfs("version", "--json")
    assert p.returncode == 0, p.stderr
    validate("version", json.loads(p.stdout))
    assert json.loads(p.stdout)["version"] in O.layerfs("--version").stdout \
        .decode()


@pytest.mark.parametrize("cmd", ["cat", "mount"])
def test_no_json_form(img, cmd, tmp_path):
    """Commands without a JSON form refuse --json (usage error) rather
    than print text a script would take for JSON."""
    args = [img["img"], "etc/passwd"] if cmd == "cat" else [
        img["img"], str(tmp_path)]
    p = O.layerfs(cmd, "--json", "--cache", img["cache"], *args)
    assert p.returncode == 2, p.stderr
    assert b"--json" in p.stderr and p.stdout == b""
    help_ = O.layerfs(cmd, "--help").stdout.decode()
    assert "--json" not in help_


def test_doc_lists_every_json_command():
    """docs/json.md has a schema for every command the README says takes
    --json, and the README names them."""
    text = open(DOC, encoding="utf-8").read()
    first = text.split("\n\n")[1]
    cmds = re.findall(r"`([a-z]+(?: [a-z]+)?)`", first)
    readme = open(os.path.join(os.path.dirname(DOC), "..", "README.md"),
                  encoding="utf-8").read()
    for c in cmds:
        if c in ("cat", "grep", "mount", "umount"):
            continue
        assert c.split()[0] in SCHEMAS or c.replace(" ", "-") in SCHEMAS, c
    assert "docs/json.md" in readme


@pytest.mark.parametrize("sub", ["ls", "du"])
def test_cache(img, sub):
    lf_json(img, "ls", img["img"])      # something in the cache
    doc = lf_json(img, "cache", sub)
    validate("cache-" + sub, doc)
    if sub == "ls":
        assert doc["items"]
