"""Consistent per-file renaming of local Go identifiers, for training.

A model trained on the Go distribution memorises its names (`b`, `buf`,
`err`); renaming the names a file declares, consistently within the file, to
other plausible names means it must read them from the surrounding code. The
analysis is a heuristic over a light lexer, not a type checker: a name is
renamed when the file declares it (var/const/type/func, `:=`, parameters and
results, var/const blocks), it starts with a lower-case letter, it is not a
keyword, a predeclared name, an imported package name or the package's name,
and it never follows a '.' in the file (so fields and methods, which other
files may name, stay as they are). Every occurrence in code not after '.' is
renamed, and whole-word occurrences in comments and strings when the name has
three or more characters.
"""

import random
import re

KEYWORDS = set(
    "break case chan const continue default defer else fallthrough for func go goto if import "
    "interface map package range return select struct switch type var".split()
)
PREDECLARED = set(
    "any bool byte comparable complex64 complex128 error float32 float64 int int8 int16 int32 int64 "
    "rune string uint uint8 uint16 uint32 uint64 uintptr true false iota nil append cap clear close "
    "complex copy delete imag len make max min new panic print println real recover".split()
)
RESERVED = KEYWORDS | PREDECLARED | {"_", "main", "init"}

_LEX = re.compile(
    r"""(?P<com>//[^\n]*|/\*.*?\*/)"""
    r"""|(?P<str>`[^`]*`|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<id>[^\W\d]\w*)"""
    r"""|(?P<num>\d[\w.]*)"""
    r"""|(?P<op>:=|\.\.\.|[^\s\w])"""
    r"""|(?P<nl>\n)""",
    re.S,
)
_WORD = re.compile(r"[^\W\d]\w*")


def lex(src):
    """(kind, text, start) for the tokens of src; 'nl' marks newlines."""
    return [(m.lastgroup, m.group(), m.start()) for m in _LEX.finditer(src)]


def _param_names(toks, i):
    """toks[i] is '('; returns (names declared by the parameter list, index after ')')."""
    depth, j, parts, cur = 0, i, [], []
    while j < len(toks):
        k, t, _ = toks[j]
        if k == "nl" or k == "com":
            j += 1
            continue
        if t in "([{":
            depth += 1
            if depth > 1:
                cur.append(t)
        elif t in ")]}":
            depth -= 1
            if depth == 0:
                parts.append(cur)
                j += 1
                break
            cur.append(t)
        elif t == "," and depth == 1:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
        j += 1
    parts = [p for p in parts if p]
    named = any(len(p) >= 2 and _WORD.fullmatch(p[0]) and p[1] != "." for p in parts)
    names = set()
    if named:
        for p in parts:
            if _WORD.fullmatch(p[0]) and (len(p) == 1 or p[1] != "."):
                names.add(p[0])
    return names, j


def analyse(src):
    """Returns (tokens, candidates): the names the file declares that may be renamed."""
    toks = lex(src)
    code = [(k, t, s) for k, t, s in toks if k not in ("com",)]
    declared, after_dot, imports = set(), set(), set()
    package = None
    n = len(code)
    i = 0
    while i < n:
        k, t, _ = code[i]
        if k == "op" and t == "." and i + 1 < n and code[i + 1][0] == "id":
            after_dot.add(code[i + 1][1])
        elif k == "id":
            if t == "package" and i + 1 < n:
                package = code[i + 1][1]
            elif t == "import":
                j = i + 1
                block = j < n and code[j][1] == "("
                j += 1 if block else 0
                while j < n:
                    kk, tt, _ = code[j]
                    if kk == "id" or tt in (".", "_"):
                        imports.add(tt)
                    elif kk == "str":
                        path = tt.strip('"`').rstrip("/").split("/")
                        last = path[-1]
                        if re.fullmatch(r"v\d+", last) and len(path) > 1:
                            last = path[-2]
                        imports.add(re.sub(r"\W", "_", last.split(".")[0]))
                        if not block:
                            break
                    elif tt == ")" and block:
                        break
                    j += 1
            elif t == "func":
                j = i + 1
                if j < n and code[j][1] == "(":
                    names, j = _param_names(code, j)
                    declared |= names
                if j < n and code[j][0] == "id":
                    declared.add(code[j][1])
                    j += 1
                if j < n and code[j][1] == "[":
                    names, j = _param_names(code, j)  # type parameters
                    declared |= names
                if j < n and code[j][1] == "(":
                    names, j = _param_names(code, j)
                    declared |= names
                if j < n and code[j][1] == "(":
                    names, j = _param_names(code, j)
                    declared |= names
            elif t in ("var", "const", "type"):
                j = i + 1
                if j < n and code[j][1] == "(":
                    # a block: the first names of each line
                    depth, start = 0, True
                    while j < n:
                        kk, tt, _ = code[j]
                        if tt in "([{":
                            depth += 1
                        elif tt in ")]}":
                            depth -= 1
                            if depth == 0:
                                break
                        elif kk == "nl":
                            start = True
                            j += 1
                            continue
                        elif depth == 1 and start and kk == "id":
                            declared.add(tt)
                            # a list: a, b, c int
                            while j + 2 < n and code[j + 1][1] == "," and code[j + 2][0] == "id":
                                j += 2
                                declared.add(code[j][1])
                        start = False
                        j += 1
                else:
                    while j < n and code[j][0] == "id":
                        declared.add(code[j][1])
                        if j + 1 < n and code[j + 1][1] == ",":
                            j += 2
                        else:
                            break
        elif k == "op" and t == ":=":
            j = i - 1
            while j >= 0 and code[j][0] == "id":
                declared.add(code[j][1])
                if j >= 1 and code[j - 1][1] == ",":
                    j -= 2
                else:
                    break
        i += 1
    cands = {
        d
        for d in declared
        if d[0].islower() and d not in RESERVED and d not in after_dot and d not in imports and d != package
    }
    return toks, cands


def rename(src, mapping):
    """src with every renameable occurrence of mapping's keys replaced."""
    if not mapping:
        return src
    toks = lex(src)
    out, last = [], 0
    prev_code = None
    long_names = {k: v for k, v in mapping.items() if len(k) >= 3}
    word_re = re.compile(r"\b(" + "|".join(map(re.escape, sorted(long_names, key=len, reverse=True))) + r")\b") if long_names else None
    for k, t, s in toks:
        if k == "id":
            if t in mapping and prev_code != ".":
                out.append(src[last:s])
                out.append(mapping[t])
                last = s + len(t)
        elif k in ("com", "str") and word_re is not None:
            new = word_re.sub(lambda m: long_names[m.group(1)], t)
            if new != t:
                out.append(src[last:s])
                out.append(new)
                last = s + len(t)
        if k not in ("com", "nl"):
            prev_code = t
    out.append(src[last:])
    return "".join(out)


class NamePool:
    """Plausible names: local names of the corpus, drawn by sqrt-frequency."""

    def __init__(self, counts):
        items = sorted(counts.items())
        self.names = [n for n, _ in items]
        self.cum = []
        total = 0.0
        for _, c in items:
            total += c**0.5
            self.cum.append(total)
        self.total = total

    def draw(self, rng):
        import bisect

        return self.names[bisect.bisect_left(self.cum, rng.random() * self.total)]


def random_mapping(src, cands, pool, rng, keep=0.25):
    """A consistent injective renaming of cands to fresh names; each kept with probability keep."""
    used = set(_WORD.findall(src))
    mapping = {}
    taken = set()
    for name in sorted(cands):
        if rng.random() < keep:
            continue
        for _ in range(20):
            new = pool.draw(rng)
            if new not in used and new not in taken and new not in RESERVED:
                mapping[name] = new
                taken.add(new)
                break
    return mapping


def renamed(src, pool, seed, keep=0.25):
    _, cands = analyse(src)
    rng = random.Random(seed)
    return rename(src, random_mapping(src, cands, pool, rng, keep))
