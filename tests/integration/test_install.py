"""Installed like a real package: ninja install's layout, man pages that
render and cover every option, shell completion that completes.

The build directory is the one of the binary under test ($LAYERFS); it is
installed into a temporary DESTDIR.  The man pages' option lists are
checked against each command's own --help, so a new option without a man
page entry fails here.
"""
import os
import re
import shutil
import subprocess

import pytest

import fusehelpers as fh
import oracle as O

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
MAN = os.path.join(REPO, "docs", "man")
COMP = os.path.join(REPO, "completions")


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def commands():
    out = O.layerfs("--help").stdout.decode()
    cmds = re.findall(r"^  ([a-z]+)  ", out, re.M)
    assert "mount" in cmds and "cache" in cmds, out
    return cmds + ["version"]


def options(cmd):
    """The options `layerfs CMD --help` lists."""
    out = O.layerfs(cmd, "--help").stdout.decode()
    return set(re.findall(r"(?:^|[ ,])(--[A-Za-z][A-Za-z-]*)", out, re.M))


def page(name):
    with open(os.path.join(MAN, name + ".1.scd"), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    build = os.path.dirname(os.path.abspath(O.LAYERFS))
    if not os.path.exists(os.path.join(build, "meson-info")):
        pytest.skip("%s is not a meson build directory" % build)
    dest = str(tmp_path_factory.mktemp("destdir"))
    p = run(["meson", "install", "-C", build, "--destdir", dest,
             "--no-rebuild", "--quiet"], timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    intro = run(["meson", "introspect", build, "--buildoptions"])
    import json
    opts = {o["name"]: o["value"] for o in json.loads(intro.stdout)}
    return dest + opts["prefix"], opts


def test_every_command_has_a_page():
    missing = [c for c in commands()
               if not os.path.exists(os.path.join(MAN, "layerfs-%s.1.scd"
                                                  % c))]
    assert not missing, "no man page for: %s" % missing


def test_pages_cover_every_option():
    common = page("layerfs")
    missing = {}
    for c in commands():
        text = page("layerfs-" + c) + common
        # an option is documented as *--name* (scdoc bold)
        lost = sorted(o for o in options(c)
                      if not re.search(r"\*%s(?![A-Za-z-])" % re.escape(o),
                                       text))
        if lost:
            missing[c] = lost
    assert not missing, "options missing from the man pages: %s" % missing


def test_install_layout(installed):
    prefix, opts = installed
    b = os.path.join(prefix, "bin", "layerfs")
    p = run([b, "--version"])
    assert p.returncode == 0 and p.stdout.startswith(b"layerfs "), p
    man1 = os.path.join(prefix, opts["mandir"], "man1")
    if shutil.which("scdoc") is None:
        fh.skip_or_fail("scdoc not installed: no man pages built")
    for c in ["layerfs"] + ["layerfs-" + c for c in commands()]:
        assert os.path.exists(os.path.join(man1, c + ".1")), c
    bash = os.path.join(prefix, "share", "bash-completion", "completions",
                        "layerfs")
    zsh = os.path.join(prefix, "share", "zsh", "site-functions", "_layerfs")
    assert os.path.exists(bash) and os.path.exists(zsh)
    assert os.path.exists(os.path.join(prefix, "share", "doc", "layerfs",
                                       "LICENSE"))


def test_man_pages_render(installed):
    prefix, opts = installed
    if shutil.which("man") is None or shutil.which("scdoc") is None:
        fh.skip_or_fail("man (man-db) or scdoc not installed")
    man1 = os.path.join(prefix, opts["mandir"], "man1")
    for f in sorted(os.listdir(man1)):
        p = run(["man", "-l", os.path.join(man1, f)],
                env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0",
                         MANPAGER="cat", PAGER="cat"))
        assert p.returncode == 0, (f, p.stderr)
        assert p.stderr == b"", (f, p.stderr)
        out = re.sub(r".\x08", "", p.stdout.decode())  # overstrike bold
        assert "NAME" in out and "SYNOPSIS" in out, f


def bash_complete(words, cword):
    if shutil.which("bash") is None:
        fh.skip_or_fail("bash not installed")
    script = ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _layerfs; "
              "printf '%%s\\n' \"${COMPREPLY[@]}\"" % (
                  os.path.join(COMP, "layerfs.bash"),
                  " ".join("'%s'" % w for w in [O.LAYERFS] + words[1:]),
                  cword))
    p = run(["bash", "-c", script])
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().split()


def test_bash_completes_commands_and_options():
    assert bash_complete(["layerfs", "wa"], 1) == ["waste"]
    assert set(bash_complete(["layerfs", ""], 1)) >= set(commands())
    got = set(bash_complete(["layerfs", "waste", "--ci"], 2))
    assert got == {"--ci", "--ci-config"}, got
    # every option of every command, as --help lists them
    for c in commands():
        got = {w.split("=")[0]
               for w in bash_complete(["layerfs", c, "--"], 2)}
        want = {o for o in options(c)}
        assert want <= got, (c, want - got)
    assert bash_complete(["layerfs", "cache", "p"], 2) == ["prune"]
    assert bash_complete(["layerfs", "commit", "--format", "d"], 3) == [
        "docker-archive"]
    assert "docker://" in bash_complete(["layerfs", "ls", "dock"], 2)


def test_zsh_completion_parses():
    if shutil.which("zsh") is None:
        fh.skip_or_fail("zsh not installed")
    p = run(["zsh", "-n", os.path.join(COMP, "_layerfs")])
    assert p.returncode == 0, p.stderr
    # the option pipeline it runs gives the same words as bash's
    text = open(os.path.join(COMP, "_layerfs")).read()
    assert "--help 2>/dev/null" in text


def test_demo_installs_only_what_it_needs():
    """scripts/demo asks scripts/deps for the build set alone: no test
    oracle, analyser or man tool."""
    p = run(["sh", "-c", ". scripts/deps && echo $LAYERFS_BUILD_DEPS && "
             "echo $LAYERFS_DEPS"], cwd=REPO)
    build, full = p.stdout.decode().splitlines()
    for tool in ("umoci", "skopeo", "podman", "clang", "cppcheck",
                 "python3-pytest", "scdoc"):
        assert tool not in build.split(), tool
        assert tool in full.split(), tool
    demo = open(os.path.join(REPO, "scripts", "demo")).read()
    assert 'lf_install_deps "$LAYERFS_BUILD_DEPS"' in demo
