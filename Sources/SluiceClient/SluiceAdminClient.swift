public import Logging
import NIOCore
public import SluiceAPI
import SluiceWire

extension GRPCClientConnection {
    /// A unary call with SluiceAPI messages. A response that does not decode is INTERNAL.
    package func unary<Request: ProtobufMessage, Response: ProtobufMessage>(
        path: String, request: Request, as response: Response.Type = Response.self,
        metadata: GRPCMetadata = [:], timeout: Duration? = nil
    ) async throws -> Response {
        let bytes = try await unary(path: path, request: request.checkedRequestBytes(), metadata: metadata, timeout: timeout)
        do {
            return try Response(protobuf: bytes)
        } catch {
            throw GRPCStatus(.internalError, "the response of \(path) is not valid protobuf: \(error)")
        }
    }
}

/// The topic admin RPCs of `sluice.v1.Broker`, typed. Errors are `GRPCStatus`
/// (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT, UNAVAILABLE, ...).
public struct SluiceAdminClient: Sendable {
    package let connection: GRPCClientConnection
    /// Applied to every call; nil waits as long as the broker takes.
    public var timeout: Duration?
    /// Set when this client opened its connection (`init(address:)`): the connection is
    /// closed when the last copy of the client is dropped, if `close()` was not called.
    private let owner: OwnedConnection?

    private static let prefix = "/sluice.v1.Broker/"

    /// A client on a connection its caller owns (and closes).
    package init(connection: GRPCClientConnection, timeout: Duration? = .seconds(30)) {
        self.connection = connection
        self.timeout = timeout
        owner = nil
    }

    /// Connects to a broker at `host:port`.
    public static func connect(host: String, port: Int, logger: Logger) async throws -> SluiceAdminClient {
        try await SluiceAdminClient(address: BrokerAddress(host: host, port: port), logger: logger)
    }

    /// Connects to the broker at `address` (its transport settings included). The connect is
    /// bounded by `address.connectTimeout` (UNAVAILABLE past it), each call by `timeout`
    /// (DEADLINE_EXCEEDED); a cancelled task ends either wait at once with `CancellationError`.
    public init(address: BrokerAddress, timeout: Duration? = .seconds(30), logger: Logger = Logger(label: "sluice.admin")) async throws {
        try await self.init(bootstrap: [address], timeout: timeout, logger: logger)
    }

    /// Connects to the first of `bootstrap` that answers (a non-empty list), each tried in
    /// turn within its `connectTimeout`; UNAVAILABLE when none does.
    public init(bootstrap: [BrokerAddress], timeout: Duration? = .seconds(30), logger: Logger = Logger(label: "sluice.admin")) async throws {
        let (connection, _) = try await BrokerAddress.connectFirst(of: bootstrap, logger: logger)
        self.connection = connection
        self.timeout = timeout
        owner = OwnedConnection(connection)
    }

    /// Creates a topic with the broker's default settings; `existingIsFine` answers an
    /// ALREADY_EXISTS refusal with the existing topic instead of throwing (the usual start of
    /// a program that needs its topic).
    @discardableResult
    public func createTopic(name: String, partitions: Int, existingIsFine: Bool = false) async throws -> TopicDescription {
        do {
            return try await createTopic(CreateTopicRequest(name: name, partitions: UInt32(clamping: partitions)))
        } catch let status as GRPCStatus where existingIsFine && status.code == .alreadyExists {
            return try await describeTopic(named: name)
        }
    }

    public func close() async {
        await connection.close()
    }

    public func createTopic(_ request: CreateTopicRequest) async throws -> TopicDescription {
        let response: CreateTopicResponse = try await call("CreateTopic", request)
        return try Self.topic(response.topic)
    }

    public func deleteTopic(named name: String) async throws {
        let _: DeleteTopicResponse = try await call("DeleteTopic", DeleteTopicRequest(name: name))
    }

    /// The cluster as the answering broker knows it: brokers, controller, and every
    /// partition's leader, epoch, replicas and in-sync replicas (all topics when `topics`
    /// is empty). A single node answers with itself leading everything.
    public func metadata(topics: [String] = []) async throws -> MetadataResponse {
        try await call("Metadata", MetadataRequest(topics: topics))
    }

    public func listTopics() async throws -> [TopicDescription] {
        let response: ListTopicsResponse = try await call("ListTopics", ListTopicsRequest())
        return response.topics
    }

    public func describeTopic(named name: String) async throws -> TopicDescription {
        let response: DescribeTopicResponse = try await call("DescribeTopic", DescribeTopicRequest(name: name))
        return try Self.topic(response.topic)
    }

    public func alterTopicConfig(named name: String, set: [String: String] = [:], reset: [String] = []) async throws -> TopicDescription {
        let response: AlterTopicConfigResponse = try await call("AlterTopicConfig", AlterTopicConfigRequest(name: name, set: set, reset: reset))
        return try Self.topic(response.topic)
    }

    public func createPartitions(named name: String, totalCount: UInt32) async throws -> TopicDescription {
        let response: CreatePartitionsResponse = try await call("CreatePartitions", CreatePartitionsRequest(name: name, totalCount: totalCount))
        return try Self.topic(response.topic)
    }

    private func call<Request: ProtobufMessage, Response: ProtobufMessage>(_ method: String, _ request: Request) async throws -> Response {
        try await unary(path: Self.prefix + method, request: request)
    }

    /// One call bounded by `timeout`; a call ended by its task's cancellation throws
    /// `CancellationError`, as every other wait of the client does, not CANCELLED.
    func unary<Request: ProtobufMessage, Response: ProtobufMessage>(path: String, request: Request) async throws -> Response {
        do {
            return try await connection.unary(path: path, request: request, timeout: timeout)
        } catch let status as GRPCStatus where status.code == .cancelled && Task.isCancelled {
            throw CancellationError()
        }
    }

    private static func topic(_ topic: TopicDescription?) throws(GRPCStatus) -> TopicDescription {
        guard let topic else { throw GRPCStatus(.internalError, "the broker's answer carries no topic") }
        return topic
    }
}

/// A connection that closes when its last holder lets go.
private final class OwnedConnection: Sendable {
    let connection: GRPCClientConnection

    init(_ connection: GRPCClientConnection) {
        self.connection = connection
    }

    deinit {
        let connection = connection
        Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            await connection.close()
        }
    }
}
