#!/usr/bin/env python3
"""Turns a CustomResourceDefinition into the strict JSON schema validate_crds.py checks against.

    crd_to_schema.py CRD.yaml SOURCE > crd-schemas/<kind>-<group>-<version>.json

The schema is the CRD's openAPIV3Schema of its served storage version, made strict the way
kubernetes-validate --strict makes the built-in kinds strict: every object that lists its
properties refuses others (unless it says x-kubernetes-preserve-unknown-fields), and apiVersion
and kind must be the CRD's. SOURCE (where the CRD came from) is kept in the schema's $comment.
"""

from __future__ import annotations

import json
import sys

import yaml


def strict(node: object) -> object:
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def main() -> int:
    crd = yaml.safe_load(open(sys.argv[1]))
    source = sys.argv[2]
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    schema = strict(version["schema"]["openAPIV3Schema"])
    api_version = f"{spec['group']}/{version['name']}"
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "$comment": f"{crd['metadata']['name']} {api_version} from {source}, made strict by crd_to_schema.py",
           **schema}
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
