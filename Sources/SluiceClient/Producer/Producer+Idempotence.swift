import SluiceAPI
import SluiceWire

/// The idempotent producer (`ProducerConfiguration.idempotent`, docs/idempotence.md):
/// one InitProducerId before the first batch, a sequence per batch fixed at its first
/// send and kept by its retries, acks forced to all, and the epoch bump when the broker
/// refuses a sequence. Up to `maxInFlightPerPartition` batches (at most the broker's five)
/// go out per partition before the first is answered (`PartitionAccumulator`).
extension Producer {
    static let initProducerIdPath = "/sluice.v1.Broker/InitProducerId"
    /// How many of a producer's last batches per partition the broker remembers to
    /// recognise a retry (`StorageLimits.producerRetainedBatches`, in a layer the client
    /// does not depend on): the bound on batches in flight per partition.
    static let brokerRetainedBatches = 5

    /// Idempotence needs the broker's durable acknowledgement: an answer given before
    /// the batch is durable could be taken back by a crash, and its retry appended again.
    var effectiveAcks: Acks { configuration.isIdempotent ? .all : configuration.acks }

    /// The sequence `batch` is sent with: its own if it has one under the current
    /// identity, else the partition's next (asking for an identity first if none is held).
    func sequence(for batch: PartitionAccumulator<Item>.Batch, at place: TopicPartition) async throws -> BatchSequence {
        if sequencer.identity == nil {
            let identity = try await requestIdentity()
            // Another partition may have adopted it (or a newer one) meanwhile.
            if sequencer.identity == nil { sequencer.adopt(identity) }
        }
        return sequencer.sequence(for: batch.sequence, place: place, recordCount: batch.items.count)
    }

    /// Whether a refusal of an idempotent batch is cured by a new epoch (and the batch
    /// retried with a new sequence); if so, drops the identity the batch carried.
    func recoversBySequenceReset(_ code: ErrorCode, batch: PartitionAccumulator<Item>.Batch) -> Bool {
        guard configuration.isIdempotent, let sent = batch.sequence else { return false }
        switch code {
        case .outOfOrderSequence, .unknownProducerId:
            sequencer.abandon(sent.identity)
            return true
        case .producerFenced:
            // Fenced by this producer's own newer epoch (a reset while the batch was in
            // flight): resend under it. Fenced at the current epoch means another
            // producer took over the name: not retriable.
            return sent.identity != sequencer.identity
        default:
            return false
        }
    }

    /// InitProducerId, shared by every partition that needs it at the same time.
    private func requestIdentity() async throws -> ProducerIdentity {
        if let identityRequest { return try await identityRequest.value }
        let request = InitProducerIdRequest(producerName: configuration.producerName ?? "")
        let timeout = configuration.requestTimeout
        // Registered before any suspension: two InitProducerId calls for one name would
        // bump the epoch twice and fence the first answer.
        let task = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            let connection = try await self.openAnyConnection()
            let response: InitProducerIdResponse = try await connection.unary(
                path: Self.initProducerIdPath, request: request, timeout: timeout)
            return ProducerIdentity(id: response.producerId, epoch: response.producerEpoch)
        }
        identityRequest = task
        defer { identityRequest = nil }
        return try await task.value
    }
}
