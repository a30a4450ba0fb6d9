public import Logging
public import NIOCore

/// etcd as a Sluice cluster uses it: the KV, Lease and Watch services over one connection
/// to one of the cluster's etcd members, failing over to the next on connection loss
/// (`EtcdConnector`). Creating it connects to nothing: the first call does.
public final class EtcdClient: Sendable {
    public let connector: EtcdConnector
    public let kv: EtcdKVClient
    public let lease: EtcdLeaseClient

    public init(endpoints: [EtcdEndpoint], configuration: EtcdConnector.Configuration = .init(), logger: Logger) {
        connector = EtcdConnector(endpoints: endpoints, configuration: configuration, logger: logger)
        kv = EtcdKVClient(connector: connector)
        lease = EtcdLeaseClient(connector: connector)
    }

    /// The changes of `key` (or of `[key, rangeEnd)`) from `revision` on; see `EtcdWatch`.
    public func watch(
        _ key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer(), from revision: Int64,
        options: EtcdWatch.Options = .init()
    ) -> EtcdWatch {
        EtcdWatch(connector: connector, key: key, rangeEnd: rangeEnd, startRevision: revision, options: options)
    }

    /// The changes of every key starting with `prefix`, from `revision` on.
    public func watch(prefix: ByteBuffer, from revision: Int64, options: EtcdWatch.Options = .init()) -> EtcdWatch {
        watch(prefix, rangeEnd: EtcdKVClient.prefixEnd(of: prefix), from: revision, options: options)
    }

    /// Closes the connection: calls and watches in flight end with UNAVAILABLE.
    public func close() async {
        await connector.close()
    }
}
