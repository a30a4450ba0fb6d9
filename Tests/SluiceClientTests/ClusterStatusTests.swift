import SluiceAPI
@testable import SluiceClient
import Testing

@Suite("Cluster status: every partition classified")
struct ClusterStatusTests {
    func partition(_ index: UInt32, leader: UInt32?, replicas: [UInt32], isr: [UInt32]) -> MetadataPartition {
        MetadataPartition(
            partition: index, leaderId: leader ?? 0, hasLeader: leader != nil, leaderEpoch: 2, replicas: replicas,
            inSyncReplicas: isr)
    }

    @Test("offline, below min ISR, under-replicated and ok, each from the metadata and the topic's min.insync.replicas")
    func classifies() {
        let metadata = MetadataResponse(
            brokers: [MetadataBroker(id: 2, address: "b:2"), MetadataBroker(id: 1, address: "a:1")],
            topics: [
                MetadataTopic(name: "orders", partitions: [
                    partition(1, leader: 1, replicas: [1, 2, 3], isr: [1, 2]),
                    partition(0, leader: 1, replicas: [1, 2, 3], isr: [1, 2, 3]),
                    partition(2, leader: nil, replicas: [1, 2, 3], isr: [3]),
                    partition(3, leader: 2, replicas: [2, 3, 1], isr: [2]),
                ]),
                MetadataTopic(name: "audit", partitions: [partition(0, leader: 2, replicas: [2, 3], isr: [2])]),
                MetadataTopic(name: "gone", error: .unknownTopic),
            ],
            controllerId: 2, hasController: true, cluster: "c", metadataRevision: 9, answeredBy: 1)
        let status = ClusterStatus(metadata, minInSync: ["orders": 2])
        #expect(status.brokers.map(\.id) == [1, 2])
        #expect(status.controller == 2)
        #expect(status.partitions.map { "\($0.topic)/\($0.partition)" } == ["audit/0", "orders/0", "orders/1", "orders/2", "orders/3"])
        #expect(status.partitions.map(\.health) == [.underReplicated, .healthy, .underReplicated, .offline, .belowMinInSync])
        #expect(status.count(.offline) == 1 && status.count(.belowMinInSync) == 1 && status.count(.underReplicated) == 2)
        #expect(!status.isHealthy)
    }

    @Test("a cluster with every replica in sync is healthy; no controller is nil")
    func healthy() {
        let metadata = MetadataResponse(
            brokers: [MetadataBroker(id: 1, address: "a:1")],
            topics: [MetadataTopic(name: "t", partitions: [partition(0, leader: 1, replicas: [1], isr: [1])])])
        let status = ClusterStatus(metadata, minInSync: ["t": 1])
        #expect(status.isHealthy)
        #expect(status.controller == nil)
    }
}
