import SluiceAPI

extension ErrorCode {
    /// The code a per-partition answer (a `ProduceResponse`, an `OffsetCommitResult`)
    /// carries when a broker error refuses that one entry rather than the whole call: the
    /// second column of the broker's error table (the first, the gRPC status of a refused
    /// call, is SluiceService's `BrokerError+GRPCStatus.swift`). Codes no per-entry path
    /// meets today take the nearest per-entry meaning, so the table stays total.
    init(_ code: BrokerError.Code) {
        self = switch code {
        case .topicNotFound: .unknownTopic
        case .unknownPartition: .unknownPartition
        case .offsetOutOfRange: .offsetOutOfRange
        // Retriable: the partition opens, or the broker comes back, and the same request
        // succeeds (a client refreshes metadata first, as after a leader moved).
        case .notOpenYet, .shuttingDown, .notLeader: .notLeader
        case .offline, .storageFailed, .dataLoss, .metadataCorrupt, .metadataWriteFailed, .dataDirectoryLocked: .storageError
        case .groupNotFound, .groupStateConflict: .illegalGeneration
        case .tooManyWaits: .throttled
        case .topicAlreadyExists, .invalidTopicName, .invalidConfig, .invalidPartitionCount, .invalidReplicationFactor,
             .invalidRequest:
            .invalidBatch
        }
    }
}
