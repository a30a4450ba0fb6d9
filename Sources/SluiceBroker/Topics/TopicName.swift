/// Topic naming rules: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
///
/// The character set keeps a name usable as a file name and in a URL without escaping;
/// the length leaves room for a partition suffix inside a 255-byte file name.
public enum TopicName {
    public static let maxLength = 249

    public static func validate(_ name: String) throws(BrokerError) {
        if name.isEmpty {
            throw BrokerError(.invalidTopicName, "topic name is empty")
        }
        let bytes = name.utf8
        if bytes.count > maxLength {
            throw BrokerError(.invalidTopicName, "topic name is \(bytes.count) characters long; the limit is \(maxLength)")
        }
        if name == "." || name == ".." {
            throw BrokerError(.invalidTopicName, "topic name cannot be \"\(name)\"")
        }
        if let bad = name.unicodeScalars.first(where: { !isAllowed($0) }) {
            throw BrokerError(
                .invalidTopicName,
                "topic name \"\(name)\" contains \"\(bad.escaped(asASCII: true))\"; allowed are ASCII letters, digits, '.', '_' and '-'")
        }
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }
}
