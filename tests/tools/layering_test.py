#!/usr/bin/env python3
"""The house rules that docs/design.md states, checked on the source tree:

1. A public header includes only its own layer and the layers below it. The order is docs/design.md's:
   sym, kernels, simd, tensors, check, ops, nn, text, math (a layer may use every layer before it). Files at
   the top of include/exprgrad/ (random.hpp, config.hpp) are below every layer; the umbrella headers
   (exprgrad.hpp, sym.hpp, tensors.hpp) may include anything.
2. include/, src/, docs/ and README.md name no path outside the repository (a relative path that climbs
   above the repository's top, an absolute path into a home or work directory) and do not cite the
   developers' research notes by file name: they cite the project's docs and the original posts.
3. include/ uses no POSIX header: what needs the operating system is compiled into libexprgrad (src/).

Usage: layering_test.py REPO_ROOT. Prints one line per violation and exits 1 if there is any.
"""
import pathlib
import re
import sys

LAYERS = ["sym", "kernels", "simd", "tensors", "check", "ops", "nn", "text", "math"]
UMBRELLAS = {"exprgrad.hpp", "sym.hpp", "tensors.hpp"}
# Transitional forwarders (issue #15) at the tensor layer's old folder, kept until the branches that own
# text/ and examples/tiny_lm follow the rename; they rank as the layer they forward to.
FORWARDERS = {"tensor": "tensors"}
POSIX = re.compile(r"#\s*include\s*<(unistd\.h|fcntl\.h|sys/[^>]+|dirent\.h|pthread\.h|dlfcn\.h|poll\.h|"
                   r"termios\.h|signal\.h|sched\.h|spawn\.h|netinet/[^>]+|arpa/[^>]+|pwd\.h|grp\.h)>")
INCLUDE = re.compile(r'#\s*include\s*[<"](exprgrad/[^>"]+|\.\./[^>"]+|[^>"/]+\.hpp)[>"]')
NOTES = re.compile(r"articles_part[12]|anchors_autodiff|shared/research|shared/DESIGN")
CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+)[\w./-]*")
ABSOLUTE = re.compile(r"(?<![\w.])/(?:work|home|root|Users)/[\w./-]+")
TEXT_SUFFIXES = {".hpp", ".cpp", ".h", ".in", ".md", ".build", ".py", ".sh", ".txt"}


def layer_of(path: pathlib.Path, inc: pathlib.Path):
    rel = path.relative_to(inc / "exprgrad")
    if len(rel.parts) == 1:
        return "umbrella" if rel.name in UMBRELLAS else "base"
    return FORWARDERS.get(rel.parts[0], rel.parts[0])


def rank(layer):
    return -1 if layer == "base" else LAYERS.index(layer) if layer in LAYERS else None


def check_layers(root: pathlib.Path, problems):
    inc = root / "include"
    for h in sorted((inc / "exprgrad").rglob("*")):
        if h.suffix not in (".hpp", ".h", ".in") or not h.is_file():
            continue
        mine = layer_of(h, inc)
        if mine != "umbrella" and mine != "base" and rank(mine) is None:
            problems.append(f"{h.relative_to(root)}: folder '{mine}' is not a layer of docs/design.md")
            continue
        for no, line in enumerate(h.read_text(errors="replace").splitlines(), 1):
            if POSIX.search(line):
                problems.append(f"{h.relative_to(root)}:{no}: POSIX header in include/: {line.strip()}")
            m = INCLUDE.search(line)
            if not m or mine == "umbrella":
                continue
            target = m.group(1)
            resolved = (h.parent / target).resolve() if not target.startswith("exprgrad/") else inc / target
            if not resolved.exists():
                continue  # a system header that happens to match, e.g. <foo.hpp> from xtensor
            try:
                theirs = layer_of(resolved, inc)
            except ValueError:
                problems.append(f"{h.relative_to(root)}:{no}: includes {target}, outside include/exprgrad")
                continue
            if theirs == "umbrella":
                problems.append(f"{h.relative_to(root)}:{no}: a layer header includes the umbrella {target}")
            elif mine == "base" and theirs != "base":
                problems.append(f"{h.relative_to(root)}:{no}: top-level header includes layer '{theirs}' ({target})")
            elif rank(theirs) is not None and rank(mine) is not None and rank(theirs) > rank(mine):
                problems.append(f"{h.relative_to(root)}:{no}: layer '{mine}' includes the higher layer "
                                f"'{theirs}' ({target})")


def check_paths(root: pathlib.Path, problems):
    files = [root / "README.md"]
    for top in ("include", "src", "docs"):
        files += [p for p in (root / top).rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES]
    for f in sorted(files):
        for no, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            where = f"{f.relative_to(root)}:{no}"
            if NOTES.search(line):
                problems.append(f"{where}: cites the research notes ({NOTES.search(line).group(0)}); cite docs/ "
                                "or the original post instead")
            m = ABSOLUTE.search(line)
            if m:
                problems.append(f"{where}: absolute path outside the repository: {m.group(0)}")
            for m in CLIMB.finditer(line):
                target = (f.parent / m.group(0)).resolve()
                if root.resolve() not in (target, *target.parents):
                    problems.append(f"{where}: path outside the repository: {m.group(0)}")


def self_test():
    """The checks must be able to fail: a small tree with one violation of each kind."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        files = {
            "include/exprgrad/sym/a.hpp": '#include "exprgrad/ops/b.hpp"\n',            # arrow up
            "include/exprgrad/ops/b.hpp": '#include "exprgrad/sym/a.hpp"\n#include <unistd.h>\n',  # POSIX
            "include/exprgrad/random.hpp": '#include "exprgrad/nn/c.hpp"\n',            # base uses a layer
            "include/exprgrad/nn/c.hpp": "// see ../../../../outside.md\n",              # climbs out
            "docs/x.md": "notes: articles_part1.md\n",                                   # research notes
            "src/y.cpp": "// /work/shared/DESIGN.md\n",                                  # absolute path
            "README.md": "fine\n",
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        problems = []
        check_layers(root, problems)
        check_paths(root, problems)
        wanted = ["higher layer 'ops'", "POSIX header", "top-level header includes layer 'nn'",
                  "path outside the repository: ../../../../outside.md", "articles_part1",
                  "absolute path outside the repository"]
        missing = [w for w in wanted if not any(w in p for p in problems)]
        if missing or len(problems) != len(wanted) + 1:  # src/y.cpp also names shared/DESIGN
            print("layering self-test failed; missing:", missing, "found:", problems)
            return False
    return True


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    if not self_test():
        return 1
    problems = []
    check_layers(root, problems)
    check_paths(root, problems)
    for p in problems:
        print(p)
    print(f"layering: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
