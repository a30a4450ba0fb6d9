public import SluiceBroker
public import SluiceWire

extension BrokerError {
    /// The first column of the broker's error table: the gRPC status that ends a call a
    /// broker error refuses (broker.proto and groups.proto document it for clients; the
    /// per-entry column is SluiceBroker's `BrokerError+ErrorCode.swift`). The message
    /// travels unchanged as grpc-message. `ProtobufRoute` applies it to whatever any
    /// service's handler throws, so no service maps errors itself.
    public var grpcStatus: GRPCStatus {
        let code: GRPCStatus.Code = switch self.code {
        case .topicNotFound: .notFound
        case .topicAlreadyExists: .alreadyExists
        case .invalidTopicName, .invalidConfig, .invalidPartitionCount, .invalidReplicationFactor: .invalidArgument
        case .dataDirectoryLocked: .failedPrecondition
        case .metadataCorrupt: .dataLoss
        case .metadataWriteFailed: .internalError
        case .shuttingDown: .unavailable
        case .unknownPartition: .notFound
        case .notOpenYet: .unavailable
        case .offsetOutOfRange: .outOfRange
        case .invalidRequest: .invalidArgument
        case .storageFailed: .internalError
        case .dataLoss: .dataLoss
        case .offline: .unavailable
        case .groupNotFound: .notFound
        case .groupStateConflict: .failedPrecondition
        case .tooManyWaits: .resourceExhausted
        case .notLeader: .unavailable
        }
        return GRPCStatus(code, message)
    }
}
