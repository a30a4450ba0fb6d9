#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import NIOCore

/// A topic's settings: the value of `/sluice/<cluster>/topics/<topic>`, written only by the
/// controller, in the same fenced Txn as (or after) every partition key of the topic, so
/// that a topic whose key exists has all its partitions.
///
/// On the wire: one UTF-8 JSON object, keys sorted (the config names too), no whitespace,
/// for example
/// `{"configs":{"retention.ms":"86400000"},"id":"3f2b9c1e-8d4a-4b6e-9a47-0c5d2e7f8a91","partitions":3}`:
///
/// - `configs`: object, config name to value, both strings, in canonical text (`{}` when
///   none);
/// - `id`: string, the topic's id: a random UUID in lowercase text (36 characters,
///   `8-4-4-4-12` hex digits), the form a single node's `TopicRegistry` gives, chosen by
///   the controller when it creates the topic and never changed. A topic deleted and
///   created again under its name gets a new one, so a broker can tell its local copy of
///   the old topic from the new. Absent in a record written before topics had ids (the
///   topic's id is then empty);
/// - `partitions`: number, the partition count N: the keys `partitions/<topic>/0` to
///   `partitions/<topic>/N-1` exist whenever this key does.
///
/// Readers ignore fields they do not know.
public struct TopicRecord: Codable, Sendable, Hashable {
    public var configs: [String: String]
    public var id: String?
    public var partitions: UInt32

    public init(id: String? = nil, configs: [String: String], partitions: UInt32) {
        self.id = id
        self.configs = configs
        self.partitions = partitions
    }

    /// The setting by which a topic lets the controller elect a live replica outside the
    /// ISR when no in-sync one is live (`TopicSetting.uncleanLeaderElectionEnable` in
    /// SluiceBroker, which checks it and stores `true` or `false`).
    public static let uncleanLeaderElectionSetting = "unclean.leader.election.enable"

    /// Whether the topic sets `unclean.leader.election.enable` to `true` (default false).
    public var allowsUncleanElection: Bool { configs[Self.uncleanLeaderElectionSetting] == "true" }

    /// A new topic's id (the form described above).
    public static func newID() -> String { UUID().uuidString.lowercased() }

    /// The value bytes described above.
    public func encoded() -> ByteBuffer {
        precondition(partitions > 0, "a topic has at least one partition")
        return MetadataJSON.encode(self)
    }

    /// The record in a key's value; nil when it is not such a JSON object or names no partition.
    public init?(decoding value: ByteBuffer) {
        guard let record = MetadataJSON.decode(TopicRecord.self, from: value), record.partitions > 0 else { return nil }
        self = record
    }
}

extension ClusterKeys {
    /// The topic a key directly under `topicsPrefix` names; nil for any other key.
    public func topicName(of key: ByteBuffer) -> String? {
        let prefix = topicsPrefix
        guard key.readableBytes > prefix.readableBytes,
              key.readableBytesView.starts(with: prefix.readableBytesView) else { return nil }
        let name = String(decoding: key.readableBytesView.dropFirst(prefix.readableBytes), as: UTF8.self)
        return name.contains("/") ? nil : name
    }
}
