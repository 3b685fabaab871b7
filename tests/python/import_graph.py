"""The import graph of a Rust crate's `src/`, one node per file, and its cycles.

An edge A -> B means code in A uses an item defined in B: through a `use`, or an
inline path (`crate::x::Y`, `super::Y`, `child::Y`). A name is followed through
re-exports to the file that defines it, so a module whose `mod.rs` only re-exports
its children (a facade) is not in a cycle with them; a `pub use` counts as an edge
only when the file also uses the name itself. Test modules (`#[cfg(test)] mod ...
{}`) are left out: tests may reach anywhere.

    python3 tests/python/import_graph.py src      # prints the cycles; exit 1 if any
"""
import os
import re
import sys

ITEM = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|const\s+|unsafe\s+)*"
    r"(?:struct|enum|trait|fn|type|const|static|union)\s+(\w+)",
    re.M,
)
MACRO = re.compile(r"macro_rules!\s+(\w+)")
USE = re.compile(r"(^|\n)\s*((?:pub(?:\([^)]*\))?\s+)?)use\s+([^;]+);", re.S)
ALIAS = re.compile(r"\s+as\s+(\w+)\s*$")


def module_files(src):
    """{module path tuple: file} for every .rs file under src."""
    files = {}
    for d, _, names in os.walk(src):
        for n in names:
            if not n.endswith(".rs"):
                continue
            path = os.path.join(d, n)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "main", "lib"):
                parts = parts[:-1]
            if tuple(parts) in files and n != "main.rs":
                continue
            files[tuple(parts)] = path
    return files


def without_tests_and_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    out, i = [], 0
    test_mod = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s*)?mod\s+\w+\s*\{")
    while True:
        m = test_mod.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        j, depth = m.end(), 1
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def expand(tree, prefix=""):
    """`a::{b, c::{d as e}}` -> ['a::b', 'a::c::d as e']."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [f"{prefix}::{tree}" if prefix else tree]
    head = m.group(1).strip().rstrip(":").strip()
    base = f"{prefix}::{head}" if prefix and head else (head or prefix)
    parts, depth, cur = [], 0, ""
    for ch in m.group(2):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for part in parts if part.strip() for p in expand(part, base)]


class Graph:
    def __init__(self, src):
        self.files = module_files(src)
        self.text = {m: without_tests_and_comments(open(p).read()) for m, p in self.files.items()}
        self.defined = {m: set(ITEM.findall(t)) | set(MACRO.findall(t)) for m, t in self.text.items()}
        self.edges = {m: {} for m in self.files}
        for m in self.files:
            self._scan(m)

    def resolve(self, mod, path, depth=0):
        """The file that defines what `path`, written in `mod`, names (None: outside the crate)."""
        segs = [s for s in path.replace(" ", "").split("::") if s]
        if not segs:
            return None
        if segs[0] == "crate":
            cur, segs = (), segs[1:]
        elif segs[0] in ("super", "self"):
            cur = mod
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    cur = cur[:-1]
                segs = segs[1:]
        elif mod + (segs[0],) in self.files:
            cur = mod
        else:
            return None
        while segs and cur + (segs[0],) in self.files:
            cur, segs = cur + (segs[0],), segs[1:]
        if not segs or segs[0] == "*":
            return cur
        name = segs[0]
        if name in self.defined[cur] or depth > 8:
            return cur
        for u in USE.finditer(self.text[cur]):
            for p in expand(u.group(3)):
                p = ALIAS.sub("", p)
                last = p.split("::")[-1].strip()
                if last in (name, "*"):
                    target = p if last == name else p[:-1] + name
                    found = self.resolve(cur, target, depth + 1)
                    if found is not None and found != cur:
                        return found
        return cur

    def _add(self, mod, path):
        target = self.resolve(mod, path)
        if target is not None and target != mod:
            self.edges[mod].setdefault(target, set()).add(path.split("::")[-1].strip())

    def _scan(self, mod):
        text = self.text[mod]
        body = USE.sub("\n", text)
        for u in USE.finditer(text):
            reexport = bool(u.group(2).strip())
            for p in expand(u.group(3)):
                alias = ALIAS.search(p)
                name = alias.group(1) if alias else p.split("::")[-1].strip()
                if reexport and (name in ("*", "self") or not re.search(rf"\b{re.escape(name)}\b", body)):
                    continue
                self._add(mod, ALIAS.sub("", p))
        for p in re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", body):
            self._add(mod, p)
        for p in re.findall(r"(?<![:\w])([a-z_]\w*(?:::\w+)+)", body):
            self._add(mod, p)

    def cycles(self):
        """Strongly connected components of more than one file (Tarjan)."""
        index, low, stack, on, found = {}, {}, [], set(), []

        def visit(v):
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in self.edges[v]:
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))

        sys.setrecursionlimit(10_000)
        for v in self.files:
            if v not in index:
                visit(v)
        return found


def name(mod):
    return "::".join(mod) or "crate"


def main(src):
    g = Graph(src)
    cycles = g.cycles()
    print(f"{len(g.files)} files, {sum(len(e) for e in g.edges.values())} edges, {len(cycles)} cycles")
    for comp in cycles:
        print(len(comp), [name(m) for m in comp])
        for a in comp:
            for b, names in sorted(g.edges[a].items()):
                if b in comp:
                    print(f"    {name(a)} -> {name(b)}: {', '.join(sorted(names))}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
