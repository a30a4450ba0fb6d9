import SluiceStorage
import SluiceTestSupport
import Testing

/// `LogConfig.groupCommitWindow` (the throughput profile's 2 ms): the flusher waits
/// before each sync so more appends share it; it delays answers but never loses one.
@Suite(.timeLimit(.minutes(1))) struct GroupCommitWindowTests {
    @Test func appendsUnderAWindowAllBecomeDurable() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let fileSystem = InstrumentedFileSystem()
        var config = smallConfig()
        config.groupCommitWindow = .milliseconds(20)
        let log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: config)
        let before = fileSystem.syncCount
        let offsets = try await withThrowingTaskGroup(of: Int64.self) { group in
            for index in 0..<40 {
                group.addTask { try await log.append(makeBatch(pattern(index, 100)), leaderEpoch: 0).lastOffset }
            }
            var all: [Int64] = []
            for try await offset in group { all.append(offset) }
            return all
        }
        #expect(offsets.sorted() == Array(0..<40))
        #expect(log.durableEndOffset == 40)
        #expect(fileSystem.syncCount > before, "durability came from syncs, after the window")
        try await log.close()
    }
}
