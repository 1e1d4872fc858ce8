#!/usr/bin/env python3
"""Checks the event schemas in schemas/v<N>/ against their examples and counter-examples.

Usage: python3 tools/check-schemas.py [SCHEMAS_DIR]      (default: schemas/ next to tools/)

For every schema version directory (v1, v2, ...):
  * every *.schema.json is a valid draft 2020-12 schema; $refs resolve through a
    referencing.Registry built from the files' $id (nothing is fetched from the network);
  * the envelope's `type` enum, its if/then branches and the per-type files match one to one;
  * examples/<Type>.json: one single-line JSON object per type, `type` equal to the file name,
    valid against the envelope;
  * counter-examples/NN-name.json + NN-name.expected: at least 16 pairs, single-line JSON,
    each INVALID, and every validation error names the field given in the .expected file
    (dot-separated from the envelope root, array items as [n]).
Formats `uuid` and `date-time` are asserted (date-time needs rfc3339-validator). Patterns are
matched with ECMA-262 semantics: `$` means the end of the string (Python's `$` would also
match before a final newline). Exit status 0 when everything holds, 1 otherwise.
"""
import json
import pathlib
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
MIN_COUNTER_EXAMPLES = 16


def ecma_pattern(validator, pattern, instance, schema):
    """`pattern` with ECMA-262 `$` (end of input only) instead of Python's (also before a final \\n)."""
    if not validator.is_type(instance, "string"):
        return
    py = re.sub(r"(?<!\\)\$", r"\\Z", pattern)
    if not re.search(py, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(Draft202012Validator, {"pattern": ecma_pattern})


def strict_json(text):
    """Parses JSON rejecting duplicate keys and NaN/Infinity (the store rejects them too)."""
    def pairs(kv):
        keys = [k for k, _ in kv]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"duplicate key(s) {sorted(dup)}")
        return dict(kv)

    def bad_constant(c):
        raise ValueError(f"{c} is not JSON")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)


def render(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def offending_paths(error):
    """The field(s) an error is about: for `required` the missing field, for
    `additionalProperties` the unknown field, otherwise the instance location."""
    base = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        return {render(base + [f]) for f in error.validator_value if f not in error.instance}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        pats = list(error.schema.get("patternProperties", {}))
        return {render(base + [k]) for k in error.instance
                if k not in known and not any(re.search(p, k) for p in pats)}
    return {render(base)}


class Checker:
    def __init__(self):
        self.failures = []
        self.lines = []

    def fail(self, msg):
        self.failures.append(msg)

    def check_version(self, vdir):
        name = vdir.name
        schemas = {}
        for f in sorted(vdir.glob("*.schema.json")):
            try:
                s = strict_json(f.read_text(encoding="utf-8"))
                Draft202012Validator.check_schema(s)
            except Exception as e:  # noqa: BLE001 - report any problem with the file
                self.fail(f"{f}: not a valid draft 2020-12 schema: {e}")
                continue
            if s.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
                self.fail(f"{f}: $schema is not draft 2020-12")
            if not s.get("$id", "").endswith("/" + f.name):
                self.fail(f"{f}: $id {s.get('$id')!r} does not end with /{f.name}")
            schemas[f.name] = s
        envelope = schemas.get("envelope.schema.json")
        if envelope is None:
            self.fail(f"{vdir}: no envelope.schema.json")
            return
        registry = Registry().with_resources(
            (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas.values())
        validator = Validator(envelope, registry=registry, format_checker=FORMAT_CHECKER)

        types = envelope["properties"]["type"]["enum"]
        type_files = {f[: -len(".schema.json")] for f in schemas if f != "envelope.schema.json"}
        if set(types) != type_files:
            self.fail(f"{name}: type enum {sorted(types)} != per-type files {sorted(type_files)}")
        branches = {}
        for b in envelope.get("allOf", []):
            t = b["if"]["properties"]["type"]["const"]
            branches[t] = b["then"]["properties"]["data"]["$ref"]
            if "type" not in b["if"].get("required", []):
                self.fail(f"{name}: if-branch for {t} does not require `type`")
        if set(branches) != set(types):
            self.fail(f"{name}: if/then branches {sorted(branches)} != type enum")
        for t, ref in branches.items():
            if ref != f"{t}.schema.json":
                self.fail(f"{name}: branch {t} refers to {ref}")
            try:
                registry.resolver(base_uri=envelope["$id"]).lookup(ref)
            except Exception as e:  # noqa: BLE001
                self.fail(f"{name}: $ref {ref} does not resolve: {e}")
        for t in type_files:
            s = schemas[f"{t}.schema.json"]
            if s.get("additionalProperties") is not False or s.get("type") != "object":
                self.fail(f"{name}/{t}: data must be an object with additionalProperties: false")
            if "not by this schema" not in s.get("description", ""):
                self.fail(f"{name}/{t}: description must state the rule and that code enforces it")
        if envelope.get("additionalProperties") is not False:
            self.fail(f"{name}: envelope must have additionalProperties: false")
        self.lines.append(f"{name}: {len(schemas)} schemas valid (envelope + {len(type_files)} types), "
                          f"$refs resolve")

        # examples
        before = len(self.failures)
        seen = set()
        for f in sorted((vdir / "examples").glob("*.json")):
            text = f.read_text(encoding="utf-8")
            if text.rstrip("\n").count("\n") or not text.endswith("\n"):
                self.fail(f"{f}: must be exactly one line ending in a newline")
            try:
                obj = strict_json(text)
            except ValueError as e:
                self.fail(f"{f}: not JSON: {e}")
                continue
            if obj.get("type") != f.stem:
                self.fail(f"{f}: type {obj.get('type')!r} does not match the file name")
            seen.add(f.stem)
            errs = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
            for e in errs:
                self.fail(f"{f}: INVALID at {render(e.absolute_path) or '(root)'}: {e.message}")
        if seen != set(types):
            self.fail(f"{name}: examples missing for {sorted(set(types) - seen)}, "
                      f"extra {sorted(seen - set(types))}")
        self.lines.append(f"{name}: {len(seen)} examples, all valid" if len(self.failures) == before
                          else f"{name}: examples FAILED")

        # counter-examples
        cdir = vdir / "counter-examples"
        jsons = {f.stem for f in cdir.glob("*.json")}
        expects = {f.stem for f in cdir.glob("*.expected")}
        for stem in sorted(jsons ^ expects):
            self.fail(f"{cdir}/{stem}: .json and .expected must come in pairs")
        if len(jsons & expects) < MIN_COUNTER_EXAMPLES:
            self.fail(f"{cdir}: {len(jsons & expects)} counter-examples, need >= {MIN_COUNTER_EXAMPLES}")
        ok = 0
        for stem in sorted(jsons & expects):
            if not re.fullmatch(r"[0-9]{2}-[A-Za-z0-9-]+", stem):
                self.fail(f"{cdir}/{stem}: name must be NN-short-description")
            text = (cdir / f"{stem}.json").read_text(encoding="utf-8")
            lines = (cdir / f"{stem}.expected").read_text(encoding="utf-8").splitlines()
            if len(lines) != 1 or not lines[0].strip():
                self.fail(f"{cdir}/{stem}.expected: must hold exactly one line")
                continue
            expected = lines[0].strip()
            if text.rstrip("\n").count("\n") or not text.endswith("\n"):
                self.fail(f"{cdir}/{stem}.json: must be exactly one line ending in a newline")
            try:
                obj = strict_json(text)
            except ValueError as e:
                self.fail(f"{cdir}/{stem}.json: not JSON ({e}); counter-examples must be JSON")
                continue
            errs = list(validator.iter_errors(obj))
            if not errs:
                self.fail(f"{stem}: VALID, but must be rejected at {expected}")
                continue
            found = set().union(*(offending_paths(e) for e in errs))
            if found != {expected}:
                self.fail(f"{stem}: expected only {expected}, errors name {sorted(found)}: "
                          + "; ".join(e.message[:100] for e in errs))
                continue
            ok += 1
            self.lines.append(f"  rejected  {stem:<45} {expected:<16} "
                              f"({', '.join(sorted({e.validator for e in errs}))})")
        self.lines.append(f"{name}: {ok}/{len(jsons & expects)} counter-examples rejected at the expected field")


def main():
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "schemas"
    for fmt in ("uuid", "date-time"):
        if fmt not in FORMAT_CHECKER.checkers:
            print(f"check-schemas: format {fmt!r} is not checked (install rfc3339-validator)", file=sys.stderr)
            return 1
    versions = sorted(p for p in root.glob("v[0-9]*") if p.is_dir())
    if not versions:
        print(f"check-schemas: no schema versions under {root}", file=sys.stderr)
        return 1
    c = Checker()
    for v in versions:
        c.check_version(v)
    print("\n".join(c.lines))
    if c.failures:
        print(f"\nFAILED ({len(c.failures)}):", file=sys.stderr)
        for f in c.failures:
            print("  " + f, file=sys.stderr)
        return 1
    print("check-schemas: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
