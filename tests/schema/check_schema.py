#!/usr/bin/env python3
"""Checks schema/relay.schema.json against the parser and the example configs.

(a) Every example config validates against the schema: examples/*.yaml, and every ```yaml block
    in README.md with a top-level `subscriptions:` or `database:` key. The raw YAML is validated:
    the schema accepts ${VAR} / ${VAR:-default} strings wherever a value may be interpolated.
(b) The key paths in the schema (properties, with "[]" for list items) equal the ones the parser
    accepts, as printed by the relay_config_keys binary; differences are listed both ways.
(c) `relay check-config` accepts every example, with each ${VAR} it references (without a default)
    set to a plausible value.

Exit 0 when all pass; 1 with every problem listed otherwise. Needs python3-jsonschema (draft
2020-12 support: 4.x, Debian 12 ships 4.10) and python3-yaml; no pip.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
YAML_BLOCK_RE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def plausible_value(name):
    """A value for an environment variable that passes the check of the key it is likely used in."""
    upper = name.upper()
    if upper == "DATABASE_URL" or upper.endswith("DATABASE_URL"):
        return "postgresql://relay@127.0.0.1:5432/app"
    if upper.endswith("PORT"):
        return "8080"
    if "SECRET" in upper:
        return "whsec_c2VjcmV0"
    if "LISTEN" in upper:
        return "127.0.0.1:9090"
    if upper.endswith("URL") or upper.endswith("ENDPOINT"):
        return "http://127.0.0.1:8080/events"
    if "LEVEL" in upper:
        return "info"
    return "x"


def examples(repo):
    """Yields (label, text) for every example config in the repo."""
    for path in sorted((repo / "examples").glob("*.yaml")):
        yield str(path.relative_to(repo)), path.read_text()
    readme = repo / "README.md"
    if readme.exists():
        text = readme.read_text()
        for match in YAML_BLOCK_RE.finditer(text):
            block = match.group(1)
            line = text.count("\n", 0, match.start()) + 2  # first line inside the fence
            try:
                doc = yaml.safe_load(block)
            except yaml.YAMLError:
                doc = None  # a snippet, not a config; only whole configs are checked
            if isinstance(doc, dict) and ("subscriptions" in doc or "database" in doc):
                yield f"README.md:{line} (```yaml block)", block


def schema_keys(schema):
    """Dotted key paths under the schema's properties, "[]" for list items, sections included."""
    defs = schema.get("$defs", {})

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            node = defs[ref[len("#/$defs/"):]]
        return node

    keys = []

    def walk(node, prefix):
        node = resolve(node)
        for name, child in node.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            keys.append(path)
            child = resolve(child)
            items = resolve(child.get("items", {}))
            if "properties" in child:
                walk(child, path)
            if "properties" in items:
                walk(items, path + "[]")

    walk(schema, "")
    return keys


def check_objects_closed(schema, problems):
    """Every object with properties must say additionalProperties: false."""

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                problems.append(f"schema: {where or '(root)'}: additionalProperties must be false")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "")


def validate_examples(validator, configs, problems):
    for label, text in configs:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            problems.append(f"{label}: YAML error: {e}")
            continue
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{label}: {where}: {error.message}")


def compare_keys(schema, keys_bin, problems):
    result = subprocess.run([keys_bin], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problems.append(f"{keys_bin} exited {result.returncode}: {result.stderr.strip()}")
        return
    parser_keys = set(result.stdout.split())
    in_schema = set(schema_keys(schema))
    for key in sorted(in_schema - parser_keys):
        problems.append(f"key in the schema but not accepted by the parser: {key}")
    for key in sorted(parser_keys - in_schema):
        problems.append(f"key accepted by the parser but missing from the schema: {key}")


def check_config(relay_bin, configs, problems):
    for label, text in configs:
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") or k.endswith("SAN_OPTIONS")}
        for match in VAR_RE.finditer(text):
            if match.group(2) is None:
                env[match.group(1)] = plausible_value(match.group(1))
        env.setdefault("DATABASE_URL", plausible_value("DATABASE_URL"))
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
            path = f.name
        try:
            result = subprocess.run([relay_bin, "check-config", "--config", path], env=env,
                                    capture_output=True, text=True, check=False)
        finally:
            os.unlink(path)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().replace(path, "<file>")
            problems.append(f"{label}: relay check-config exited {result.returncode}:\n  "
                            + output.replace("\n", "\n  "))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys-bin", required=True, help="the relay_config_keys binary")
    parser.add_argument("--relay-bin", required=True, help="the relay binary")
    parser.add_argument("--repo", required=True, type=Path, help="the repository root")
    args = parser.parse_args()

    schema = json.loads((args.repo / "schema" / "relay.schema.json").read_text())
    problems = []
    jsonschema.Draft202012Validator.check_schema(schema)
    check_objects_closed(schema, problems)
    validator = jsonschema.Draft202012Validator(schema)
    configs = list(examples(args.repo))
    if not any(label.startswith("examples/") for label, _ in configs):
        problems.append("no examples/*.yaml found")

    validate_examples(validator, configs, problems)
    compare_keys(schema, args.keys_bin, problems)
    check_config(args.relay_bin, configs, problems)

    for label, _ in configs:
        print(f"checked {label}")
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"- {p}", file=sys.stderr)
        return 1
    print("schema_check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
