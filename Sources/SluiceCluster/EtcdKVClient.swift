public import Logging
public import NIOCore
public import SluiceAPI
public import SluiceWire

/// A client for etcd's key-value service (`etcdserverpb.KV`), where a Sluice cluster keeps
/// its metadata: brokers, topics, partition leaders, epochs and in-sync sets.
///
/// It speaks plain gRPC through SluiceWire's client to an independent server (etcd 3.4
/// from Debian's `etcd-server` in the tests), with the messages of
/// `proto/etcd/etcdserverpb/kv.proto`. Keys and values are bytes, as in etcd.
public final class EtcdKVClient: Sendable {
    static let putPath = "/etcdserverpb.KV/Put"
    static let rangePath = "/etcdserverpb.KV/Range"

    private let connection: GRPCClientConnection
    /// The deadline sent with every request (grpc-timeout), so a stuck etcd member fails a
    /// metadata operation instead of hanging it.
    public let requestTimeout: Duration

    public init(connection: GRPCClientConnection, requestTimeout: Duration = .seconds(5)) {
        precondition(requestTimeout > .zero, "a request timeout must be positive")
        self.connection = connection
        self.requestTimeout = requestTimeout
    }

    /// Connects to one etcd client URL's host and port (plain HTTP/2, no TLS).
    public static func connect(
        host: String, port: Int, requestTimeout: Duration = .seconds(5), logger: Logger
    ) async throws -> EtcdKVClient {
        let connection = try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: host, port: port), logger: logger)
        return EtcdKVClient(connection: connection, requestTimeout: requestTimeout)
    }

    /// Sets `key` to `value`, creating a new revision of the store.
    ///
    /// Throws `GRPCStatus` when etcd or the transport fails the call, and
    /// `ProtobufDecodingError` when etcd's answer is not a `PutResponse`.
    @discardableResult
    public func put(key: ByteBuffer, value: ByteBuffer) async throws -> EtcdPutResponse {
        precondition(key.readableBytes > 0, "etcd keys are never empty")
        let request = EtcdPutRequest(key: key, value: value)
        let answer = try await connection.unary(
            path: Self.putPath, request: request.protobufBytes(), timeout: requestTimeout)
        return try EtcdPutResponse(protobuf: answer)
    }

    /// The keys in `[key, rangeEnd)`, in key order; with an empty `rangeEnd` only `key`
    /// itself. `prefixEnd(of:)` gives the `rangeEnd` that selects every key with a prefix.
    public func range(key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer()) async throws -> EtcdRangeResponse {
        precondition(key.readableBytes > 0, "etcd keys are never empty")
        let request = EtcdRangeRequest(key: key, rangeEnd: rangeEnd)
        let answer = try await connection.unary(
            path: Self.rangePath, request: request.protobufBytes(), timeout: requestTimeout)
        return try EtcdRangeResponse(protobuf: answer)
    }

    /// The smallest key greater than every key that starts with `prefix`: the prefix with
    /// its last byte below 0xFF incremented and what follows dropped. A prefix of only
    /// 0xFF bytes has no such key; etcd's convention for "to the end" is a single 0 byte.
    public static func prefixEnd(of prefix: ByteBuffer) -> ByteBuffer {
        var bytes = Array(prefix.readableBytesView)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return ByteBuffer(bytes: bytes)
            }
            bytes.removeLast()
        }
        return ByteBuffer(bytes: [0])
    }

    /// Closes the connection; calls in flight end with UNAVAILABLE.
    public func close() async {
        await connection.close()
    }
}
