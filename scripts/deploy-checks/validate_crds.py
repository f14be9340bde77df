#!/usr/bin/env python3
"""Schema validation of the custom resources (KEDA, Prometheus operator), offline.

kubernetes-validate knows only the built-in kinds and merely warns about others. This checks
every object of the given files: a kind with a stored schema under crd-schemas/ (made from the
project's CRD by crd_to_schema.py) must validate against it, strictly; a kind that neither
kubernetes-validate nor crd-schemas/ knows is an error, so nothing passes unchecked.
    validate_crds.py [-k 1.33] FILE...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jsonschema
import yaml
from kubernetes_validate import utils as kv

SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"


def stored_schemas() -> dict[tuple[str, str], dict]:
    out = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        key = (schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"])
        out[key] = schema
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", "--kubernetes-version", default="1.33")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    schemas = stored_schemas()
    errors = checked = 0
    for path in args.files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            key = (doc.get("apiVersion", ""), doc.get("kind", ""))
            where = f"{path}: {key[1]}/{(doc.get('metadata') or {}).get('name')}"
            if key in schemas:
                validator = jsonschema.Draft202012Validator(schemas[key])
                problems = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
                for e in problems:
                    print(f"ERROR {where}: {'.'.join(map(str, e.path))}: {e.message}")
                errors += len(problems)
                checked += 1
                continue
            try:
                kv.validate(doc, args.kubernetes_version, strict=True)
            except kv.SchemaNotFoundError:
                print(f"ERROR {where}: no schema for {key[0]} {key[1]} (add its CRD to {SCHEMAS.name}/)")
                errors += 1
            except kv.ValidationError:
                pass  # kubernetes-validate's own step reports it
    print(f"{checked} custom resources validated against {len(schemas)} stored CRD schemas: "
          f"{', '.join(k for _, k in sorted(schemas))}; {errors} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
