import Foundation
import NIOCore
import SluiceStorage

/// One replica's copy of a partition read straight from its segment files (brokers
/// stopped): the stored batches back to back, as `docs/storage-format.md` lays them out.
/// A partition directory holds `<20-digit base offset>.log` segments (with `.index` and
/// `.timeindex` beside them); each `.log` is stored batches back to back, each a 64-byte
/// `BatchHeader` (recordsLength at byte 8, recordCount at 12, baseOffset at 16, all
/// big-endian) and `recordsLength` record bytes. Nothing here trusts the storage code
/// under test: the files are walked with the header layout alone.
struct ReplicaCopy {
    /// Where one stored batch sits: its segment file, its byte position there, its header.
    struct Batch {
        var segment: String
        var position: Int
        var header: BatchHeader
        var bytes: ByteBuffer
    }

    var directory: String
    var batches: [Batch] = []
    /// Bytes at a segment's end that do not form a whole batch (a torn tail).
    var tornTail: String?

    init(directory: String) throws {
        self.directory = directory
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }.sorted()
        for name in names {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
            let buffer = ByteBuffer(bytes: data)
            var position = 0
            while position < buffer.readableBytes {
                guard let header = BatchHeader.decode(buffer, at: position),
                      position + header.storedSize <= buffer.readableBytes
                else {
                    tornTail = "\(name): \(buffer.readableBytes - position) bytes at \(position) are not a whole batch"
                    break
                }
                let bytes = buffer.getSlice(at: position, length: header.storedSize)!
                batches.append(Batch(segment: directory + "/" + name, position: position, header: header, bytes: bytes))
                position += header.storedSize
            }
        }
    }

    /// The batches wholly below `highWatermark`.
    func batches(below highWatermark: Int64) -> [Batch] {
        batches.filter { $0.header.nextOffset <= highWatermark }
    }
}

/// Compares every replica's copy of each partition below its high watermark.
enum ReplicaCopies {
    /// `copies` maps a replica's name (its broker id) to its partition directory; the
    /// problems found, empty when every copy holds the same bytes below `highWatermark`
    /// (and covers it: a batch may straddle the watermark, so coverage is up to the last
    /// batch boundary at or below it in the leader's copy).
    static func compare(partition: String, copies: [String: String], highWatermark: Int64) -> [String] {
        var problems: [String] = []
        var read: [(name: String, copy: ReplicaCopy)] = []
        for (name, directory) in copies.sorted(by: { $0.key < $1.key }) {
            do {
                read.append((name, try ReplicaCopy(directory: directory)))
            } catch {
                problems.append("\(partition) replica \(name): cannot read \(directory): \(error)")
            }
        }
        guard let reference = read.max(by: { $0.copy.batches(below: highWatermark).count < $1.copy.batches(below: highWatermark).count }) else {
            return problems
        }
        let expected = reference.copy.batches(below: highWatermark)
        for (name, copy) in read where name != reference.name {
            let own = copy.batches(below: highWatermark)
            if own.count < expected.count {
                let end = own.last?.header.nextOffset ?? 0
                problems.append("\(partition) replica \(name) holds batches up to offset \(end), below the high watermark \(highWatermark) (replica \(reference.name) holds \(expected.last?.header.nextOffset ?? 0))")
            }
            for (mine, theirs) in zip(own, expected) where mine.bytes != theirs.bytes {
                problems.append("\(partition) replica \(name) differs from replica \(reference.name) in the batch at offset \(theirs.header.baseOffset) (\(mine.segment) byte \(mine.position))")
                break
            }
        }
        return problems
    }
}
