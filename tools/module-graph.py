#!/usr/bin/env python3
"""The module groups of src/ and the `crate::` paths between them; exit 1 on a cycle.

A group is a top-level module (`plan`, `profile`, `sys`, ...), except that each layer under
`src/layers/` is a group of its own (`layers::landlock`). An edge A -> B means a file of A
names `crate::B...` (in a `use` or a path). `make lint` runs this: module groups import
downward only. `--dot` prints the graph for a picture; `--list` the edges.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# `use crate::{a, b::{c}}`, `crate::x::y` anywhere in code.
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)(?:::([a-z_][a-z0-9_]*))?")
USE_BRACE = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)
# `crate::layers::{a, b}`: each named layer is a group.
LAYERS_BRACE = re.compile(r"\bcrate::layers::\{([^}]*)\}", re.S)


def group_of(rel):
    parts = rel[:-3].split(os.sep)
    if parts[0] in ("main", "lib"):
        return None
    if parts[0] == "layers" and len(parts) > 1 and parts[1] != "mod":
        return "layers::" + parts[1]
    return parts[0]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def target_group(first, second):
    if first == "layers" and second and second not in ("Layer", "Decision", "ChildError", "ChildContext"):
        return "layers::" + second
    return first


def is_module(group):
    """A module of src/ (not a macro exported at the crate root, like `merge_fields!`)."""
    rel = group.replace("::", os.sep)
    return os.path.exists(os.path.join(SRC, rel + ".rs")) or os.path.isdir(os.path.join(SRC, rel))


def edges():
    out = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, SRC)
            g = group_of(rel)
            if g is None:
                continue
            # Tests may reach anywhere.
            text = strip_comments(open(path).read())
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
            if rel.endswith("tests.rs"):
                continue
            targets = set()
            for m in PATH.finditer(text):
                targets.add(target_group(m.group(1), m.group(2)))
            for m in LAYERS_BRACE.finditer(text):
                for item in re.findall(r"[a-z_][a-z0-9_]*", m.group(1)):
                    if item != "self":
                        targets.add("layers::" + item)
            for m in USE_BRACE.finditer(text):
                for item in re.findall(r"([a-z_][a-z0-9_]*)(?:::([a-z_][a-z0-9_]*))?", m.group(1)):
                    targets.add(target_group(item[0], item[1] or None))
            for t in targets:
                if t != g and t not in ("self", "super") and is_module(t):
                    out.setdefault(g, set()).add(t)
    return out


def sccs(graph):
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]
    nodes = set(graph) | {t for ts in graph.values() for t in ts}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            result.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return result


def main():
    graph = edges()
    if "--dot" in sys.argv:
        print("digraph lasagna {")
        for a in sorted(graph):
            for b in sorted(graph[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    if "--list" in sys.argv:
        for a in sorted(graph):
            print(f"{a} -> {', '.join(sorted(graph[a]))}")
    cycles = [c for c in sccs(graph) if len(c) > 1]
    groups = len(set(graph) | {t for ts in graph.values() for t in ts})
    if cycles:
        for c in cycles:
            inner = [f"{a} -> {b}" for a in c for b in sorted(graph.get(a, ())) if b in c]
            print(f"module-graph: import cycle across {len(c)} of {groups} groups: {', '.join(c)}", file=sys.stderr)
            print("  edges: " + "; ".join(inner), file=sys.stderr)
        return 1
    print(f"module-graph: {groups} groups, no import cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
