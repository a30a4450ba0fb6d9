import Foundation
import NIOCore
import Synchronization

/// One record a fault workload produced: its key, its place in that key's sequence, and
/// the partition and offset its acknowledgement named (nil when it was never
/// acknowledged: failed, timed out, or still in flight when the workload stopped).
struct ProducedRecord: Sendable, Equatable {
    var key: String
    var sequence: Int
    var partition: Int?
    var ackedOffset: Int64?
}

/// One record read back from a partition's leader after the faults healed.
struct ReadRecord: Sendable, Equatable {
    var partition: Int
    var offset: Int64
    var key: String
    var sequence: Int
}

/// What the producers were told, recorded as it happened (tasks of the workload append
/// concurrently), and why sends failed (the first few of each kind, for the report).
final class FaultHistory: Sendable {
    private let records = Mutex<[ProducedRecord]>([])
    private let failures = Mutex<[String: Int]>([:])

    /// Records a send before its answer; returns its index for `acknowledge`.
    func sent(key: String, sequence: Int) -> Int {
        records.withLock { records in
            records.append(ProducedRecord(key: key, sequence: sequence))
            return records.count - 1
        }
    }

    func acknowledge(_ index: Int, partition: Int, offset: Int64) {
        records.withLock {
            $0[index].partition = partition
            $0[index].ackedOffset = offset
        }
    }

    func failed(_ index: Int, _ error: any Error) {
        failures.withLock { $0["\(error)", default: 0] += 1 }
    }

    var produced: [ProducedRecord] { records.withLock { $0 } }
    var ackedCount: Int { records.withLock { $0.count { $0.ackedOffset != nil } } }
    /// "N x reason" per distinct failure.
    var failureSummary: [String] { failures.withLock { $0.sorted { $0.value > $1.value }.map { "\($0.value) x \($0.key)" } } }
}

/// The value a workload record carries, so the read side knows it without the history:
/// `<key>/<sequence>` in UTF-8 (the record's key is `<key>` too, which picks the partition).
enum FaultRecordValue {
    static func encode(key: String, sequence: Int) -> ByteBuffer { ByteBuffer(string: "\(key)/\(sequence)") }

    /// The key and sequence of a value `encode` made; nil for anything else.
    static func decode(_ value: ByteBuffer) -> (key: String, sequence: Int)? {
        let text = String(buffer: value)
        guard let slash = text.lastIndex(of: "/"), let sequence = Int(text[text.index(after: slash)...]) else { return nil }
        return (String(text[..<slash]), sequence)
    }
}

/// The verdict on one fault: counts of what the history and the read-back show, and the
/// replicas' comparison. Allowed: records present that were never acknowledged (a send
/// whose answer was lost). Not allowed: anything else counted here.
struct FaultReport: Sendable, CustomStringConvertible {
    var fault: String
    /// Records sent, and those acknowledged.
    var sent = 0
    var acked = 0
    /// Acknowledged, and read nowhere.
    var lost: [ProducedRecord] = []
    /// Read more than once (the same key and sequence at two offsets).
    var duplicated: [ReadRecord] = []
    /// Read after a later sequence of the same key.
    var reordered: [ReadRecord] = []
    /// Acknowledged at one offset and read at another (or in another partition), with
    /// where it was read.
    var misplaced: [(acked: ProducedRecord, read: [ReadRecord])] = []
    /// Read, never sent by the workload (garbage, or another test's).
    var foreign = 0
    /// Sent, never acknowledged, and read: allowed.
    var unackedPresent = 0
    /// Where the replicas' copies differ below the high watermark (`ReplicaCopies`).
    var replicaProblems: [String] = []
    /// Why the fault did not run to its end (it then fails whatever was read).
    var interruption: String?
    /// Brokers that exited without the test killing them (a trap, a fatal error).
    var crashes: [String] = []
    /// What the run itself saw (faults injected, leaders before and after), for the reader.
    var notes: [String] = []

    var passed: Bool {
        lost.isEmpty && duplicated.isEmpty && reordered.isEmpty && misplaced.isEmpty && foreign == 0 && replicaProblems.isEmpty && crashes.isEmpty
            && interruption == nil
    }

    var description: String {
        func sample<T>(_ items: [T], _ show: (T) -> String) -> String {
            items.isEmpty ? "" : " e.g. " + items.prefix(5).map(show).joined(separator: ", ")
        }
        let produced: (ProducedRecord) -> String = { "\($0.key)/\($0.sequence)@p\($0.partition.map(String.init) ?? "?"):\($0.ackedOffset.map(String.init) ?? "-")" }
        let read: (ReadRecord) -> String = { "\($0.key)/\($0.sequence)@p\($0.partition):\($0.offset)" }
        var lines = [
            "fault report: \(fault): \(passed ? "PASSED" : "FAILED")",
            "  sent \(sent), acked \(acked), unacked-but-present \(unackedPresent) (allowed)",
            "  lost \(lost.count)\(sample(lost, produced))",
            "  duplicated \(duplicated.count)\(sample(duplicated, read))",
            "  reordered \(reordered.count)\(sample(reordered, read))",
            "  misplaced \(misplaced.count)\(sample(misplaced) { "\(produced($0.acked)) read at \($0.read.map { "p\($0.partition):\($0.offset)" })" }), foreign \(foreign)",
            "  replicas: \(replicaProblems.isEmpty ? "byte-identical below the high watermark" : "\(replicaProblems.count) problems")",
        ]
        lines += replicaProblems.prefix(10).map { "    \($0)" }
        lines += crashes.map { "  crashed: \($0)" }
        if let interruption { lines.append("  interrupted: \(interruption)") }
        lines += notes.map { "  note: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// Compares what was acknowledged with what was read back.
enum FaultChecker {
    /// `read` holds every partition's records from the earliest offset to the end, in any
    /// partition order (each partition's in offset order is rebuilt here).
    static func check(fault: String, produced: [ProducedRecord], read: [ReadRecord]) -> FaultReport {
        var report = FaultReport(fault: fault)
        report.sent = produced.count
        report.acked = produced.count { $0.ackedOffset != nil }
        struct Identity: Hashable { var key: String; var sequence: Int }
        var sentBy: [Identity: ProducedRecord] = [:]
        for record in produced { sentBy[Identity(key: record.key, sequence: record.sequence)] = record }

        var placesRead: [Identity: [ReadRecord]] = [:]
        var highestSequence: [String: Int] = [:]
        for record in read.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
            let identity = Identity(key: record.key, sequence: record.sequence)
            guard sentBy[identity] != nil else {
                report.foreign += 1
                continue
            }
            if placesRead[identity] != nil {
                report.duplicated.append(record)
            } else if let highest = highestSequence[record.key], record.sequence < highest {
                report.reordered.append(record)
            }
            placesRead[identity, default: []].append(record)
            highestSequence[record.key] = max(highestSequence[record.key] ?? record.sequence, record.sequence)
        }
        for record in produced {
            let places = placesRead[Identity(key: record.key, sequence: record.sequence)] ?? []
            guard let offset = record.ackedOffset else {
                if !places.isEmpty { report.unackedPresent += 1 }
                continue
            }
            if places.isEmpty {
                report.lost.append(record)
            } else if !places.contains(where: { $0.partition == record.partition && $0.offset == offset }) {
                report.misplaced.append((record, places))
            }
        }
        return report
    }
}
