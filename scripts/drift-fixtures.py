#!/usr/bin/env python3
"""Makes the drifted-response fixtures from each bundle's recorded success fixture.

drift-extra-fields.yaml: every JSON object the provider sends (answers and callbacks) gains
fields we have never seen, and a new header appears; the expected outcome is the success's,
unchanged: adapters must ignore what they do not know.

drift-missing-optional.yaml: fields the provider documents as optional (or may stop sending)
are gone, per provider below; the expected outcome is what the lifecycle then produces
(`executor bundle test --bless`), reviewed by hand: still a success, with fewer facts.

Usage: scripts/drift-fixtures.py  (then: executor bundle test all --bless, review git diff)
"""
import copy
import pathlib
import sys

import re

import yaml


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's sexagesimal numbers and yes/no/on/off booleans: the
    fixtures are YAML 1.2 (serde_yaml_ng), where `16:9` is the string an aspect ratio is."""


Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))

ROOT = pathlib.Path(__file__).resolve().parent.parent / "bundles" / "fixtures"

# Per fixture directory: optional JSON keys (removed at any depth) and headers.
OPTIONAL = {
    "openai-gpt-image-1": (["created", "size", "quality", "background", "output_format"], []),
    "replicate-flux-schnell": (["logs", "urls", "metrics", "started_at", "completed_at", "data_removed"], []),
    "fal-flux-dev": (["logs", "metrics", "timings", "seed", "has_nsfw_concepts", "queue_position", "prompt"], []),
    "runway-gen4-turbo": (["createdAt", "progress"], []),
    "stability-stable-image-core": ([], ["seed", "x-request-id"]),
    "elevenlabs-multilingual-v2": ([], ["character-cost", "current-concurrent-requests", "maximum-concurrent-requests"]),
    "luma-ray-2": (["failure_reason", "model", "request", "progress_video", "generation_type", "image"], []),
    "minimax-hailuo-02": (["video_width", "video_height", "bytes", "created_at", "filename"], []),
}

EXTRA = {"x_added_in_a_later_api_version": {"nested": [1, "two", None]}, "beta_flags": []}


def add_extra(v):
    if isinstance(v, dict):
        out = {k: add_extra(x) for k, x in v.items()}
        out.update(copy.deepcopy(EXTRA))
        return out
    if isinstance(v, list):
        return [add_extra(x) for x in v]
    return v


def drop(v, keys):
    if isinstance(v, dict):
        return {k: drop(x, keys) for k, x in v.items() if k not in keys}
    if isinstance(v, list):
        return [drop(x, keys) for x in v]
    return v


def write(path, fixture):
    text = yaml.safe_dump(fixture, sort_keys=False, allow_unicode=True, width=100)
    header = f"# Replay fixture (docs/fixtures.md), edited from success.yaml by scripts/drift-fixtures.py\n"
    path.write_text(header + text)


def main():
    made = 0
    for success in sorted(ROOT.glob("*/success.yaml")):
        name = success.parent.name
        base = yaml.load(success.read_text(), Loader=Yaml12Loader)
        keys, headers = OPTIONAL.get(name, ([], []))

        extra = copy.deepcopy(base)
        extra["name"] = "drift-extra-fields"
        extra["description"] = "the provider adds fields and a header we do not know: same outcome"
        extra["source"] = "edited: success.yaml with unknown fields added"
        for i in extra["interactions"]:
            r = i["response"]
            if isinstance(r.get("body"), (dict, list)):
                r["body"] = add_extra(r["body"])
            r.setdefault("headers", {})["x-new-diagnostic-header"] = "1"
        for c in extra.get("callbacks", []):
            c["body"] = add_extra(c["body"])
        write(success.parent / "drift-extra-fields.yaml", extra)

        missing = copy.deepcopy(base)
        missing["name"] = "drift-missing-optional"
        missing["description"] = "optional fields and headers absent: " + ", ".join(keys + headers)
        missing["source"] = "edited: success.yaml with optional fields removed"
        for i in missing["interactions"]:
            r = i["response"]
            if isinstance(r.get("body"), (dict, list)):
                r["body"] = drop(r["body"], set(keys))
            for h in headers:
                r.get("headers", {}).pop(h, None)
        for c in missing.get("callbacks", []):
            c["body"] = drop(c["body"], set(keys))
        write(success.parent / "drift-missing-optional.yaml", missing)
        made += 2
    print(f"wrote {made} drift fixtures", file=sys.stderr)


if __name__ == "__main__":
    main()
