/// An idempotent producer's id and epoch as the broker handed them out (InitProducerId).
struct ProducerIdentity: Sendable, Equatable {
    var id: Int64
    var epoch: Int32
}

/// A batch's place in its partition's sequence: fixed when the batch is first sent and
/// kept for every retry, so the broker recognises a retry whose original was appended
/// (the answer was lost with the connection) and answers it as a duplicate.
struct BatchSequence: Sendable, Equatable {
    var identity: ProducerIdentity
    var baseSequence: Int32
}

/// The sequence numbers of an idempotent `Producer` (docs/idempotence.md): per
/// partition, the sequence of the next record, counting from 0 for each identity and
/// wrapping from Int32.max to 0 like the broker.
///
/// Recovery when the broker refuses a sequence (OUT_OF_ORDER_SEQUENCE: a batch before
/// it was lost for good; UNKNOWN_PRODUCER_ID: the partition expired the producer) or
/// fences an epoch the producer has already left behind: the identity is dropped, the
/// next send asks InitProducerId again (a named producer gets its id with the epoch
/// bumped, an unnamed one a new id), every partition starts again at sequence 0, and
/// batches carrying the old identity get new sequences when they are retried, like
/// Kafka's epoch bump.
struct IdempotentSequencer {
    private(set) var identity: ProducerIdentity?
    private var nextSequence: [TopicPartition: Int32] = [:]

    /// Takes a new identity; every partition starts again at 0. Adopting the identity
    /// already held changes nothing: several partitions may wait for the same
    /// InitProducerId answer, and restarting at 0 after one of them had sent would
    /// reuse its sequences (the broker would take the new batch for a duplicate).
    mutating func adopt(_ identity: ProducerIdentity) {
        guard identity != self.identity else { return }
        self.identity = identity
        nextSequence.removeAll()
    }

    /// Drops `stale` (if it is still current) so the next send asks for a new one.
    mutating func abandon(_ stale: ProducerIdentity) {
        if identity == stale { identity = nil }
    }

    /// The sequence for a batch of `recordCount` records on `place`, kept if the batch
    /// already has one under the current identity. Precondition: an identity is held.
    mutating func sequence(for existing: BatchSequence?, place: TopicPartition, recordCount: Int) -> BatchSequence {
        guard let identity else { preconditionFailure("a sequence needs an identity") }
        if let existing, existing.identity == identity { return existing }
        precondition(recordCount >= 1 && recordCount <= Int(Int32.max), "a batch holds 1...Int32.max records")
        let base = nextSequence[place, default: 0]
        let modulus = Int64(Int32.max) + 1
        nextSequence[place] = Int32((Int64(base) + Int64(recordCount)) % modulus)
        return BatchSequence(identity: identity, baseSequence: base)
    }
}
