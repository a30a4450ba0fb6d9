import Logging
import NIOCore
import SluiceCluster

/// Why an etcd suite is skipped: no binary.
public let etcdMissing = "etcd binary not found (Debian's etcd-server; scripts/install-deps.sh installs it)"

public let etcdTestLogger = Logger(label: "sluice.test.etcd")

/// A client with short deadlines, so a test against a stopped member fails fast.
public func testClient(_ endpoints: [EtcdProcess]) -> EtcdClient {
    var configuration = EtcdConnector.Configuration()
    configuration.requestTimeout = .seconds(2)
    configuration.connectTimeout = .seconds(2)
    return EtcdClient(
        endpoints: endpoints.map { EtcdEndpoint(host: $0.host, port: $0.clientPort) }, configuration: configuration,
        logger: etcdTestLogger)
}

/// etcd takes a moment to elect a leader: retries (bounded) until a Range answers.
public func waitUntilAnswering(_ client: EtcdClient, _ members: [EtcdProcess]) async throws {
    var lastError: any Error = EtcdStartError("etcd never answered")
    for _ in 0..<300 {
        for member in members where !member.isRunning {
            throw EtcdStartError("etcd \(member.name) exited:\n\(member.logTail)")
        }
        do {
            _ = try await client.kv.range(key: ByteBuffer(string: "/sluice/ready"))
            return
        } catch {
            lastError = error
        }
        // Back-off between attempts at an external process's readiness, bounded above
        // (300 attempts): not a stand-in for any synchronisation inside Sluice.
        try await Task.sleep(for: .milliseconds(100))
    }
    throw EtcdStartError("etcd did not answer within 300 attempts: \(lastError)\n\(members.map(\.logTail).joined(separator: "\n"))")
}

/// Starts a single-member etcd and a client that answers, runs `body`, and always closes
/// the client and stops etcd.
public func withEtcdClient(_ body: (EtcdProcess, EtcdClient) async throws -> Void) async throws {
    guard let binary = EtcdProcess.binary else { throw EtcdStartError(etcdMissing) }
    try await withStarted(
        { try await EtcdProcess(binary: binary) },
        open: { etcd in
            let client = testClient([etcd])
            do {
                try await waitUntilAnswering(client, [etcd])
            } catch {
                await client.close()
                throw error
            }
            return client
        },
        close: { await $0.close() }, stop: { await $0.stop() }, body)
}

/// Starts a 3-member etcd cluster serving clients on `host` and a client listing every
/// member, runs `body`, and always closes the client and stops every member.
public func withEtcdCluster(host: String = "127.0.0.1", _ body: ([EtcdProcess], EtcdClient) async throws -> Void) async throws {
    guard let binary = EtcdProcess.binary else { throw EtcdStartError(etcdMissing) }
    try await withStarted(
        { try EtcdProcess.cluster(binary: binary, members: 3, host: host) },
        open: { members in
            let client = testClient(members)
            do {
                try await waitUntilAnswering(client, members)
            } catch {
                await client.close()
                throw error
            }
            return client
        },
        close: { await $0.close() },
        stop: { members in
            for member in members { await member.stop() }
        }, body)
}
