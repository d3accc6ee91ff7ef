#!/usr/bin/env python3
"""The child boundary in code: what runs between clone and execve allocates nothing.

The sandbox child (and init, and the payload before execve) is a copy of the supervisor
made by clone3; it does only async-signal-safe work until execve. This check holds the
code that runs there to it, by the constructs that allocate, format or touch files:

- every layer's `apply.rs` (`src/layers/*/apply.rs`),
- the `// ---- apply` part of a one-file layer (`src/layers/*.rs`), up to the next
  `// ---- ` marker,
- the child's sequence: `src/sandbox/*.rs`.

Code under `#[cfg(test)]` is not checked. `make lint` runs this; exit 1 on a finding, with
file:line and the construct. A line may end in `// apply-check: allow (why)` when a
construct is known safe there; the reason is required.
"""
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

FORBIDDEN = [
    (r"\bformat!", "format! allocates"),
    (r"\b(e)?print(ln)?!", "printing locks and allocates"),
    (r"\bString\b", "String allocates"),
    (r"\bVec\b", "Vec allocates"),
    (r"\bvec!", "vec! allocates"),
    (r"\bBox\b", "Box allocates"),
    (r"\b(Rc|Arc)\b", "reference counting allocates"),
    (r"\b(HashMap|BTreeMap|HashSet|BTreeSet)\b", "collections allocate"),
    (r"\.to_string\(", "to_string allocates"),
    (r"\.to_owned\(", "to_owned allocates"),
    (r"\.into_owned\(", "into_owned allocates"),
    (r"\.to_vec\(", "to_vec allocates"),
    (r"\.collect\b", "collect allocates"),
    (r"CString::new", "CString::new allocates"),
    (r"\bstd::fs\b", "std::fs allocates paths and buffers"),
    (r"\.(unwrap|expect)\(", "a panic formats its message"),
    (r"\bpanic!", "a panic formats its message"),
]
FORBIDDEN = [(re.compile(p), why) for p, why in FORBIDDEN]
ALLOW = re.compile(r"//\s*apply-check:\s*allow\s*\((.+)\)")
MARKER = re.compile(r"^// ---- (\w+)")


def code_of(line):
    """The line without its comment and without string literals."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    return line.split("//", 1)[0]


def checked_lines(path, whole):
    """(number, line) of the lines to check: the whole file, or its apply part; both
    without `#[cfg(test)]` items."""
    lines = open(path, encoding="utf-8").read().split("\n")
    in_apply = whole
    skip_depth = None  # brace depth at which a #[cfg(test)] item ends
    depth = 0
    pending_test = False
    for n, line in enumerate(lines, 1):
        m = MARKER.match(line)
        if m and not whole:
            in_apply = m.group(1) == "apply"
            continue
        code = code_of(line)
        if skip_depth is None and line.strip() == "#[cfg(test)]":
            pending_test = True
            continue
        opens, closes = code.count("{"), code.count("}")
        if pending_test:
            # The item the attribute belongs to: skip until its braces close.
            if opens or code.rstrip().endswith(";"):
                pending_test = False
                if opens > closes:
                    skip_depth = depth
                depth += opens - closes
                continue
            continue
        if skip_depth is not None:
            depth += opens - closes
            if depth <= skip_depth:
                skip_depth = None
            continue
        depth += opens - closes
        if in_apply:
            yield n, line


def main():
    files = [(p, True) for p in sorted(glob.glob(os.path.join(ROOT, "src/layers/*/apply.rs")))]
    files += [(p, False) for p in sorted(glob.glob(os.path.join(ROOT, "src/layers/*.rs")))]
    files += [(p, True) for p in sorted(glob.glob(os.path.join(ROOT, "src/sandbox/*.rs")))]
    findings = []
    checked = 0
    for path, whole in files:
        rel = os.path.relpath(path, ROOT)
        for n, line in checked_lines(path, whole):
            checked += 1
            allowed = ALLOW.search(line)
            code = code_of(line)
            for pattern, why in FORBIDDEN:
                if pattern.search(code):
                    if allowed:
                        break
                    findings.append(f"{rel}:{n}: {why}: {line.strip()}")
                    break
    if checked == 0:
        print("check-apply: no apply code found (paths moved?)", file=sys.stderr)
        return 1
    if findings:
        print("\n".join(findings))
        print(
            f"check-apply: {len(findings)} construct(s) in code that runs between clone and execve",
            file=sys.stderr,
        )
        return 1
    print(f"check-apply: {checked} lines of child code, nothing that allocates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
