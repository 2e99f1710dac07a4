#!/usr/bin/env python3
"""Time limits of the deployment, derived from the bundles and checked against template.yaml.

For every bundle (bundles/*.yaml; a provider file under bundles/providers/ is merged under the
model files of its provider, model keys winning), the worst-case duration of each action's
steps is computed the way the outbound client runs them (shared/bundles/src/http.rs):

  http-request   (1 + max_retries) x (bulkhead_wait + timeout_seconds) + max_retries x retry_max
  file-handler   timeout_seconds (one fetch, no retry)
  conditional    the longer branch;  for-each: max_items x its steps;  others: 0

with the [http] settings of docs/configuration.md (the code's defaults, kept equal by a test),
overridden by EXECUTOR__HTTP__* variables in the template. Then:

- each function's Timeout >= the longest provider work it can run + MARGIN:
    submit   submit steps (queue and inline immediate submits), poll/cancel steps (a nudge that
             finds the job submitted runs poll there), a customer webhook delivery (redrive)
    poll     poll or cancel steps
    finalize a customer webhook delivery (shared/bundles/src/sender.rs)
    webhook  none (signatures are verified locally)
  and <= 900 s (Lambda's maximum);
- each SQS queue a function consumes has VisibilityTimeout >= 6 x that function's Timeout
  (AWS's recommendation for Lambda event source mappings) and <= 43,200 s (SQS's maximum);
- every function behind the HTTP API sets EXECUTOR__API__MAX_WAIT_SECONDS so that
  `Prefer: wait` ends at least API_SLACK seconds before API Gateway's 30 s integration limit.

- every function behind the HTTP API sets EXECUTOR__API__INLINE_MAX_SECONDS at most as long:
  an immediate model whose submit timeout is longer answers 202 and runs from the submit queue.

A submit's worst case is its steps' (retries included), cut at limits.submit_timeout_seconds:
the lifecycle bounds the submit calls by it. Reported, not failed: immediate models that run
from the submit queue on AWS because of the inline cap.

Usage: scripts/check-limits.py [--template template.yaml] [--bundles bundles]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MARGIN_S = 10  # AWS calls, cold start and commit around the provider calls
ESM_VISIBILITY_FACTOR = 6
LAMBDA_MAX_TIMEOUT_S = 900
SQS_MAX_VISIBILITY_S = 43_200
API_GATEWAY_HTTP_API_TIMEOUT_S = 30
API_SLACK_S = 5  # answer built and sent after the wait ends
FUNCTIONS = {"submit": "SubmitFunction", "poll": "PollFunction", "finalize": "FinalizeFunction", "webhook": "WebhookFunction"}


def load_template(path: Path) -> dict:
    try:
        from samtranslator.yaml_helper import yaml_parse
    except ImportError:
        sys.exit("check-limits: needs the SAM translator (pip install aws-sam-translator, or aws-sam-cli)")
    return yaml_parse(path.read_text())


def rust_default(path: Path, pattern: str, what: str) -> int:
    m = re.search(pattern, path.read_text(), re.S)
    if not m:
        sys.exit(f"check-limits: cannot find {what} in {path.relative_to(ROOT)}; update this script")
    return int(m.group(1).replace("_", ""))


def http_settings(template: dict) -> dict:
    doc = (ROOT / "docs/configuration.md").read_text()
    m = re.search(r"```toml\n(.*?)```", doc, re.S)
    if not m:
        sys.exit("check-limits: no TOML defaults block in docs/configuration.md")
    cfg = tomllib.loads(m.group(1))
    http = dict(cfg["http"])
    lifecycle = dict(cfg["lifecycle"])
    env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for k, v in env.items():
        for section, target in (("HTTP", http), ("LIFECYCLE", lifecycle)):
            prefix = f"EXECUTOR__{section}__"
            if k.startswith(prefix) and isinstance(v, (str, int, float)):
                target[k[len(prefix):].lower()] = type(target.get(k[len(prefix):].lower(), 0))(v)
    return {"http": http, "lifecycle": lifecycle}


def deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def load_bundles(folder: Path) -> list[tuple[str, dict]]:
    providers = {}
    pdir = folder / "providers"
    if pdir.is_dir():
        for p in sorted(pdir.glob("*.yaml")):
            providers[p.stem] = yaml.safe_load(p.read_text()) or {}
    out = []
    for p in sorted(folder.glob("*.yaml")):
        b = yaml.safe_load(p.read_text()) or {}
        parent = b.get("extends") or b.get("provider")
        if isinstance(parent, str) and Path(parent).stem in providers:
            b = deep_merge(providers[Path(parent).stem], b)
        out.append((str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p), b))
    if not out:
        sys.exit(f"check-limits: no bundles in {folder}")
    return out


class Cost:
    def __init__(self, http: dict, default_timeout: int) -> None:
        self.retries = int(http["max_retries"])
        self.bulkhead_s = http["bulkhead_wait_ms"] / 1000
        self.retry_max_s = http["retry_max_ms"] / 1000
        self.default_timeout = default_timeout

    def steps(self, steps: list, where: str, longest: list) -> float:
        total = 0.0
        for i, st in enumerate(steps or []):
            total += self.step(st, f"{where}[{i}]", longest)
        return total

    def step(self, st: dict, where: str, longest: list) -> float:
        kind = st.get("kind")
        if kind == "http-request":
            t = st.get("timeout_seconds", self.default_timeout)
            longest.append((t, f"{where} ({st.get('id')})"))
            return (1 + self.retries) * (self.bulkhead_s + t) + self.retries * self.retry_max_s
        if kind == "file-handler":
            t = st.get("timeout_seconds", self.default_timeout)
            longest.append((t, f"{where} ({st.get('id')})"))
            return t
        if kind == "conditional":
            return max(self.steps(st.get("then"), f"{where}.then", longest), self.steps(st.get("else"), f"{where}.else", longest))
        if kind == "for-each":
            return int(st.get("max_items", 1)) * self.steps(st.get("steps"), f"{where}.steps", longest)
        return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    ap.add_argument("--bundles", type=Path, default=ROOT / "bundles")
    a = ap.parse_args()

    tpl = load_template(a.template)
    settings = http_settings(tpl)
    default_timeout = rust_default(ROOT / "shared/bundles/src/format.rs", r"fn default_timeout\(\) -> u64 \{\s*(\d+)\s*\}", "the default step timeout")
    delivery_s = rust_default(ROOT / "shared/bundles/src/sender.rs", r"with_timeout\(secret, policy, Duration::from_secs\((\d+)\)\)", "the customer webhook timeout")
    cost = Cost(settings["http"], default_timeout)
    watchdog_margin_s = settings["lifecycle"]["watchdog_margin_ms"] / 1000
    errors: list[str] = []
    notes: list[str] = []

    print(f"outbound client: {cost.retries} retries, bulkhead wait {cost.bulkhead_s:g} s, retry delay <= {cost.retry_max_s:g} s; "
          f"default step timeout {default_timeout} s; customer webhook {delivery_s} s")
    print(f"{'bundle':44} {'shape':9} {'longest call':>12} {'submit':>7} {'poll':>6} {'cancel':>6}  (worst case, s)")
    per_fn = {"submit": (float(delivery_s), "a customer webhook delivery (redrive)"), "poll": (0.0, "nothing"),
              "finalize": (float(delivery_s), "a customer webhook delivery"), "webhook": (0.0, "no provider call")}
    immediates = []
    late_watchdogs: list[str] = []
    for path, b in load_bundles(a.bundles):
        steps = b.get("steps", {}) or {}
        calls: list = []
        limits = b.get("limits", {}) or {}
        # The lifecycle cuts the submit calls at limits.submit_timeout_seconds plus half the
        # watchdog margin (an ambiguous submit when a create was among them), so a submit never
        # runs longer than that.
        sub = min(cost.steps(steps.get("submit"), "steps.submit", calls),
                  float(limits.get("submit_timeout_seconds", 60)) + watchdog_margin_s / 2)
        pol = cost.steps(steps.get("poll"), "steps.poll", calls)
        can = cost.steps(steps.get("cancel"), "steps.cancel", calls)
        longest = max(calls, default=(0, "-"))
        print(f"{path:44} {b.get('shape', '?'):9} {longest[0]:>10} s {sub:>7.0f} {pol:>6.0f} {can:>6.0f}")
        for fn, worst in (("submit", max(sub, pol, can)), ("poll", max(pol, can))):
            if worst > per_fn[fn][0]:
                per_fn[fn] = (worst, f"{path} ({'submit' if worst == sub and fn == 'submit' else 'poll/cancel'} steps)")
        watchdog = limits.get("submit_timeout_seconds", 60) + watchdog_margin_s
        if sub > watchdog:
            late_watchdogs.append(f"{Path(path).stem} {sub:.0f} s > {watchdog:g} s")
        if b.get("shape") == "immediate":
            immediates.append((path, sub, longest[0]))

    if late_watchdogs:
        notes.append("worst-case submit (retries included) outlasts the submit watchdog (limits.submit_timeout_seconds + "
                     f"lifecycle.watchdog_margin_ms), so a watchdog can find a create still in flight: {'; '.join(late_watchdogs)}. "
                     "(docs/aws.md, Timeouts)")
    res = tpl["Resources"]
    glob = tpl.get("Globals", {}).get("Function", {})
    timeouts = {}
    print()
    for fn, lid in FUNCTIONS.items():
        if lid not in res:
            errors.append(f"template.yaml has no {lid}")
            continue
        props = res[lid].get("Properties", {})
        timeout = props.get("Timeout", glob.get("Timeout", 3))
        if not isinstance(timeout, int):
            errors.append(f"{lid}: Timeout must be a literal number of seconds to be checked (is {timeout!r})")
            continue
        timeouts[lid] = timeout
        need, why = per_fn[fn]
        required = math.ceil(need + MARGIN_S)
        ok = timeout >= required and timeout <= LAMBDA_MAX_TIMEOUT_S
        print(f"{lid:17} Timeout {timeout:>4} s  needs >= {required:>4} s ({need:.0f} s: {why}, + {MARGIN_S} s)  {'ok' if ok else 'FAIL'}")
        if timeout < required:
            errors.append(f"{lid}: Timeout {timeout} s < {required} s: {why} can take {need:.0f} s, plus a {MARGIN_S} s margin")
        if timeout > LAMBDA_MAX_TIMEOUT_S:
            errors.append(f"{lid}: Timeout {timeout} s exceeds Lambda's maximum of {LAMBDA_MAX_TIMEOUT_S} s: the longest provider work must be shortened")

    # Queues consumed by functions (SQS event sources).
    for lid, t in timeouts.items():
        for ev in (res[lid].get("Properties", {}).get("Events") or {}).values():
            if ev.get("Type") != "SQS":
                continue
            q = ev["Properties"]["Queue"]
            qid = q["Fn::GetAtt"][0] if isinstance(q, dict) and "Fn::GetAtt" in q else None
            if qid is None or qid not in res:
                errors.append(f"{lid}: SQS event source {q!r} is not a queue of this template")
                continue
            vis = res[qid].get("Properties", {}).get("VisibilityTimeout", 30)
            need = ESM_VISIBILITY_FACTOR * t
            ok = need <= vis <= SQS_MAX_VISIBILITY_S
            print(f"{qid:17} VisibilityTimeout {vis:>5} s  needs >= {ESM_VISIBILITY_FACTOR} x {lid} Timeout = {need} s  {'ok' if ok else 'FAIL'}")
            if vis < need:
                errors.append(f"{qid}: VisibilityTimeout {vis} s < {ESM_VISIBILITY_FACTOR} x {lid}'s Timeout {t} s = {need} s")
            if vis > SQS_MAX_VISIBILITY_S:
                errors.append(f"{qid}: VisibilityTimeout {vis} s exceeds SQS's maximum of {SQS_MAX_VISIBILITY_S} s")

    # The HTTP API.
    cap_limit = API_GATEWAY_HTTP_API_TIMEOUT_S - API_SLACK_S
    for lid in timeouts:
        events = (res[lid].get("Properties", {}).get("Events") or {}).values()
        if not any(e.get("Type") == "HttpApi" for e in events):
            continue
        env = {**glob.get("Environment", {}).get("Variables", {}), **res[lid].get("Properties", {}).get("Environment", {}).get("Variables", {})}
        def seconds_within_cap(name: str, why: str):
            """The numeric value of `name` in env, checked against the API cap; None if unset."""
            try:
                v = int(env.get(name))
            except (TypeError, ValueError):
                errors.append(f"{lid} serves the HTTP API but sets no numeric {name} ({why} must end before API Gateway's {API_GATEWAY_HTTP_API_TIMEOUT_S} s)")
                return None
            ok = 0 < v <= cap_limit
            print(f"{lid:17} {name} {v} s  needs <= {cap_limit} s (API Gateway {API_GATEWAY_HTTP_API_TIMEOUT_S} s - {API_SLACK_S} s)  {'ok' if ok else 'FAIL'}")
            if not ok:
                errors.append(f"{lid}: {name} {v} s must be between 1 and {cap_limit} s")
            return v

        seconds_within_cap("EXECUTOR__API__MAX_WAIT_SECONDS", "Prefer: wait")
        inline_s = seconds_within_cap("EXECUTOR__API__INLINE_MAX_SECONDS", "an immediate model run in the request")
        if inline_s is None:
            continue
        for path, sub, call in immediates if lid == "SubmitFunction" else []:
            if sub > inline_s:
                notes.append(f"{path}: immediate, its submit can take {sub:.0f} s (one call up to {call} s) > the {inline_s} s inline cap: "
                             "on AWS it answers 202 and runs from the submit queue (SubmitFunction's Timeout covers it there)")
    for r in res.values():
        if r.get("Type") in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Integration"):
            ms = r.get("Properties", {}).get("TimeoutInMillis")
            if isinstance(ms, int) and ms > API_GATEWAY_HTTP_API_TIMEOUT_S * 1000:
                errors.append(f"an HTTP API integration sets TimeoutInMillis {ms} > {API_GATEWAY_HTTP_API_TIMEOUT_S * 1000}")

    for n in notes:
        print(f"note: {n}")
    if errors:
        print(f"\ncheck-limits: {len(errors)} problem(s):")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("\ncheck-limits: function timeouts, visibility timeouts and the API wait cap fit every bundle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
