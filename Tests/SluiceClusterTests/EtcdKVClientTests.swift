import Logging
import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import SluiceWire
import Testing

/// Sluice's own gRPC client against an independent gRPC server: a real etcd.
@Suite(
    "EtcdKVClient against etcd", .timeLimit(.minutes(1)),
    .enabled(
        if: EtcdProcess.binary != nil,
        "etcd binary not found (Debian's etcd-server; scripts/install-deps.sh installs it)"))
struct EtcdKVClientTests {
    let logger = Logger(label: "sluice.test.etcd")

    /// Starts etcd, connects once it answers, runs `body`, stops etcd whatever happened.
    func withEtcd(_ body: (EtcdKVClient) async throws -> Void) async throws {
        let binary = try #require(EtcdProcess.binary)
        try await withStarted(
            { try await EtcdProcess(binary: binary) }, open: connectWhenReady, close: { await $0.close() },
            stop: { await $0.stop() }) { _, client in try await body(client) }
    }

    /// Starts etcd and connects once it answers; stops it again if it never does.
    func startEtcd() async throws -> (EtcdProcess, EtcdKVClient) {
        let binary = try #require(EtcdProcess.binary)
        let etcd = try await EtcdProcess(binary: binary)
        do {
            return (etcd, try await connectWhenReady(etcd))
        } catch {
            await etcd.stop()
            throw error
        }
    }

    /// etcd takes a moment to elect itself leader: retries (bounded) until a Range answers.
    private func connectWhenReady(_ etcd: EtcdProcess) async throws -> EtcdKVClient {
        var lastError: any Error = EtcdStartError("etcd never answered")
        for _ in 0..<300 {
            guard etcd.isRunning else { throw EtcdStartError("etcd exited:\n\(etcd.logTail)") }
            do {
                let client = try await EtcdKVClient.connect(
                    host: "127.0.0.1", port: etcd.clientPort, requestTimeout: .seconds(2), logger: logger)
                do {
                    _ = try await client.range(key: ByteBuffer(string: "/sluice/ready"))
                    return client
                } catch {
                    await client.close()
                    throw error
                }
            } catch {
                lastError = error
            }
            // Back-off between attempts at an external process's readiness, bounded above
            // (300 attempts): not a stand-in for any synchronisation inside Sluice.
            try await Task.sleep(for: .milliseconds(100))
        }
        throw EtcdStartError("etcd did not answer within 300 attempts: \(lastError)\n\(etcd.logTail)")
    }

    @Test("Put then Range returns the value, with etcd's revisions")
    func putThenRange() async throws {
        try await withEtcd { etcd in
            let key = ByteBuffer(string: "/sluice/brokers/1")
            let put = try await etcd.put(key: key, value: ByteBuffer(string: "127.0.0.1:9092"))
            let putRevision = try #require(put.header?.revision)
            #expect(putRevision > 0)

            let range = try await etcd.range(key: key)
            #expect(range.count == 1)
            let kv = try #require(range.kvs.first)
            #expect(kv.key == key)
            #expect(kv.value == ByteBuffer(string: "127.0.0.1:9092"))
            #expect(kv.modRevision == putRevision)
            #expect(kv.version == 1)

            try await etcd.put(key: key, value: ByteBuffer(string: "127.0.0.1:9093"))
            let again = try #require(try await etcd.range(key: key).kvs.first)
            #expect(again.value == ByteBuffer(string: "127.0.0.1:9093"))
            #expect(again.version == 2)
            #expect(again.createRevision == kv.createRevision)
        }
    }

    @Test("Range over a prefix returns exactly its keys, in key order; a missing key returns none")
    func rangeOverPrefix() async throws {
        try await withEtcd { etcd in
            for name in ["b", "a", "c"] {
                try await etcd.put(key: ByteBuffer(string: "/sluice/topics/\(name)"), value: ByteBuffer(string: name))
            }
            try await etcd.put(key: ByteBuffer(string: "/sluice/topicsx"), value: ByteBuffer(string: "outside"))
            let prefix = ByteBuffer(string: "/sluice/topics/")
            let range = try await etcd.range(key: prefix, rangeEnd: EtcdKVClient.prefixEnd(of: prefix))
            #expect(range.kvs.map { String(buffer: $0.value) } == ["a", "b", "c"])
            #expect(range.count == 3)

            let missing = try await etcd.range(key: ByteBuffer(string: "/sluice/none"))
            #expect(missing.kvs.isEmpty)
            #expect(missing.count == 0)
        }
    }

    @Test("prefixEnd increments the last byte below 0xFF")
    func prefixEnd() {
        #expect(EtcdKVClient.prefixEnd(of: ByteBuffer(string: "/a/")) == ByteBuffer(string: "/a0"))
        #expect(EtcdKVClient.prefixEnd(of: ByteBuffer(bytes: [0x61, 0xFF])) == ByteBuffer(bytes: [0x62]))
        #expect(EtcdKVClient.prefixEnd(of: ByteBuffer(bytes: [0xFF, 0xFF])) == ByteBuffer(bytes: [0]))
    }

    @Test("an etcd that is gone answers UNAVAILABLE, not a hang")
    func unavailableAfterStop() async throws {
        let (etcd, client) = try await startEtcd()
        await etcd.stop()
        await #expect(throws: GRPCStatus.self) {
            _ = try await client.range(key: ByteBuffer(string: "/sluice/x"))
        }
        await client.close()
    }
}
