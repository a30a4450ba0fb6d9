import Foundation
import SluiceTestSupport
import Testing

/// What a real broker logs at info about its logs' recovery: operators alert on notices
/// and warnings, so a new partition or a first start must not look like a crash recovery.
@Suite("Broker log levels", .serialized, .timeLimit(.minutes(3)))
struct BrokerLogLevelTests {
    @Test("new partitions and a clean restart log no recovery; a SIGKILL restart does")
    func recoveryIsLoggedOnlyAfterACrash() async throws {
        let broker = try await BrokerProcess(extraArguments: ["--log-level", "info"])
        do {
            let server = ["--broker", broker.brokerArgument]
            let created = try await runSluice(["topic", "create", "fresh", "--partitions", "4"] + server, in: broker.root)
            #expect(created.status == 0, "\(created.stderr)")
            let produced = try await runSluice(["produce", "--topic", "fresh"] + server, input: "a\nb\nc\n", in: broker.root)
            #expect(produced.status == 0, "\(produced.stderr)")
            #expect(await broker.stop() == 0)
            let firstStart = try String(contentsOfFile: broker.path("serve-1.err"), encoding: .utf8)
            #expect(!firstStart.contains("unclean"), "a first start and new partitions are not recoveries:\n\(firstStart)")

            try await broker.start()
            #expect(await broker.stop() == 0)
            let cleanRestart = try String(contentsOfFile: broker.path("serve-2.err"), encoding: .utf8)
            #expect(!cleanRestart.contains("unclean"), "a clean restart is not a recovery:\n\(cleanRestart)")

            // Killed before anything changed: every log is as the clean close left it, and
            // its clean-shutdown marker (kept until the first change) says so.
            try await broker.start()
            await broker.kill()
            try await broker.start()
            let afterIdleKill = try String(contentsOfFile: broker.path("serve-4.err"), encoding: .utf8)
            #expect(!afterIdleKill.contains("unclean"), "an idle broker's kill changed no log:\n\(afterIdleKill)")

            // Killed after a write: that partition is recovered, the others are not.
            let more = try await runSluice(["produce", "--topic", "fresh", "--partition", "2", "--broker", broker.brokerArgument], input: "d\n", in: broker.root)
            #expect(more.status == 0, "\(more.stderr)")
            await broker.kill()
            try await broker.start()
            let afterKill = try String(contentsOfFile: broker.path("serve-5.err"), encoding: .utf8)
            let recovered = afterKill.split(separator: "\n").filter { $0.contains("partition recovered after an unclean shutdown") }
            #expect(recovered.count == 1 && recovered.allSatisfy { $0.contains("partition=2") }, "\(afterKill)")
            #expect(!afterKill.contains("torn tail"), "a SIGKILL with nothing being written cuts nothing:\n\(afterKill)")
        } catch {
            await broker.remove()
            throw error
        }
        await broker.remove()
    }
}
