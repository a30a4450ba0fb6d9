import SluiceBroker
import SluiceWire

extension BrokerError {
    /// The one mapping from broker errors to gRPC statuses (broker.proto documents it for
    /// clients). The message travels unchanged as grpc-message.
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
        case .offsetOutOfRange: .outOfRange
        case .invalidRequest: .invalidArgument
        case .storageFailed: .internalError
        case .offline: .unavailable
        case .groupNotFound: .notFound
        case .groupStateConflict: .failedPrecondition
        }
        return GRPCStatus(code, message)
    }
}

/// Runs a broker call, turning a `BrokerError` into its gRPC status.
func mappingBrokerErrors<Result>(_ body: () throws(BrokerError) -> Result) throws(GRPCStatus) -> Result {
    do {
        return try body()
    } catch {
        throw error.grpcStatus
    }
}
