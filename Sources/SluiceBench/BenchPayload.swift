public import NIOCore

/// The value of every record `sluice bench` sends. Byte by byte (integers big-endian):
///
/// | bytes | field |
/// |---|---|
/// | 0-7 | due time: nanoseconds on the run's `BenchClock` (the intended send time under `--rate`, else the time of the send call) |
/// | 8-15 | message id: sender index in the high 24 bits, the sender's sequence number (from 0) in the low 40 |
/// | 16-23 | run id: random per run, so a subscriber ignores records of earlier runs on the same topic |
/// | 24- | filler: pseudo-random bytes (fixed per run), up to `--message-size` |
///
/// The subscriber reads the due time to measure end-to-end latency and the id to check
/// that every message arrived exactly once.
public enum BenchPayload {
    public static let headerBytes = 24
    static let sequenceBits = 40
    static let sequenceMask: UInt64 = (1 << 40) - 1
    public static let maxSenders = 1 << 24

    public struct Header: Sendable, Equatable {
        public var dueNanoseconds: Int64
        public var sender: Int
        public var sequence: Int
        public var runID: UInt64

        public var messageID: UInt64 { UInt64(sender) << UInt64(BenchPayload.sequenceBits) | UInt64(sequence) }
    }

    /// Pseudo-random filler of `size - headerBytes` bytes (xorshift from `seed`), so a
    /// compressing producer sees realistic rather than all-equal bytes.
    public static func filler(size: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<max(size - headerBytes, 0)).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    public static func encode(_ header: Header, filler: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        precondition(header.sequence >= 0 && UInt64(header.sequence) <= sequenceMask, "sequence fits in 40 bits")
        precondition(header.sender >= 0 && header.sender < maxSenders, "sender fits in 24 bits")
        var buffer = allocator.buffer(capacity: headerBytes + filler.count)
        buffer.writeInteger(header.dueNanoseconds)
        buffer.writeInteger(header.messageID)
        buffer.writeInteger(header.runID)
        buffer.writeBytes(filler)
        return buffer
    }

    /// nil when the value is shorter than the header (not a bench record).
    public static func decode(_ value: ByteBuffer) -> Header? {
        guard let due = value.getInteger(at: value.readerIndex, as: Int64.self),
              let id = value.getInteger(at: value.readerIndex + 8, as: UInt64.self),
              let runID = value.getInteger(at: value.readerIndex + 16, as: UInt64.self)
        else { return nil }
        return Header(
            dueNanoseconds: due, sender: Int(id >> UInt64(sequenceBits)), sequence: Int(id & sequenceMask), runID: runID)
    }
}

/// Which sequence numbers of each sender were seen, and how many were seen again.
public struct MessageLedger: Sendable {
    private var bits: [[UInt64]]
    public private(set) var repeats = 0
    public private(set) var count = 0

    public init(senders: Int) {
        bits = Array(repeating: [], count: senders)
    }

    public var senders: Int { bits.count }

    /// Marks one message; false (and a repeat counted) when it was already marked.
    @discardableResult
    public mutating func mark(sender: Int, sequence: Int) -> Bool {
        precondition(bits.indices.contains(sender) && sequence >= 0, "a message of a known sender")
        let word = sequence >> 6
        if bits[sender].count <= word {
            bits[sender].append(contentsOf: repeatElement(0, count: max(word + 1 - bits[sender].count, bits[sender].count)))
        }
        let mask: UInt64 = 1 << UInt64(sequence & 63)
        if bits[sender][word] & mask != 0 {
            repeats += 1
            return false
        }
        bits[sender][word] |= mask
        count += 1
        return true
    }

    public func contains(sender: Int, sequence: Int) -> Bool {
        guard bits.indices.contains(sender), sequence >= 0 else { return false }
        let word = sequence >> 6
        guard word < bits[sender].count else { return false }
        return bits[sender][word] & (1 << UInt64(sequence & 63)) != 0
    }

    /// Adds another ledger's marks; a message marked in both counts as a repeat.
    public mutating func merge(_ other: MessageLedger) {
        precondition(other.senders == senders, "ledgers of the same run")
        repeats += other.repeats
        for sender in 0..<senders {
            let theirs = other.bits[sender]
            if bits[sender].count < theirs.count {
                bits[sender].append(contentsOf: repeatElement(0, count: theirs.count - bits[sender].count))
            }
            for word in theirs.indices where theirs[word] != 0 {
                let both = bits[sender][word] & theirs[word]
                repeats += both.nonzeroBitCount
                count += (theirs[word] & ~bits[sender][word]).nonzeroBitCount
                bits[sender][word] |= theirs[word]
            }
        }
    }

    /// Messages marked in `expected` but not here.
    public func missing(from expected: MessageLedger) -> Int {
        precondition(expected.senders == senders, "ledgers of the same run")
        var total = 0
        for sender in 0..<senders {
            let mine = bits[sender]
            for (word, value) in expected.bits[sender].enumerated() where value != 0 {
                total += (value & ~(word < mine.count ? mine[word] : 0)).nonzeroBitCount
            }
        }
        return total
    }
}
