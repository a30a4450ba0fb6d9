import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceCluster
import SluiceService
import SluiceStorage
import SluiceTestSupport
import Testing

/// The follower's side of replication between two in-process brokers, each reading a
/// metadata cache the test feeds (so the test decides who leads, and when each broker
/// learns it).
@Suite(.timeLimit(.minutes(2))) struct ReplicaFetcherTests {
    /// Broker `id` of a cluster whose metadata is `metadata`, its logs opened replicated.
    private func broker(_ id: UInt32, _ metadata: ClusterMetadataCache) async throws -> InProcessBroker {
        try await InProcessBroker.start { configuration in
            configuration.brokerID = id
            configuration.cluster = ClusterContext(metadata: metadata, localController: { nil })
            configuration.storage.replicated = true
        }
    }

    /// Partition 0 of "t" on brokers 1 and 2, led by `leader` at `epoch` (none: no leader).
    private func snapshot(_ revision: Int64, _ brokers: [InProcessBroker], leader: UInt32?, epoch: UInt32) -> ClusterSnapshot {
        clusterSnapshot(
            revision: revision, brokers: [1: brokers[0].address, 2: brokers[1].address], controller: 1,
            topics: ["t": [PartitionState(replicas: [1, 2], leader: leader, leaderEpoch: epoch, isr: leader == nil ? [1] : [1, 2])]],
            ids: ["t": "0b5e5a3c-4a2e-4f0e-9c55-2a6f7e1d9b10"])
    }

    private func produce(_ broker: InProcessBroker, _ values: [String]) async throws {
        var stream = try await ProduceStream(broker.connection)
        let answer = try await stream.produce("t", acks: .leader, TestBatches.batch(values))
        #expect(answer.error == ErrorCode.none, "\(answer.errorMessage)")
        try await stream.close()
    }

    private func log(_ broker: InProcessBroker) throws -> PartitionLog {
        try broker.server.broker.partitionLog(topic: "t", partition: 0)
    }

    /// Every stored byte of `broker`'s copy of t/0 (a read stops at a segment's end).
    private func stored(_ broker: InProcessBroker) throws -> [UInt8] {
        let log = try log(broker)
        var (bytes, offset) = ([UInt8](), log.logStartOffset)
        while offset < log.logEndOffset {
            let batches = try log.read(from: offset, maxBytes: 1 << 20, upTo: log.logEndOffset).batches
            guard let last = StoredBatches(batches).map(\.header.lastOffset).last else { break }
            bytes += batches.readableBytesView
            offset = last + 1
        }
        return bytes
    }

    @Test("a former leader whose tail no one copied cuts it back to where the new leader's epoch starts, and copies the new leader's log")
    func divergedTailIsCutAndRefetched() async throws {
        let (one, two) = (ClusterMetadataCache(emptyClusterSnapshot), ClusterMetadataCache(emptyClusterSnapshot))
        let brokers = [try await broker(1, one), try await broker(2, two)]
        defer { for broker in brokers { broker.directory.remove() } }

        // Broker 1 leads at epoch 0; broker 2 copies a, b, c.
        for cache in [one, two] { cache.update(snapshot(10, brokers, leader: 1, epoch: 0)) }
        try await eventually("broker 2 holds the topic") { (try? log(brokers[1])) != nil }
        try await produce(brokers[0], ["a", "b", "c"])
        try await eventually("broker 2 copied a, b and c") { try log(brokers[1]).logEndOffset == 3 }

        // Broker 2 stops following (it sees no leader); broker 1 appends d, e alone.
        two.update(snapshot(11, brokers, leader: nil, epoch: 1))
        try await produce(brokers[0], ["d", "e"])
        #expect(try log(brokers[0]).logEndOffset == 5)

        // Broker 2 leads at epoch 2 and appends f; broker 1 learns it and follows.
        two.update(snapshot(12, brokers, leader: 2, epoch: 2))
        try await produce(brokers[1], ["f"])
        one.update(snapshot(12, brokers, leader: 2, epoch: 2))
        try await eventually("broker 1's copy is broker 2's log") {
            try log(brokers[0]).logEndOffset == 4 && stored(brokers[0]) == stored(brokers[1])
        }
        #expect(try log(brokers[0]).latestLeaderEpoch == 2, "d, e (epoch 0) were cut; f (epoch 2) copied")
        for broker in brokers { await broker.stop() }
    }
}
