/// What one partition remembers about idempotent producers (docs/idempotence.md): per
/// producer id its epoch, the time of its last append and its last five batches'
/// sequence ranges with their offsets.
///
/// A value type with no locking: the broker's `Partition` keeps it under the lock that
/// also orders its appends, so `check`, the append and `record` happen as one step.
/// It lives in SluiceStorage (not the broker) because it is rebuilt from the log's
/// batch headers and snapshotted next to the log's segments with the log's file layer
/// (`PartitionLog+Producers.swift`); the rules themselves need no I/O.
///
/// Sequences count records, per producer id and partition: a batch of n records with
/// base sequence s covers s ... s+n-1, and the next batch must start right after. They
/// wrap from Int32.max to 0, like Kafka's.
public struct ProducerState: Sendable, Equatable {
    /// Batches remembered per producer: a retry of any of them is recognised as a
    /// duplicate. It also bounds how many batches a producer may have in flight per
    /// partition (a retry of an older one can no longer be recognised).
    public static let retainedBatches = StorageLimits.defaults.producerRetainedBatches.value

    /// One appended batch of a producer.
    public struct AppendedBatch: Sendable, Equatable {
        public var baseSequence: Int32
        public var lastSequence: Int32
        public var baseOffset: Int64
        public var lastOffset: Int64

        /// Where the batch landed, which is the answer to a retry of it.
        public var appendResult: AppendResult { AppendResult(baseOffset: baseOffset, lastOffset: lastOffset) }
    }

    /// One producer id on this partition.
    public struct Producer: Sendable, Equatable {
        public var epoch: Int16
        /// Milliseconds since the Unix epoch of its last append (the batch's largest
        /// timestamp when rebuilt from the log); expiry counts from it.
        public var lastAppendMs: Int64
        /// Oldest first, at most `retainedBatches`, never empty.
        public var batches: [AppendedBatch]

        public init(epoch: Int16, lastAppendMs: Int64, batches: [AppendedBatch]) {
            precondition(!batches.isEmpty && batches.count <= ProducerState.retainedBatches, "1...5 batches per producer")
            self.epoch = epoch
            self.lastAppendMs = lastAppendMs
            self.batches = batches
        }

        /// The sequence the next batch of this epoch must start with.
        public var nextSequence: Int32 { ProducerState.sequence(after: batches[batches.count - 1].lastSequence) }
    }

    /// What to do with a batch of an idempotent producer.
    public enum Verdict: Sendable, Equatable {
        /// New and in order: append it, then `record` it.
        case append
        /// The same producer, epoch and sequence range as a batch already appended:
        /// append nothing and answer with that batch's offsets.
        case duplicate(AppendedBatch)
        /// A gap, or a sequence older than the remembered batches.
        case outOfOrder(String)
        /// A newer epoch of this producer id has appended here.
        case fenced(String)
        /// No state for the producer id here and the batch does not start at 0.
        case unknownProducer(String)
    }

    public private(set) var producers: [Int64: Producer] = [:]

    public init() {}

    public init(producers: [Int64: Producer]) {
        self.producers = producers
    }

    public var isEmpty: Bool { producers.isEmpty }

    /// The last sequence of a batch of `recordCount` records starting at `base`.
    public static func lastSequence(base: Int32, recordCount: Int32) -> Int32 {
        precondition(base >= 0 && recordCount >= 1, "sequences are non-negative, batches non-empty")
        let modulus = Int64(Int32.max) + 1
        return Int32((Int64(base) + Int64(recordCount) - 1) % modulus)
    }

    public static func sequence(after sequence: Int32) -> Int32 {
        sequence == Int32.max ? 0 : sequence + 1
    }

    /// The verdict on a batch, without changing anything.
    public func check(producerId: Int64, epoch: Int16, baseSequence: Int32, recordCount: Int32) -> Verdict {
        let last = Self.lastSequence(base: baseSequence, recordCount: recordCount)
        guard let known = producers[producerId] else {
            if baseSequence == 0 { return .append }
            return .unknownProducer(
                "producer id \(producerId) has no state on this partition (it never produced here, or it expired after being idle); its first batch here must have sequence 0, got \(baseSequence)")
        }
        if epoch < known.epoch {
            return .fenced("producer id \(producerId) epoch \(epoch) is fenced: epoch \(known.epoch) has produced to this partition")
        }
        if epoch > known.epoch {
            if baseSequence == 0 { return .append }
            return .outOfOrder(
                "producer id \(producerId) epoch \(epoch) is new on this partition and must start at sequence 0, got \(baseSequence)")
        }
        if let original = known.batches.first(where: { $0.baseSequence == baseSequence }) {
            if original.lastSequence == last { return .duplicate(original) }
            return .outOfOrder(
                "producer id \(producerId) epoch \(epoch) sent sequence \(baseSequence) again with a different record count (\(baseSequence)...\(last), the original was \(original.baseSequence)...\(original.lastSequence))")
        }
        let expected = known.nextSequence
        if baseSequence == expected { return .append }
        let oldest = known.batches[0].baseSequence
        return .outOfOrder(
            "producer id \(producerId) epoch \(epoch): expected sequence \(expected), got \(baseSequence) (a gap, or a retry of a batch older than the last \(Self.retainedBatches), which start at sequence \(oldest))")
    }

    /// Remembers an appended batch. Used after `check` said `.append`, and when
    /// rebuilding from the log, where the log is the truth and nothing is checked: a
    /// batch of a newer epoch replaces what an older one left.
    public mutating func record(
        producerId: Int64, epoch: Int16, baseSequence: Int32, recordCount: Int32, baseOffset: Int64, appendMs: Int64
    ) {
        let batch = AppendedBatch(
            baseSequence: baseSequence, lastSequence: Self.lastSequence(base: baseSequence, recordCount: recordCount),
            baseOffset: baseOffset, lastOffset: baseOffset + Int64(recordCount) - 1)
        guard var known = producers[producerId], known.epoch == epoch else {
            if let known = producers[producerId], known.epoch > epoch { return }
            producers[producerId] = Producer(epoch: epoch, lastAppendMs: appendMs, batches: [batch])
            return
        }
        known.batches.append(batch)
        if known.batches.count > Self.retainedBatches { known.batches.removeFirst() }
        known.lastAppendMs = max(known.lastAppendMs, appendMs)
        producers[producerId] = known
    }

    /// Remembers a stored batch from its header if an idempotent producer wrote it (the
    /// log is the truth: nothing is checked). Replaying the log, and a replica copying
    /// its leader's batches, build the state the leader built.
    public mutating func record(storedBatch header: BatchHeader, appendMs: Int64) {
        guard header.producerId > 0 && header.baseSequence >= 0 && header.producerEpoch >= 0 else { return }
        record(
            producerId: header.producerId, epoch: header.producerEpoch, baseSequence: header.baseSequence,
            recordCount: header.recordCount, baseOffset: header.baseOffset, appendMs: appendMs)
    }

    /// Puts back what `producers[producerId]` was (nil: absent), undoing a `record`
    /// without copying the whole state beforehand.
    public mutating func restore(producerId: Int64, to previous: Producer?) {
        producers[producerId] = previous
    }

    /// Forgets producers whose last append is older than `cutoffMs`; returns how many.
    @discardableResult
    public mutating func expire(lastAppendBefore cutoffMs: Int64) -> Int {
        let before = producers.count
        producers = producers.filter { $0.value.lastAppendMs >= cutoffMs }
        return before - producers.count
    }
}
