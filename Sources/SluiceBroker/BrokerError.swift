/// The one error type of the broker layer. Every failure a client can cause or observe
/// is one of these codes. Each code has one row in each of two tables: the gRPC status
/// that ends a refused call (SluiceService's `BrokerError+GRPCStatus.swift`, the only
/// place a service turns a broker error into a status) and the `ErrorCode` a
/// per-partition answer carries when the error refuses one entry of a call
/// (`BrokerError+ErrorCode.swift`), so the layers above never guess from messages.
/// Errors every path can meet (a topic or partition that cannot be used) are built by
/// the factories in `BrokerError+Lookups.swift`, so they read the same on every path.
public struct BrokerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Hashable, CaseIterable {
        /// No topic of that name exists.
        case topicNotFound
        /// A topic of that name already exists.
        case topicAlreadyExists
        /// The topic name breaks the naming rules.
        case invalidTopicName
        /// An unknown setting, or a value a setting does not accept.
        case invalidConfig
        /// A partition count of 0, above the limit, or not larger than the current one.
        case invalidPartitionCount
        /// A replication factor the cluster cannot place.
        case invalidReplicationFactor
        /// Another broker (or another registry in this process) holds the data directory.
        case dataDirectoryLocked
        /// A metadata file in the data directory cannot be read or parsed; the broker
        /// refuses to start rather than forget topics.
        case metadataCorrupt
        /// Writing durable metadata failed (disk full, I/O error); nothing was changed.
        case metadataWriteFailed
        /// The broker is shutting down and takes no new work.
        case shuttingDown
        /// A partition number not below the topic's partition count.
        case unknownPartition
        /// A partition created a moment ago whose log is not open yet (or one being
        /// deleted): retriable.
        case notOpenYet
        /// A read position below the log start (retention deleted it) or past the log end.
        case offsetOutOfRange
        /// A request that is well-formed protobuf but asks for something meaningless.
        case invalidRequest
        /// A partition's log failed (I/O error, corrupt data) while serving.
        case storageFailed
        /// Stored bytes a read was about to serve fail their check (a damaged batch
        /// header in a segment): they are not served, since what would reach the client
        /// is not what was acknowledged.
        case dataLoss
        /// A log could not be opened (a partition, or the consumer offsets log): what
        /// needs it waits until an operator fixes the cause. Retriable, like Kafka's
        /// LEADER_NOT_AVAILABLE; the message names the log and the reason.
        case offline
        /// Consumer groups: no group of that name, or no member of that id in it.
        case groupNotFound
        /// Consumer groups: the group's state forbids the request (a stale generation or
        /// expired session: rejoin; an admin change while the group has members).
        case groupStateConflict
        /// A partition holds its bound of waits for its watermarks (subscribers waiting
        /// for data, acks=durable batches waiting for their sync): retriable later.
        case tooManyWaits
        /// In a cluster: another broker leads the partition, or none does yet (retriable
        /// after a metadata refresh; the message names the leader).
        case notLeader
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Client input (a topic, group, member or setting name, a setting's value) as a message
    /// quotes it: in double quotes, and if longer than `limit` characters only its first
    /// `limit`, marked and followed by its length, so that a 20 KB name still makes a short
    /// message. (SluiceWire's `GRPCStatus.quoting` is the same rule; the wire also caps a
    /// whole status message at 1 KiB, but a message should not rely on that.)
    public static func quoting(_ text: String, limit: Int = 64) -> String {
        let head = text.prefix(limit)
        guard head.endIndex < text.endIndex else { return "\"\(text)\"" }
        return "\"\(head)...\" (\(text.utf8.count) bytes)"
    }
}
