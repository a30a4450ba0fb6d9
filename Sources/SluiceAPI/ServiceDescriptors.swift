import CSluiceProto

/// The served protos' descriptors, for gRPC server reflection (grpc.reflection.v1 and
/// v1alpha): service names, serialized `FileDescriptorProto`s by file name, the file that
/// defines a symbol, and a file's imports.
///
/// The source is the `FileDescriptorSet` that codegen/generate.sh writes with
/// `protoc --include_imports` over sluice/v1, sluice/test/v1, grpc/health/v1 and
/// grpc/reflection/{v1,v1alpha} (not etcd's client-side subset), embedded in CSluiceProto
/// as a byte array, so answering needs no file access. It is parsed once, on first use.
public enum ServiceDescriptors {
    /// Fully-qualified names of every service in the set, in file order
    /// (`sluice.v1.Broker`, `sluice.test.v1.Echo`, `grpc.health.v1.Health`, ...).
    public static var serviceNames: [String] { index.serviceNames }

    /// Names of every file in the set, in dependency order (imports first).
    public static var fileNames: [String] { index.files.map(\.name) }

    /// The serialized `google.protobuf.FileDescriptorProto` of a file, e.g.
    /// `sluice/v1/broker.proto`; nil when the set has no such file.
    public static func fileDescriptor(named name: String) -> [UInt8]? {
        index.fileByName[name].map { index.files[$0].bytes }
    }

    /// The file that defines a fully-qualified symbol: a service (`sluice.v1.Broker`), a
    /// method (`sluice.v1.Broker.Produce`), a message or nested message
    /// (`sluice.v1.TopicDescription.ConfigsEntry`) or an enum, top-level or nested. A leading
    /// dot is accepted (`.sluice.v1.Record`).
    public static func fileContaining(symbol: String) -> String? {
        let symbol = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        return index.fileBySymbol[symbol].map { index.files[$0].name }
    }

    /// The files a file imports directly, in declaration order; empty for an unknown file.
    public static func dependencies(ofFile name: String) -> [String] {
        index.fileByName[name].map { index.files[$0].dependencies } ?? []
    }

    /// A file followed by everything it imports, transitively, each file once: what a
    /// reflection answer to `file_by_filename` / `file_containing_symbol` carries.
    public static func fileWithDependencies(named name: String) -> [String] {
        guard index.fileByName[name] != nil else { return [] }
        var result: [String] = []
        var pending = [name]
        while let next = pending.popLast() {
            guard !result.contains(next) else { continue }
            result.append(next)
            pending.append(contentsOf: dependencies(ofFile: next).reversed())
        }
        return result
    }

    private static let index: DescriptorIndex = {
        let start = sluice_proto_descriptor_set_bytes()
        let bytes = Array(UnsafeBufferPointer(start: start, count: sluice_proto_descriptor_set_count()))
        guard let index = DescriptorIndex(descriptorSet: bytes) else {
            // Written by codegen/generate.sh with protoc; a parse failure is a build defect.
            preconditionFailure("the embedded FileDescriptorSet does not parse")
        }
        return index
    }()
}

/// What reflection needs from a FileDescriptorSet, read with `ProtobufWireReader`.
///
/// Fields read (descriptor.proto numbering):
///
///     FileDescriptorSet      file = 1 (FileDescriptorProto, repeated)
///     FileDescriptorProto    name = 1, package = 2, dependency = 3 (repeated),
///                            message_type = 4, enum_type = 5, service = 6
///     DescriptorProto        name = 1, nested_type = 3, enum_type = 4
///     EnumDescriptorProto    name = 1
///     ServiceDescriptorProto name = 1, method = 2 (MethodDescriptorProto: name = 1)
///
/// Everything else is skipped by wire type, so newer protoc output still parses.
struct DescriptorIndex: Sendable {
    struct File: Sendable {
        var name: String
        var bytes: [UInt8]
        var dependencies: [String]
    }

    private(set) var files: [File] = []
    private(set) var fileByName: [String: Int] = [:]
    private(set) var fileBySymbol: [String: Int] = [:]
    private(set) var serviceNames: [String] = []

    init?(descriptorSet: [UInt8]) {
        var reader = ProtobufWireReader(descriptorSet[...])
        while let field = reader.next() {
            guard case .lengthDelimited(let fileBytes) = field.value, field.number == 1 else { continue }
            guard addFile(Array(fileBytes)) else { return nil }
        }
        guard !reader.failed else { return nil }
    }

    private mutating func addFile(_ bytes: [UInt8]) -> Bool {
        var name = "", package = "", dependencies: [String] = []
        var messages: [ArraySlice<UInt8>] = [], enums: [ArraySlice<UInt8>] = [], services: [ArraySlice<UInt8>] = []
        var reader = ProtobufWireReader(bytes[...])
        while let field = reader.next() {
            guard case .lengthDelimited(let value) = field.value else { continue }
            switch field.number {
            case 1: name = String(decoding: value, as: UTF8.self)
            case 2: package = String(decoding: value, as: UTF8.self)
            case 3: dependencies.append(String(decoding: value, as: UTF8.self))
            case 4: messages.append(value)
            case 5: enums.append(value)
            case 6: services.append(value)
            default: break
            }
        }
        guard !reader.failed, !name.isEmpty else { return false }
        let fileIndex = files.count
        files.append(File(name: name, bytes: bytes, dependencies: dependencies))
        fileByName[name] = fileIndex

        let scope = package.isEmpty ? "" : package + "."
        for message in messages {
            guard addMessage(message, scope: scope, file: fileIndex) else { return false }
        }
        for enumeration in enums {
            guard let enumName = Self.name(of: enumeration) else { return false }
            fileBySymbol[scope + enumName] = fileIndex
        }
        for service in services {
            guard let serviceName = Self.name(of: service) else { return false }
            let qualified = scope + serviceName
            serviceNames.append(qualified)
            fileBySymbol[qualified] = fileIndex
            var serviceReader = ProtobufWireReader(service)
            while let field = serviceReader.next() {
                guard field.number == 2, case .lengthDelimited(let method) = field.value else { continue }
                guard let methodName = Self.name(of: method) else { return false }
                fileBySymbol[qualified + "." + methodName] = fileIndex
            }
            guard !serviceReader.failed else { return false }
        }
        return true
    }

    private mutating func addMessage(_ bytes: ArraySlice<UInt8>, scope: String, file: Int) -> Bool {
        guard let name = Self.name(of: bytes) else { return false }
        let qualified = scope + name
        fileBySymbol[qualified] = file
        var reader = ProtobufWireReader(bytes)
        while let field = reader.next() {
            guard case .lengthDelimited(let value) = field.value else { continue }
            switch field.number {
            case 3:
                guard addMessage(value, scope: qualified + ".", file: file) else { return false }
            case 4:
                guard let enumName = Self.name(of: value) else { return false }
                fileBySymbol[qualified + "." + enumName] = file
            default: break
            }
        }
        return !reader.failed
    }

    /// Field 1 (`name`) of a descriptor message.
    private static func name(of bytes: ArraySlice<UInt8>) -> String? {
        var reader = ProtobufWireReader(bytes)
        var name: String?
        while let field = reader.next() {
            if field.number == 1, case .lengthDelimited(let value) = field.value {
                name = String(decoding: value, as: UTF8.self)
            }
        }
        guard !reader.failed, let name, !name.isEmpty else { return nil }
        return name
    }
}
