import ArgumentParser
import SluiceBroker
import SluiceStorage

/// Tools for tests and investigations; not for production data.
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Test and investigation tools (not for production data).",
        subcommands: [CutToSynced.self])

    /// After `sluice serve --test-sync-journal J` was killed with SIGKILL, makes the
    /// partition logs of its data directory look as a power cut at that moment would
    /// have left them: unsynced bytes and directory changes are undone.
    struct CutToSynced: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cut-to-synced",
            abstract: "Cut a killed broker's partition logs back to what was fdatasynced (needs its --test-sync-journal).")

        @Option(help: "The data directory of the killed broker.")
        var dataDir: String

        @Option(help: "The journal it was started with (--test-sync-journal).")
        var journal: String

        func run() throws {
            let report: SyncRecordingFileSystem.CutReport
            do {
                report = try DataDirectory.cutToSyncedState(of: dataDir, journal: journal)
            } catch {
                fail("cannot cut \(dataDir) back: \(error)")
            }
            print("removed \(report.removed.count) file(s), restored \(report.restored.count), cut \(report.cut.count), dropped \(report.bytesDropped) byte(s)")
        }
    }
}
