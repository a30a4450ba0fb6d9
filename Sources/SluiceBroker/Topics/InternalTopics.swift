/// Topics the broker keeps for itself. Names starting with "__" are reserved: clients
/// cannot create, delete, alter, grow or produce to them; they are left out of
/// ListTopics, and can be described and read (subscribed) like any topic.
public enum InternalTopics {
    public static let reservedPrefix = "__"
    /// Committed offsets of consumer groups (OffsetLog.swift has the format).
    public static let consumerOffsets = "__consumer_offsets"

    public static func isInternal(_ name: String) -> Bool { name.hasPrefix(reservedPrefix) }

    /// Refuses a client's change to an internal topic.
    public static func refuseChange(_ name: String, _ what: String) throws(BrokerError) {
        guard isInternal(name) else { return }
        throw BrokerError(.invalidRequest, "topic \(BrokerError.quoting(name)) is internal to the broker; it cannot be \(what)")
    }
}
