/// The outcome of one gRPC call: a status code and a human-readable message.
///
/// Thrown by handlers to end a call with a non-OK status, and thrown to callers when a call
/// ends non-OK. `message` travels percent-encoded in the `grpc-message` trailer (see
/// `GRPCStatusMessageCoding`).
public struct GRPCStatus: Error, Sendable, Equatable, CustomStringConvertible {
    /// A gRPC status code. A struct rather than an enum so codes can grow without breaking a
    /// caller's `switch`; unknown numbers received from a peer are kept as they are.
    public struct Code: Sendable, Hashable, RawRepresentable, CustomStringConvertible {
        public var rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let internalError = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        public var description: String {
            let names = [
                "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
            ]
            return names.indices.contains(rawValue) ? names[rawValue] : "CODE(\(rawValue))"
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static let ok = GRPCStatus(.ok, "")

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }

    /// Client input (a name, a path, a header value) as a status message quotes it: in
    /// double quotes, and if longer than `limit` characters only its first `limit`, marked
    /// and followed by its length, so that a 20 KB name still makes a short message.
    /// (SluiceBroker's `BrokerError.quoting` is the same rule for broker messages.)
    public static func quoting(_ text: String, limit: Int = 64) -> String {
        let head = text.prefix(limit)
        guard head.endIndex < text.endIndex else { return "\"\(text)\"" }
        return "\"\(head)...\" (\(text.utf8.count) bytes)"
    }

    /// The status a client reports for a response whose HTTP status is not 200, per the gRPC
    /// spec's "HTTP to gRPC Status Code Mapping" (doc/http-grpc-status-mapping.md).
    static func fromHTTPStatus(_ status: Int) -> GRPCStatus {
        let code: Code
        switch status {
        case 400: code = .internalError
        case 401: code = .unauthenticated
        case 403: code = .permissionDenied
        case 404: code = .unimplemented
        case 429, 502, 503, 504: code = .unavailable
        default: code = .unknown
        }
        return GRPCStatus(code, "HTTP status \(status)")
    }
}

/// `grpc-message` coding: the gRPC spec percent-encodes every byte of the UTF-8 message outside
/// printable ASCII 0x20...0x7E, and `%` itself, as `%XX` (upper-case hex).
///
/// The encoded text is also capped, here and nowhere else: a status must always fit in a
/// header block the peer accepts (stock grpcio refuses metadata over ~8 KiB; nghttp2 will
/// not send a header block over 16 KiB), whatever a handler put in its message.
enum GRPCStatusMessageCoding {
    /// The most bytes an encoded `grpc-message` value takes, marker included.
    static let maxEncodedBytes = WireLimits.defaults.maxStatusMessageBytes.value
    /// Ends a message that was cut (ASCII, so it encodes as itself).
    static let cutMarker = "..."

    /// The encoded message, whole if it takes at most `maxBytes`; otherwise cut after the
    /// last whole character (grapheme) that leaves room for `cutMarker`, then marked. A cut
    /// never splits a `%XX` escape or a UTF-8 sequence, so the result decodes to a prefix
    /// of the message. Empty if `maxBytes` cannot hold even the marker.
    static func encode(_ message: String, maxBytes: Int = maxEncodedBytes) -> String {
        var out = [UInt8]()
        out.reserveCapacity(min(message.utf8.count, max(maxBytes, 0)) + 8)
        let hex = Array("0123456789ABCDEF".utf8)
        let keepBytes = maxBytes - cutMarker.utf8.count
        // `out.count` after the last character that still leaves room for the marker.
        var cutAt = 0
        for character in message {
            for byte in character.utf8 {
                if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                    out.append(byte)
                } else {
                    out.append(UInt8(ascii: "%"))
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 0x0F)])
                }
            }
            if out.count > maxBytes {
                guard keepBytes >= 0 else { return "" }
                out.removeSubrange(cutAt...)
                out.append(contentsOf: cutMarker.utf8)
                return String(decoding: out, as: UTF8.self)
            }
            if out.count <= keepBytes { cutAt = out.count }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Malformed escapes are kept literally, as the spec asks ("must not fail").
    static func decode(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
