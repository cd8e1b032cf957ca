"""Reads Kafka's message specs and merges the current and legacy folders.

The model is deliberately small: a Message has a name, a kind, an API key, the
set of versions Fjord decodes, the set of flexible versions, its common
structs and its fields. Every version range in the specs becomes a frozenset
of concrete versions, which makes merging the 4.4 specs with the pre-4.0 ones
(for the versions 4.0 removed) a matter of set unions.
"""

import json
import os
import re

# Share-group APIs: legacy-3.9's v0 was an early-access format that 4.4
# replaced; only 4.4's versions are supported.
NEW_ONLY_KEYS = {76, 77, 78, 79}
# Legacy files whose content 4.4 carries under another name.
SKIP_LEGACY_FILES = {"ListClientMetricsResourcesRequest.json", "ListClientMetricsResourcesResponse.json"}


class SpecError(Exception):
    pass


def load_json(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    return json.loads(text)


def parse_versions(spec, universe):
    """A version spec ("3", "1-4", "2+", "none") as a frozenset within universe."""
    if spec is None or spec == "none" or spec == "":
        return frozenset()
    spec = spec.strip()
    if spec.endswith("+"):
        lo = int(spec[:-1])
        return frozenset(v for v in universe if v >= lo)
    if "-" in spec:
        lo, hi = (int(x) for x in spec.split("-"))
        return frozenset(v for v in universe if lo <= v <= hi)
    return frozenset(v for v in universe if v == int(spec))


class Field:
    def __init__(self):
        self.name = ""
        self.type = ""  # as in the spec: "int32", "[]Foo", "Foo", "[]string"
        self.versions = frozenset()
        self.nullable = frozenset()
        self.tagged = frozenset()
        self.tag = None
        self.default = None
        self.ignorable = False
        self.never_flexible = False  # field-level "flexibleVersions": "none"
        self.fields = None  # inline struct definition, if any

    @property
    def is_array(self):
        return self.type.startswith("[]")

    @property
    def elem_type(self):
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self):
        return self.elem_type not in PRIMITIVES


PRIMITIVES = {"bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64", "string", "uuid",
              "bytes", "records"}


def parse_fields(raw_fields, universe):
    out = []
    for rf in raw_fields:
        f = Field()
        f.name = rf["name"]
        f.type = rf["type"]
        f.versions = parse_versions(rf.get("versions"), universe)
        f.nullable = parse_versions(rf.get("nullableVersions"), universe)
        f.tagged = parse_versions(rf.get("taggedVersions"), universe)
        f.tag = rf.get("tag")
        d = rf.get("default")
        f.default = None if d is None else str(d)
        f.ignorable = bool(rf.get("ignorable", False))
        f.never_flexible = rf.get("flexibleVersions") == "none"
        if "fields" in rf:
            f.fields = parse_fields(rf["fields"], universe)
        out.append(f)
    return out


def restrict(fields, versions):
    """Restricts every version set in a field tree to `versions`."""
    for f in fields:
        f.versions &= versions
        f.nullable &= versions
        f.tagged &= versions
        if f.fields is not None:
            restrict(f.fields, versions)


def merge_fields(a, b, where):
    """Merges field list b (legacy) into a (current), by name, keeping order."""
    result = list(a)
    names = {f.name: f for f in a}
    last_index = -1
    for fb in b:
        fa = names.get(fb.name)
        if fa is None:
            result.insert(last_index + 1, fb)
            names[fb.name] = fb
            last_index += 1
            continue
        if fa.type != fb.type and (fa.versions and fb.versions):
            raise SpecError(f"{where}.{fa.name}: type {fa.type} in one spec, {fb.type} in the other")
        fa.versions |= fb.versions
        fa.nullable |= fb.nullable
        fa.tagged |= fb.tagged
        if fa.default is None:
            fa.default = fb.default
        if fa.fields is not None and fb.fields is not None:
            fa.fields = merge_fields(fa.fields, fb.fields, where + "." + fa.name)
        elif fa.fields is None:
            fa.fields = fb.fields
        last_index = result.index(fa)
    return result


class Message:
    def __init__(self):
        self.name = ""
        self.kind = ""  # request, response, header, data; oneway (Fjord RPC: no response)
        self.api_key = None
        self.versions = frozenset()  # decodable
        self.flexible = frozenset()
        self.unstable_latest = False
        self.fields = []
        self.common = []  # list of (name, fields)
        self.listeners = []

    @property
    def min_version(self):
        return min(self.versions)

    @property
    def max_version(self):
        return max(self.versions)


UNIVERSE = frozenset(range(0, 64))


def build_message(raw, owned):
    m = Message()
    m.name = raw["name"]
    m.kind = raw["type"]
    m.api_key = raw.get("apiKey")
    m.versions = owned
    m.flexible = parse_versions(raw.get("flexibleVersions"), UNIVERSE) & owned
    m.unstable_latest = bool(raw.get("latestVersionUnstable", False))
    m.listeners = raw.get("listeners", [])
    m.fields = parse_fields(raw.get("fields", []), UNIVERSE)
    restrict(m.fields, owned)
    for cs in raw.get("commonStructs", []):
        fields = parse_fields(cs["fields"], UNIVERSE)
        restrict(fields, owned)
        m.common.append((cs["name"], fields))
    return m


def merge_messages(new, old):
    """new owns its versions; old contributes only the versions below them."""
    m = new
    m.versions = new.versions | old.versions
    m.flexible = new.flexible | old.flexible
    m.fields = merge_fields(new.fields, old.fields, m.name)
    common = dict(new.common)
    order = [n for n, _ in new.common]
    for name, fields in old.common:
        if name in common:
            common[name] = merge_fields(common[name], fields, m.name + "." + name)
        else:
            common[name] = fields
            order.append(name)
    m.common = [(n, common[n]) for n in order]
    return m


def load_all(spec_dir):
    """Returns every message Fjord decodes, sorted by (api key, name).

    `spec_dir` holds messages/ and, for Kafka's specs, legacy-3.9/ (Fjord's
    own RPC specs have no legacy folder)."""
    new_dir = os.path.join(spec_dir, "messages")
    old_dir = os.path.join(spec_dir, "legacy-3.9")
    files = sorted(f for f in os.listdir(new_dir) if f.endswith(".json"))
    old_files = sorted(f for f in os.listdir(old_dir) if f.endswith(".json")) if os.path.isdir(old_dir) else []
    messages = []
    for fname in sorted(set(files) | set(old_files)):
        if fname in SKIP_LEGACY_FILES and fname not in files:
            continue
        raw_new = load_json(os.path.join(new_dir, fname)) if fname in files else None
        raw_old = load_json(os.path.join(old_dir, fname)) if fname in old_files else None
        new_versions = parse_versions(raw_new.get("validVersions"), UNIVERSE) if raw_new else frozenset()
        old_versions = parse_versions(raw_old.get("validVersions"), UNIVERSE) if raw_old else frozenset()
        key = (raw_new or raw_old).get("apiKey")
        if key in NEW_ONLY_KEYS:
            old_versions = frozenset()
        elif new_versions:
            old_versions = frozenset(v for v in old_versions if v < min(new_versions))
        if not new_versions and not old_versions:
            continue
        if new_versions and old_versions:
            m = merge_messages(build_message(raw_new, new_versions), build_message(raw_old, old_versions))
            same_wire_order(m.fields, build_message(raw_new, new_versions).fields, new_versions, m.name)
            same_wire_order(m.fields, build_message(raw_old, old_versions).fields, old_versions, m.name)
        elif new_versions:
            m = build_message(raw_new, new_versions)
        else:
            m = build_message(raw_old, old_versions)
        if raw_new and not new_versions:
            m.listeners = []  # removed in 4.x: kept only to decode
        messages.append(m)
    messages.sort(key=lambda m: (m.api_key if m.api_key is not None else 1000, m.name))
    return messages


def same_wire_order(merged, original, versions, path):
    """For every version, the merged tree must put the same fields in the same order."""
    by_name = {f.name: f for f in original}
    for v in versions:
        a = [f.name for f in merged if v in f.versions]
        b = [f.name for f in original if v in f.versions]
        if a != b:
            raise SpecError(f"{path} v{v}: merged order {a} differs from the spec's {b}")
    for f in merged:
        o = by_name.get(f.name)
        if f.fields and o is not None and o.fields:
            same_wire_order(f.fields, o.fields, versions & o.versions, path + "." + f.name)
