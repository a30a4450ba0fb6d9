/// The `grpc-timeout` header: an ASCII integer of 1 to 8 digits followed by one unit letter,
/// `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds
/// (gRPC over HTTP/2 spec, "Timeout").
enum GRPCTimeout {
    static let maxDigits = 8

    /// nil for anything malformed (the server then answers INTERNAL rather than guessing).
    static func parse(_ text: String) -> Duration? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.count <= maxDigits + 1, let unit = bytes.last else { return nil }
        var value: Int64 = 0
        for byte in bytes.dropLast() {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        switch unit {
        case UInt8(ascii: "H"): return .seconds(value * 3600)
        case UInt8(ascii: "M"): return .seconds(value * 60)
        case UInt8(ascii: "S"): return .seconds(value)
        case UInt8(ascii: "m"): return .milliseconds(value)
        case UInt8(ascii: "u"): return .microseconds(value)
        case UInt8(ascii: "n"): return .nanoseconds(value)
        default: return nil
        }
    }

    /// The finest unit whose value fits in 8 digits, rounded up so the peer never sees a
    /// shorter timeout than ours. Negative durations are sent as `0n` (already expired).
    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 { return "0n" }
        // Beyond ~292 years nanoseconds overflow Int64; such a timeout means "none" in practice.
        if seconds > 9_000_000_000 { return "99999999H" }
        let nanos = Int64(seconds) &* 1_000_000_000 &+ attoseconds / 1_000_000_000
        let limit: Int64 = 99_999_999
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
            (3_600_000_000_000, "H"),
        ]
        for (scale, letter) in units {
            let value = (nanos + scale - 1) / scale
            if value <= limit { return "\(value)\(letter)" }
        }
        return "\(limit)H"
    }
}
