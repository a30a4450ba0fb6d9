public import Logging
import NIOCore
import SluiceAPI

/// A won election: the lease the controller key is attached to, kept alive, and the key's
/// `create_revision`, which fences every write of this term.
public struct ControllerTerm: Sendable {
    public let electionRevision: Int64
    public let keepAlive: EtcdLeaseKeepAlive
}

/// How a broker becomes the controller: it grants a lease and runs the Txn
/// `create_revision(controller) == 0 → put controller = <its BrokerInfo> on that lease`.
/// The first to run it wins; its put's revision is the key's `create_revision`, the
/// election revision. A loser revokes its lease (no key is attached to it), watches the
/// key from the revision its Txn read it at, and stands again when it is deleted (the
/// controller's lease expired or it stepped down).
public enum ControllerElection {
    /// Stands until elected. Throws `GRPCStatus` when etcd fails a call (the caller stands
    /// again after a pause), `CancellationError` when the task is cancelled.
    public static func stand(
        _ info: BrokerInfo, keys: ClusterKeys, client: EtcdClient, leaseTTLSeconds: Int64, logger: Logger
    ) async throws -> ControllerTerm {
        while true {
            try Task.checkCancellation()
            let lease = try await client.lease.grant(ttlSeconds: leaseTTLSeconds)
            let response: EtcdTxnResponse
            do {
                response = try await client.kv.txn(
                    compare: [.absent(keys.controller)], success: [.put(keys.controller, info.encoded(), lease: lease.id)],
                    failure: [.range(keys.controller)])
            } catch {
                _ = try? await client.lease.revoke(lease.id)
                throw error
            }
            if response.succeeded, let revision = response.header?.revision {
                return ControllerTerm(electionRevision: revision, keepAlive: client.lease.keepAlive(lease))
            }
            _ = try? await client.lease.revoke(lease.id)
            let holder = response.responses.first?.range?.kvs.first
            logger.info("another broker is the controller; waiting for its key to go", metadata: [
                "controller": "\(holder.flatMap { BrokerInfo(decoding: $0.value) }.map { "\($0)" } ?? "unreadable")",
            ])
            try await waitForVacancy(keys: keys, client: client, after: response.header?.revision ?? 0)
        }
    }

    /// Returns once the controller key is deleted after `revision` (or the watch ended:
    /// standing again is then the way to find out).
    public static func waitForVacancy(keys: ClusterKeys, client: EtcdClient, after revision: Int64) async throws {
        do {
            for try await event in client.watch(keys.controller, from: revision + 1) where event.type == .delete {
                return
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Compacted or unreachable: the Txn of the next attempt tells.
        }
    }
}
