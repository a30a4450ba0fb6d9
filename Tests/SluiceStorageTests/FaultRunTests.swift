import Glibc
import Testing
@testable import SluiceStorage

/// Seeded fault runs over the partition log on `SimulatedFileSystem` (see `FaultRun`).
/// 200 seeds by default; SLUICE_FAULT_SEEDS raises the count, SLUICE_FAULT_SEED=<n>
/// replays one seed exactly, SLUICE_SOAK=1 runs twenty times as many.
@Suite(.timeLimit(.minutes(5))) struct FaultRunTests {
    static let stepsPerRun = 60

    @Test func seededFaultRunsKeepTheLogAPrefixOfWhatWasAppended() async throws {
        let seeds: [UInt64]
        if let raw = getenv("SLUICE_FAULT_SEED"), let seed = UInt64(String(cString: raw)) {
            seeds = [seed]
        } else {
            seeds = Array(0..<UInt64(CrashTests.environmentCount("SLUICE_FAULT_SEEDS", default: 200)))
        }
        var failed: [UInt64] = []
        var tally = FaultRunTally()
        for seed in seeds {
            var run = FaultRun(seed: seed)
            do {
                try await run.run(steps: Self.stepsPerRun)
                tally.add(run.tally)
            } catch {
                failed.append(seed)
                Issue.record("fault run failed: replay with SLUICE_FAULT_SEED=\(seed)\n\(error)")
                if failed.count >= 5 { break }  // enough to debug; keep the output readable
            }
        }
        print("fault runs: \(seeds.count) seeds, failed: \(failed); \(tally)")
        if seeds.count >= 50 {
            // The runs must have exercised what they claim to (not a property of the log).
            #expect(tally.syncsAfterFailedSync == 0)
            #expect(tally.fences > 0 && tally.powerCuts > 0 && tally.tornTailsCut > 0 && tally.truncations > 0)
        }
    }
}
