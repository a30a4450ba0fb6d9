import Glibc
import NIOCore
import SluiceTestSupport
import Testing
@testable import SluiceStorage

struct FaultRunFailure: Error, CustomStringConvertible {
    var description: String
}

/// One seeded run: a random sequence of append / flush / clock ticks (rolls by age) /
/// truncate / retention / read / clean reopen / power cut, against a `PartitionLog` on a
/// `SimulatedFileSystem` injecting EIO, ENOSPC, short writes, torn tails and scheduled
/// power cuts. Everything follows from the seed.
///
/// The model does not trust the log. Position p of the log holds offsets p*r ..< (p+1)*r
/// (every batch has r records) and the batch of a unique append id; `entries[p]` is the
/// id appended there. After every reopen (faults off) the whole log is read and checked:
/// - every batch verifies (both CRCs) and is byte for byte the batch of entries[p], or of
///   an id a truncation removed from p (a truncation not yet synced may come back after a
///   power cut, but never below what was acknowledged durable since);
/// - the log end is at most what was attempted, and at least what was acknowledged
///   (durable, after a power cut; appended, after a clean reopen);
/// - the log start never passes what retention reported.
/// Between reopens: a fenced log refuses appends, reads serve only verified batches.
struct FaultRun {
    let seed: UInt64
    private var random: SeededRandom
    private let system: SimulatedFileSystem
    /// Moved by hand, so rolling and retention by age are seeded too.
    private let clock = ManualClock(DeterministicBatches.baseTimestamp)
    private let config: LogConfig
    private let workload: DeterministicBatches
    private let faults: SimulatedFaults
    private let directory = "/data/partition"
    private var log: PartitionLog?

    private var entries: [Int] = []
    private var ghosts: [Int: Set<Int>] = [:]
    private var startBound = 0
    private var confirmed = 0
    private var durable = 0
    private var nextAppendId = 0
    private var failedSyncsAtOpen = 0
    private var trace: [String] = []
    /// What the run exercised, summed over seeds by the test (so a run that injects
    /// nothing shows up as such).
    private(set) var tally = FaultRunTally()

    init(seed: UInt64) {
        self.seed = seed
        var random = SeededRandom(seed: seed)
        workload = DeterministicBatches(recordCount: Int.random(in: 1...4, using: &random), recordBytes: Int.random(in: 8...300, using: &random))
        let batchBytes = BatchHeader.size + workload.recordCount * workload.recordBytes
        var config = LogConfig()
        config.segmentBytes = Int64(batchBytes * Int.random(in: 1...6, using: &random) + Int.random(in: 0..<batchBytes, using: &random))
        config.segmentMs = Int64.random(in: 2_000...20_000, using: &random)
        config.indexIntervalBytes = Int.random(in: 64...1024, using: &random)
        config.maxOpenSealedSegments = Int.random(in: 1...3, using: &random)
        config.retentionMs = random.chance(0.5) ? Int64.random(in: 5_000...60_000, using: &random) : nil
        config.retentionBytes = random.chance(0.5) ? Int64(batchBytes * Int.random(in: 5...30, using: &random)) : nil
        config.fsyncPolicy = random.chance(0.8) ? .always : .never
        self.config = config
        faults = SimulatedFaults(
            writeErrorRate: Double.random(in: 0...0.02, using: &random),
            syncErrorRate: Double.random(in: 0...0.02, using: &random),
            readErrorRate: Double.random(in: 0...0.02, using: &random),
            noSpaceRate: Double.random(in: 0...0.01, using: &random),
            shortWriteRate: Double.random(in: 0...0.1, using: &random),
            metadataErrorRate: Double.random(in: 0...0.01, using: &random),
            unsyncedTailSurvivalRate: 0.5)
        system = SimulatedFileSystem(seed: random.next())
        self.random = random
    }

    private var recordCount: Int64 { Int64(workload.recordCount) }

    /// Steps shown when a run fails: SLUICE_FAULT_TRACE (default 12).
    static let traceSteps = getenv("SLUICE_FAULT_TRACE").flatMap { Int(String(cString: $0)) } ?? 12

    private func failure(_ message: String) -> FaultRunFailure {
        FaultRunFailure(description: """
            seed \(seed): \(message)
            syncs after a failed sync of the same file: \(system.syncsAfterFailedSync)
            config: \(config)
            faults: \(faults)
            last steps: \(trace.suffix(Self.traceSteps).joined(separator: "; "))
            last file-system calls: \(system.recentEvents().suffix(Self.traceSteps * 4).joined(separator: "; "))
            """)
    }

    mutating func run(steps: Int) async throws {
        try system.createDirectory(directory)
        try system.syncDirectory("/data")
        try system.syncDirectory("/")
        try await reopen(afterPowerCut: false)
        for step in 0..<steps {
            let roll = Int.random(in: 0..<100, using: &random)
            switch roll {
            case 0..<38: try await append(step)
            case 38..<50: try await burst()
            case 50..<57: try await flush()
            case 57..<65:
                let tick = Int64.random(in: 100...4_000, using: &random)
                clock.advance(byMilliseconds: tick)
                trace.append("tick \(tick)")
            case 65..<70: try await truncate()
            case 70..<76: try await retention()
            case 76..<84: try await read()
            case 84..<92: try await cleanReopen()
            default: try await powerCut()
            }
            if system.isHalted {
                trace.append("scheduled power cut")
                try await crashAndReopen()
            }
        }
        try await powerCut()
        // A clean close with the faults off must leave a log that opens without a scan.
        system.setFaults(.none)
        tally.syncsAfterFailedSync = system.syncsAfterFailedSync
        // The log must never sync a file again after a sync of it failed (the flusher/roll
        // race in docs/testing-storage.md): that sync would claim lost bytes durable.
        guard system.syncsAfterFailedSync == 0 else {
            throw failure("the log synced a file again after an fdatasync of it failed")
        }
        do {
            try await log?.close()
            let reopened = try PartitionLog.open(directory: directory, fileSystem: system, config: config, clock: clock)
            guard reopened.recovery.cleanShutdown else { throw failure("a clean close was not seen as clean") }
            try check(reopened, afterPowerCut: false)
            try await reopened.close()
        } catch let error as LogError {
            throw failure("clean close and reopen without faults: \(error)")
        }
    }

    // MARK: Operations with faults on

    private mutating func append(_ step: Int) async throws {
        guard let log else { return }
        precondition(entries.count == confirmed, "appending after an unresolved failure")
        let id = nextAppendId
        nextAppendId += 1
        let position = entries.count
        do {
            let result = try await log.append(workload.newBatch(sequence: id), leaderEpoch: 0)
            trace.append("append \(id) at \(position)")
            guard result.baseOffset == Int64(position) * recordCount else {
                throw failure("append \(id) got offset \(result.baseOffset), expected \(Int64(position) * recordCount)")
            }
            entries.append(id)
            confirmed += 1
            tally.appended += 1
            if config.fsyncPolicy == .always { durable = confirmed }
        } catch let error as LogError {
            trace.append("append \(id) failed: \(error)")
            tally.failedAppends += 1
            guard log.fenceError != nil else { return }
            tally.fences += 1  // refused before writing: the log is unchanged
            entries.append(id)  // maybe written
            try await expectRefusal(log)
            try await crashAndReopen()
        }
    }

    /// Several appends before one durability wait, as concurrent producers sharing a
    /// group commit would do (rolls then happen with unsynced batches in flight).
    private mutating func burst() async throws {
        guard let log else { return }
        let count = Int.random(in: 2...8, using: &random)
        var last: Int64?
        for _ in 0..<count {
            let id = nextAppendId
            nextAppendId += 1
            let position = entries.count
            do {
                let result = try log.appendBuffered(workload.newBatch(sequence: id), leaderEpoch: 0)
                guard result.baseOffset == Int64(position) * recordCount else {
                    throw failure("buffered append \(id) got offset \(result.baseOffset), expected \(Int64(position) * recordCount)")
                }
                entries.append(id)
                confirmed += 1
                tally.appended += 1
                last = result.lastOffset
            } catch let error as LogError {
                trace.append("buffered append \(id) failed: \(error)")
                tally.failedAppends += 1
                guard log.fenceError != nil else { break }
                tally.fences += 1
                entries.append(id)
                try await expectRefusal(log)
                try await crashAndReopen()
                return
            }
        }
        trace.append("burst of \(count) to \(confirmed)")
        guard let last else { return }
        do {
            try await log.waitUntilDurable(last)
            durable = confirmed
        } catch {
            trace.append("durability wait failed: \(error)")
            if log.fenceError != nil {
                try await expectRefusal(log)
                try await crashAndReopen()
            }
        }
    }

    private mutating func expectRefusal(_ log: PartitionLog) async throws {
        let id = nextAppendId
        nextAppendId += 1
        if let result = try? log.appendBuffered(workload.newBatch(sequence: id), leaderEpoch: 0) {
            throw failure("a fenced log (\(log.fenceError.map { "\($0)" } ?? "")) accepted append \(id) at \(result.baseOffset)")
        }
    }

    private mutating func flush() async throws {
        guard let log else { return }
        do {
            try await log.flush()
            trace.append("flush")
            durable = confirmed
        } catch {
            trace.append("flush failed: \(error)")
            if log.fenceError != nil {
                try await expectRefusal(log)
                try await crashAndReopen()
            }
        }
    }

    private mutating func truncate() async throws {
        guard let log, confirmed > startBound else { return }
        let target = Int.random(in: startBound...confirmed, using: &random)
        for position in target..<entries.count { ghosts[position, default: []].insert(entries[position]) }
        do {
            let end = try log.truncate(to: Int64(target) * recordCount)
            trace.append("truncate to \(target)")
            guard end == Int64(target) * recordCount else { throw failure("truncate to \(target) returned end \(end)") }
            tally.truncations += 1
            entries.removeLast(entries.count - target)
            confirmed = target
            durable = min(durable, target)
        } catch let error as LogError {
            trace.append("truncate to \(target) failed: \(error)")
            // Partly done or not at all: the positions past the target may stay or go.
            confirmed = min(confirmed, target)
            durable = min(durable, target)
            if log.fenceError != nil {
                try await expectRefusal(log)
                try await crashAndReopen()
            } else {
                try await cleanReopen()
            }
        }
    }

    private mutating func retention() async throws {
        guard let log else { return }
        do {
            let result = try log.enforceRetention()
            trace.append("retention: start \(result.logStartOffset)")
            guard result.logStartOffset % recordCount == 0 else {
                throw failure("log start \(result.logStartOffset) is inside a batch")
            }
            let start = Int(result.logStartOffset / recordCount)
            guard start <= confirmed else { throw failure("retention moved the start to \(start), past the end \(confirmed)") }
            startBound = max(startBound, start)
            tally.segmentsDeleted += result.segmentsDeleted
        } catch let error as LogError {
            trace.append("retention failed: \(error)")
            startBound = confirmed  // it may have moved anywhere up to the active segment
            if log.fenceError != nil { try await crashAndReopen() }
        }
    }

    private mutating func read() async throws {
        guard let log, confirmed > startBound, log.fenceError == nil else { return }
        let position = Int.random(in: startBound..<confirmed, using: &random)
        let maxBytes = Int.random(in: 1...4_000, using: &random)
        do {
            let result = try log.read(from: Int64(position) * recordCount, maxBytes: maxBytes)
            trace.append("read \(position)")
            var expected = position
            for batch in StoredBatches(result.batches) {
                guard expected < confirmed else { throw failure("read at \(position) served a batch past the end \(confirmed)") }
                if let mismatch = workload.mismatch(batch, sequence: entries[expected], baseOffset: Int64(expected) * recordCount) {
                    throw failure("read at \(position) served a bad batch: \(mismatch)")
                }
                expected += 1
            }
            guard expected > position else { throw failure("read at \(position) below the end \(confirmed) returned nothing") }
        } catch let error as LogError {
            // A failed read is allowed (EIO, or the start moved); serving bad bytes is not.
            trace.append("read \(position) failed: \(error)")
        }
    }

    private mutating func cleanReopen() async throws {
        guard let log else { return }
        do {
            try await log.close()
            trace.append("close")
        } catch {
            trace.append("close failed: \(error)")
        }
        self.log = nil
        if system.isHalted || system.failedFileSyncs > failedSyncsAtOpen {
            // After a failed fsync only a power cut is honest (see SimulatedFileSystem).
            try await crashAndReopen()
        } else {
            try await reopen(afterPowerCut: false)
        }
    }

    private mutating func powerCut() async throws {
        trace.append("power cut")
        system.powerCut(halting: true)
        try await crashAndReopen()
    }

    /// The machine died (or dies now): old handles are dead, unsynced state is gone.
    private mutating func crashAndReopen() async throws {
        if !system.isHalted { system.powerCut(halting: true) }
        tally.powerCuts += 1
        // Closing the dead instance fails on every call, so it cannot write anything;
        // it stops its flusher task.
        try? await log?.close()
        log = nil
        system.restart()
        try await reopen(afterPowerCut: true)
    }

    // MARK: Reopen and check (faults off)

    private mutating func reopen(afterPowerCut: Bool) async throws {
        system.setFaults(.none)
        let opened: PartitionLog
        do {
            opened = try PartitionLog.open(directory: directory, fileSystem: system, config: config, clock: clock)
        } catch {
            throw failure("open failed with no faults injected: \(error) (after power cut: \(afterPowerCut))")
        }
        try check(opened, afterPowerCut: afterPowerCut)
        log = opened
        failedSyncsAtOpen = system.failedFileSyncs
        var next = faults
        next.powerCutAfterOperations = random.chance(0.5) ? Int.random(in: 1...120, using: &random) : nil
        if random.chance(0.15) { next.capacityBytes = system.usedBytes + Int64.random(in: 0...20_000, using: &random) }
        system.setFaults(next)
    }

    private mutating func check(_ log: PartitionLog, afterPowerCut: Bool) throws {
        let start = log.logStartOffset
        let end = log.logEndOffset
        guard start % recordCount == 0, end % recordCount == 0, start <= end else {
            throw failure("reopened log holds \(start)..<\(end), not whole batches of \(recordCount)")
        }
        let startPosition = Int(start / recordCount)
        let endPosition = Int(end / recordCount)
        let mustHold = afterPowerCut ? durable : confirmed
        let mayHold = max(entries.count, (ghosts.keys.max() ?? -1) + 1)
        guard endPosition >= mustHold else {
            throw failure("reopened log ends at batch \(endPosition) but \(mustHold) were acknowledged (after power cut: \(afterPowerCut))")
        }
        guard endPosition <= mayHold else {
            throw failure("reopened log ends at batch \(endPosition) but only \(mayHold) were ever attempted")
        }
        guard startPosition <= startBound || startPosition == endPosition && endPosition <= startBound else {
            throw failure("reopened log starts at batch \(startPosition), past the retention start \(startBound)")
        }

        var found: [Int] = []
        var position = startPosition
        while position < endPosition {
            let result: LogReadResult
            do {
                result = try log.read(from: Int64(position) * recordCount, maxBytes: 64 * 1024)
            } catch {
                throw failure("reading the reopened log at batch \(position): \(error)")
            }
            let before = position
            for batch in StoredBatches(result.batches) {
                let candidates = (position < entries.count ? [entries[position]] : []) + (ghosts[position] ?? []).sorted()
                let id = candidates.first { workload.mismatch(batch, sequence: $0, baseOffset: Int64(position) * recordCount) == nil }
                guard let id else {
                    let expected = candidates.first.map { workload.mismatch(batch, sequence: $0, baseOffset: Int64(position) * recordCount) ?? "" } ?? "nothing expected"
                    throw failure("reopened log, batch \(position): \(expected)")
                }
                if position < mustHold && position < entries.count && id != entries[position] {
                    throw failure("batch \(position) was acknowledged as \(entries[position]) but holds truncated \(id)")
                }
                found.append(id)
                position += 1
            }
            guard position > before else { throw failure("read at batch \(position) returned nothing below the end \(endPosition)") }
        }
        let recovery = log.recovery
        trace.append(
            "reopened \(startPosition)..<\(endPosition) (clean \(recovery.cleanShutdown), checked \(recovery.segmentsChecked), "
                + "cut \(recovery.bytesTruncated), indexes rebuilt \(recovery.indexesRebuilt), removed \(recovery.filesRemoved.count))")
        tally.reopens += 1
        tally.batchesVerified += found.count
        if log.recovery.bytesTruncated > 0 { tally.tornTailsCut += 1 }

        // Adopt what the log holds.
        for dropped in endPosition..<max(endPosition, entries.count) { ghosts[dropped, default: []].insert(entries[dropped]) }
        entries = Array(entries.prefix(startPosition)) + found
        if entries.count < startPosition {  // the start is past what the model knew (cannot happen above)
            throw failure("log start \(startPosition) past the model's \(entries.count) entries")
        }
        confirmed = endPosition
        durable = afterPowerCut ? endPosition : min(durable, endPosition)
        startBound = startPosition
    }
}

struct FaultRunTally: CustomStringConvertible {
    var appended = 0
    var failedAppends = 0
    var fences = 0
    var powerCuts = 0
    var reopens = 0
    var tornTailsCut = 0
    var truncations = 0
    var segmentsDeleted = 0
    var batchesVerified = 0
    var syncsAfterFailedSync = 0

    mutating func add(_ other: FaultRunTally) {
        appended += other.appended
        failedAppends += other.failedAppends
        fences += other.fences
        powerCuts += other.powerCuts
        reopens += other.reopens
        tornTailsCut += other.tornTailsCut
        truncations += other.truncations
        segmentsDeleted += other.segmentsDeleted
        batchesVerified += other.batchesVerified
        syncsAfterFailedSync += other.syncsAfterFailedSync
    }

    var description: String {
        "\(appended) appends acknowledged, \(failedAppends) failed (\(fences) fenced), \(powerCuts) power cuts, "
            + "\(reopens) reopens (\(tornTailsCut) cut a torn tail), \(truncations) truncations, "
            + "\(segmentsDeleted) segments deleted by retention, \(batchesVerified) batches verified, "
            + "\(syncsAfterFailedSync) syncs after a failed sync of the same file"
    }
}
