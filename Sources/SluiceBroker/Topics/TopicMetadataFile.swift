#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The on-disk form of the topic registry: `<data-dir>/topics.json`.
///
/// One UTF-8 JSON document, pretty-printed with sorted keys (so it diffs well and an
/// operator can read it), rewritten whole on every change with `DurableFiles.replace`
/// (tmp + fsync + rename + directory fsync):
///
///     {
///       "format" : 1,                       format version; other values are refused
///       "topics" : [                        sorted by name, names unique
///         {
///           "configs" : {                   explicit settings only, canonical text
///             "retention.ms" : "86400000"
///           },
///           "created_ms" : 1764070000000,   creation time, ms since the Unix epoch
///           "id" : "3f0c…",                 topic id, a lowercase UUID
///           "name" : "orders",              valid topic name
///           "local_partitions" : [0, 2],    optional: in a cluster, the partitions this
///                                           broker holds a log of (ascending, each below
///                                           "partitions"); absent: every partition
///           "partitions" : 3,               partition count, >= 1
///           "replication_factor" : 1        >= 1
///         }
///       ]
///     }
///
/// A missing file means no topics (a fresh data directory). Anything unreadable or
/// invalid is `.metadataCorrupt`: the broker refuses to start rather than silently
/// forget topics.
enum TopicMetadataFile {
    static let fileName = "topics.json"
    static let formatVersion = 1

    private struct Document: MetadataDocument {
        var format: Int
        var topics: [Entry]
    }

    private struct Entry: Codable {
        var name: String
        var id: String
        var partitions: UInt32
        var replicationFactor: UInt32
        var configs: [String: String]
        var createdMs: Int64
        var localPartitions: [UInt32]?

        enum CodingKeys: String, CodingKey {
            case name, id, partitions, configs
            case replicationFactor = "replication_factor"
            case createdMs = "created_ms"
            case localPartitions = "local_partitions"
        }
    }

    static func encode(_ topics: [String: TopicMetadata]) -> [UInt8] {
        let entries = topics.values.sorted { $0.name < $1.name }.map {
            Entry(name: $0.name, id: $0.topicID, partitions: $0.partitionCount,
                  replicationFactor: $0.replicationFactor, configs: $0.configOverrides, createdMs: $0.createdAtMs,
                  localPartitions: $0.localPartitions?.sorted())
        }
        return MetadataJSON.encode(Document(format: formatVersion, topics: entries), what: "topic metadata")
    }

    /// Parses and validates the file's bytes. `path` is only for messages.
    static func decode(_ bytes: [UInt8], path: String) throws(BrokerError) -> [String: TopicMetadata] {
        let document = try MetadataJSON.decode(Document.self, from: bytes, path: path, what: "topic metadata", format: formatVersion)
        var topics: [String: TopicMetadata] = [:]
        for entry in document.topics {
            let topic = try validated(entry, path: path)
            guard topics[topic.name] == nil else {
                throw BrokerError(.metadataCorrupt, "\(path) lists topic \"\(topic.name)\" twice")
            }
            topics[topic.name] = topic
        }
        return topics
    }

    private static func validated(_ entry: Entry, path: String) throws(BrokerError) -> TopicMetadata {
        func corrupt(_ reason: String) -> BrokerError {
            BrokerError(.metadataCorrupt, "\(path): topic \"\(entry.name)\": \(reason)")
        }
        do {
            try TopicName.validate(entry.name)
        } catch {
            throw corrupt(error.message)
        }
        guard !entry.id.isEmpty else { throw corrupt("empty id") }
        guard entry.partitions >= 1 else { throw corrupt("partition count 0") }
        guard entry.replicationFactor >= 1 else { throw corrupt("replication factor 0") }
        if let local = entry.localPartitions {
            guard local.allSatisfy({ $0 < entry.partitions }), Set(local).count == local.count else {
                throw corrupt("local_partitions \(local) are not distinct partitions below \(entry.partitions)")
            }
        }
        var overrides: [String: String] = [:]
        for (name, value) in entry.configs {
            do {
                // The ceiling is not checked here: lowering the broker's message limit
                // must not make existing topics unreadable (the broker warns instead).
                overrides[name] = try TopicSetting.named(name).normalize(value, maxMessageBytesCeiling: Int(Int32.max))
            } catch {
                throw corrupt(error.message)
            }
        }
        return TopicMetadata(name: entry.name, topicID: entry.id, partitionCount: entry.partitions,
                             replicationFactor: entry.replicationFactor, configOverrides: overrides,
                             createdAtMs: entry.createdMs, localPartitions: entry.localPartitions.map(Set.init))
    }
}
