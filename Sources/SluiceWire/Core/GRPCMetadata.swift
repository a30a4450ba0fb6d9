/// Custom metadata of a call: ordered (name, value) pairs with lower-case names, as carried in
/// HTTP/2 headers or trailers. Reserved names (pseudo-headers, `grpc-*`, `content-type`, `te`)
/// are set by the transport and dropped if a caller adds them.
public struct GRPCMetadata: Sendable, Sequence, ExpressibleByDictionaryLiteral, Equatable {
    public typealias Element = (name: String, value: String)

    private var pairs: [(name: String, value: String)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { append(name, value) }
    }

    public mutating func append(_ name: String, _ value: String) {
        pairs.append((name.lowercased(), value))
    }

    /// Replaces every value of `name` with one value.
    public mutating func replace(_ name: String, _ value: String) {
        let lowered = name.lowercased()
        pairs.removeAll { $0.name == lowered }
        pairs.append((lowered, value))
    }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        let lowered = name.lowercased()
        return pairs.first { $0.name == lowered }?.value
    }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        pairs.makeIterator()
    }

    public static func == (lhs: GRPCMetadata, rhs: GRPCMetadata) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Names the transport owns; user metadata never overrides them.
    static func isReserved(_ name: String) -> Bool {
        name.hasPrefix(":") || name.hasPrefix("grpc-") || name == "content-type" || name == "te"
            || name == "user-agent" || name == "connection"
    }

    /// The user-visible part of received headers (reserved names removed).
    static func custom(from headers: [(name: String, value: String)]) -> GRPCMetadata {
        var metadata = GRPCMetadata()
        for header in headers where !isReserved(header.name) { metadata.append(header.name, header.value) }
        return metadata
    }
}
