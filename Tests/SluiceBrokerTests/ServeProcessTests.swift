import Foundation
import Logging
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

@Suite(.timeLimit(.minutes(1))) struct ServeProcessTests {
    @Test func servesAndShutsDownCleanlyOnSIGTERM() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (server, port) = try await SluiceProcess.serve(["--test-services", "--shutdown-grace", "1"], directory: directory)

        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let connection = try await GRPCClientConnection.connect(GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: logger)
        let health: HealthCheckResponse = try await connection.unary(path: "/grpc.health.v1.Health/Check", request: HealthCheckRequest())
        #expect(health.status == .serving)

        // A stream open at shutdown gets the grace period, then ends; the process exits 0.
        let call = try await ProtobufCall<EchoRequest, EchoResponse>(connection, path: "/sluice.test.v1.Echo/Update")
        try await call.send(EchoRequest(text: "open"))
        var responses = call.responses.makeAsyncIterator()
        #expect(try await responses.next()?.text == "open")

        server.process.terminate()
        await expectStatus(.unavailable) { while try await responses.next() != nil {} }
        #expect(await server.exitStatus() == 0)
        await connection.close()
    }

    /// A wait for the exit that is cancelled (as a time limit cancels it) kills the child and
    /// returns, instead of trapping on a process that is still running.
    @Test func aCancelledExitWaitKillsTheChildAndReturns() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (server, _) = try await SluiceProcess.serve(directory: directory)
        let waiting = Task { await server.exitStatus() }
        waiting.cancel()
        _ = await waiting.value
        #expect(!server.isRunning)
    }

    @Test func aSecondServeOnTheSameDirectoryFails() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (server, _) = try await SluiceProcess.serve(directory: directory)
        let second = try await SluiceProcess.run(
            ["serve", "--data-dir", directory.path + "/data", "--listen", "127.0.0.1:0"], directory: directory)
        #expect(second.status == 1)
        #expect(second.stdout.isEmpty)
        #expect(second.stderr.contains("sluice: cannot start: data directory"))
        #expect(second.stderr.contains("in use by another broker (pid \(server.process.processIdentifier))"))
        server.process.terminate()
        #expect(await server.exitStatus() == 0)
    }

    @Test func topicCommands() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (server, port) = try await SluiceProcess.serve(directory: directory)
        let broker = ["--broker", "127.0.0.1:\(port)"]
        func sluice(_ arguments: String...) async throws -> CommandResult {
            try await SluiceProcess.run(["topic"] + arguments + broker, directory: directory)
        }

        let created = try await sluice("create", "orders", "--partitions", "3", "--config", "retention.ms=1000")
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.hasPrefix("created topic orders"))

        let duplicate = try await sluice("create", "orders")
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr == "sluice: topic \"orders\" already exists (ALREADY_EXISTS)\n")

        let listed = try await sluice("list")
        #expect(listed.status == 0)
        #expect(listed.stdout.hasPrefix("orders\t3\t1\t"))

        let altered = try await sluice("alter", "orders", "--set", "segment.ms=60000", "--reset", "retention.ms")
        #expect(altered.status == 0, "\(altered.stderr)")
        #expect(altered.stdout.contains("segment.ms=60000"))
        #expect(altered.stdout.contains("retention.ms=604800000"))

        let badValue = try await sluice("alter", "orders", "--set", "segment.ms=0")
        #expect(badValue.status == 1)
        #expect(badValue.stderr.contains("(INVALID_ARGUMENT)"))
        #expect(badValue.stderr.split(separator: "\n").count == 1)

        let grown = try await sluice("add-partitions", "orders", "--total", "4")
        #expect(grown.status == 0)

        let described = try await sluice("describe", "orders")
        #expect(described.status == 0)
        #expect(described.stdout.contains("partitions: 4"))

        #expect(try await sluice("delete", "orders").status == 0)
        let missing = try await sluice("describe", "orders")
        #expect(missing.status == 1)
        #expect(missing.stderr == "sluice: topic \"orders\" does not exist (NOT_FOUND)\n")

        server.process.terminate()
        #expect(await server.exitStatus() == 0)

        let unreachable = try await SluiceProcess.run(["topic", "list"] + broker, directory: directory)
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.hasPrefix("sluice: cannot connect to 127.0.0.1:\(port)"))
    }

    @Test func topicsSurviveAProcessRestart() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (first, firstPort) = try await SluiceProcess.serve(directory: directory)
        #expect(try await SluiceProcess.run(["topic", "create", "kept", "--broker", "127.0.0.1:\(firstPort)"], directory: directory).status == 0)
        first.process.terminate()
        #expect(await first.exitStatus() == 0)

        let (second, secondPort) = try await SluiceProcess.serve(directory: directory)
        let listed = try await SluiceProcess.run(["topic", "list", "--broker", "127.0.0.1:\(secondPort)"], directory: directory)
        #expect(listed.stdout.hasPrefix("kept\t1\t1\t"))
        second.process.terminate()
        #expect(await second.exitStatus() == 0)
    }

    @Test func afterSIGKILLTheLockIsFreeAndAcknowledgedTopicsRemain() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (first, firstPort) = try await SluiceProcess.serve(directory: directory)
        for name in ["a", "b", "c"] {
            let created = try await SluiceProcess.run(["topic", "create", name, "--broker", "127.0.0.1:\(firstPort)"], directory: directory)
            #expect(created.status == 0, "\(created.stderr)")
        }
        kill(first.process.processIdentifier, SIGKILL)
        #expect(await first.exitStatus() == SIGKILL)

        let (second, secondPort) = try await SluiceProcess.serve(directory: directory)
        let listed = try await SluiceProcess.run(["topic", "list", "--broker", "127.0.0.1:\(secondPort)"], directory: directory)
        #expect(listed.stdout.split(separator: "\n").map { $0.split(separator: "\t")[0] } == ["a", "b", "c"])
        second.process.terminate()
        #expect(await second.exitStatus() == 0)
    }
}
