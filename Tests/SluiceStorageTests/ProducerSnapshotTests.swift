import Foundation
import NIOCore
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// Producer-state snapshots: the file format and how recovery picks, discards and
/// replays (docs/idempotence.md).
@Suite(.timeLimit(.minutes(2))) struct ProducerSnapshotTests {
    func idempotentBatch(_ index: Int, producer: Int64, sequence: Int32, count: Int32 = 2) -> NewBatch {
        var batch = makeBatch(pattern(index, 40), count: count)
        batch.producerId = producer
        batch.producerEpoch = 0
        batch.baseSequence = sequence
        return batch
    }

    /// Appends `count` batches of two records each for producers 3 and 4 alternately,
    /// recording them; returns the state after each batch (index i: batches 0..<i).
    func fill(_ log: PartitionLog, count: Int) async throws -> [ProducerState] {
        var state = ProducerState()
        var states = [state]
        for index in 0..<count {
            let producer: Int64 = index % 2 == 0 ? 3 : 4
            let sequence = Int32(index / 2 * 2)
            let result = try await log.append(idempotentBatch(index, producer: producer, sequence: sequence), leaderEpoch: 0)
            state.record(producerId: producer, epoch: 0, baseSequence: sequence, recordCount: 2, baseOffset: result.baseOffset, appendMs: 5)
            states.append(state)
        }
        return states
    }

    @Test func theFileRoundTripsAndAnyFlippedByteIsDetected() throws {
        var state = ProducerState()
        for index in 0..<7 {
            state.record(producerId: 9, epoch: 2, baseSequence: Int32(index * 3), recordCount: 3, baseOffset: Int64(index * 3), appendMs: 100)
        }
        state.record(producerId: 1, epoch: 0, baseSequence: 0, recordCount: 1, baseOffset: 21, appendMs: 200)
        let snapshot = ProducerSnapshot(offset: 22, state: state)
        let bytes = snapshot.encoded()
        // 20 header + 2 producers (20 each) + 5 + 1 batches (24 each) + 4 CRC.
        #expect(bytes.count == 20 + 40 + 6 * 24 + 4)
        #expect(Array(bytes[0..<4]) == Array("SLPS".utf8))
        #expect(try ProducerSnapshot.decode(bytes).get() == snapshot)
        #expect(state.producers[9]?.batches.count == ProducerState.retainedBatches)
        for position in stride(from: 0, to: bytes.count, by: 7) {
            var damaged = bytes
            damaged[position] ^= 0x40
            #expect(throws: SnapshotDefect.self) { try ProducerSnapshot.decode(damaged).get() }
        }
        #expect(throws: SnapshotDefect.self) { try ProducerSnapshot.decode(Array(bytes.dropLast(5))).get() }
        #expect(ProducerSnapshot.fileName(offset: 22) == "00000000000000000022.producers")
        #expect(ProducerSnapshot.offset(fromFileName: "00000000000000000022.producers") == 22)
    }

    @Test func recoveryStartsFromTheNewestUsableSnapshotAndReplaysTheRest() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/p0"
        let log = try PartitionLog.open(directory: path, config: smallConfig())
        let states = try await fill(log, count: 10)
        // Snapshots after 4 and 8 batches (offsets 8 and 16), one claiming offset 40
        // (above the log end: a crash took those batches back).
        try log.writeProducerSnapshot(states[4], offset: 8)
        try log.writeProducerSnapshot(states[8], offset: 16)
        #expect(try log.producerSnapshotOffsets() == [8, 16])
        try log.writeProducerSnapshot(states[10], offset: 40)
        #expect(try log.producerSnapshotOffsets() == [16, 40], "only the two newest are kept")

        var recovery = try log.recoverProducerState(replayTimeMs: 5)
        #expect(recovery.snapshotOffset == 16)
        #expect(recovery.batchesScanned == 2)
        #expect(recovery.state == states[10])
        #expect(recovery.discarded.count == 1 && recovery.discarded[0].contains("above the log end"))
        #expect(try log.producerSnapshotOffsets() == [16])

        // A corrupt newest one is removed and the older one used.
        try log.writeProducerSnapshot(states[4], offset: 8)
        #expect(try log.producerSnapshotOffsets() == [8, 16])
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path + "/" + ProducerSnapshot.fileName(offset: 16)))
        recovery = try log.recoverProducerState(replayTimeMs: 5)
        #expect(recovery.snapshotOffset == 8)
        #expect(recovery.batchesScanned == 6)
        #expect(recovery.state == states[10])
        #expect(try log.producerSnapshotOffsets() == [8])

        // None at all: the whole log is replayed.
        try FileManager.default.removeItem(atPath: path + "/" + ProducerSnapshot.fileName(offset: 8))
        recovery = try log.recoverProducerState(replayTimeMs: 5)
        #expect(recovery.snapshotOffset == nil && recovery.batchesScanned == 10)
        #expect(recovery.state == states[10])
        try await log.close()
    }

    @Test func rulesForDuplicatesGapsAndEpochs() {
        var state = ProducerState()
        #expect(state.check(producerId: 1, epoch: 0, baseSequence: 0, recordCount: 1) == .append)
        guard case .unknownProducer = state.check(producerId: 1, epoch: 0, baseSequence: 1, recordCount: 1) else {
            Issue.record("an unknown producer must start at 0")
            return
        }
        state.record(producerId: 1, epoch: 1, baseSequence: 0, recordCount: 4, baseOffset: 10, appendMs: 0)
        #expect(state.check(producerId: 1, epoch: 1, baseSequence: 0, recordCount: 4)
            == .duplicate(.init(baseSequence: 0, lastSequence: 3, baseOffset: 10, lastOffset: 13)))
        #expect(state.check(producerId: 1, epoch: 1, baseSequence: 4, recordCount: 1) == .append)
        guard case .outOfOrder = state.check(producerId: 1, epoch: 1, baseSequence: 5, recordCount: 1),
              case .fenced = state.check(producerId: 1, epoch: 0, baseSequence: 4, recordCount: 1),
              case .outOfOrder = state.check(producerId: 1, epoch: 2, baseSequence: 4, recordCount: 1)
        else {
            Issue.record("a gap, an older epoch and a new epoch not at 0 must be refused")
            return
        }
        #expect(state.check(producerId: 1, epoch: 2, baseSequence: 0, recordCount: 1) == .append)
        // A newer epoch replaces the older one's batches.
        state.record(producerId: 1, epoch: 2, baseSequence: 0, recordCount: 1, baseOffset: 20, appendMs: 0)
        #expect(state.producers[1]?.batches.count == 1 && state.producers[1]?.epoch == 2)
        // The log is the truth on replay, but an older epoch never goes back.
        state.record(producerId: 1, epoch: 1, baseSequence: 4, recordCount: 1, baseOffset: 21, appendMs: 0)
        #expect(state.producers[1]?.epoch == 2)
    }
}
