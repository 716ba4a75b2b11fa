#!/usr/bin/env python3
"""Check every relative link and anchor in the tracked Markdown files (offline, stdlib only).

For each file from `git ls-files '*.md'`, every inline link or image (`[text](target)`),
reference definition (`[name]: target`) and HTML `href`/`src` outside code is checked:

- a path must exist, relative to the file (or to the repository root when it starts with `/`);
- an anchor (`#part`, alone or after a Markdown file) must be the slug of a heading of that
  file, made as GitHub makes it: the heading's text, lowercased, every character but letters,
  digits, marks, `-`, `_` and spaces removed, each space turned into `-`; a repeated slug gets
  `-1`, `-2`, ... (explicit `<a name>`/`id` anchors count too);
- an anchor into another kind of file may only be a GitHub line anchor (`#L10`, `#L10-L20`)
  within the file's length.

Links with a scheme (`http:`, `https:`, `mailto:`, ...) are not fetched. Each broken link is
reported as `file:line: ...`; the exit status is 1 if any was found.

    python3 scripts/check_links.py            # every tracked Markdown file
    python3 scripts/check_links.py A.md B.md  # just these
"""

import os
import re
import subprocess
import sys
import unicodedata
from urllib.parse import unquote

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title"): the text may hold one level of brackets ([`x`], [a [b] c]).
INLINE = re.compile(
    r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
REFDEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
HTML_ATTR = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<[a-z]+\b[^>]*?\b(?:name|id)\s*=\s*[\"']([^\"']*)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
LINE_ANCHOR = re.compile(r"^L(\d+)(?:C\d+)?(?:-L(\d+)(?:C\d+)?)?$")


def plain_text(heading):
    """The text GitHub renders for a heading's Markdown (what its slug is made from)."""
    spans = []  # code spans are literal text: set aside while the markup is stripped

    def keep(match):
        spans.append(match.group(2).strip())
        return f"\0{len(spans) - 1}\0"

    text = CODE_SPAN.sub(keep, heading)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", text)  # links, images
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(\*{1,3})(?=\S)(.+?)(?<=\S)\1", r"\2", text)  # *emphasis*, **strong**
    text = re.sub(r"(?<![A-Za-z0-9])(_{1,3})(?=\S)(.+?)(?<=\S)\1(?![A-Za-z0-9])", r"\2", text)
    text = re.sub("\0(\\d+)\0", lambda m: spans[int(m.group(1))], text)
    return text.strip()


def slugify(text):
    """github-slugger's rule: lowercase; keep letters, digits, marks, '-', '_' and spaces."""
    kept = []
    for c in text.lower():
        if c in "-_ " or c.isalnum() or unicodedata.category(c).startswith("M"):
            kept.append(c)
    return "".join(kept).replace(" ", "-")


class Slugger:
    """Unique slugs in document order, as github-slugger makes them (x, x-1, x-2, ...)."""

    def __init__(self):
        self.occurrences = {}

    def slug(self, text):
        original = result = slugify(text)
        while result in self.occurrences:
            self.occurrences[original] += 1
            result = f"{original}-{self.occurrences[original]}"
        self.occurrences[result] = 0
        return result


def prose_lines(lines):
    """(line number, line, line with its code spans blanked) for each line outside fenced code."""
    fence = None
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                if not line.strip().lstrip(fence[0]):
                    fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        yield number, line, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def anchors_of(lines):
    """Every anchor a Markdown file offers: its headings' slugs and explicit HTML anchors."""
    slugger = Slugger()
    anchors = set()
    previous = None  # the previous prose line, for setext headings
    for _, line, outside_code in prose_lines(lines):
        anchors.update(HTML_ANCHOR.findall(outside_code))
        atx = ATX.match(line)
        if atx:
            anchors.add(slugger.slug(plain_text(atx.group(2) or "")))
            previous = None
            continue
        if previous and previous.strip() and SETEXT.match(line) and not previous.startswith("    "):
            anchors.add(slugger.slug(plain_text(previous.strip())))
            previous = None
            continue
        previous = line
    return anchors


def links_of(lines):
    """(line number, target) for every link-like reference outside code."""
    for number, _, line in prose_lines(lines):
        for match in INLINE.finditer(line):
            yield number, match.group(3)
        ref = REFDEF.match(line)
        if ref:
            yield number, ref.group(2)
        for target in HTML_ATTR.findall(line):
            yield number, target


class Checker:
    def __init__(self, root):
        self.root = root
        self.anchor_cache = {}

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()

    def anchors(self, path):
        if path not in self.anchor_cache:
            self.anchor_cache[path] = anchors_of(self.read(path))
        return self.anchor_cache[path]

    def problem(self, source, target):
        """What is wrong with `target`, linked from `source`, or None."""
        target = target.strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1].strip()
        if not target or SCHEME.match(target) or target.startswith("//"):
            return None
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        anchor = unquote(anchor)
        if path_part:
            base = self.root if path_part.startswith("/") else os.path.dirname(source)
            path = os.path.normpath(os.path.join(base, path_part.lstrip("/")))
            if os.path.relpath(path, self.root).split(os.sep)[0] == "..":
                return "points outside the repository"
            if not os.path.exists(path):
                return f"no such file: {os.path.relpath(path, self.root)}"
        else:
            path = source
        if not anchor:
            return None
        if os.path.isdir(path):
            return "an anchor on a directory"
        if path.endswith((".md", ".markdown")):
            if anchor not in self.anchors(path):
                return f"no heading or anchor #{anchor} in {os.path.relpath(path, self.root)}"
            return None
        lines = LINE_ANCHOR.match(anchor)
        if not lines:
            return f"#{anchor}: only line anchors (#L10) reach into {os.path.relpath(path, self.root)}"
        length = len(self.read(path))
        last = max(int(n) for n in lines.groups() if n)
        if last > length:
            return f"#{anchor}: {os.path.relpath(path, self.root)} has {length} lines"
        return None

    def check(self, relpath):
        path = os.path.join(self.root, relpath)
        broken = []
        for number, target in links_of(self.read(path)):
            problem = self.problem(path, target)
            if problem:
                broken.append(f"{relpath}:{number}: broken link ({target}): {problem}")
        return broken


def main(argv):
    root = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if argv:
        files = [os.path.relpath(os.path.abspath(f), root) for f in argv]
    else:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "*.md", "*.markdown"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout
        files = [f for f in listed.split("\0") if f and os.path.exists(os.path.join(root, f))]
    checker = Checker(root)
    broken = []
    for relpath in sorted(files):
        broken.extend(checker.check(relpath))
    for line in broken:
        print(line)
    sys.stdout.flush()
    print(f"links: {len(files)} Markdown files, {len(broken)} broken", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
