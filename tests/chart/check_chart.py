#!/usr/bin/env python3
"""Checks relay's deployment files without Helm, Docker or a cluster.

    check_chart.py [--repo DIR] [--relay PATH] [chart|compose ...]

chart (CTest chart_check):
  - Chart.yaml, values.yaml, ci/*-values.yaml, files/*.yml parse as YAML; Chart.yaml has the
    fields Helm requires.
  - Every template is lexed and parsed as a Go template ({{ }} balanced, if/range/with/define
    closed by end, every function known), then RENDERED by the small Go-template interpreter
    below (a subset of text/template + the Sprig/Helm functions this chart uses, with Helm's
    value semantics: numbers from values are float64, so printf "%d" on them renders
    "%!d(float64=...)", as in Helm) with the default values and with each ci/*-values.yaml.
  - Each rendered manifest parses as YAML and is a Kubernetes object (apiVersion, kind,
    metadata.name a DNS-1123 name); the relay pieces are checked: the sidecar's probes hit
    /healthz and /readyz on the ops port, terminationGracePeriodSeconds = preStop +
    shutdown_timeout + margin, the ConfigMap's relay.yaml has that shutdown_timeout and
    ops.listen on the same port, every secret reaches relay through secretKeyRef, the config
    checksum annotation matches the ConfigMap, the Service selects the pods and the
    ServiceMonitor selects the Service, the PrometheusRule's spec is
    files/relay-alerts.rules.yml verbatim, and the dashboard ConfigMap (dashboards.enabled) holds
    dashboards/relay.json verbatim with the Grafana sidecar's label and the variables and
    datasource the dashboard's panels rely on.
  - Values that must be rejected (relay.config.shutdown_timeout, relay.config.ops.listen) make
    rendering fail with the chart's message.
  - Every rendered relay.yaml validates against schema/relay.schema.json (if python3-jsonschema
    is installed; a note says when it is not) and, with --relay, passes `relay check-config`.
compose (CTest compose_check): docker-compose.yml and deploy/compose/relay.yaml: services and
  their order, the shared image, Compose's $-escaping in the app script (then `bash -n` on it),
  stop_grace_period = shutdown_timeout + 5s, ports and hostnames that match the config, and the
  same schema / `relay check-config` validation of the config.

Not caught: anything only a real API server or Helm knows — schema validation of every field
(only the fields above are checked), Helm features the interpreter lacks (it fails loudly on an
unknown function or construct rather than guess), YAML style differences between PyYAML and
Helm's toYaml (same data, maybe other quoting), and whether images exist or containers run.
"""
import argparse
import copy
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback

try:
    import yaml
except ImportError:
    sys.exit("check_chart: the Python module yaml is missing: apt-get install python3-yaml")


class CheckError(Exception):
    pass


class RenderError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# A Go text/template interpreter: the subset Helm charts like this one use.
# ---------------------------------------------------------------------------------------------

_WS = " \t\r\n"


def lex(src, name):
    """Splits a template into ('text', str) and ('action', str, line) items, applying {{- -}}."""
    items = []
    i = 0
    trim_next = False
    while True:
        j = src.find("{{", i)
        text = src[i:] if j < 0 else src[i:j]
        if trim_next:
            text = text.lstrip(_WS)
        if j < 0:
            items.append(("text", text))
            return items
        line = src.count("\n", 0, j) + 1
        k = j + 2
        if src.startswith("-", k) and k + 1 < len(src) and src[k + 1] in _WS:
            text = text.rstrip(_WS)
            k += 1
        items.append(("text", text))
        # Find the closing }} outside strings and comments.
        p = k
        while True:
            if p >= len(src):
                raise RenderError(f"{name}:{line}: unclosed action")
            c = src[p]
            if c in "\"'":
                q = p + 1
                while q < len(src) and src[q] != c:
                    q += 2 if src[q] == "\\" else 1
                p = q + 1
            elif c == "`":
                p = src.index("`", p + 1) + 1
            elif src.startswith("/*", p):
                end = src.find("*/", p + 2)
                if end < 0:
                    raise RenderError(f"{name}:{line}: unclosed comment")
                p = end + 2
            elif src.startswith("}}", p):
                break
            else:
                p += 1
        body = src[k:p]
        trim_next = False
        if len(body) >= 2 and body.endswith("-") and body[-2] in _WS:
            body = body[:-1]
            trim_next = True
        items.append(("action", body.strip(), line))
        i = p + 2


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\]|\\.)')
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<declare>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<lparen>\()
    | (?P<rparen>\)(?P<rfields>(?:\.[A-Za-z_]\w*)*))
    | (?P<comma>,)
    | (?P<var>\$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|\$(?:\.[A-Za-z_]\w*)*)
    | (?P<field>(?:\.[A-Za-z_]\w*)+|\.)
    | (?P<ident>[A-Za-z_]\w*)
    )""",
    re.X,
)


def tokenize(s, where):
    toks = []
    pos = 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise RenderError(f"{where}: cannot parse {s[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "rfields" else "rparen"
        if m.group("rparen") is not None:
            kind = "rparen"
            toks.append(("rparen", m.group("rfields")))
            continue
        toks.append((kind, m.group(kind)))
    return toks


class Pipe:
    def __init__(self, decl, is_assign, cmds):
        self.decl = decl          # variable names declared/assigned
        self.is_assign = is_assign
        self.cmds = cmds          # list of commands; a command is a list of operands


def parse_pipe(toks, where, funcs):
    decl, is_assign = [], False
    # $a := / $a, $b := / $a =
    for n in (1, 3):
        if len(toks) > n and toks[n][0] in ("declare", "assign") and all(
            t[0] == "var" for t in toks[:n:2]
        ) and (n == 1 or toks[1][0] == "comma"):
            decl = [t[1] for t in toks[:n:2]]
            is_assign = toks[n][0] == "assign"
            toks = toks[n + 1:]
            break
    pos = 0

    def operand():
        nonlocal pos
        kind, val = toks[pos]
        pos += 1
        if kind == "lparen":
            depth, start = 1, pos
            while depth:
                if pos >= len(toks):
                    raise RenderError(f"{where}: unclosed (")
                if toks[pos][0] == "lparen":
                    depth += 1
                elif toks[pos][0] == "rparen":
                    depth -= 1
                pos += 1
            inner = parse_pipe(toks[start:pos - 1], where, funcs)
            fields = toks[pos - 1][1]
            return ("paren", inner, [f for f in fields.split(".") if f])
        if kind == "ident":
            if val in ("true", "false"):
                return ("lit", val == "true")
            if val == "nil":
                return ("lit", None)
            if val not in funcs:
                raise RenderError(f"{where}: function {val!r} not defined (or not supported by check_chart.py)")
            return ("func", val)
        if kind == "str":
            return ("lit", json.loads(val))
        if kind == "raw":
            return ("lit", val[1:-1])
        if kind == "num":
            return ("lit", float(val) if re.search(r"[.eE]", val) else int(val))
        if kind == "var":
            name, _, rest = val.partition(".")
            return ("var", name, [f for f in rest.split(".") if f])
        if kind == "field":
            return ("field", [f for f in val.split(".") if f])
        raise RenderError(f"{where}: unexpected {val!r}")

    cmds, cmd = [], []
    while pos < len(toks):
        if toks[pos][0] == "pipe":
            if not cmd:
                raise RenderError(f"{where}: empty command")
            cmds.append(cmd)
            cmd = []
            pos += 1
            continue
        cmd.append(operand())
    if cmd:
        cmds.append(cmd)
    if not cmds and not decl:
        raise RenderError(f"{where}: missing value")
    return Pipe(decl, is_assign, cmds)


def parse(items, name, funcs, defines):
    """Builds a tree: lists of ('text', s) | ('action', pipe) | ('if'|'with', [(pipe, body)], else)
    | ('range', pipe, body, else) | ('template', name, pipe)."""
    pos = 0

    def block(stop):
        nonlocal pos
        body = []
        while pos < len(items):
            it = items[pos]
            pos += 1
            if it[0] == "text":
                if it[1]:
                    body.append(("text", it[1]))
                continue
            act, line = it[1], it[2]
            where = f"{name}:{line}"
            if act.startswith("/*"):
                continue
            word, _, rest = act.partition(" ")
            rest = rest.strip()
            if word in ("end", "else"):
                if word not in stop:
                    raise RenderError(f"{where}: unexpected {{{{{word}}}}}")
                return body, word, rest, where
            if word in ("if", "with"):
                branches, else_body = [], None
                cond = parse_pipe(tokenize(rest, where), where, funcs)
                while True:
                    sub, how, tail, w2 = block(("end", "else"))
                    branches.append((cond, sub))
                    if how == "end":
                        break
                    if tail.startswith(word + " ") or (word == "if" and tail.startswith("if ")):
                        cond = parse_pipe(tokenize(tail.split(" ", 1)[1], w2), w2, funcs)
                        continue
                    if tail:
                        raise RenderError(f"{w2}: unsupported else clause {tail!r}")
                    else_body, how, _, _ = block(("end",))
                    break
                body.append((word, branches, else_body))
            elif word == "range":
                pipe = parse_pipe(tokenize(rest, where), where, funcs)
                sub, how, _, _ = block(("end", "else"))
                else_body = block(("end",))[0] if how == "else" else None
                body.append(("range", pipe, sub, else_body))
            elif word == "define":
                dname = json.loads(rest)
                sub, _, _, _ = block(("end",))
                defines[dname] = sub
            elif word == "template":
                m = re.match(r'("(?:[^"\\]|\\.)*")\s*(.*)$', rest)
                if not m:
                    raise RenderError(f"{where}: bad template action")
                pipe = parse_pipe(tokenize(m.group(2), where), where, funcs) if m.group(2) else None
                body.append(("template", json.loads(m.group(1)), pipe))
            elif word in ("block", "break", "continue"):
                raise RenderError(f"{where}: {{{{{word}}}}} is not supported by check_chart.py")
            else:
                body.append(("action", parse_pipe(tokenize(act, where), where, funcs), where))
        if stop:
            raise RenderError(f"{name}: missing {{{{end}}}}")
        return body, None, None, None

    return block(())[0]


# ---- Go value semantics ---------------------------------------------------------------------

def go_float(f):
    """fmt's %v for a float64: strconv 'g' with the shortest repr, exponent from 1e21 or < 1e-4."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    r = repr(float(f))
    mant = r
    digits = re.sub(r"[^0-9]", "", mant.split("e")[0]).lstrip("0") or "0"
    exp = int(f"{f:e}".split("e")[1]) if f != 0 else 0
    if exp < -4 or exp >= 21:
        s = f"{f:.{max(len(digits) - 1, 0)}e}"
        m, e = s.split("e")
        if "." in m:
            m = m.rstrip("0").rstrip(".")
        return f"{m}e{e[0]}{e[1:].zfill(2)}"
    if f == int(f):
        return str(int(f))
    return repr(float(f))


def go_str(v):
    if v is None:
        return ""   # "<no value>", which Helm removes from the output
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, list):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_str(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def truth(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True


def kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return type(v).__name__


def compare(op, a, b):
    if a is None or b is None:
        if op in ("eq", "ne"):
            return (a is b) == (op == "eq")
        raise RenderError(f"{op}: invalid type for comparison")
    if kind(a) != kind(b):
        raise RenderError(f"{op}: incompatible types for comparison ({kind(a)} and {kind(b)})")
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def to_int(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            return 0
    return 0


def go_printf(fmt, *args):
    out, ai, i = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        if verb == "s" or verb == "v":
            out.append(go_str(a))
        elif verb == "d":
            if isinstance(a, int) and not isinstance(a, bool):
                out.append(str(a))
            else:
                gotype = {"float": "float64", "string": "string", "bool": "bool"}.get(kind(a), kind(a))
                out.append(f"%!d({gotype}={go_str(a)})")
        elif verb == "q":
            out.append(json.dumps(go_str(a)))
        else:
            raise RenderError(f"printf verb %{verb} is not supported by check_chart.py")
    if ai < len(args):
        out.append("%!(EXTRA " + ", ".join(go_str(a) for a in args[ai:]) + ")")
    return "".join(out)


def yaml_ready(v):
    """Values as sigs.k8s.io/yaml marshals them: through JSON, so whole floats become ints."""
    if isinstance(v, dict):
        return {str(k): yaml_ready(x) for k, x in v.items()}
    if isinstance(v, list):
        return [yaml_ready(x) for x in v]
    if isinstance(v, float) and v == int(v):
        return int(v)
    return v


def to_yaml(v):
    if v is None:
        return "null"
    return yaml.safe_dump(yaml_ready(v), default_flow_style=False, sort_keys=True, width=1 << 20).rstrip("\n")


def helm_values(v):
    """Values as Helm holds them after sigs.k8s.io/yaml: numbers are float64."""
    if isinstance(v, dict):
        return {str(k): helm_values(x) for k, x in v.items()}
    if isinstance(v, list):
        return [helm_values(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def coalesce(base, over):
    """Helm's merge of a user values file onto the chart's: maps merge, null deletes, lists replace."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Files:
    def __init__(self, root):
        self.root = root

    def Get(self, name):
        path = os.path.join(self.root, name)
        if not os.path.isfile(path):
            return ""
        with open(path, encoding="utf-8") as f:
            return f.read()


class Engine:
    def __init__(self):
        self.defines = {}
        self.funcs = {
            "include": None, "tpl": None,   # bound in render()
            "toYaml": to_yaml,
            "indent": lambda n, s: (" " * to_int(n)) + s.replace("\n", "\n" + " " * to_int(n)),
            "nindent": lambda n, s: "\n" + (" " * to_int(n)) + s.replace("\n", "\n" + " " * to_int(n)),
            "quote": lambda *a: " ".join(json.dumps(go_str(x)) for x in a if x is not None),
            "squote": lambda *a: " ".join("'" + go_str(x) + "'" for x in a if x is not None),
            "default": lambda d, *g: d if not g or not truth(g[0]) else g[0],
            "required": self._required,
            "fail": self._fail,
            "printf": go_printf,
            "print": lambda *a: "".join(go_str(x) for x in a),
            "trunc": lambda n, s: (s[:to_int(n)] if to_int(n) >= 0 else s[to_int(n):]),
            "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
            "trimPrefix": lambda pre, s: s[len(pre):] if pre and s.startswith(pre) else s,
            "trim": lambda s: s.strip(),
            "replace": lambda old, new, s: s.replace(old, new),
            "contains": lambda sub, s: sub in s,
            "lower": lambda s: s.lower(),
            "upper": lambda s: s.upper(),
            "toString": go_str,
            "add": lambda *a: sum(to_int(x) for x in a),
            "sub": lambda a, b: to_int(a) - to_int(b),
            "max": lambda *a: max(to_int(x) for x in a),
            "int": to_int,
            "int64": to_int,
            "hasKey": lambda d, k: k in d,
            "set": self._set,
            "unset": lambda d, k: (d.pop(k, None), d)[1],
            "deepCopy": copy.deepcopy,
            "dict": lambda *kv: {go_str(kv[i]): kv[i + 1] if i + 1 < len(kv) else None for i in range(0, len(kv), 2)},
            "list": lambda *a: list(a),
            "omit": lambda d, *ks: {k: v for k, v in d.items() if k not in ks},
            "empty": lambda v: not truth(v),
            "len": lambda v: len(v) if v is not None else 0,
            "not": lambda v: not truth(v),
            "and": None, "or": None,   # lazy: evaluated in call()
            "eq": lambda a, *bs: any(compare("eq", a, b) for b in bs),
            "ne": lambda a, b: compare("ne", a, b),
            "lt": lambda a, b: compare("lt", a, b),
            "le": lambda a, b: compare("le", a, b),
            "gt": lambda a, b: compare("gt", a, b),
            "ge": lambda a, b: compare("ge", a, b),
            "sha256sum": lambda s: hashlib.sha256(s.encode()).hexdigest(),
            "kindIs": lambda k, v: {"map": dict, "slice": list, "string": str, "bool": bool}.get(k, type(None)) is type(v),
        }

    @staticmethod
    def _required(msg, val=None):
        if val is None or val == "":
            raise RenderError(msg)
        return val

    @staticmethod
    def _fail(msg):
        raise RenderError(msg)

    @staticmethod
    def _set(d, k, v):
        d[k] = v
        return d

    def load(self, name, src):
        return parse(lex(src, name), name, self.funcs, self.defines)

    # ---- execution ----
    def walk(self, v, fields, where):
        for f in fields:
            if v is None:
                raise RenderError(f"{where}: nil pointer evaluating interface {{}}.{f}")
            if isinstance(v, dict):
                v = v.get(f)
            elif hasattr(v, f):
                v = getattr(v, f)
            else:
                raise RenderError(f"{where}: can't evaluate field {f} in type {type(v).__name__}")
        return v

    def operand(self, op, dot, scope, where):
        t = op[0]
        if t == "lit":
            return op[1]
        if t == "field":
            return self.walk(dot, op[1], where)
        if t == "var":
            return self.walk(self.lookup(scope, op[1], where), op[2], where)
        if t == "paren":
            return self.walk(self.pipe(op[1], dot, scope, where), op[2], where)
        if t == "func":
            return self.call(op[1], [], dot, scope, where)
        raise RenderError(f"{where}: bad operand")

    def call(self, fname, args, dot, scope, where, final=()):
        if fname in ("and", "or"):
            vals = list(args) + [("lit", f) for f in final]
            v = None
            for a in vals:
                v = self.operand(a, dot, scope, where)
                if truth(v) != (fname == "and"):
                    return v
            return v
        ev = [self.operand(a, dot, scope, where) for a in args] + list(final)
        try:
            return self.funcs[fname](*ev)
        except RenderError:
            raise
        except Exception as e:  # wrong argument types and counts, as Go would report
            raise RenderError(f"{where}: error calling {fname}: {e}") from None

    def command(self, cmd, dot, scope, where, final):
        first = cmd[0]
        if first[0] == "func":
            return self.call(first[1], cmd[1:], dot, scope, where, final)
        if first[0] == "field" and (len(cmd) > 1 or final):
            fn = self.walk(dot, first[1], where)
            if callable(fn):
                return fn(*[self.operand(a, dot, scope, where) for a in cmd[1:]], *final)
        if len(cmd) > 1 or final:
            raise RenderError(f"{where}: can't give argument to non-function")
        return self.operand(first, dot, scope, where)

    def pipe(self, p, dot, scope, where):
        val = None
        final = ()
        for cmd in p.cmds:
            val = self.command(cmd, dot, scope, where, final)
            final = (val,)
        if p.decl:
            if p.is_assign:
                for s in reversed(scope):
                    if p.decl[0] in s:
                        s[p.decl[0]] = val
                        break
                else:
                    raise RenderError(f"{where}: undefined variable {p.decl[0]}")
            elif len(p.decl) == 1:
                scope[-1][p.decl[0]] = val
        return val

    @staticmethod
    def lookup(scope, name, where):
        for s in reversed(scope):
            if name in s:
                return s[name]
        raise RenderError(f"{where}: undefined variable {name}")

    def execute(self, body, dot, scope, out):
        for node in body:
            t = node[0]
            if t == "text":
                out.append(node[1])
            elif t == "action":
                v = self.pipe(node[1], dot, scope, node[2])
                if not node[1].decl:
                    out.append(go_str(v))
            elif t in ("if", "with"):
                for cond, sub in node[1]:
                    scope.append({})
                    v = self.pipe(cond, dot, scope, "condition")
                    if truth(v):
                        self.execute(sub, v if t == "with" else dot, scope, out)
                        scope.pop()
                        break
                    scope.pop()
                else:
                    if node[2] is not None:
                        scope.append({})
                        self.execute(node[2], dot, scope, out)
                        scope.pop()
            elif t == "range":
                p = node[1]
                scope.append({})
                coll = self.pipe(Pipe([], False, p.cmds), dot, scope, "range")
                if isinstance(coll, dict):
                    pairs = [(k, coll[k]) for k in sorted(coll)]
                elif isinstance(coll, list):
                    pairs = list(enumerate(coll))
                elif coll is None:
                    pairs = []
                else:
                    raise RenderError(f"range can't iterate over {go_str(coll)}")
                for k, v in pairs:
                    if len(p.decl) == 1:
                        scope[-1][p.decl[0]] = v
                    elif len(p.decl) == 2:
                        scope[-1][p.decl[0]] = k
                        scope[-1][p.decl[1]] = v
                    self.execute(node[2], v, scope, out)
                if not pairs and node[3] is not None:
                    self.execute(node[3], dot, scope, out)
                scope.pop()
            elif t == "template":
                data = self.pipe(node[2], dot, scope, "template") if node[2] else None
                out.append(self.include(node[1], data))

    def include(self, name, data):
        if name not in self.defines:
            raise RenderError(f"no template {name!r} defined")
        out = []
        self.execute(self.defines[name], data, [{"$": data}], out)
        return "".join(out)

    def render(self, body, top):
        self.funcs["include"] = self.include
        out = []
        self.execute(body, top, [{"$": top}], out)
        return "".join(out).replace("<no value>", "")


# ---------------------------------------------------------------------------------------------
# The chart checks.
# ---------------------------------------------------------------------------------------------

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def load_yaml(path, what=None):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise CheckError(f"{what or path}: not valid YAML: {e}") from None


def expect(cond, msg):
    if not cond:
        raise CheckError(msg)


def render_chart(chart, values, release="demo", namespace="default"):
    meta = load_yaml(os.path.join(chart, "Chart.yaml"))
    eng = Engine()
    templates = {}
    for path in sorted(glob.glob(os.path.join(chart, "templates", "*"))):
        name = "relay/templates/" + os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            templates[name] = eng.load(name, f.read())
    top = {
        "Values": helm_values(values),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": True,
                    "IsUpgrade": False, "Revision": 1},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")},
        "Files": Files(chart),
        "Capabilities": {"KubeVersion": {"Version": "v1.29.0", "Major": "1", "Minor": "29"}},
    }
    out = {}
    for name, body in templates.items():
        base = os.path.basename(name)
        if base.startswith("_"):
            continue
        ctx = dict(top, Template={"Name": name, "BasePath": "relay/templates"})
        out[base] = eng.render(body, ctx)
    return out


def manifests(rendered):
    docs = []
    for base, text in sorted(rendered.items()):
        if not base.endswith((".yaml", ".yml")):
            continue
        for i, part in enumerate(re.split(r"(?m)^---\s*$", text)):
            if not part.strip():
                continue
            try:
                doc = yaml.safe_load(part)
            except yaml.YAMLError as e:
                raise CheckError(f"templates/{base} (document {i + 1}) renders invalid YAML: {e}\n{part}") from None
            if doc is None:
                continue
            expect(isinstance(doc, dict), f"templates/{base}: a manifest must be a mapping")
            for key in ("apiVersion", "kind", "metadata"):
                expect(key in doc, f"templates/{base}: {key} is missing")
            name = doc["metadata"].get("name", "")
            expect(isinstance(name, str) and DNS1123.match(name) and len(name) <= 253,
                   f"templates/{base}: metadata.name {name!r} is not a DNS-1123 name")
            for k, v in (doc["metadata"].get("labels") or {}).items():
                expect(isinstance(v, str) and len(v) <= 63, f"templates/{base}: label {k}={v!r} is not a string of <= 63 chars")
            docs.append((base, doc))
    return docs


def parse_duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(text))
    expect(m, f"not a duration: {text!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def check_relay_config(relay, text, what, repo):
    """schema/relay.schema.json (when python3-jsonschema is there) and `relay check-config` (with
    --relay) on a config, with every ${VAR} it uses without a default set to a placeholder."""
    schema_path = os.path.join(repo, "schema", "relay.schema.json")
    if os.path.isfile(schema_path):
        try:
            import jsonschema
        except ImportError:
            print(f"  note: {what}: not validated against the JSON Schema (apt-get install python3-jsonschema)")
        else:
            with open(schema_path, encoding="utf-8") as f:
                schema = json.load(f)
            errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(yaml.safe_load(text)),
                            key=lambda e: list(e.path))
            expect(not errors, f"{what}: violates schema/relay.schema.json: " +
                   "; ".join(f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors))
    if not relay:
        return
    env = dict(os.environ)
    for var, default in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}", text):
        if default:
            env.pop(var, None)   # the config's own default applies
        else:
            env[var] = ("postgresql://check@localhost/check" if var == "DATABASE_URL"
                        else "whsec_c2VjcmV0" if "SECRET" in var else "placeholder")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        r = subprocess.run([relay, "check-config", "--config", path], env=env, capture_output=True, text=True)
        out = r.stdout + r.stderr
        expect(r.returncode == 0, f"{what}: relay check-config failed:\n{out}\n--- config:\n{text}")
    finally:
        os.unlink(path)


def check_rendered(chart, values, rendered, docs, relay, label, repo):
    by_kind = {}
    for base, doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    v = values
    relay_v = v["relay"]
    port = relay_v["opsPort"]

    # ConfigMap: relay.yaml with the chart-owned keys.
    all_cms = by_kind.get("ConfigMap", [])
    dash_cms = [c for c in all_cms if "relay.json" in (c.get("data") or {})]
    cms = [c for c in all_cms if c not in dash_cms]
    expect(len(cms) == 1, f"{label}: expected one relay.yaml ConfigMap, got {len(cms)}")
    cm = cms[0]
    cfg_text = cm["data"]["relay.yaml"]
    cfg = yaml.safe_load(cfg_text)
    expect(cfg["shutdown_timeout"] == f"{relay_v['shutdownTimeoutSeconds']}s", f"{label}: shutdown_timeout is {cfg['shutdown_timeout']!r}")
    expect(cfg["ops"]["listen"] == f"0.0.0.0:{port}", f"{label}: ops.listen is {cfg['ops']['listen']!r}")
    has_inbox = "inbox" in relay_v["config"]
    inbox_port = relay_v["inboxPort"]
    if has_inbox:
        expect(cfg["inbox"]["listen"] == f"0.0.0.0:{inbox_port}", f"{label}: inbox.listen is {cfg['inbox'].get('listen')!r}")
    for key in relay_v["config"]:
        expect(key in cfg, f"{label}: relay.config.{key} is missing from relay.yaml")
    check_relay_config(relay, cfg_text, f"{label}: ConfigMap relay.yaml", repo)
    # No secret in plain text: the config only names variables.
    expect(not re.search(r"postgres(ql)?://[^$\s]*@", cfg_text), f"{label}: a database URL with credentials is in the ConfigMap")

    # Secret only on request, never with values the user did not give.
    secrets = by_kind.get("Secret", [])
    expect(len(secrets) == (1 if v["secrets"]["create"] else 0), f"{label}: {len(secrets)} Secrets rendered")

    # Deployment with relay as a sidecar.
    deps = by_kind.get("Deployment", [])
    expect(len(deps) == (1 if v["app"]["enabled"] else 0), f"{label}: {len(deps)} Deployments rendered")
    for dep in deps:
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        expect(dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(),
               f"{label}: the Deployment's selector does not match its pod labels")
        want = relay_v["preStopSleepSeconds"] + relay_v["shutdownTimeoutSeconds"] + relay_v["terminationGraceMarginSeconds"]
        expect(spec["terminationGracePeriodSeconds"] == want,
               f"{label}: terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} != {want}")
        expect(isinstance(dep["spec"]["replicas"], int), f"{label}: replicas is not an integer")
        names = [c["name"] for c in spec["containers"]]
        expect(len(set(names)) == len(names) and "relay" in names and v["app"]["name"] in names,
               f"{label}: containers are {names}")
        c = next(c for c in spec["containers"] if c["name"] == "relay")
        expect(c["args"] == ["run", "--config", "/etc/relay/relay.yaml"], f"{label}: relay args {c['args']}")
        ops = [p for p in c["ports"] if p["name"] == "ops"]
        expect(len(ops) == 1 and ops[0]["containerPort"] == port and isinstance(ops[0]["containerPort"], int),
               f"{label}: relay's ops port is {ops}")
        inbox_ports = [p for p in c["ports"] if p["name"] == "inbox"]
        if has_inbox:
            expect(len(inbox_ports) == 1 and inbox_ports[0]["containerPort"] == inbox_port,
                   f"{label}: relay's inbox port is {inbox_ports}")
        else:
            expect(not inbox_ports, f"{label}: an inbox port without an inbox")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if relay_v[probe]["enabled"]:
                expect(c[probe]["httpGet"] == {"path": path, "port": "ops"}, f"{label}: {probe} is {c.get(probe)}")
                expect("enabled" not in c[probe], f"{label}: {probe} leaks the chart's `enabled` key")
            else:
                expect(probe not in c, f"{label}: {probe} rendered although disabled")
        if relay_v["preStopSleepSeconds"] > 0:
            expect(c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(relay_v["preStopSleepSeconds"])],
                   f"{label}: preStop is {c.get('lifecycle')}")
        else:
            expect("lifecycle" not in c, f"{label}: a preStop hook although preStopSleepSeconds is 0")
        for key in ("requests", "limits"):
            expect(c["resources"].get(key), f"{label}: relay has no resources.{key}")
        expect(c["securityContext"].get("runAsNonRoot") is True, f"{label}: relay may run as root")
        check_env(c, v, label, "relay")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        vols = {vol["name"]: vol for vol in spec["volumes"]}
        expect(vols[mounts["/etc/relay"]]["configMap"]["name"] == cm["metadata"]["name"],
               f"{label}: /etc/relay is not the ConfigMap")
        inits = spec.get("initContainers") or []
        if v["migrate"]["enabled"]:
            expect([i["name"] for i in inits] == ["relay-migrate"], f"{label}: init containers {inits}")
            expect(inits[0]["args"][:1] == ["migrate"] and inits[0]["image"] == c["image"], f"{label}: migrate init container")
            check_env(inits[0], v, label, "relay-migrate")
        else:
            expect(not inits, f"{label}: a migrate init container although migrate.enabled=false")
        digest = hashlib.sha256(render_config_only(chart, values).encode()).hexdigest()
        expect(pod["metadata"]["annotations"]["checksum/relay-config"] == digest, f"{label}: config checksum mismatch")

    # Service -> pods, ServiceMonitor -> Service.
    all_svcs = by_kind.get("Service", [])
    inbox_svcs = [s for s in all_svcs if s["metadata"]["labels"].get("app.kubernetes.io/component") == "relay-inbox"]
    svcs = [s for s in all_svcs if s not in inbox_svcs]
    want_inbox_svc = v["inboxService"]["enabled"] and has_inbox
    expect(len(inbox_svcs) == (1 if want_inbox_svc else 0), f"{label}: {len(inbox_svcs)} inbox Services rendered")
    for svc in inbox_svcs:
        expect(svc["spec"]["ports"][0]["port"] == v["inboxService"]["port"] and svc["spec"]["ports"][0]["targetPort"] == "inbox",
               f"{label}: inbox Service ports")
        for dep in deps:
            expect(svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
                   f"{label}: the inbox Service does not select the Deployment's pods")
    want_svc = v["service"]["enabled"] or v["serviceMonitor"]["enabled"]
    expect(len(svcs) == (1 if want_svc else 0), f"{label}: {len(svcs)} Services rendered")
    for svc in svcs:
        expect(svc["spec"]["ports"][0]["port"] == port and svc["spec"]["ports"][0]["targetPort"] == "ops", f"{label}: Service ports")
        for dep in deps:
            expect(svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
                   f"{label}: the ops Service does not select the Deployment's pods")
        if v["service"]["selector"]:
            expect(svc["spec"]["selector"] == v["service"]["selector"], f"{label}: service.selector ignored")
    sms = by_kind.get("ServiceMonitor", [])
    expect(len(sms) == (1 if v["serviceMonitor"]["enabled"] else 0), f"{label}: {len(sms)} ServiceMonitors rendered")
    for sm in sms:
        expect(sm["spec"]["selector"]["matchLabels"].items() <= svcs[0]["metadata"]["labels"].items(),
               f"{label}: the ServiceMonitor does not select the ops Service")
        ep = sm["spec"]["endpoints"][0]
        expect(ep["port"] == "ops" and ep["path"] == "/metrics", f"{label}: ServiceMonitor endpoint {ep}")
        expect({"action": "replace", "targetLabel": "job", "replacement": "relay"} in ep["relabelings"],
               f"{label}: the ServiceMonitor does not set job=relay, which the alerts select")
        for k, val in v["serviceMonitor"]["labels"].items():
            expect(sm["metadata"]["labels"].get(k) == val, f"{label}: serviceMonitor.labels.{k} missing")

    # Grafana dashboard ConfigMap = dashboards/relay.json, with the sidecar's label.
    dv = v["dashboards"]
    expect(len(dash_cms) == (1 if dv["enabled"] else 0), f"{label}: {len(dash_cms)} dashboard ConfigMaps rendered")
    for dcm in dash_cms:
        with open(os.path.join(chart, "dashboards", "relay.json"), encoding="utf-8") as f:
            want = json.load(f)
        expect(json.loads(dcm["data"]["relay.json"]) == want,
               f"{label}: the dashboard ConfigMap's relay.json differs from dashboards/relay.json")
        for k, val in dv["labels"].items():
            expect(dcm["metadata"]["labels"].get(k) == val, f"{label}: dashboards.labels.{k} missing")
        expect(dcm["metadata"]["labels"].get("grafana_dashboard") == "1" or "grafana_dashboard" not in dv["labels"],
               f"{label}: the dashboard ConfigMap lacks grafana_dashboard: \"1\"")
        expect((dcm["metadata"].get("annotations") or {}) == dv["annotations"], f"{label}: dashboards.annotations")
        expect(dcm["metadata"].get("namespace", "") == dv["namespace"], f"{label}: dashboards.namespace")
        expect(dcm["metadata"]["name"] != cms[0]["metadata"]["name"], f"{label}: two ConfigMaps share a name")
        check_dashboard(want, f"{label}: dashboards/relay.json")

    # PrometheusRule = the rules file.
    prs = by_kind.get("PrometheusRule", [])
    expect(len(prs) == (1 if v["prometheusRule"]["enabled"] else 0), f"{label}: {len(prs)} PrometheusRules rendered")
    for pr in prs:
        rules = load_yaml(os.path.join(chart, "files", "relay-alerts.rules.yml"))
        expect(pr["spec"] == rules, f"{label}: the PrometheusRule's spec differs from files/relay-alerts.rules.yml")

    notes = rendered.get("NOTES.txt", "")
    expect(notes.strip() and "{{" not in notes, f"{label}: NOTES.txt is empty or unrendered")


def check_dashboard(dash, where):
    """The parts of the Grafana model the chart relies on (the queries themselves are run against a
    real Prometheus by tests/integration/dashboard_test.cc)."""
    names = {t["name"]: t for t in dash["templating"]["list"]}
    expect(names.get("datasource", {}).get("type") == "datasource", f"{where}: no datasource variable")
    for name in ("namespace", "pod", "subscription"):
        expect(names.get(name, {}).get("type") == "query", f"{where}: no {name} variable")
    ids = [p["id"] for p in dash["panels"]]
    expect(len(ids) == len(set(ids)), f"{where}: panel ids repeat")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        expect(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, f"{where}: panel {p['title']!r} datasource")
        expect(p["targets"] and all(t.get("expr") for t in p["targets"]), f"{where}: panel {p['title']!r} has no query")


def check_env(container, v, label, who):
    env = {e["name"]: e for e in container["env"]}
    db = env.get("DATABASE_URL")
    expect(db and "value" not in db, f"{label}: {who}: DATABASE_URL must come from a Secret")
    ref = db["valueFrom"]["secretKeyRef"]
    want_name = v["secrets"]["databaseUrl"].get("secretName") or v["secrets"]["name"]
    expect(ref == {"name": want_name, "key": v["secrets"]["databaseUrl"]["key"]}, f"{label}: {who}: DATABASE_URL ref {ref}")
    for item in v["secrets"]["env"]:
        e = env.get(item["name"])
        expect(e and "value" not in e, f"{label}: {who}: {item['name']} must come from a Secret")
        ref = e["valueFrom"]["secretKeyRef"]
        expect(ref["name"] == (item.get("secretName") or v["secrets"]["name"]) and ref["key"] == item["key"],
               f"{label}: {who}: {item['name']} ref {ref}")
        expect(ref.get("optional", False) == bool(item.get("optional")), f"{label}: {who}: {item['name']} optional flag")
    for name, e in env.items():
        if re.search(r"SECRET|PASSWORD|TOKEN|DATABASE_URL", name):
            expect("valueFrom" in e, f"{label}: {who}: {name} is given in plain text")


_config_cache = {}


def render_config_only(chart, values):
    """The text of include "relay.configYaml" (what the checksum annotation hashes)."""
    eng = Engine()
    with open(os.path.join(chart, "templates", "_helpers.tpl"), encoding="utf-8") as f:
        eng.load("relay/templates/_helpers.tpl", f.read())
    meta = load_yaml(os.path.join(chart, "Chart.yaml"))
    eng.funcs["include"] = eng.include
    top = {"Values": helm_values(values), "Release": {"Name": "demo", "Namespace": "default", "Service": "Helm"},
           "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")}}
    return eng.include("relay.configYaml", top)


def check_chart(repo, relay):
    chart = os.path.join(repo, "charts", "relay")
    meta = load_yaml(os.path.join(chart, "Chart.yaml"))
    for key in ("apiVersion", "name", "version", "appVersion"):
        expect(meta.get(key), f"Chart.yaml: {key} is missing")
    expect(meta["apiVersion"] == "v2", "Chart.yaml: apiVersion must be v2")
    expect(re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", str(meta["version"])), "Chart.yaml: version is not SemVer")
    for path in glob.glob(os.path.join(chart, "files", "*.y*ml")):
        load_yaml(path)
    defaults = load_yaml(os.path.join(chart, "values.yaml"))
    cases = [("values.yaml", defaults)]
    for path in sorted(glob.glob(os.path.join(chart, "ci", "*-values.yaml"))):
        cases.append((os.path.relpath(path, chart), coalesce(defaults, load_yaml(path) or {})))
    count = 0
    for label, values in cases:
        rendered = render_chart(chart, values)
        docs = manifests(rendered)
        check_rendered(chart, values, rendered, docs, relay, label, repo)
        kinds = sorted(d["kind"] for _, d in docs)
        print(f"  ok: {label}: {len(docs)} manifests ({', '.join(kinds)})")
        count += 1

    # Values the chart must refuse, with its own message.
    for override, message in (
        ({"relay": {"config": {"shutdown_timeout": "10s"}}}, "set relay.shutdownTimeoutSeconds instead"),
        ({"relay": {"config": {"ops": {"listen": "127.0.0.1:9090"}}}}, "set relay.opsPort instead"),
        ({"relay": {"config": {"inbox": {"listen": "127.0.0.1:8081", "sources": [{"name": "a", "unsigned": True}]}}}},
         "set relay.inboxPort instead"),
        ({"secrets": {"name": ""}}, "secrets.name (or secrets.databaseUrl.secretName) is required"),
    ):
        try:
            render_chart(chart, coalesce(defaults, override))
        except RenderError as e:
            expect(message in str(e), f"rejecting {override}: unexpected error {e}")
        else:
            raise CheckError(f"values {override} rendered, but the chart must reject them")
    print(f"  ok: 3 invalid value sets are rejected with the chart's message")

    # The sidecar's named templates work from another chart's context (README.md).
    eng = Engine()
    with open(os.path.join(chart, "templates", "_helpers.tpl"), encoding="utf-8") as f:
        eng.load("relay/templates/_helpers.tpl", f.read())
    eng.funcs["include"] = eng.include
    ctx = {"Values": helm_values(coalesce(defaults, {"app": {"enabled": False}})),
           "Release": {"Name": "shop", "Namespace": "default", "Service": "Helm"},
           "Chart": {"Name": "relay", "Version": meta["version"], "AppVersion": meta["appVersion"]}}
    for tpl in ("relay.sidecar", "relay.migrateInitContainer", "relay.volumes"):
        items = yaml.safe_load(eng.include(tpl, ctx))
        expect(isinstance(items, list) and len(items) == 1 and items[0]["name"], f"{tpl}: not a one-item list")
    expect(eng.include("relay.terminationGracePeriodSeconds", ctx) == "30", "relay.terminationGracePeriodSeconds")
    print("  ok: relay.sidecar, relay.migrateInitContainer, relay.volumes render from a parent's context")
    return count


# ---------------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------------

def compose_unescape(text, where):
    """Compose interpolates $VAR and ${VAR...}; $$ is a literal $. Anything else is an error here:
    a script's $var that Compose would replace with the host's (usually empty) variable."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$":
            nxt = text[i + 1: i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            raise CheckError(f"{where}: unescaped ${text[i + 1:i + 20]!r}...: Compose would interpolate it (write $$)")
        out.append(text[i])
        i += 1
    return "".join(out)


def check_compose(repo, relay):
    compose = load_yaml(os.path.join(repo, "docker-compose.yml"))
    svcs = compose["services"]
    expect(set(svcs) == {"postgres", "migrate", "app", "relay", "consumer"}, f"docker-compose.yml: services {sorted(svcs)}")
    pg = svcs["postgres"]
    expect(pg["image"] == "postgres:15" and "wal_level=logical" in " ".join(pg["command"]), "postgres: image/command")
    expect("pg_isready" in " ".join(pg["healthcheck"]["test"]), "postgres: healthcheck must use pg_isready")
    relay_svcs = [n for n, s in svcs.items() if s.get("image") == "relay:local"]
    expect(sorted(relay_svcs) == ["consumer", "migrate", "relay"], f"services on relay:local: {relay_svcs}")
    builds = {json.dumps(svcs[n].get("build"), sort_keys=True) for n in relay_svcs}
    expect(len(builds) == 1 and "null" not in builds, "every relay:local service must have the same build")
    expect(svcs["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy", "migrate must wait for postgres healthy")
    for n in ("relay", "app"):
        expect(svcs[n]["depends_on"]["migrate"]["condition"] == "service_completed_successfully",
               f"{n} must wait for migrate to complete")
    expect(svcs["migrate"]["command"][:1] == ["migrate"], "migrate: command")
    expect(svcs["relay"]["command"] == ["run", "--config", "/etc/relay/relay.yaml"], "relay: command")

    # The config file it mounts.
    mount = next(m for m in svcs["relay"]["volumes"] if m.split(":")[1] == "/etc/relay/relay.yaml")
    cfg_path = os.path.normpath(os.path.join(repo, mount.split(":")[0]))
    expect(os.path.isfile(cfg_path), f"relay mounts {cfg_path}, which does not exist")
    expect(mount in svcs["migrate"]["volumes"], "migrate must mount the same relay.yaml")
    with open(cfg_path, encoding="utf-8") as f:
        cfg_text = f.read()
    cfg = yaml.safe_load(cfg_text)
    check_relay_config(relay, cfg_text, os.path.relpath(cfg_path, repo), repo)
    grace = parse_duration_s(svcs["relay"]["stop_grace_period"])
    expect(grace == parse_duration_s(cfg["shutdown_timeout"]) + 5,
           f"relay: stop_grace_period {grace}s must be shutdown_timeout + 5s")
    listen_port = cfg["ops"]["listen"].rsplit(":", 1)[1]
    expect(cfg["ops"]["listen"].startswith("0.0.0.0:"), "ops.listen must be 0.0.0.0 in a container")
    expect(any(p.endswith(f":{listen_port}") for p in svcs["relay"]["ports"]), "relay: ops port not published")
    hc = " ".join(svcs["relay"]["healthcheck"]["test"])
    expect(f"/dev/tcp/127.0.0.1/{listen_port}" in hc and "/readyz" in hc, "relay: healthcheck must ask /readyz on the ops port")
    consumer_listen = svcs["consumer"]["command"][svcs["consumer"]["command"].index("--listen") + 1]
    for sub in cfg["subscriptions"]:
        m = re.match(r"https?://([^:/]+):(\d+)/", sub["endpoint"])
        expect(m and m.group(1) in svcs, f"subscription {sub['name']}: {sub['endpoint']} is not a compose service")
        if m.group(1) == "consumer":
            expect(consumer_listen.endswith(":" + m.group(2)), f"subscription {sub['name']}: consumer listens on {consumer_listen}")

    # The app's script: $$-escaped for Compose, valid bash, publishing in a transaction.
    app = svcs["app"]
    expect(app["entrypoint"] == ["bash", "-c"] and len(app["command"]) == 1, "app: entrypoint bash -c with one script")
    script = compose_unescape(app["command"][0], "app.command")
    for needle in ("CREATE TABLE IF NOT EXISTS", "BEGIN;", "relay.publish(", "COMMIT;"):
        expect(needle in script, f"app: the script lacks {needle}")
    r = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    expect(r.returncode == 0, f"app: bash -n: {r.stderr}")
    for n, s in svcs.items():
        for part in (s.get("healthcheck") or {}).get("test", []):
            compose_unescape(re.sub(r"\$\{[A-Z_]+(:-[^}]*)?\}", "", part), f"{n}.healthcheck")
    print(f"  ok: docker-compose.yml ({len(svcs)} services) and {os.path.relpath(cfg_path, repo)}")
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
    ap.add_argument("--relay", help="the relay binary: also run `relay check-config` on the configs")
    ap.add_argument("parts", nargs="*", choices=["chart", "compose", []], default=[])
    args = ap.parse_args()
    parts = args.parts or ["chart", "compose"]
    failed = 0
    for part in parts:
        print(f"{part}:")
        try:
            (check_chart if part == "chart" else check_compose)(args.repo, args.relay)
        except (CheckError, RenderError) as e:
            print(f"FAILED: {part}: {e}", file=sys.stderr)
            failed += 1
        except Exception:  # a file without the structure a check expects
            print(f"FAILED: {part}: unexpected structure:\n{traceback.format_exc()}", file=sys.stderr)
            failed += 1
    passed = len(parts) - failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
