"""
The manual pages: mandoc -Tlint -Wwarning is silent on each, each has
its FILES and EXAMPLES sections, bridged.conf(5) names every keyword of
the grammar (parse.y's keyword table), and bridgectl(8) every command
of bridgectl's token tables.
"""

import os
import re
import shutil
import subprocess

from harness import TOP, Skip

MAN = os.path.join(TOP, "man")
PAGES = ("bridged.8", "bridged.conf.5", "bridgectl.8")
# mdoc macros that may stand between the words of a command.
MACRO = re.compile(r"^(?:[A-Z][a-z]|[A-Z][a-z][a-z]|%[A-Z])$")


def page(name):
    p = os.path.join(MAN, name)
    if not os.path.exists(p):
        raise AssertionError("man/%s does not exist" % name)
    return p


def lint(path):
    if shutil.which("mandoc") is None:
        raise Skip("mandoc is not installed (make deps installs it)")
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", path],
                       capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out[:1500]


def macro_lines(path):
    """The mdoc request lines of a page, comments left out."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".") and not line.startswith(".\\\""):
                out.append(line)
    return out


def words(line):
    """The arguments of a macro line, macro names and quotes removed."""
    out = []
    for w in line[1:].replace('"', " ").split():
        if MACRO.match(w):
            continue
        out.append(w.rstrip(",.;:"))
    return out


def sections(path):
    return [l.split(None, 1)[1].strip('"') for l in macro_lines(path)
            if l.startswith(".Sh ")]


def test_lint_bridged_8():
    lint(page("bridged.8"))


def test_lint_bridged_conf_5():
    lint(page("bridged.conf.5"))


def test_lint_bridgectl_8():
    lint(page("bridgectl.8"))


def test_lint_other_pages():
    extra = [p for p in sorted(os.listdir(MAN))
             if re.search(r"\.[1-9]$", p) and p not in PAGES]
    for p in extra:
        lint(os.path.join(MAN, p))


def test_sections():
    missing = []
    for name in PAGES:
        have = sections(page(name))
        for s in ("NAME", "DESCRIPTION", "FILES", "EXAMPLES", "SEE ALSO"):
            if s not in have:
                missing.append("%s: %s" % (name, s))
    assert not missing, "missing sections: " + ", ".join(missing)


def grammar_keywords():
    """The words of parse.y's keyword table."""
    with open(os.path.join(TOP, "bridged", "parse.y")) as f:
        text = f.read()
    m = re.search(r"keywords\[\]\s*=\s*\{(.*?)\n\s*\};", text, re.S)
    assert m, "no keyword table in parse.y"
    kws = re.findall(r'\{\s*"([^"]+)"\s*,\s*[A-Z_]+\s*\}', m.group(1))
    assert len(kws) >= 10, kws
    return kws


def test_conf_keywords():
    """Every keyword of the grammar is an argument of some request line
    of bridged.conf(5): named in a macro, not only in prose."""
    used = set()
    for line in macro_lines(page("bridged.conf.5")):
        used.update(words(line))
    missing = [k for k in grammar_keywords() if k not in used]
    assert not missing, "bridged.conf.5 lacks: " + " ".join(missing)


def ctl_commands():
    """Every command of bridgectl/parser.c's token tables, as word lists,
    and `connect`, which bridgectl.c dispatches itself."""
    with open(os.path.join(TOP, "bridgectl", "parser.c")) as f:
        text = f.read()
    tables = {}
    for name, body in re.findall(
            r"static const struct token (t_\w+)\[\] = \{(.*?)\n\};", text,
            re.S):
        rows = re.findall(r"\{\s*(\w+),\s*\"([^\"]*)\",\s*\w+,\s*(\w+)\s*\}",
                          body)
        tables[name] = rows
    assert "t_main" in tables, "no t_main in parser.c"
    out = []

    def walk(table, path, depth):
        for kind, word, nxt in tables.get(table, []):
            if kind != "KEYWORD":
                continue
            p = path + [word]
            subs = [r for r in tables.get(nxt, []) if r[0] == "KEYWORD"]
            if subs and depth < 4:
                walk(nxt, p, depth + 1)
            else:
                out.append(p)
    walk("t_main", [], 0)
    with open(os.path.join(TOP, "bridgectl", "bridgectl.c")) as f:
        if '"connect"' in f.read():
            out.append(["connect"])
    assert len(out) >= 5, out
    return out


def slots(ws):
    """Words as positions, `a | b` alternatives sharing one position."""
    out, alt = [], False
    for w in ws:
        if w == "|":
            alt = True
        elif alt and out:
            out[-1].add(w)
            alt = False
        else:
            out.append({w})
            alt = False
    return out


def says(pos, cmd):
    for i in range(len(pos) - len(cmd) + 1):
        if all(cmd[j] in pos[i + j] for j in range(len(cmd))):
            return True
    return False


def test_ctl_commands():
    """Every bridgectl command appears, its words in order, on one
    request line of bridgectl(8) (`log verbose | brief` names both)."""
    lines = [slots(words(l)) for l in macro_lines(page("bridgectl.8"))]
    missing = [" ".join(c) for c in ctl_commands()
               if not any(says(pos, c) for pos in lines)]
    assert not missing, "bridgectl.8 lacks: " + ", ".join(missing)


def test_synopsis_matches_usage():
    """bridged(8)'s SYNOPSIS names the flags of bridged's usage()."""
    with open(os.path.join(TOP, "bridged", "main.c")) as f:
        m = re.search(r'usage: %s ([^\\"]*)', f.read())
    assert m, "no usage line in bridged/main.c"
    flags = set(re.findall(r"-([A-Za-z]+)", m.group(1)))
    letters = set("".join(flags))
    syn, on = [], False
    for line in macro_lines(page("bridged.8")):
        if line.startswith(".Sh "):
            on = line.startswith(".Sh SYNOPSIS")
        elif on:
            syn.append(line)
    have = set()
    for line in syn:
        for m2 in re.finditer(r"\bFl ([A-Za-z]+)", line):
            have.update(m2.group(1))
    assert letters <= have, "SYNOPSIS lacks -%s" % "".join(
        sorted(letters - have))
