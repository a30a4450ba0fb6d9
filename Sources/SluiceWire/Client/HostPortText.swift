/// Addresses as command lines, etcd keys and Metadata answers write them: `host:port`, or
/// `[v6]:port` for an IPv6 host. One parser for brokers, etcd endpoints and `--broker`.
public enum HostPortText {
    /// The host (brackets removed) and the port; nil for anything else, an unbracketed IPv6
    /// address included (ambiguous), or a port outside 0...65535.
    public static func split(_ text: Substring) -> (host: Substring, port: Int)? {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            guard !hostPart.contains(":") else { return nil }
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { return nil }
        return (hostPart, port)
    }
}
