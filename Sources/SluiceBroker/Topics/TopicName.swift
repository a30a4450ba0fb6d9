/// Topic naming rules: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
///
/// The character set keeps a name usable as a file name and in a URL without escaping;
/// the length leaves room for a partition suffix inside a 255-byte file name.
public enum TopicName {
    public static let maxLength = BrokerLimits.defaults.maxNameLength.value

    public static func validate(_ name: String) throws(BrokerError) {
        try checkShared(name, kind: "topic", code: .invalidTopicName)
        if name == "." || name == ".." {
            throw BrokerError(.invalidTopicName, "topic name cannot be \"\(name)\"")
        }
    }

    /// The rules topic names share with group names (`GroupName`): not empty, at most
    /// `maxLength` bytes, only [a-zA-Z0-9._-]. `kind` names the name in messages.
    static func checkShared(_ name: String, kind: String, code: BrokerError.Code) throws(BrokerError) {
        if name.isEmpty {
            throw BrokerError(code, "\(kind) name is empty")
        }
        let bytes = name.utf8
        if bytes.count > maxLength {
            throw BrokerError(code, "\(kind) name is \(bytes.count) characters long; the limit is \(maxLength)")
        }
        if let bad = name.unicodeScalars.first(where: { !isAllowed($0) }) {
            throw BrokerError(
                code,
                "\(kind) name \"\(name)\" contains \"\(bad.escaped(asASCII: true))\"; allowed are ASCII letters, digits, '.', '_' and '-'")
        }
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }
}
