public import SluiceCluster
public import SluiceWire

extension ControllerError {
    /// The gRPC status that ends an admin call the controller refused or could not
    /// finish: the one mapping of controller errors (docs/api.md, "Admin calls in a
    /// cluster"). The retriable ones (another controller, a fenced one, etcd trouble) are
    /// UNAVAILABLE, so a client retries them like a broker that is going away.
    public var grpcStatus: GRPCStatus {
        let code: GRPCStatus.Code = switch self {
        case .topicExists: .alreadyExists
        case .unknownTopic: .notFound
        case .notEnoughBrokers, .partitionCountNotLarger: .invalidArgument
        case .notController, .fenced, .etcd: .unavailable
        }
        return GRPCStatus(code, description)
    }
}
