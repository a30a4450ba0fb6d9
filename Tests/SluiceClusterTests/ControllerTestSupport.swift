import Logging
import NIOCore
import SluiceAPI
import SluiceCluster
import Foundation
import SluiceTestSupport

/// Puts a broker's registration key (no lease: it stays until deleted) as a test fixture.
func putBroker(_ id: UInt32, rack: String? = nil, keys: ClusterKeys, client: EtcdClient) async throws {
    try await client.kv.put(key: keys.broker(id), value: BrokerInfo(id: id, address: "127.0.0.1:\(9100 + id)", rack: rack).encoded())
}

/// Stands `info` for controller and returns its term and a `Controller` for it.
func elect(_ info: BrokerInfo, keys: ClusterKeys, client: EtcdClient, ttl: Int64 = 2) async throws -> (ControllerTerm, Controller) {
    let term = try await ControllerElection.stand(info, keys: keys, client: client, leaseTTLSeconds: ttl, logger: etcdTestLogger)
    return (term, Controller(info: info, electionRevision: term.electionRevision, client: client, keys: keys, logger: etcdTestLogger))
}

extension ByteBuffer {
    /// The readable bytes as UTF-8, for messages and comparisons.
    var text: String { String(buffer: self) }
}
