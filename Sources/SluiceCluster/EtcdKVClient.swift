public import Logging
public import NIOCore
public import SluiceAPI
import SluiceWire

/// A client for etcd's key-value service (`etcdserverpb.KV`), where a Sluice cluster keeps
/// its metadata: brokers, topics, partition leaders, epochs and in-sync sets.
///
/// It speaks plain gRPC through SluiceWire's client (an `EtcdConnector`, which fails over
/// between etcd members) to an independent server (etcd 3.4 from Debian's `etcd-server` in
/// the tests), with the messages of `proto/etcd/etcdserverpb/kv.proto`. Keys and values are
/// bytes, as in etcd.
///
/// Every method throws `GRPCStatus` when etcd or the transport fails the call (INTERNAL when
/// etcd's answer does not decode). Only `range` is sent again to another member after
/// UNAVAILABLE: a write that may have been applied is left for the caller to re-check, which
/// every metadata write does anyway by comparing revisions in a `txn`.
public final class EtcdKVClient: Sendable {
    static let putPath = "/etcdserverpb.KV/Put"
    static let rangePath = "/etcdserverpb.KV/Range"
    static let deleteRangePath = "/etcdserverpb.KV/DeleteRange"
    static let txnPath = "/etcdserverpb.KV/Txn"
    static let compactPath = "/etcdserverpb.KV/Compact"

    let connector: EtcdConnector

    public init(connector: EtcdConnector) {
        self.connector = connector
    }

    /// Connects to one etcd client URL's host and port (plain HTTP/2, no TLS) and returns
    /// once it answered HTTP/2's preface; throws UNAVAILABLE if it does not.
    public static func connect(
        host: String, port: Int, requestTimeout: Duration = ClusterLimits.defaults.etcdRequestTimeout.value,
        logger: Logger
    ) async throws -> EtcdKVClient {
        var configuration = EtcdConnector.Configuration()
        configuration.requestTimeout = requestTimeout
        let connector = EtcdConnector(endpoints: [EtcdEndpoint(host: host, port: port)], configuration: configuration, logger: logger)
        _ = try await connector.connection()
        return EtcdKVClient(connector: connector)
    }

    /// Sets `key` to `value` (attached to `lease` unless 0), creating a new revision.
    @discardableResult
    public func put(key: ByteBuffer, value: ByteBuffer, lease: Int64 = 0) async throws -> EtcdPutResponse {
        precondition(key.readableBytes > 0, "etcd keys are never empty")
        return try await connector.unary(Self.putPath, EtcdPutRequest(key: key, value: value, lease: lease), idempotent: false)
    }

    /// The keys in `[key, rangeEnd)`, in key order; with an empty `rangeEnd` only `key`
    /// itself. `prefixEnd(of:)` gives the `rangeEnd` that selects every key with a prefix.
    /// `revision` > 0 reads the store as it was at that revision.
    public func range(key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer(), revision: Int64 = 0) async throws -> EtcdRangeResponse {
        precondition(key.readableBytes > 0, "etcd keys are never empty")
        let request = EtcdRangeRequest(key: key, rangeEnd: rangeEnd, revision: revision)
        return try await connector.unary(Self.rangePath, request, idempotent: true)
    }

    /// Deletes `key`, or the keys in `[key, rangeEnd)`; the response counts them.
    @discardableResult
    public func delete(key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer()) async throws -> EtcdDeleteRangeResponse {
        precondition(key.readableBytes > 0, "etcd keys are never empty")
        let request = EtcdDeleteRangeRequest(key: key, rangeEnd: rangeEnd)
        return try await connector.unary(Self.deleteRangePath, request, idempotent: false)
    }

    /// If every comparison in `compare` holds, applies `success`, else `failure`, atomically
    /// and as one revision. `EtcdTxn.swift` builds the comparisons and operations:
    ///
    ///     try await kv.txn(compare: [.absent(key)], success: [.put(key, value)], failure: [.range(key)])
    ///
    /// `succeeded` says which branch ran; `responses` holds one answer per operation.
    public func txn(compare: [EtcdCompare], success: [EtcdRequestOp], failure: [EtcdRequestOp] = []) async throws
        -> EtcdTxnResponse
    {
        let request = EtcdTxnRequest(compare: compare, success: success, failure: failure)
        return try await connector.unary(Self.txnPath, request, idempotent: false)
    }

    /// Discards the history below `revision`: a watch or a read from below it fails from
    /// then on (`EtcdWatchError.compacted`). Operators and tests compact; Sluice does not.
    @discardableResult
    public func compact(revision: Int64, physical: Bool = true) async throws -> EtcdCompactionResponse {
        precondition(revision > 0, "revisions start at 1")
        let request = EtcdCompactionRequest(revision: revision, physical: physical)
        return try await connector.unary(Self.compactPath, request, idempotent: false)
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
        await connector.close()
    }
}
