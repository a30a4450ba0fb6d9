import NIOCore
import SluiceCluster
import Testing

/// Placement and the topic key's bytes: pure functions, no etcd (the failover rule is in
/// FailoverRuleTests).
@Suite("Replica placement")
struct ReplicaPlacementTests {
    func brokers(_ racks: [String?]) -> [BrokerInfo] {
        racks.enumerated().map { BrokerInfo(id: UInt32($0.offset + 1), address: "127.0.0.1:\(9100 + $0.offset)", rack: $0.element) }
    }

    @Test("replicas of each partition are on distinct racks; leaders are spread evenly; the same inputs place the same way")
    func rackAware() throws {
        // Six brokers on three racks, listed out of order.
        let live = brokers(["c", "a", "b", "a", "c", "b"]).shuffled()
        let placement = ReplicaPlacement(brokers: live)
        let placed = try placement.place(partitions: 12, replicationFactor: 3)
        let rack = Dictionary(uniqueKeysWithValues: live.map { ($0.id, $0.rack!) })
        #expect(placed.count == 12)
        for replicas in placed {
            #expect(replicas.count == 3 && Set(replicas).count == 3, "\(replicas)")
            #expect(Set(replicas.map { rack[$0]! }).count == 3, "one replica per rack: \(replicas)")
        }
        let leaders = Dictionary(grouping: placed.map { $0[0] }, by: { $0 }).mapValues(\.count)
        #expect(leaders == [1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2], "\(leaders)")
        #expect(try ReplicaPlacement(brokers: live.reversed()).place(partitions: 12, replicationFactor: 3) == placed)
    }

    @Test("uneven racks: a rack with more brokers still holds one replica of a partition while others have room")
    func unevenRacks() throws {
        let live = brokers(["a", "a", "a", "b", "c"])
        let placed = try ReplicaPlacement(brokers: live).place(partitions: 10, replicationFactor: 3)
        for replicas in placed {
            #expect(Set(replicas.map { live[Int($0) - 1].rack! }) == ["a", "b", "c"], "\(replicas)")
        }
        #expect(Dictionary(grouping: placed.map { $0[0] }, by: { $0 }).mapValues(\.count) == [1: 2, 2: 2, 3: 2, 4: 2, 5: 2])
    }

    @Test("more replicas than racks: every rack first, then the rest; brokers without a rack are racks of their own")
    func fewerRacksThanReplicas() throws {
        let placed = try ReplicaPlacement(brokers: brokers(["a", "a", "b", "b"])).place(partitions: 4, replicationFactor: 3)
        for replicas in placed {
            #expect(Set(replicas.map { $0 <= 2 ? "a" : "b" }) == ["a", "b"], "\(replicas)")
        }
        let noRacks = try ReplicaPlacement(brokers: brokers([nil, nil, nil])).place(partitions: 3, replicationFactor: 3)
        #expect(noRacks.map { $0[0] }.sorted() == [1, 2, 3])
    }

    @Test("replication factor 0 is min(3, live brokers); more than the live brokers is refused")
    func replicationFactor() throws {
        #expect(try ReplicaPlacement(brokers: brokers([nil])).place(partitions: 2, replicationFactor: 0) == [[1], [1]])
        #expect(try ReplicaPlacement(brokers: brokers([nil, nil, nil, nil, nil])).place(partitions: 1, replicationFactor: 0)[0].count == 3)
        #expect(throws: ControllerError.notEnoughBrokers(needed: 4, live: 3)) {
            try ReplicaPlacement(brokers: self.brokers([nil, nil, nil])).place(partitions: 1, replicationFactor: 4)
        }
        #expect(throws: ControllerError.notEnoughBrokers(needed: 1, live: 0)) {
            try ReplicaPlacement(brokers: []).place(partitions: 1, replicationFactor: 0)
        }
    }

    @Test("new leaders go to the brokers that lead the fewest partitions in the cluster")
    func spreadsAcrossTheCluster() throws {
        let placed = try ReplicaPlacement(brokers: brokers([nil, nil, nil]), currentLeaders: [1: 5])
            .place(partitions: 4, replicationFactor: 2)
        #expect(placed.map { $0[0] } == [2, 3, 3, 2], "\(placed)")
    }

    @Test("the topic key's value is JSON with sorted keys, as documented")
    func topicRecordBytes() {
        let record = TopicRecord(configs: ["retention.ms": "1000", "cleanup.policy": "delete"], partitions: 3)
        #expect(String(buffer: record.encoded()) == #"{"configs":{"cleanup.policy":"delete","retention.ms":"1000"},"partitions":3}"#)
        #expect(TopicRecord(decoding: record.encoded()) == record)
        #expect(TopicRecord(decoding: ByteBuffer(string: #"{"configs":{},"partitions":0}"#)) == nil)
        let identified = TopicRecord(id: "3f2b9c1e-8d4a-4b6e-9a47-0c5d2e7f8a91", configs: [:], partitions: 1)
        #expect(String(buffer: identified.encoded()) == #"{"configs":{},"id":"3f2b9c1e-8d4a-4b6e-9a47-0c5d2e7f8a91","partitions":1}"#)
        #expect(TopicRecord(decoding: identified.encoded()) == identified)
    }
}
