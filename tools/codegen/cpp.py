"""Emits C++ codecs for the merged message model of spec.py.

One header and one source per API (its request and response) or per
standalone spec (headers, data). Every version is a branch inside one codec.
"""

import re

from spec import Field, PRIMITIVES

KEYWORDS = {"default", "delete", "new", "class", "struct", "operator", "template", "this", "throw", "try",
            "union", "virtual", "register", "namespace", "int", "long", "short", "char", "bool", "float",
            "double", "signed", "unsigned", "void", "const", "static", "auto", "case", "switch", "return",
            "private", "public", "protected", "friend", "explicit", "export", "extern", "goto", "if", "else",
            "for", "while", "do", "break", "continue", "enum", "inline", "mutable", "sizeof", "typedef",
            "typename", "using", "volatile", "and", "or", "not", "xor", "errno", "assert", "concept",
            "requires", "module", "import", "decode", "encode", "version"}


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def member_name(name):
    s = snake(name)
    return s + "_" if s in KEYWORDS else s


def ranges(versions):
    """Sorted list of (lo, hi) runs."""
    out = []
    for v in sorted(versions):
        if out and out[-1][1] == v - 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return out


def cond(versions, universe):
    """C++ boolean expression over `version` true exactly for `versions`."""
    versions = frozenset(versions) & universe
    if versions == universe:
        return "true"
    if not versions:
        return "false"
    lo_u, hi_u = min(universe), max(universe)
    parts = []
    for lo, hi in ranges(versions):
        if lo == hi:
            parts.append(f"version == {lo}")
        elif lo <= lo_u:
            parts.append(f"version <= {hi}")
        elif hi >= hi_u:
            parts.append(f"version >= {lo}")
        else:
            parts.append(f"(version >= {lo} && version <= {hi})")
    return " || ".join(parts)


INT_TYPES = {"int8": "int8_t", "int16": "int16_t", "uint16": "uint16_t", "int32": "int32_t",
             "uint32": "uint32_t", "int64": "int64_t"}
READ_FN = {"int8": "i8", "int16": "i16", "uint16": "u16", "int32": "i32", "uint32": "u32", "int64": "i64",
           "float64": "f64", "bool": "boolean", "uuid": "read_uuid"}
WRITE_FN = {"int8": "i8", "int16": "i16", "uint16": "u16", "int32": "i32", "uint32": "u32", "int64": "i64",
            "float64": "f64", "bool": "boolean", "uuid": "write_uuid"}
INT_RANGE = {"int8": (-2**7, 2**7 - 1), "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
             "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1)}


class Emitter:
    """Generates one message's struct declarations and codec definitions."""

    def __init__(self, msg):
        self.msg = msg
        self.universe = msg.versions
        self.cls = snake(msg.name)
        self.structs = {}  # kafka struct name -> fields
        for name, fields in msg.common:
            self.structs[name] = fields
        for _, fields in msg.common:
            self._register(fields)
        self._register(msg.fields)
        # Declaration order: every struct after the structs it holds.
        self.struct_order = []
        done = set()

        def visit(name, stack):
            if name in done:
                return
            if name in stack:
                raise ValueError(f"{msg.name}: recursive struct {name}")
            for f in self.structs[name]:
                if f.is_struct:
                    visit(f.elem_type, stack | {name})
            done.add(name)
            self.struct_order.append(name)

        for name in sorted(self.structs, key=lambda n: self._first_use(n)):
            visit(name, frozenset())
        top_names = {member_name(f.name) for f in msg.fields}
        self.type_names = {}
        for name in self.struct_order:
            t = snake(name)
            own = {member_name(f.name) for f in self.structs[name]}
            if t in top_names or t in own or t in KEYWORDS or t == self.cls:
                t += "_data"
            self.type_names[name] = t

    def _first_use(self, name):
        order = []

        def walk(fields):
            for f in fields:
                if f.is_struct and f.elem_type not in order:
                    order.append(f.elem_type)
                    walk(self.structs[f.elem_type])
        walk(self.msg.fields)
        for n, fields in self.msg.common:
            if n not in order:
                order.append(n)
        return order.index(name) if name in order else len(order)

    def _register(self, fields):
        for f in fields:
            if not f.is_struct:
                continue
            if f.fields is not None:
                if f.elem_type not in self.structs:
                    self.structs[f.elem_type] = f.fields
                self._register(f.fields)
            elif f.elem_type not in self.structs:
                raise ValueError(f"{self.msg.name}: struct {f.elem_type} is not defined")

    # ---- types and defaults

    @property
    def ns(self):
        """The namespace holding the message's nested structs (aliased inside it)."""
        return f"{self.cls}_types"

    def qual(self, struct_name):
        return f"{self.ns}::{self.type_names[struct_name]}"

    def elem_cpp(self, f):
        t = f.elem_type
        if t in INT_TYPES:
            return INT_TYPES[t]
        return {"bool": "bool", "float64": "double", "string": "std::string", "uuid": "uuid",
                "bytes": "shared_bytes", "records": "shared_bytes"}.get(t) or self.qual(t)

    def cpp_type(self, f):
        base = f"std::vector<{self.elem_cpp(f)}>" if f.is_array else self.elem_cpp(f)
        if self.is_optional(f):
            return f"std::optional<{base}>"
        return base

    def is_optional(self, f):
        return bool(f.nullable) and (f.is_array or f.elem_type in ("string", "bytes", "records") or f.is_struct)

    def default_is_null(self, f):
        if not self.is_optional(f):
            return False
        if f.elem_type == "records" and not f.is_array:
            return True  # Kafka's records fields default to null
        return f.default == "null"

    def default_init(self, f):
        """Initializer for the member (empty string for the type's own default)."""
        if self.default_is_null(f):
            return ""  # nullopt
        if self.is_optional(f):
            inner = f"std::vector<{self.elem_cpp(f)}>" if f.is_array else self.elem_cpp(f)
            if f.elem_type == "string" and not f.is_array and f.default:
                return f"std::string({cstr(f.default)})"
            return f"{inner}{{}}"
        if f.is_array or f.is_struct:
            return ""
        t = f.elem_type
        d = f.default
        if t == "string":
            return cstr(d) if d else ""
        if d is None or d == "":
            return ""
        if t == "bool":
            return "true" if d.lower() == "true" else ""
        if t in INT_TYPES:
            v = int(d, 0)
            if v == 0:
                return ""
            return int_literal(t, v)
        if t == "float64":
            return repr(float(d))
        return ""

    def default_expr(self, f):
        """An expression equal to the field's default value."""
        if self.default_is_null(f):
            return "std::nullopt"
        init = self.default_init(f)
        if self.is_optional(f):
            return f"{self.cpp_type(f)}({init})"
        if init:
            if f.elem_type == "string" and not f.is_array:
                return f"std::string_view({init})"
            return init
        if f.is_array or f.elem_type in ("bytes", "records"):
            return None  # use .empty()
        return f"{self.cpp_type(f)}{{}}"

    def is_default(self, f, expr):
        d = self.default_expr(f)
        if d is None:
            return f"{expr}.empty()"
        if d == "std::nullopt":
            return f"!{expr}.has_value()"
        return f"{expr} == {d}"

    # ---- declarations

    def declare_struct(self, name, fields, out, top=False):
        tname = self.cls if top else self.type_names[name]
        ind = "    " if not top else ""
        out.append(f"{ind}struct {tname} {{")
        if top:
            m = self.msg
            out.append(f"    static constexpr std::string_view spec_name = \"{m.name}\";")
            if m.api_key is not None:
                out.append(f"    static constexpr int16_t api_key = {m.api_key};")
            out.append(f"    static constexpr int16_t min_version = {m.min_version};")
            out.append(f"    static constexpr int16_t max_version = {m.max_version};")
            out.append(f"    static constexpr bool is_flexible([[maybe_unused]] int16_t version) {{ return {cond(m.flexible, m.versions)}; }}")
            out.append("")
            for sname in self.struct_order:
                out.append(f"    using {self.type_names[sname]} = {self.qual(sname)};")
            if self.struct_order:
                out.append("")
        for f in fields:
            init = self.default_init(f)
            init = f"{{{init}}}" if init else "{}"
            out.append(f"{ind}    {self.cpp_type(f)} {member_name(f.name)}{init};")
        out.append(f"{ind}    unknown_tags unknown_tagged_fields;")
        out.append("")
        out.append(f"{ind}    // Decodes into a default-constructed value; check r.ok() afterwards.")
        out.append(f"{ind}    void decode(reader& r, int16_t version);")
        out.append(f"{ind}    void encode(writer& w, int16_t version) const;")
        out.append(f"{ind}    friend bool operator==(const {tname}&, const {tname}&) = default;")
        out.append(f"{ind}}};")
        if not top:
            out.append("")

    # ---- decode

    def flex_expr(self, f):
        return "false" if f.never_flexible else "flexible"

    def read_value(self, f, dst, r, out, ind, elem=False):
        """Reads one value of f's element type (or the whole field) into dst."""
        t = f.elem_type
        nullable_here = (not elem) and self.is_optional(f)
        null_cond = cond(f.nullable, self.universe) if nullable_here else "false"
        flex = self.flex_expr(f)
        if t in READ_FN:
            out.append(f"{ind}{dst} = {r}.{READ_FN[t]}();")
        elif t in ("string", "bytes", "records"):
            fn = "string_length" if t == "string" else "bytes_length"
            take = "str" if t == "string" else "slice"
            out.append(f"{ind}{{")
            out.append(f"{ind}    int32_t n = {r}.{fn}({flex});")
            out.append(f"{ind}    if (n >= 0) {{")
            out.append(f"{ind}        {dst} = {r}.{take}(static_cast<size_t>(n));")
            out.append(f"{ind}    }} else if ({r}.ok()) {{")
            if nullable_here:
                out.append(f"{ind}        if ({null_cond}) {{")
                out.append(f"{ind}            {dst}.reset();")
                out.append(f"{ind}        }} else {{")
                out.append(f"{ind}            {r}.fail(errc::unexpected_null);")
                out.append(f"{ind}        }}")
            else:
                out.append(f"{ind}        {r}.fail(errc::unexpected_null);")
            out.append(f"{ind}    }}")
            out.append(f"{ind}}}")
        else:
            # a struct
            if nullable_here and not f.is_array:
                out.append(f"{ind}if ({null_cond}) {{")
                out.append(f"{ind}    if ({r}.i8() < 0) {{")
                out.append(f"{ind}        {dst}.reset();")
                out.append(f"{ind}    }} else {{")
                out.append(f"{ind}        {dst}.emplace().decode({r}, version);")
                out.append(f"{ind}    }}")
                out.append(f"{ind}}} else {{")
                out.append(f"{ind}    {dst}.emplace().decode({r}, version);")
                out.append(f"{ind}}}")
            else:
                out.append(f"{ind}{dst}.decode({r}, version);")

    def read_field(self, f, r, out, ind):
        dst = member_name(f.name)
        if not f.is_array:
            self.read_value(f, dst, r, out, ind)
            return
        flex = self.flex_expr(f)
        out.append(f"{ind}{{")
        out.append(f"{ind}    int32_t n = {r}.array_length({flex});")
        out.append(f"{ind}    if (n >= 0) {{")
        vec = f"{dst}.emplace()" if self.is_optional(f) else dst
        out.append(f"{ind}        auto& v = {vec};")
        out.append(f"{ind}        v.reserve(static_cast<size_t>(std::min(n, 1024)));")
        out.append(f"{ind}        for (int32_t i = 0; i < n && {r}.ok(); ++i) {{")
        if f.is_struct:
            out.append(f"{ind}            v.emplace_back().decode({r}, version);")
        else:
            self.read_value(f, "v.emplace_back()", r, out, ind + "            ", elem=True)
        out.append(f"{ind}        }}")
        out.append(f"{ind}    }} else if ({r}.ok()) {{")
        if self.is_optional(f):
            out.append(f"{ind}        if ({cond(f.nullable, self.universe)}) {{")
            out.append(f"{ind}            {dst}.reset();")
            out.append(f"{ind}        }} else {{")
            out.append(f"{ind}            {r}.fail(errc::unexpected_null);")
            out.append(f"{ind}        }}")
        else:
            out.append(f"{ind}        {r}.fail(errc::unexpected_null);")
        out.append(f"{ind}    }}")
        out.append(f"{ind}}}")

    def define_decode(self, qname, fields, out):
        u = self.universe
        out.append(f"void {qname}::decode(reader& r, int16_t version) {{")
        out.append(f"    [[maybe_unused]] const bool flexible = {self.cls}::is_flexible(version);")
        for f in fields:
            regular = f.versions - f.tagged
            if not regular:
                continue
            c = cond(regular, u)
            if c == "true":
                self.read_field(f, "r", out, "    ")
            else:
                out.append(f"    if ({c}) {{")
                self.read_field(f, "r", out, "        ")
                out.append("    }")
        out.append("    if (!r.ok()) return;")
        tagged = [f for f in fields if f.tagged]
        out.append("    if (flexible) {")
        out.append("        uint32_t count = r.uvarint();")
        out.append("        if (count > r.remaining()) {")
        out.append("            r.fail(errc::length_too_large);")
        out.append("            return;")
        out.append("        }")
        out.append("        for (uint32_t i = 0; i < count && r.ok(); ++i) {")
        out.append("            uint32_t tag = r.uvarint();")
        out.append("            uint32_t size = r.uvarint();")
        out.append("            if (!r.ok()) return;")
        out.append("            if (size > r.remaining()) {")
        out.append("                r.fail(errc::length_too_large);")
        out.append("                return;")
        out.append("            }")
        if tagged:
            out.append("            switch (tag) {")
            for f in sorted(tagged, key=lambda x: x.tag):
                out.append(f"                case {f.tag}:")
                out.append(f"                    if ({cond(f.tagged, u)}) {{")
                out.append("                        reader t = r.sub(size);")
                self.read_field(f, "t", out, "                        ")
                out.append("                        if (!t.ok()) r.fail(t.error());")
                out.append("                        continue;")
                out.append("                    }")
                out.append("                    break;")
            out.append("                default:")
            out.append("                    break;")
            out.append("            }")
        out.append("            unknown_tagged_fields.push_back(raw_tagged_field{tag, r.slice(size)});")
        out.append("        }")
        out.append("    }")
        out.append("}")
        out.append("")

    # ---- encode

    def write_value(self, f, src, w, out, ind, elem=False):
        t = f.elem_type
        opt = (not elem) and self.is_optional(f)
        flex = self.flex_expr(f)
        if t in WRITE_FN:
            out.append(f"{ind}{w}.{WRITE_FN[t]}({src});")
            return
        if t in ("string", "bytes", "records"):
            fn = "string_length" if t == "string" else "bytes_length"
            val = f"(*{src})" if opt else src
            if opt:
                out.append(f"{ind}if (!{src}.has_value()) {{")
                out.append(f"{ind}    if ({cond(f.nullable, self.universe)}) {{")
                out.append(f"{ind}        {w}.{fn}(-1, {flex});")
                out.append(f"{ind}    }} else {{")
                out.append(f"{ind}        {w}.fail(errc::unexpected_null);")
                out.append(f"{ind}    }}")
                out.append(f"{ind}}} else {{")
                ind2 = ind + "    "
            else:
                ind2 = ind
            if t == "string":
                out.append(f"{ind2}if (!{flex} && {val}.size() > 0x7fff) {w}.fail(errc::invalid_length);")
            out.append(f"{ind2}{w}.{fn}(static_cast<int32_t>({val}.size()), {flex});")
            out.append(f"{ind2}{w}.raw({val});")
            if opt:
                out.append(f"{ind}}}")
            return
        # struct
        if opt:
            out.append(f"{ind}if ({cond(f.nullable, self.universe)}) {{")
            out.append(f"{ind}    if (!{src}.has_value()) {{")
            out.append(f"{ind}        {w}.i8(-1);")
            out.append(f"{ind}    }} else {{")
            out.append(f"{ind}        {w}.i8(1);")
            out.append(f"{ind}        {src}->encode({w}, version);")
            out.append(f"{ind}    }}")
            out.append(f"{ind}}} else if (!{src}.has_value()) {{")
            out.append(f"{ind}    {w}.fail(errc::unexpected_null);")
            out.append(f"{ind}}} else {{")
            out.append(f"{ind}    {src}->encode({w}, version);")
            out.append(f"{ind}}}")
        else:
            out.append(f"{ind}{src}.encode({w}, version);")

    def write_field(self, f, w, out, ind):
        src = member_name(f.name)
        if not f.is_array:
            self.write_value(f, src, w, out, ind)
            return
        flex = self.flex_expr(f)
        if self.is_optional(f):
            out.append(f"{ind}if (!{src}.has_value()) {{")
            out.append(f"{ind}    if ({cond(f.nullable, self.universe)}) {{")
            out.append(f"{ind}        {w}.array_length(-1, {flex});")
            out.append(f"{ind}    }} else {{")
            out.append(f"{ind}        {w}.fail(errc::unexpected_null);")
            out.append(f"{ind}    }}")
            out.append(f"{ind}}} else {{")
            vec = f"(*{src})"
            ind2 = ind + "    "
        else:
            vec = src
            ind2 = ind
        out.append(f"{ind2}{w}.array_length(static_cast<int32_t>({vec}.size()), {flex});")
        out.append(f"{ind2}for (const auto& e : {vec}) {{")
        if f.is_struct:
            out.append(f"{ind2}    e.encode({w}, version);")
        else:
            self.write_value(f, "e", w, out, ind2 + "    ", elem=True)
        out.append(f"{ind2}}}")
        if self.is_optional(f):
            out.append(f"{ind}}}")

    def define_encode(self, qname, fields, out):
        u = self.universe
        out.append(f"void {qname}::encode(writer& w, int16_t version) const {{")
        out.append(f"    [[maybe_unused]] const bool flexible = {self.cls}::is_flexible(version);")
        for f in fields:
            regular = f.versions - f.tagged
            c = cond(regular, u)
            absent = "" if (f.ignorable or f.tagged) else self.is_default(f, member_name(f.name))
            if c == "true":
                self.write_field(f, "w", out, "    ")
            elif c == "false":
                if absent:
                    out.append(f"    if (!({cond(f.tagged, u)}) && !({absent})) w.fail(errc::non_default_in_version);")
            else:
                out.append(f"    if ({c}) {{")
                self.write_field(f, "w", out, "        ")
                if absent:
                    out.append(f"    }} else if (!({cond(f.tagged, u)}) && !({absent})) {{")
                    out.append("        w.fail(errc::non_default_in_version);")
                out.append("    }")
        tagged = sorted((f for f in fields if f.tagged), key=lambda x: x.tag)
        out.append("    if (!flexible) {")
        out.append("        if (!unknown_tagged_fields.empty()) w.fail(errc::non_default_in_version);")
        for f in tagged:
            if not f.ignorable:
                out.append(f"        if (!({self.is_default(f, member_name(f.name))})) w.fail(errc::non_default_in_version);")
        out.append("        return;")
        out.append("    }")
        out.append("    uint32_t count = static_cast<uint32_t>(unknown_tagged_fields.size());")
        for f in tagged:
            out.append(f"    const bool has_{member_name(f.name)} = ({cond(f.tagged, u)}) && !({self.is_default(f, member_name(f.name))});")
            out.append(f"    count += has_{member_name(f.name)} ? 1 : 0;")
        out.append("    w.uvarint(count);")
        out.append("    size_t raw_i = 0;")
        for f in tagged:
            m = member_name(f.name)
            out.append(f"    if (has_{m}) {{")
            if f.tag > 0:
                out.append(f"        while (raw_i < unknown_tagged_fields.size() && unknown_tagged_fields[raw_i].tag < {f.tag}) {{")
                out.append("            write_raw_tagged_field(w, unknown_tagged_fields[raw_i++]);")
                out.append("        }")
            out.append("        writer t;")
            self.write_field(f, "t", out, "        ")
            out.append("        if (!t.ok()) w.fail(t.error());")
            out.append(f"        w.uvarint({f.tag});")
            out.append("        w.uvarint(static_cast<uint32_t>(t.size()));")
            out.append("        w.raw(t.buffer().data(), t.size());")
            out.append("    }")
        out.append("    while (raw_i < unknown_tagged_fields.size()) {")
        out.append("        write_raw_tagged_field(w, unknown_tagged_fields[raw_i++]);")
        out.append("    }")
        out.append("}")
        out.append("")

    def declarations(self):
        out = []
        if self.struct_order:
            # Nested structs live in a namespace of their own and are aliased
            # into the message: a struct with default member initializers
            # nested in a class is not default-constructible until the
            # enclosing class is complete, which std::optional needs earlier.
            out.append(f"namespace {self.ns} {{")
            out.append("")
            for sname in self.struct_order:
                self.declare_struct(sname, self.structs[sname], out)
            out.append(f"}}  // namespace {self.ns}")
            out.append("")
        self.declare_struct(self.msg.name, self.msg.fields, out, top=True)
        return out

    def definitions(self):
        out = []
        for sname in self.struct_order:
            q = self.qual(sname)
            self.define_decode(q, self.structs[sname], out)
            self.define_encode(q, self.structs[sname], out)
        self.define_decode(self.cls, self.msg.fields, out)
        self.define_encode(self.cls, self.msg.fields, out)
        return out

    # ---- random instances (tests only)

    def random_value(self, f, dst, out, ind, depth, elem=False):
        t = f.elem_type
        if t in INT_TYPES:
            out.append(f"{ind}{dst} = g.integer<{INT_TYPES[t]}>();")
        elif t == "bool":
            out.append(f"{ind}{dst} = g.flip();")
        elif t == "float64":
            out.append(f"{ind}{dst} = g.real();")
        elif t == "uuid":
            out.append(f"{ind}{dst} = g.make_uuid();")
        elif t == "string":
            out.append(f"{ind}{dst} = g.text();")
        elif t in ("bytes", "records"):
            out.append(f"{ind}{dst} = g.blob();")
        else:
            out.append(f"{ind}randomize({dst}, g, version, depth + 1);")

    def random_field(self, f, out, ind):
        dst = member_name(f.name)
        u = self.universe
        if self.is_optional(f) and f.nullable:
            out.append(f"{ind}if (({cond(f.nullable, u)}) && g.one_in(5)) {{")
            out.append(f"{ind}    m.{dst}.reset();")
            out.append(f"{ind}}} else {{")
            ind2 = ind + "    "
            target = f"m.{dst}.emplace()"
        else:
            ind2 = ind
            target = f"m.{dst}"
        if f.is_array:
            out.append(f"{ind2}{{")
            out.append(f"{ind2}    auto& v = {target};")
            out.append(f"{ind2}    size_t n = depth > 3 ? 0 : g.below(4);")
            out.append(f"{ind2}    for (size_t i = 0; i < n; ++i) {{")
            self.random_value(f, "v.emplace_back()", out, ind2 + "        ", 0, elem=True)
            out.append(f"{ind2}    }}")
            out.append(f"{ind2}}}")
        else:
            if f.is_struct:
                out.append(f"{ind2}randomize({target}, g, version, depth + 1);")
            else:
                self.random_value(f, target, out, ind2, 0)
        if self.is_optional(f) and f.nullable:
            out.append(f"{ind}}}")

    def random_struct(self, qname, fields, out):
        u = self.universe
        out.append(f"void randomize({qname}& m, rng& g, int16_t version, int depth) {{")
        out.append(f"    [[maybe_unused]] const bool flexible = {self.cls}::is_flexible(version);")
        for f in fields:
            regular = f.versions - f.tagged
            if regular:
                c = cond(regular, u)
                if c == "true":
                    self.random_field(f, out, "    ")
                else:
                    out.append(f"    if ({c}) {{")
                    self.random_field(f, out, "        ")
                    out.append("    }")
            if f.tagged:
                out.append(f"    if (({cond(f.tagged, u)}) && g.flip()) {{")
                self.random_field(f, out, "        ")
                out.append("    }")
        out.append("    if (flexible) m.unknown_tagged_fields = g.random_tags();")
        out.append("}")
        out.append("")

    def random_definitions(self):
        out = []
        for sname in self.struct_order:
            out.append(f"void randomize({self.qual(sname)}& m, rng& g, int16_t version, int depth);")
        out.append("")
        for sname in self.struct_order:
            self.random_struct(self.qual(sname), self.structs[sname], out)
        self.random_struct(self.cls, self.msg.fields, out)
        return out


def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def int_literal(t, v):
    lo, hi = INT_RANGE[t]
    if not lo <= v <= hi:
        raise ValueError(f"default {v} out of range for {t}")
    if t == "int64":
        if v == lo:
            return "INT64_MIN"
        return f"INT64_C({v})"
    if t == "int32" and v == lo:
        return "INT32_MIN"
    if t in ("int8", "int16", "uint16"):
        return f"static_cast<{INT_TYPES[t]}>({v})"
    if t == "uint32":
        return f"UINT32_C({v})"
    return str(v)
