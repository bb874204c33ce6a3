# SPDX-License-Identifier: MIT
"""The secret rules of `layerfs waste` (include/layerfs/secrets.h) against
a labelled set of secrets and look-alikes (fixtures/specs_secrets.py).

The labels are written by hand from the rules trivy and gitleaks ship; the
set is generated (seeded), shipped in layer 1 and deleted in layer 2, so
the default `waste` (hidden files) judges every file.  Each label is
asserted; the precision/recall table is printed (pytest -s, or
`specs_secrets.py table build/layerfs`).  Clean images (a Debian-like
python tree, every fixture of specs.py but the demo's deleted key) give no
finding at all, with visible files judged too.
"""

import json
import os
import sys

import pytest

import oracle as O

sys.path.insert(0, O.FIXTURES)
import mkimage as M          # noqa: E402
import specs_secrets as SS   # noqa: E402
from mkimage import Image, file, symlink, whiteout  # noqa: E402,A004
from specs import L          # noqa: E402

SET = "/set/"


@pytest.fixture(scope="module")
def simages(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("secret-images"))
    made = {}

    def get(name, image=None):
        if name not in made:
            made[name] = M.write_image(image or SS.SECRETS_SPECS[name],
                                       os.path.join(root, name), "oci",
                                       key="secrets:" + name)
        return made[name]
    return get


def waste(img, *args, cache):
    return O.layerfs("waste", img, "--cache", cache, *args, timeout=300)


def secrets(img, *args, cache):
    p = waste(img, "--json", *args, cache=cache)
    assert p.returncode == 0, (p.returncode, p.stderr)
    return json.loads(p.stdout)["secrets"]


def test_labelled_set(simages, cache_dir):
    found = secrets(simages("secrets_set"), cache=cache_dir)
    print("\n" + SS.table(found))
    got = {f["path"]: f for f in found}
    msgs = []
    for path, _, rule in SS.LABELLED:
        f = got.pop(SET + path, None)
        if (f and f["rule"]) != rule:
            msgs.append("%s: expected %s, got %s" % (
                path, rule, f and (f["rule"], f["excerpt"])))
        elif f and (f["layer"], f["hidden_by"]) != (1, 2):
            msgs.append("%s: layers %r" % (path, f))
    assert not got, "findings outside the set: %r" % got
    assert not msgs, "\n".join(msgs)
    assert len(SS.LABELLED) >= 40 and \
        sum(1 for x in SS.LABELLED if x[2]) >= 30


def test_every_rule_labelled():
    """Each rule of secrets.h has secrets in the set."""
    rules = {r for _, _, r in SS.LABELLED if r}
    src = open(os.path.join(O.REPO, "src", "ops", "secrets.c")).read()
    for r in rules:
        assert '"%s"' % r in src, r
    assert len(rules) >= 24, rules


def test_findings_fields(simages, cache_dir):
    """The old fields stay; rule and excerpt are added; the excerpt shows
    at most 4 characters of the secret, then ****."""
    found = secrets(simages("secrets_set"), cache=cache_dir)
    for f in found:
        assert {"path", "layer", "hidden_by", "size", "reason", "rule",
                "excerpt"} <= set(f), f
        assert f["reason"] and f["excerpt"].endswith("****"), f
        assert len(f["excerpt"]) < 64, f
    ex = {f["path"][len(SET):]: f["excerpt"] for f in found}
    tok = SS.rand(30, 36)
    assert ex["ci/gh-token.txt"] == "ghp_" + tok[:4] + "****"
    aws = SS.aws_secret(21)
    assert ex["app/deploy.sh"] == "AWS_SECRET_ACCESS_KEY=" + aws[:4] + "****"
    assert ex["app/settings.py"] == SS.aws_id(20)[:8] + "****"
    # a 14-character password shows 3 characters (a quarter at most)
    assert ex["home/u/.pypirc"] == "password = " + SS.rand(53, 14)[:3] + \
        "****"
    assert ex["keys/rsa.pem"].startswith("RSA PRIVATE KEY: ")
    # the whole secret never appears
    for path, content, rule in SS.LABELLED:
        if rule and isinstance(content, str) and path in ex:
            assert ex[path][:-4] != content.strip(), (path, ex)


def test_text_output(simages, cache_dir):
    p = waste(simages("secrets_set"), cache=cache_dir)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    tok = SS.rand(30, 36)
    line = [x for x in out.splitlines() if "/set/ci/gh-token.txt" in x]
    assert line == ["  /set/ci/gh-token.txt: shipped in layer 1, hidden by "
                    "layer 2 (it holds a GitHub token) github-pat ghp_%s****"
                    % tok[:4]], out
    assert tok not in out and "hidden but shipped" in out


def test_visible_files(simages, cache_dir):
    """--secrets all judges the final view's files too (hidden_by null);
    the default only hidden ones, as before; none judges nothing."""
    img = simages("secrets_set")
    assert secrets(img, "--layers", "1", cache=cache_dir) == []
    vis = secrets(img, "--layers", "1", "--secrets", "all", cache=cache_dir)
    hid = secrets(img, cache=cache_dir)
    assert [(f["path"], f["rule"], f["excerpt"]) for f in vis] == \
        [(f["path"], f["rule"], f["excerpt"]) for f in hid]
    assert {f["hidden_by"] for f in vis} == {None}
    assert secrets(img, "--secrets", "none", cache=cache_dir) == []
    p = waste(img, "--secrets", "some", cache=cache_dir)
    assert p.returncode == 2 and b"--secrets" in p.stderr


def test_scan_limit(simages, cache_dir):
    """The first MiB of each file is scanned, not one byte more."""
    found = secrets(simages("secrets_limit"), cache=cache_dir)
    assert [(f["path"], f["rule"]) for f in found] == \
        [("/log/inside.log", "private-key")]
    assert found[0]["size"] > 1 << 20


def test_clean_debian_python(simages, cache_dir):
    img = simages("debian_python")
    for args in ((), ("--secrets", "all"), ("--layers", "1", "--secrets",
                                             "all")):
        assert secrets(img, *args, cache=cache_dir) == [], args


CLEAN = [n for n in O.specs.SPECS if n != "demo"]


@pytest.mark.parametrize("name", CLEAN)
def test_clean_suite_images(name, tmp_path, cache_dir):
    img = O.generate(name, "oci", str(tmp_path))
    assert secrets(img, "--secrets", "all", cache=cache_dir) == []


def test_demo_found_by_content(tmp_path, cache_dir):
    img = O.generate("demo", "oci", str(tmp_path))
    found = secrets(img, cache=cache_dir)
    assert [(f["path"], f["rule"], f["layer"], f["hidden_by"])
            for f in found] == [("/app/secret.key", "private-key", 2, 3)]


def test_symlinks_not_followed(simages, cache_dir, tmp_path):
    """Names apply to regular files only: a symlink called .env or id_rsa
    pointing at the host is never read."""
    img = simages("links", Image([
        L(symlink("a/.env", "/etc/shadow"), symlink("a/id_rsa", "../../../x"),
          file("a/ok", "fine\n")),
        L(whiteout("a")),
    ]))
    assert secrets(img, "--secrets", "all", cache=cache_dir) == []


HOSTILE = {
    # many candidates that overlap: each must cost little
    "akia": "AKIA" * (1 << 18),
    "begin": "-----BEGIN RSA PRIVATE KEY-----\n" * (1 << 15),
    "begin-end": ("-----BEGIN RSA PRIVATE KEY-----\n" * (1 << 15)) +
    "-----END RSA PRIVATE KEY-----\n",
    "glpat": "glpat-" * (1 << 17),
    "pypi": "pypi-AgEIcHlwaS5vcmc" * (1 << 15),
    "secret": "aws_secret" * (1 << 17),
    "auth": "_authToken=" * (1 << 16),
    "xox": "xoxb-" * (1 << 18),
    "slack": "hooks.slack.com/services/T" * (1 << 15),
    "url": "://a:b" * (1 << 17),
    "json": '{"auths": ' + '"auth": "' * (1 << 17),
}


def test_hostile_contents(simages, cache_dir):
    """Pathological 1 MiB files: the scan ends (under the timeout), and
    reports only what the rules say."""
    img = simages("hostile", Image([
        L(*[file("h/" + k, v) for k, v in HOSTILE.items()],
          file("h/.git-credentials", "://a:b" * (1 << 17))),
        L(whiteout("h")),
    ]))
    p = waste(img, "--json", cache=cache_dir)
    assert p.returncode == 0, p.stderr
    found = json.loads(p.stdout)["secrets"]
    # "_authToken=_authToken=..." does assign a value; the credential
    # store is reported by its name only
    assert [(f["path"], f["rule"]) for f in found] == \
        [("/h/auth", "npmrc-auth-token"),
         ("/h/.git-credentials", "git-credentials-file")]
