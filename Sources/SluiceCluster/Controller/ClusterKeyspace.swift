import NIOCore
public import SluiceAPI

/// One value read from etcd with the revisions a fenced write compares.
public struct VersionedValue<Value: Sendable & Hashable>: Sendable, Hashable {
    public var value: Value
    /// The revision of the key's last change: what `mod_revision(key) ==` compares.
    public var modRevision: Int64
    /// The revision that created the key (the controller key's is the election revision).
    public var createRevision: Int64
}

/// Every key of a cluster under `/sluice/<cluster>/`, decoded, as of one etcd revision: what
/// the watcher keeps current event by event and the controller reads before it writes. One
/// read of the whole prefix is one revision, so the brokers, topics and partitions in it
/// agree with each other.
///
/// Readers' rule (what makes a multi-Txn topic creation or a crash mid-way safe): a topic
/// exists only when its `topics/<t>` key does and every partition key it counts is present
/// and readable; partition keys without their topic key are leftovers of a creation that
/// did not finish and are ignored (the next creation of that name deletes them).
public struct ClusterKeyspace: Sendable, Hashable {
    public let keys: ClusterKeys
    /// The revision this view is current at.
    public var revision: Int64
    public var brokers: [UInt32: VersionedValue<BrokerInfo>] = [:]
    /// The controller key; its value is nil when unreadable (it still fences).
    public var controller: VersionedValue<BrokerInfo?>?
    public var topics: [String: VersionedValue<TopicRecord>] = [:]
    /// Partition keys by topic, then partition, whether or not their topic key exists.
    public var partitions: [String: [UInt32: VersionedValue<PartitionState>]] = [:]

    public init(keys: ClusterKeys, revision: Int64) {
        self.keys = keys
        self.revision = revision
    }

    /// Reads every key of the cluster at one revision. Throws `GRPCStatus`.
    public static func read(client: EtcdClient, keys: ClusterKeys) async throws -> ClusterKeyspace {
        let root = ByteBuffer(string: keys.root)
        let response = try await client.kv.range(key: root, rangeEnd: EtcdKVClient.prefixEnd(of: root))
        var keyspace = ClusterKeyspace(keys: keys, revision: response.header?.revision ?? 0)
        for kv in response.kvs { keyspace.store(kv) }
        return keyspace
    }

    /// Applies one watched change; the view is then current at the event's revision.
    public mutating func apply(_ event: EtcdEvent) {
        guard let kv = event.kv else { return }
        revision = max(revision, kv.modRevision)
        switch event.type {
        case .put: store(kv)
        case .delete: remove(kv.key)
        case .unrecognized: break
        }
    }

    /// Sets the key's value; an unreadable value counts as no key (a broker, topic or
    /// partition that cannot be read is not acted on), except the controller's, which
    /// fences whatever it holds.
    mutating func store(_ kv: EtcdKeyValue) {
        func versioned<Value>(_ value: Value) -> VersionedValue<Value> {
            VersionedValue(value: value, modRevision: kv.modRevision, createRevision: kv.createRevision)
        }
        if kv.key == keys.controller {
            controller = versioned(BrokerInfo(decoding: kv.value))
        } else if let id = keys.brokerID(of: kv.key) {
            let info = BrokerInfo(decoding: kv.value).flatMap { $0.id == id ? $0 : nil }
            brokers[id] = info.map(versioned)
        } else if let name = keys.topicName(of: kv.key) {
            topics[name] = TopicRecord(decoding: kv.value).map(versioned)
        } else if let (topic, partition) = keys.partitionKey(of: kv.key) {
            partitions[topic, default: [:]][partition] = PartitionState(decoding: kv.value).map(versioned)
        }
    }

    mutating func remove(_ key: ByteBuffer) {
        if key == keys.controller {
            controller = nil
        } else if let id = keys.brokerID(of: key) {
            brokers[id] = nil
        } else if let name = keys.topicName(of: key) {
            topics[name] = nil
        } else if let (topic, partition) = keys.partitionKey(of: key) {
            partitions[topic]?[partition] = nil
            if partitions[topic]?.isEmpty == true { partitions[topic] = nil }
        }
    }

    /// The partition states of a topic that exists by the readers' rule, partition 0 first;
    /// nil otherwise.
    public func completeTopic(_ name: String) -> [VersionedValue<PartitionState>]? {
        guard let record = topics[name]?.value else { return nil }
        let states = partitions[name] ?? [:]
        var complete: [VersionedValue<PartitionState>] = []
        complete.reserveCapacity(Int(record.partitions))
        for partition in 0..<record.partitions {
            guard let state = states[partition] else { return nil }
            complete.append(state)
        }
        return complete
    }

    /// What brokers cache: topics by the readers' rule, live brokers, the controller's id.
    public var snapshot: ClusterSnapshot {
        var clusterTopics: [String: ClusterTopic] = [:]
        for (name, record) in topics {
            guard let states = completeTopic(name) else { continue }
            clusterTopics[name] = ClusterTopic(name: name, id: record.value.id ?? "", configs: record.value.configs, partitions: states.map(\.value))
        }
        return ClusterSnapshot(
            clusterName: keys.clusterName, revision: revision, brokers: brokers.mapValues(\.value),
            controller: controller?.value?.id, topics: clusterTopics)
    }
}
