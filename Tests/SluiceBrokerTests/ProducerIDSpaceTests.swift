@testable import SluiceBroker
import SluiceStorage
import SluiceTestSupport
import Testing

/// Producer ids in a cluster: each broker hands out ids from its own range, so a
/// producer's id means the same on every broker, and a batch carrying another broker's id
/// is left to the partition's producer state (which followers copy from the leader's log).
@Suite struct ProducerIDSpaceTests {
    func registry(_ directory: TemporaryDirectory, broker: UInt32?) throws -> ProducerIDRegistry {
        try ProducerIDRegistry(
            directory: DataDirectory.open(directory.path), space: broker.map { ProducerIDSpace(brokerID: $0) } ?? .singleNode)
    }

    @Test("two brokers of a cluster never hand out the same id, and each keeps its range across a restart")
    func brokersNeverCollide() throws {
        let (one, two) = (TemporaryDirectory(), TemporaryDirectory())
        defer { one.remove(); two.remove() }
        var seen: Set<Int64> = []
        for _ in 0..<3 {
            seen.insert(try registry(one, broker: 1).initProducerID(name: "").id)
            seen.insert(try registry(two, broker: 2).initProducerID(name: "").id)
        }
        #expect(seen.count == 6)
        #expect(seen.allSatisfy { $0 > 0 })
        #expect(seen.filter { $0 >> 40 == 1 }.count == 3 && seen.filter { $0 >> 40 == 2 }.count == 3)
    }

    @Test("another broker's id goes on to the partition; this broker's own ids keep the broker-wide checks")
    func foreignIdsAreLeftToThePartition() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let registry = try registry(directory, broker: 3)
        let named = try registry.initProducerID(name: "billing")
        let bumped = try registry.initProducerID(name: "billing")
        #expect(bumped.id == named.id && bumped.epoch == 1)
        #expect(registry.check(producerID: named.id, epoch: 0) != .append, "an epoch this broker superseded is fenced")
        #expect(registry.check(producerID: named.id, epoch: 1) == .append)
        #expect(registry.check(producerID: (3 << 40) | 999, epoch: 0) != .append, "an own id never handed out is unknown")
        #expect(registry.check(producerID: (1 << 40) | 5, epoch: 7) == .append, "broker 1's id: the partition decides")
    }

    @Test("a single node's ids are 1, 2, 3... and every other id is unknown to it")
    func singleNodeUnchanged() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let registry = try registry(directory, broker: nil)
        #expect(try registry.initProducerID(name: "").id == 1)
        #expect(try registry.initProducerID(name: "").id == 2)
        #expect(registry.check(producerID: (1 << 40) | 1, epoch: 0) != .append)
    }
}
