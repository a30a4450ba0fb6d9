#!/usr/bin/env python3
"""Generates SluiceAPI's Swift value types and their protobuf-c conversions.

Usage: swiftgen.py DESCRIPTOR_SET.pb OUTPUT_DIR

Input: a FileDescriptorSet written by `protoc --include_imports --include_source_info`.
It is decoded here with a small wire-format reader, so the generator needs no protobuf
library and its output does not change with one.

Output: one `<package>.<file>.pb.swift` per proto file. For each message it writes a
public struct (fields in lowerCamelCase, docs from the .proto comments), a memberwise
initializer with proto3 defaults, and an internal `ProtobufCConvertible` conformance:
`init(cMessage:)` copies an unpacked protobuf-c struct into Swift values, `fill(_:arena:)`
points a protobuf-c struct at arena-owned copies of the Swift values for packing. The
generic pack/unpack lives in Sources/SluiceAPI/ProtobufC*.swift (hand-written).

Naming (docs/api.md): no prefix for Sluice, gRPC health and reflection types; `Etcd` for
etcdserverpb. grpc.reflection.v1alpha gets no Swift types (same wire format as v1). The
reflection helper messages are nested under the request/response that carries them.
"""
import os
import sys

# ---------------------------------------------------------------------------------------
# Wire-format reader for descriptor.proto


def read_varint(buf, pos):
    result, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """Yields (field number, value) with value an int (varint/fixed) or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def packed_varints(buf):
    pos, out = 0, []
    while pos < len(buf):
        v, pos = read_varint(buf, pos)
        out.append(v)
    return out


class Field:
    def __init__(self, buf):
        self.name, self.number, self.label, self.type = "", 0, 1, 0
        self.type_name, self.oneof_index, self.proto3_optional = "", None, False
        for n, v in fields(buf):
            if n == 1: self.name = v.decode()
            elif n == 3: self.number = v
            elif n == 4: self.label = v
            elif n == 5: self.type = v
            elif n == 6: self.type_name = v.decode().lstrip(".")
            elif n == 9: self.oneof_index = v
            elif n == 17: self.proto3_optional = bool(v)
        self.doc = []

    @property
    def repeated(self):
        return self.label == 3


class Enum:
    def __init__(self, buf, scope):
        self.name, self.values, self.doc = "", [], []
        for n, v in fields(buf):
            if n == 1: self.name = v.decode()
            elif n == 2:
                name, number = "", 0
                for n2, v2 in fields(v):
                    if n2 == 1: name = v2.decode()
                    elif n2 == 2: number = v2 - (1 << 64) if v2 >= 1 << 63 else v2
                self.values.append([name, number, []])
        self.full_name = f"{scope}.{self.name}" if scope else self.name


class Message:
    def __init__(self, buf, scope):
        self.name, self.fields, self.nested, self.enums, self.oneofs = "", [], [], [], []
        self.map_entry, self.doc = False, []
        for n, v in fields(buf):
            if n == 1: self.name = v.decode()
        self.full_name = f"{scope}.{self.name}" if scope else self.name
        for n, v in fields(buf):
            if n == 2: self.fields.append(Field(v))
            elif n == 3: self.nested.append(Message(v, self.full_name))
            elif n == 4: self.enums.append(Enum(v, self.full_name))
            elif n == 8:
                self.oneofs.append(next((v2.decode() for n2, v2 in fields(v) if n2 == 1), ""))
            elif n == 7:
                self.map_entry = any(n2 == 7 and v2 for n2, v2 in fields(v))


class File:
    def __init__(self, buf):
        self.name, self.package, self.messages, self.enums = "", "", [], []
        locations = []
        for n, v in fields(buf):
            if n == 1: self.name = v.decode()
            elif n == 2: self.package = v.decode()
        for n, v in fields(buf):
            if n == 4: self.messages.append(Message(v, self.package))
            elif n == 5: self.enums.append(Enum(v, self.package))
            elif n == 9:
                for n2, v2 in fields(v):
                    if n2 == 1: locations.append(v2)
        self.attach_docs(locations)

    def attach_docs(self, locations):
        """Source-info paths: 4=message_type, 5=enum_type; in a message 2=field,
        3=nested_type, 4=enum_type; in an enum 2=value."""
        docs = {}
        for loc in locations:
            path, text = [], ""
            for n, v in fields(loc):
                if n == 1: path = packed_varints(v) if isinstance(v, bytes) else path + [v]
                elif n == 3: text = v.decode()
            if text.strip():
                docs[tuple(path)] = [line[1:] if line.startswith(" ") else line
                                     for line in text.rstrip("\n").split("\n")]

        def message(m, path):
            m.doc = docs.get(path, [])
            for i, f in enumerate(m.fields): f.doc = docs.get(path + (2, i), [])
            for i, nm in enumerate(m.nested): message(nm, path + (3, i))
            for i, e in enumerate(m.enums): enum(e, path + (4, i))

        def enum(e, path):
            e.doc = docs.get(path, [])
            for i, value in enumerate(e.values): value[2] = docs.get(path + (2, i), [])

        for i, m in enumerate(self.messages): message(m, (4, i))
        for i, e in enumerate(self.enums): enum(e, (5, i))


# ---------------------------------------------------------------------------------------
# Naming

SWIFT_PREFIX = {
    "sluice.v1": "",
    "sluice.test.v1": "",
    "grpc.health.v1": "",
    "grpc.reflection.v1": "",
    "etcdserverpb": "Etcd",
}

# Top-level proto messages given a nested Swift name, so that generic names such as
# `ErrorResponse` do not claim the module's top level.
SWIFT_NAME_OVERRIDES = {
    "grpc.reflection.v1.ExtensionRequest": "ServerReflectionRequest.ExtensionRequest",
    "grpc.reflection.v1.FileDescriptorResponse": "ServerReflectionResponse.FileDescriptorResponse",
    "grpc.reflection.v1.ExtensionNumberResponse": "ServerReflectionResponse.ExtensionNumberResponse",
    "grpc.reflection.v1.ListServiceResponse": "ServerReflectionResponse.ListServiceResponse",
    "grpc.reflection.v1.ServiceResponse": "ServerReflectionResponse.ServiceResponse",
    "grpc.reflection.v1.ErrorResponse": "ServerReflectionResponse.ErrorResponse",
}

SWIFT_KEYWORDS = {
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import",
    "init", "inout", "internal", "let", "open", "operator", "private", "protocol", "public",
    "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case",
    "continue", "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in",
    "repeat", "return", "switch", "where", "while", "as", "Any", "catch", "false", "is",
    "nil", "super", "self", "Self", "throw", "throws", "true", "try", "Type", "Protocol",
}


def escape(name):
    return f"`{name}`" if name in SWIFT_KEYWORDS else name


def lower_camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def upper_camel(snake):
    return "".join(p[:1].upper() + p[1:] for p in snake.split("_"))


def camel_to_lower(name):
    """protoc-c's CamelToLower: `RecordBatch` -> `record_batch`."""
    out, was_upper = "", True
    for ch in name:
        is_upper = ch.isupper()
        if is_upper:
            if not was_upper:
                out += "_"
            out += ch.lower()
        else:
            out += ch
        was_upper = is_upper
    return out


def upper_snake(name):
    return camel_to_lower(name).upper()


class Names:
    """Maps fully-qualified proto names to Swift and protobuf-c names."""

    def __init__(self, files):
        self.swift, self.c_type, self.c_lower, self.kind = {}, {}, {}, {}
        self.messages, self.enum_cases = {}, {}
        for f in files:
            prefix = SWIFT_PREFIX.get(f.package)
            pkg_parts = f.package.split(".") if f.package else []

            def visit_message(m, swift_parent, c_parts):
                parts = c_parts + [m.name]
                swift = SWIFT_NAME_OVERRIDES.get(
                    m.full_name, f"{swift_parent}.{m.name}" if swift_parent else prefix + m.name)
                self.register(m.full_name, swift, pkg_parts, parts, "message")
                self.messages[m.full_name] = m
                for nm in m.nested: visit_message(nm, swift, parts)
                for e in m.enums:
                    self.register_enum_cases(e)
                    self.register(e.full_name, f"{swift}.{e.name}", pkg_parts, parts + [e.name], "enum")

            if prefix is None:
                continue
            for m in f.messages: visit_message(m, "", [])
            for e in f.enums:
                self.register_enum_cases(e)
                self.register(e.full_name, prefix + e.name, pkg_parts, [e.name], "enum")

    def register_enum_cases(self, e):
        """Swift case names: the values without a shared `ENUM_NAME_` prefix, in lowerCamelCase;
        a proto3 enum's first value is its zero and default."""
        prefix = upper_snake(e.name) + "_"
        strip = all(v[0].startswith(prefix) for v in e.values)
        self.enum_cases[e.full_name] = [
            escape(lower_camel((v[0][len(prefix):] if strip else v[0]).lower())) for v in e.values]

    def register(self, full_name, swift, pkg_parts, parts, kind):
        self.swift[full_name] = swift
        self.c_type[full_name] = "__".join([p[:1].upper() + p[1:] for p in pkg_parts] + parts)
        self.c_lower[full_name] = "__".join([p.lower() for p in pkg_parts] + [camel_to_lower(p) for p in parts])
        self.kind[full_name] = kind


# ---------------------------------------------------------------------------------------
# Field types

T_DOUBLE, T_FLOAT, T_INT64, T_UINT64, T_INT32, T_FIXED64, T_FIXED32, T_BOOL, T_STRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
T_MESSAGE, T_BYTES, T_UINT32, T_ENUM, T_SFIXED32, T_SFIXED64, T_SINT32, T_SINT64 = 11, 12, 13, 14, 15, 16, 17, 18

SCALAR_SWIFT = {
    T_DOUBLE: "Double", T_FLOAT: "Float", T_INT64: "Int64", T_UINT64: "UInt64", T_INT32: "Int32",
    T_FIXED64: "UInt64", T_FIXED32: "UInt32", T_UINT32: "UInt32", T_SFIXED32: "Int32",
    T_SFIXED64: "Int64", T_SINT32: "Int32", T_SINT64: "Int64",
}


class Generator:
    def __init__(self, names):
        self.names = names
        self.out = []

    def emit(self, line=""):
        self.out.append(line)

    def doc(self, lines, indent):
        for line in lines:
            self.emit(f"{indent}///{' ' + line if line.strip() else ''}".rstrip())

    def is_map(self, f):
        if f.type != T_MESSAGE or not f.repeated:
            return False
        entry = self.names.messages.get(f.type_name)
        return entry is not None and entry.map_entry

    def element_swift(self, f):
        if f.type in SCALAR_SWIFT: return SCALAR_SWIFT[f.type]
        if f.type == T_BOOL: return "Bool"
        if f.type == T_STRING: return "String"
        if f.type == T_BYTES: return "ByteBuffer"
        if f.type in (T_MESSAGE, T_ENUM): return self.names.swift[f.type_name]
        raise ValueError(f"unsupported field type {f.type} ({f.name})")

    def swift_type(self, f):
        if self.is_map(f):
            entry = self.names.messages[f.type_name]
            key, value = entry.fields
            if key.type != T_STRING or value.type != T_STRING:
                raise ValueError(f"only map<string, string> is supported ({f.name})")
            return "[String: String]"
        element = self.element_swift(f)
        if f.repeated: return f"[{element}]"
        if f.type == T_MESSAGE or f.proto3_optional: return f"{element}?"
        return element

    def default(self, f):
        if self.is_map(f): return "[:]"
        if f.repeated: return "[]"
        if f.type == T_MESSAGE or f.proto3_optional: return "nil"
        if f.type in SCALAR_SWIFT: return "0"
        if f.type == T_BOOL: return "false"
        if f.type == T_STRING: return '""'
        if f.type == T_BYTES: return "ByteBuffer()"
        if f.type == T_ENUM: return "." + self.names.enum_cases[f.type_name][0]
        raise ValueError(f.name)

    # -- decoding: one C element (an expression of the C type) to Swift

    def from_c(self, f, expr):
        if f.type in SCALAR_SWIFT: return expr
        if f.type == T_BOOL: return f"{expr} != 0"
        if f.type == T_STRING: return f"ProtobufC.string({expr})"
        if f.type == T_BYTES: return f"ProtobufC.bytes({expr})"
        if f.type == T_ENUM:
            return f"{self.names.swift[f.type_name]}(rawValue: Int32(truncatingIfNeeded: {expr}.rawValue))"
        if f.type == T_MESSAGE: return f"{self.names.swift[f.type_name]}(cMessage: {expr})"
        raise ValueError(f.name)

    # -- encoding: one Swift element to the C type

    def to_c(self, f, expr):
        if f.type in SCALAR_SWIFT: return expr
        if f.type == T_BOOL: return f"{expr} ? 1 : 0"
        if f.type == T_STRING: return f"arena.string({expr})"
        if f.type == T_BYTES: return f"arena.bytes({expr})"
        if f.type == T_ENUM: return f".init(rawValue: .init(truncatingIfNeeded: {expr}.rawValue))"
        if f.type == T_MESSAGE: return f"arena.message({expr})"
        raise ValueError(f.name)

    # -----------------------------------------------------------------------------------

    def enum(self, e):
        swift = self.names.swift[e.full_name]
        parent, _, name = swift.rpartition(".")
        indent = "    " if parent else ""
        if parent: self.emit(f"extension {parent} {{")
        cases = [(case, number, doc) for case, (_, number, doc)
                 in zip(self.names.enum_cases[e.full_name], e.values)]
        self.doc(e.doc or [f"`{e.full_name}`."], indent)
        self.doc(["", "Open like every proto3 enum: numbers this version does not know decode as",
                  "`unrecognized` and encode back unchanged."], indent)
        self.emit(f"{indent}public enum {name}: RawRepresentable, Sendable, Hashable {{")
        for case, number, doc in cases:
            self.doc(doc, indent + "    ")
            self.emit(f"{indent}    case {case}")
        self.emit(f"{indent}    case unrecognized(Int32)")
        self.emit()
        self.emit(f"{indent}    public init(rawValue: Int32) {{")
        self.emit(f"{indent}        switch rawValue {{")
        for case, number, _ in cases:
            self.emit(f"{indent}        case {number}: self = .{case}")
        self.emit(f"{indent}        default: self = .unrecognized(rawValue)")
        self.emit(f"{indent}        }}")
        self.emit(f"{indent}    }}")
        self.emit()
        self.emit(f"{indent}    public var rawValue: Int32 {{")
        self.emit(f"{indent}        switch self {{")
        for case, number, _ in cases:
            self.emit(f"{indent}        case .{case}: {number}")
        self.emit(f"{indent}        case .unrecognized(let number): number")
        self.emit(f"{indent}        }}")
        self.emit(f"{indent}    }}")
        self.emit(f"{indent}}}")
        if parent: self.emit("}")
        self.emit()

    def message(self, m):
        if m.map_entry:
            return
        swift = self.names.swift[m.full_name]
        parent, _, name = swift.rpartition(".")
        indent = "    " if parent else ""
        # Real oneofs become Swift enums; a proto3 `optional` field's synthetic oneof does not.
        real_oneofs = sorted({f.oneof_index for f in m.fields
                              if f.oneof_index is not None and not f.proto3_optional})
        plain = [f for f in m.fields if f.oneof_index is None or f.proto3_optional]

        if parent: self.emit(f"extension {parent} {{")
        self.doc(m.doc or [f"`{m.full_name}`."], indent)
        self.emit(f"{indent}public struct {name}: ProtobufMessage {{")
        members = []  # (swift name, swift type, default) in declaration order
        declared_oneofs = set()
        for f in m.fields:
            if f.oneof_index is not None and not f.proto3_optional:
                if f.oneof_index in declared_oneofs:
                    continue
                declared_oneofs.add(f.oneof_index)
                oneof = m.oneofs[f.oneof_index]
                members.append((lower_camel(oneof), upper_camel(oneof) + "?", "nil"))
                self.emit(f"{indent}    public var {escape(lower_camel(oneof))}: {upper_camel(oneof)}?")
                continue
            self.doc(f.doc, indent + "    ")
            members.append((lower_camel(f.name), self.swift_type(f), self.default(f)))
            self.emit(f"{indent}    public var {escape(lower_camel(f.name))}: {self.swift_type(f)}")
        for index in real_oneofs:
            oneof = m.oneofs[index]
            self.emit()
            self.doc([f"The `{oneof}` oneof: at most one of these is set."], indent + "    ")
            self.emit(f"{indent}    public enum {upper_camel(oneof)}: Sendable, Equatable {{")
            for f in m.fields:
                if f.oneof_index == index:
                    self.doc(f.doc, indent + "        ")
                    self.emit(f"{indent}        case {escape(lower_camel(f.name))}({self.element_swift(f)})")
            self.emit(f"{indent}    }}")
        if members or real_oneofs:
            self.emit()
        if members:
            params = ", ".join(f"{escape(n)}: {t} = {d}" for n, t, d in members)
            self.emit(f"{indent}    public init({params}) {{")
            for n, _, _ in members:
                self.emit(f"{indent}        self.{escape(n)} = {escape(n)}")
            self.emit(f"{indent}    }}")
        else:
            self.emit(f"{indent}    public init() {{}}")
        self.emit()
        self.emit(f"{indent}    public init(protobuf bytes: ByteBuffer) throws(ProtobufDecodingError) {{")
        self.emit(f"{indent}        self = try ProtobufCCodec.decode(bytes)")
        self.emit(f"{indent}    }}")
        self.emit()
        self.emit(f"{indent}    public func protobufBytes() -> ByteBuffer {{")
        self.emit(f"{indent}        ProtobufCCodec.encode(self)")
        self.emit(f"{indent}    }}")
        self.emit()
        self.emit(f"{indent}    public func checkedProtobufBytes() throws(ProtobufEncodingError) -> ByteBuffer {{")
        self.emit(f"{indent}        try ProtobufCCodec.checkedEncode(self)")
        self.emit(f"{indent}    }}")
        self.emit(f"{indent}}}")
        if parent: self.emit("}")
        self.emit()
        self.conversion(m, swift, plain, real_oneofs)

    def conversion(self, m, swift, plain, real_oneofs):
        c_type, c_lower = self.names.c_type[m.full_name], self.names.c_lower[m.full_name]
        self.emit(f"extension {swift}: ProtobufCConvertible {{")
        self.emit(f"    static func cInit(_ message: UnsafeMutablePointer<{c_type}>) {{")
        self.emit(f"        {c_lower}__init(message)")
        self.emit("    }")
        self.emit()
        self.emit(f"    static func cUnpack(_ count: Int, _ bytes: UnsafePointer<UInt8>?) -> UnsafeMutablePointer<{c_type}>? {{")
        self.emit(f"        {c_lower}__unpack(nil, count, bytes)")
        self.emit("    }")
        self.emit()
        # Decoding
        used = bool(m.fields)
        self.emit(f"    init(cMessage {'message' if used else '_'}: UnsafePointer<{c_type}>) {{")
        if used:
            self.emit("        let c = message.pointee")
        for f in plain:
            member, cm = escape(lower_camel(f.name)), escape(f.name)
            if self.is_map(f):
                self.emit(f"        self.{member} = ProtobufC.stringMap(c.{cm}, count: c.n_{f.name}) {{ ($0.pointee.key, $0.pointee.value) }}")
            elif f.repeated and f.type == T_MESSAGE:
                self.emit(f"        self.{member} = ProtobufC.messages(c.{cm}, count: c.n_{f.name}) {{ {self.from_c(f, '$0')} }}")
            elif f.repeated:
                self.emit(f"        self.{member} = ProtobufC.elements(c.{cm}, count: c.n_{f.name}) {{ {self.from_c(f, '$0')} }}")
            elif f.proto3_optional:
                oneof = m.oneofs[f.oneof_index]
                self.emit(f"        self.{member} = c.{oneof}_case.rawValue == {f.number} ? {self.from_c(f, 'c.' + cm)} : nil")
            elif f.type == T_MESSAGE:
                self.emit(f"        self.{member} = c.{cm}.map {{ {self.from_c(f, 'UnsafePointer($0)')} }}")
            else:
                self.emit(f"        self.{member} = {self.from_c(f, 'c.' + cm)}")
        for index in real_oneofs:
            oneof = m.oneofs[index]
            self.emit(f"        switch c.{oneof}_case.rawValue {{")
            for f in m.fields:
                if f.oneof_index != index: continue
                cm = escape(f.name)
                if f.type == T_MESSAGE:
                    self.emit(f"        case {f.number}: self.{escape(lower_camel(oneof))} = c.{cm}.map {{ .{escape(lower_camel(f.name))}({self.from_c(f, 'UnsafePointer($0)')}) }}")
                else:
                    self.emit(f"        case {f.number}: self.{escape(lower_camel(oneof))} = .{escape(lower_camel(f.name))}({self.from_c(f, 'c.' + cm)})")
            self.emit(f"        default: self.{escape(lower_camel(oneof))} = nil")
            self.emit("        }")
        self.emit("    }")
        self.emit()
        # Encoding
        target = "_ message" if m.fields else "_"
        arena = "arena" if m.fields else "arena _"
        self.emit(f"    func fill({target}: UnsafeMutablePointer<{c_type}>, {arena}: ProtobufCArena) {{")
        for f in plain:
            member, cm = escape(lower_camel(f.name)), escape(f.name)
            if self.is_map(f):
                entry = self.names.c_lower[f.type_name]
                self.emit(f"        message.pointee.n_{f.name} = {member}.count")
                self.emit(f"        message.pointee.{cm} = arena.stringMap({member}, initEntry: {entry}__init) {{")
                self.emit("            $0.pointee.key = $1")
                self.emit("            $0.pointee.value = $2")
                self.emit("        }")
            elif f.repeated and f.type == T_MESSAGE:
                self.emit(f"        message.pointee.n_{f.name} = {member}.count")
                self.emit(f"        message.pointee.{cm} = arena.messages({member})")
            elif f.repeated:
                conv = self.to_c(f, "$0")
                mapped = member if conv == "$0" else f"{member}.map {{ {conv} }}"
                self.emit(f"        message.pointee.n_{f.name} = {member}.count")
                self.emit(f"        message.pointee.{cm} = arena.elements({mapped})")
            elif f.proto3_optional:
                oneof = m.oneofs[f.oneof_index]
                self.emit(f"        if let {member} {{")
                self.emit(f"            message.pointee.{oneof}_case = .init(rawValue: {f.number})")
                self.emit(f"            message.pointee.{cm} = {self.to_c(f, member)}")
                self.emit("        }")
            elif f.type == T_MESSAGE:
                self.emit(f"        message.pointee.{cm} = {member}.map {{ arena.message($0) }}")
            else:
                self.emit(f"        message.pointee.{cm} = {self.to_c(f, member)}")
        for index in real_oneofs:
            oneof = m.oneofs[index]
            self.emit(f"        switch {escape(lower_camel(oneof))} {{")
            for f in m.fields:
                if f.oneof_index != index: continue
                cm = escape(f.name)
                self.emit(f"        case .{escape(lower_camel(f.name))}(let value)?:")
                self.emit(f"            message.pointee.{oneof}_case = .init(rawValue: {f.number})")
                self.emit(f"            message.pointee.{cm} = {self.to_c(f, 'value')}")
            self.emit("        case nil:")
            self.emit("            break")
            self.emit("        }")
        self.emit("    }")
        self.emit("}")
        self.emit()

    def file(self, f):
        self.out = []
        self.emit(f"// DO NOT EDIT: generated by codegen/generate.sh (codegen/swiftgen.py) from proto/{f.name}.")
        self.emit(f"// Swift value types for package `{f.package}` and their protobuf-c conversions.")
        self.emit()
        self.emit("import CSluiceProto")
        # Messages carry ByteBuffer fields in their public API; the C types stay internal.
        self.emit("public import NIOCore")
        self.emit()

        def all_messages(ms):
            for m in ms:
                yield m
                yield from all_messages(m.nested)

        for e in f.enums: self.enum(e)
        for m in all_messages(f.messages):
            for e in m.enums: self.enum(e)
            self.message(m)
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n"


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, "rb") as fh:
        data = fh.read()
    files = [File(v) for n, v in fields(data) if n == 1]
    names = Names(files)
    generator = Generator(names)
    for f in files:
        if SWIFT_PREFIX.get(f.package) is None:
            continue
        stem = os.path.splitext(os.path.basename(f.name))[0]
        path = os.path.join(target, f"{f.package}.{stem}.pb.swift")
        with open(path, "w") as fh:
            fh.write(generator.file(f))


if __name__ == "__main__":
    main()
