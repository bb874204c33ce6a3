# SPDX-License-Identifier: MIT
"""`layerfs waste --ci` against dive's own CI rules, test image and files.

The image is dive's .data/test-docker-image.tar rebuilt entry for entry
(tests/fixtures/diveci.py).  Expected values come from two places that
must agree:
  * dive's own test (image_archive_analysis_test.go): efficiency
    0.9844212134184309, wasted 32025 bytes, user size 66237, ...;
  * dive's algorithm (dive/filetree/efficiency.go, dive/image/analysis.go)
    re-run here over the generated archive's layer tars with Python's
    tarfile: one tree per layer, its leaves visited; a whiteout counts as
    the path it deletes, with the sizes under it in the stack below when
    that was a directory, else 0; efficiency = sum of each path's smallest
    occurrence / sum of all occurrences; wasted = the occurrences of paths
    seen 2+ times; user size = every layer's file bytes but the first's.
The verdicts are dive's rules (cmd/dive/cli/internal/command/ci/rules.go
and v0.12's evaluator output) written here in Python, with
humanize.ParseBytes for the sizes, applied to those numbers; dive's
.dive-ci files and evaluator test cases are in the fixture module.
"""

import json
import os
import stat
import sys
import tarfile

import pytest

import oracle as O

sys.path.insert(0, O.FIXTURES)
import diveci as D           # noqa: E402
import mkimage as M          # noqa: E402

NAMES = ("lowestEfficiency", "highestWastedBytes", "highestUserWastedPercent")


# ---------------------------------------------------------------------------
# dive, in Python
# ---------------------------------------------------------------------------

def layer_tars(archive):
    """The layer tars of a docker-archive, bottom first (manifest order)."""
    with tarfile.open(archive) as outer:
        man = json.load(outer.extractfile("manifest.json"))[0]
        return [outer.extractfile(p).read() for p in man["Layers"]]


def layer_tree(data):
    """{path: (size, kind)} of one layer tar; kind: dir, file, wh."""
    import io
    tree = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            path = "/" + m.name.strip("/").removeprefix("./")
            d, base = os.path.split(path)
            if base.startswith(".wh."):
                if base != ".wh..wh..opq":
                    tree[os.path.join(d, base[4:])] = (0, "wh")
                continue
            size = m.size if m.isreg() else 0
            tree[path] = (size, "dir" if m.isdir() else "file")
    # parents a layer names only implicitly
    for p in list(tree):
        while p != "/":
            p = os.path.dirname(p)
            tree.setdefault(p, (0, "dir"))
    tree.pop("/", None)
    return tree


def dive_analysis(archive):
    trees = [layer_tree(d) for d in layer_tars(archive)]
    occ = {}                       # path -> [sizes]
    stacked = {}                   # path -> (size, kind) of layers below
    for tree in trees:
        parents = {os.path.dirname(p) for p in tree}
        for path, (size, kind) in tree.items():
            if path in parents:
                continue           # not a leaf
            if kind == "wh":
                below = stacked.get(path)
                size = 0
                if below and below[1] == "dir":
                    size = sum(s for p, (s, k) in stacked.items()
                               if p.startswith(path + "/"))
            occ.setdefault(path, []).append(size)
        for path, (size, kind) in sorted(tree.items()):
            if kind == "wh":
                for p in [p for p in stacked
                          if p == path or p.startswith(path + "/")]:
                    del stacked[p]
            else:
                stacked[path] = (size, kind)
    mins = sum(min(v) for v in occ.values())
    total = sum(sum(v) for v in occ.values())
    wasted = sum(sum(v) for v in occ.values() if len(v) > 1)
    sizes = [sum(s for s, k in t.values() if k == "file") for t in trees]
    user = sum(sizes[1:])
    return {"efficiency": mins / total if total else 1.0,
            "size": sum(sizes), "user_size": user, "wasted_bytes": wasted,
            "wasted_percent": wasted / user}


UNITS = {"b": 1, "": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024}
for _i, _u in enumerate("mgtpe", 2):
    UNITS[_u] = UNITS[_u + "b"] = 1000 ** _i
    UNITS[_u + "i"] = UNITS[_u + "ib"] = 1024 ** _i


def parse_bytes(s):
    """go-humanize ParseBytes; None when it errors."""
    n = 0
    while n < len(s) and (s[n].isdigit() or s[n] in ".,"):
        n += 1
    try:
        f = float(s[:n].replace(",", ""))
    except ValueError:
        return None
    unit = s[n:].strip().lower()
    return int(f * UNITS[unit]) if unit in UNITS else None


def disabled(v):
    return v.strip().lower() in ("", "disabled", "off", "false")


def dive_verdicts(values, a):
    """[(name, status, message)] in dive's (name) order, for rule values
    (efficiency, wastedBytes, wastedPercent) as text."""
    eff, wb, wp = values
    out = {}
    if disabled(eff):
        out[NAMES[0]] = ("SKIP", "rule disabled")
    elif float(eff) > a["efficiency"]:
        out[NAMES[0]] = ("FAIL", "image efficiency is too low (efficiency="
                         "%r < threshold=%r)" % (a["efficiency"], float(eff)))
    else:
        out[NAMES[0]] = ("PASS", "")
    if disabled(wb):
        out[NAMES[1]] = ("SKIP", "rule disabled")
    elif a["wasted_bytes"] > parse_bytes(wb):
        out[NAMES[1]] = ("FAIL", "too many bytes wasted (wasted-bytes=%d > "
                         "threshold=%d)" % (a["wasted_bytes"],
                                            parse_bytes(wb)))
    else:
        out[NAMES[1]] = ("PASS", "")
    if disabled(wp):
        out[NAMES[2]] = ("SKIP", "rule disabled")
    elif float(wp) < a["wasted_percent"]:
        out[NAMES[2]] = ("FAIL", "too many bytes wasted, relative to the "
                         "user bytes added (%%-user-wasted-bytes=%r > "
                         "threshold=%r)" % (a["wasted_percent"], float(wp)))
    else:
        out[NAMES[2]] = ("PASS", "")
    return [(n,) + out[n] for n in sorted(out)]


def dive_report(verdicts):
    lines = ["Results:"]
    for name, st, msg in verdicts:
        lines.append("  %s: %s%s" % (st, name, ": " + msg if msg else ""))
    n = {k: sum(1 for v in verdicts if v[1] == k)
         for k in ("PASS", "FAIL", "SKIP")}
    lines.append("Result:%s [Total:3] [Passed:%d] [Failed:%d] [Warn:0] "
                 "[Skipped:%d]" % ("FAIL" if n["FAIL"] else "PASS",
                                   n["PASS"], n["FAIL"], n["SKIP"]))
    return lines


def ci_file(values):
    return "rules:\n" + "".join("  %s: %s\n" % kv
                                for kv in zip(NAMES, values))


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if not O.have_layerfs():
        pytest.skip("layerfs not built")
    d = tmp_path_factory.mktemp("diveci")
    out = str(d / "dive-test.tar")
    M.write_image(D.DIVE_TEST_IMAGE, out, "docker-archive")
    return out


@pytest.fixture(scope="module")
def analysis(image):
    return dive_analysis(image)


@pytest.fixture
def run(image, tmp_path):
    cache = tmp_path / "cache"
    work = tmp_path / "cwd"
    work.mkdir()

    def go(*args, cwd=work, img=image):
        return O.layerfs("waste", "-q", img, "--cache", cache, *args,
                         cwd=str(cwd), timeout=60)
    go.cwd = work
    return go


def report_of(stdout):
    lines = stdout.decode().splitlines()
    return lines[lines.index("Results:"):]


# ---------------------------------------------------------------------------
# the numbers
# ---------------------------------------------------------------------------

def test_model_gives_dives_numbers(analysis):
    """dive's algorithm over the rebuilt tar == dive's test expectations:
    the image is dive's, as far as dive can tell."""
    assert analysis == D.DIVE_EXPECT


@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_layerfs_gives_dives_numbers(fmt, run, tmp_path):
    img = str(tmp_path / ("img." + fmt))
    M.write_image(D.DIVE_TEST_IMAGE, img, fmt)
    p = run("--json", img=img)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    got = {"efficiency": d["efficiency"], "size": d["total_size"],
           "user_size": d["user_size"], "wasted_bytes": d["wasted_bytes"],
           "wasted_percent": d["wasted_user_percent"]}
    # ratios are printed with 10 significant digits
    assert got == pytest.approx(D.DIVE_EXPECT, rel=1e-9)


# ---------------------------------------------------------------------------
# dive's .dive-ci files and evaluator cases
# ---------------------------------------------------------------------------

DIVE_FILES = {"data": (D.DIVE_CI_DATA, ("0.95", "20Mb", "0.5")),
              "default-ci-config": (D.DIVE_CI_DEFAULT,
                                    ("0.96", "19Mb", "0.6")),
              "legacy": (D.DIVE_CI_LEGACY, ("0.95", "20MB", "0.20"))}


@pytest.mark.parametrize("name", sorted(DIVE_FILES))
def test_dive_ci_file_in_cwd(name, run, analysis):
    text, values = DIVE_FILES[name]
    (run.cwd / ".dive-ci").write_text(text)
    p = run("--ci")
    want = dive_verdicts(values, analysis)
    assert report_of(p.stdout) == dive_report(want)
    assert "Using CI config: .dive-ci" in p.stdout.decode()
    fails = any(v[1] == "FAIL" for v in want)
    assert p.returncode == (1 if fails else 0), p.stderr
    # the same file named with --ci-config, from elsewhere
    other = run.cwd / "elsewhere"
    other.mkdir()
    p2 = run("--ci-config", str(run.cwd / ".dive-ci"), cwd=other)
    assert report_of(p2.stdout) == report_of(p.stdout)
    assert p2.returncode == p.returncode
    if name == "data":      # dive's plugin rule: reported, then ignored
        assert b".dive-ci:15: unknown rule 'plugin1/rule1'" in p.stderr


def test_without_file_dive_defaults(run, analysis):
    p = run("--ci")
    want = dive_verdicts(("0.9", "disabled", "0.1"), analysis)
    assert report_of(p.stdout) == dive_report(want)
    assert "Using default CI config" in p.stdout.decode()
    assert p.returncode == 1          # 0.48 user-wasted > 0.1


def test_no_ci_ignores_file(run):
    (run.cwd / ".dive-ci").write_text("rules:\n  lowestEfficiency: 1\n")
    p = run()
    assert p.returncode == 0 and b"Results:" not in p.stdout


@pytest.mark.parametrize("case", sorted(D.EVALUATOR_CASES))
def test_dive_evaluator_cases(case, run, analysis):
    values, verdicts = D.EVALUATOR_CASES[case]
    want = dive_verdicts(values, analysis)
    # dive's expectation, and the Python rules, agree
    assert [v[1] for v in want] == [verdicts[NAMES.index(v[0])]
                                    for v in want]
    rc = 1 if "FAIL" in verdicts else 0
    # dive's own option names
    args = sum((["--" + n, v] for n, v in zip(NAMES, values)), [])
    p = run("--ci", *args)
    assert (p.returncode, report_of(p.stdout)) == (rc, dive_report(want))
    # layerfs's names
    p = run("--ci", "--min-efficiency", values[0], "--max-wasted-bytes",
            values[1], "--max-wasted-percent", values[2])
    assert (p.returncode, report_of(p.stdout)) == (rc, dive_report(want))
    # in a file
    (run.cwd / "ci.yaml").write_text(ci_file(values))
    p = run("--ci-config", "ci.yaml")
    assert (p.returncode, report_of(p.stdout)) == (rc, dive_report(want))


OPTS = ("--min-efficiency", "--max-wasted-bytes", "--max-wasted-percent")


@pytest.mark.parametrize("case", sorted(D.MISCONFIG_CASES))
def test_dive_misconfigurations(case, run):
    values = D.MISCONFIG_CASES[case]
    bad = [i for i, v in enumerate(values)
           if (parse_bytes(v) is None if i == 1 else
               not (v.replace(".", "", 1).isdigit() and float(v) <= 1))]
    assert len(bad) == 1
    i = bad[0]
    p = run("--ci", OPTS[i], values[i])
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert OPTS[i].encode() in p.stderr and values[i].encode() in p.stderr
    assert p.stdout == b""
    (run.cwd / ".dive-ci").write_text(ci_file(values))
    p = run("--ci")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert (".dive-ci:%d: %s" % (i + 2, NAMES[i])).encode() in p.stderr
    assert p.stdout == b""


def test_percent_not_ratio_refused(run):
    p = run("--ci", "--min-efficiency", "95")
    assert p.returncode == 2
    err = p.stderr.decode()
    assert "--min-efficiency" in err and "0..1" in err


def test_command_line_overrides_file(run, analysis):
    (run.cwd / ".dive-ci").write_text(D.DIVE_CI_DATA)
    p = run("--ci", "--max-wasted-percent", "0.1")
    want = dive_verdicts(("0.95", "20Mb", "0.1"), analysis)
    assert report_of(p.stdout) == dive_report(want)
    assert p.returncode == 1
    p = run("--ci", "--lowestEfficiency", "off")
    want = dive_verdicts(("off", "20Mb", "0.5"), analysis)
    assert (p.returncode, report_of(p.stdout)) == (0, dive_report(want))


SIZES = ["32025", "32024", "32.025kB", "32.024 KB", "31.28KiB", "31.27 kib",
         "0.03MiB", "1MB", "1,000,000", "0.0000321 GB", "32025b", "32 k",
         "0.00003gi", "1e5", "5 MBs", "", "MB", "-1"]


@pytest.mark.parametrize("size", SIZES)
def test_wasted_bytes_units(size, run, analysis):
    """Sizes as humanize.ParseBytes reads them, either side of 32025."""
    n = parse_bytes(size)
    p = run("--ci", "--max-wasted-bytes", size, "--min-efficiency", "off",
            "--max-wasted-percent", "off")
    if n is None:
        assert p.returncode == 2 and b"--max-wasted-bytes" in p.stderr
        return
    want = dive_verdicts(("off", size, "off"), analysis)
    assert report_of(p.stdout) == dive_report(want)
    assert p.returncode == (1 if analysis["wasted_bytes"] > n else 0)


# ---------------------------------------------------------------------------
# the YAML subset
# ---------------------------------------------------------------------------

GOOD_YAML = {
    "quoted": ("rules:\n  lowestEfficiency: '0.95'\n"
               "  highestWastedBytes: \"20 MB\"   # comment\n"
               "  highestUserWastedPercent: 0.5\n", ("0.95", "20 MB", "0.5")),
    "crlf-snake": ("# dive.yaml style keys\r\nci: true\r\nrules:\r\n"
                   "    lowest-efficiency: 0.9\r\n"
                   "    highest-wasted-bytes: disabled\r\n"
                   "    highest-user-wasted-percent: 'off'\r\n",
                   ("0.9", "disabled", "off")),
    "partial": ("rules:\n  highestWastedBytes: 1B\n",
                ("0.9", "1B", "0.1")),
    "other-keys": ("plugins:\n  - a\n  - b: {x: 1}\nrules:\n"
                   "  lowestEfficiency: 0.99 # a # b\n",
                   ("0.99", "disabled", "0.1")),
}


@pytest.mark.parametrize("name", sorted(GOOD_YAML))
def test_yaml_accepted(name, run, analysis):
    text, values = GOOD_YAML[name]
    (run.cwd / ".dive-ci").write_bytes(text.encode())
    p = run("--ci")
    want = dive_verdicts(values, analysis)
    assert report_of(p.stdout) == dive_report(want), p.stderr


BAD_YAML = {
    "tab": ("rules:\n\tlowestEfficiency: 0.9\n", 2),
    "list": ("rules:\n  - lowestEfficiency: 0.9\n", 2),
    "flow": ("rules: {lowestEfficiency: 0.9}\n", 1),
    "flow-value": ("rules:\n  lowestEfficiency: [0.9]\n", 2),
    "quote": ("rules:\n  lowestEfficiency: '0.9\n", 2),
    "twice": ("rules:\n  lowestEfficiency: 0.9\n  lowestEfficiency: 0.8\n",
              3),
    "empty": ("rules:\n  lowestEfficiency:\n", 2),
    "indent": ("rules:\n  lowestEfficiency: 0.9\n    x: 1\n", 3),
    "no-colon": ("rules:\n  lowestEfficiency 0.9\n", 2),
    "orphan": ("  lowestEfficiency: 0.9\n", 1),
    "range": ("rules:\n\n  highestUserWastedPercent: 10\n", 3),
    "size": ("rules:\n  highestWastedBytes: 20 MeB\n", 2),
}


@pytest.mark.parametrize("name", sorted(BAD_YAML))
def test_yaml_refused_with_line(name, run):
    text, line = BAD_YAML[name]
    (run.cwd / "bad.yml").write_text(text)
    p = run("--ci-config", "bad.yml")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert ("layerfs: bad.yml:%d: " % line).encode() in p.stderr, p.stderr
    assert p.stdout == b""


def test_missing_named_file(run):
    p = run("--ci-config", "nope.yml")
    assert p.returncode == 2 and b"nope.yml" in p.stderr


def test_fifo_and_dir_refused(run):
    fifo = run.cwd / "fifo"
    os.mkfifo(fifo)
    link = run.cwd / "link"
    link.symlink_to("fifo")
    # a writer that never writes: a reader that blocks would hang
    for name in ("fifo", "link", "."):
        p = run("--ci-config", name)
        assert p.returncode == 2, (name, p.stderr)
        assert b"not a regular file" in p.stderr
    (run.cwd / ".dive-ci").mkdir()
    p = run("--ci")
    assert p.returncode == 2 and b".dive-ci" in p.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_big_file_refused(run):
    (run.cwd / "big.yml").write_text("#" * 70000 + "\nrules:\n")
    p = run("--ci-config", "big.yml")
    assert p.returncode == 2 and b"big.yml" in p.stderr


def test_json_lists_every_rule(run, analysis):
    p = run("--ci", "--json")
    assert p.returncode == 1
    ci = json.loads(p.stdout)["ci"]
    want = {n: st.lower() for n, st, _ in
            dive_verdicts(("0.9", "disabled", "0.1"), analysis)}
    assert {r["name"]: r["status"] for r in ci["rules"]} == want
    skipped = [r for r in ci["rules"] if r["status"] == "skip"]
    assert [r["limit"] for r in skipped] == [None]
    assert ci["pass"] is False

