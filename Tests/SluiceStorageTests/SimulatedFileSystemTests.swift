import SluiceTestSupport
import Testing
@testable import SluiceStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The durability model and the faults of `SimulatedFileSystem`, checked on their own:
/// the fault runs over the log are only as good as this model.
@Suite(.timeLimit(.minutes(2))) struct SimulatedFileSystemTests {
    /// A file system with /data created and durable.
    private func makeSystem(seed: UInt64 = 1, faults: SimulatedFaults = .none) throws -> SimulatedFileSystem {
        let system = SimulatedFileSystem(seed: seed, faults: faults)
        try system.createDirectory("/data")
        try system.syncDirectory("/")
        return system
    }

    private func write(_ bytes: [UInt8], to file: any StorageFile, at offset: Int64 = 0) throws {
        let written = try bytes.withUnsafeBytes { buffer throws(StorageIOError) in try file.write(buffer, at: offset) }
        #expect(written == bytes.count)
    }

    private func read(_ file: any StorageFile) throws -> [UInt8] {
        let size = Int(try file.size())
        var bytes = [UInt8](repeating: 0, count: size)
        let count = try bytes.withUnsafeMutableBytes { buffer throws(StorageIOError) in try file.read(into: buffer, at: 0) }
        #expect(count == size)
        return bytes
    }

    @Test func syncedFileWithoutDirectorySyncIsGoneAfterPowerCut() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try write([1, 2, 3], to: file)
        try file.sync()
        system.powerCut()
        #expect(!system.fileExists("/data/a"))
        #expect(try system.listDirectory("/data").isEmpty)
    }

    @Test func syncedFileWithDirectorySyncSurvives() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try write([1, 2, 3], to: file)
        try file.sync()
        try system.syncDirectory("/data")
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [1, 2, 3])
    }

    @Test func bytesAfterTheLastSyncAreDropped() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try system.syncDirectory("/data")
        try write([1, 2, 3], to: file)
        try file.sync()
        try write([4, 5], to: file, at: 3)
        try write([9], to: file, at: 0)  // an overwrite of synced bytes is unsynced too
        #expect(system.contents(of: "/data/a") == [9, 2, 3, 4, 5])
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [1, 2, 3])
    }

    @Test func directorySyncAloneDoesNotMakeBytesDurable() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try write([1, 2, 3], to: file)
        try system.syncDirectory("/data")
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [])
    }

    @Test func renameWithoutDirectorySyncIsReverted() throws {
        let system = try makeSystem()
        let file = try system.open("/data/tmp", mode: .createNew)
        try write([7], to: file)
        try file.sync()
        try system.syncDirectory("/data")
        try system.rename("/data/tmp", to: "/data/final")
        #expect(system.fileExists("/data/final") && !system.fileExists("/data/tmp"))
        system.powerCut()
        #expect(system.contents(of: "/data/tmp") == [7])
        #expect(!system.fileExists("/data/final"))
    }

    @Test func renameOverAnExistingFileIsAtomicOnceSynced() throws {
        let system = try makeSystem()
        let old = try system.open("/data/checkpoint", mode: .createNew)
        try write([1], to: old)
        try old.sync()
        try system.syncDirectory("/data")
        let new = try system.open("/data/checkpoint.tmp", mode: .createNew)
        try write([2], to: new)
        try new.sync()
        try system.rename("/data/checkpoint.tmp", to: "/data/checkpoint")
        system.powerCut()
        #expect(system.contents(of: "/data/checkpoint") == [1])  // not dir-synced: old one back

        let again = try system.open("/data/checkpoint.tmp", mode: .createNew)
        try write([3], to: again)
        try again.sync()
        try system.rename("/data/checkpoint.tmp", to: "/data/checkpoint")
        try system.syncDirectory("/data")
        system.powerCut()
        #expect(system.contents(of: "/data/checkpoint") == [3])
        #expect(!system.fileExists("/data/checkpoint.tmp"))
    }

    @Test func removeWithoutDirectorySyncIsUndone() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try write([5, 6], to: file)
        try file.sync()
        try system.syncDirectory("/data")
        try system.remove("/data/a")
        #expect(!system.fileExists("/data/a"))
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [5, 6])
        try system.remove("/data/a")
        try system.syncDirectory("/data")
        system.powerCut()
        #expect(!system.fileExists("/data/a"))
    }

    @Test func truncationIsDurableOnlyAfterSync() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try system.syncDirectory("/data")
        try write([1, 2, 3, 4], to: file)
        try file.sync()
        try file.truncate(to: 2)
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [1, 2, 3, 4])
        let reopened = try system.open("/data/a", mode: .readWrite)
        try reopened.truncate(to: 2)
        try reopened.sync()
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [1, 2])
    }

    @Test func newDirectoryNeedsItsParentSynced() throws {
        let system = try makeSystem()
        try system.createDirectory("/data/p0")
        system.powerCut()
        #expect(!system.fileExists("/data/p0"))
        try system.createDirectory("/data/p0")
        try system.syncDirectory("/data")
        system.powerCut()
        #expect(system.fileExists("/data/p0"))
    }

    @Test func handlesFromBeforeAPowerCutAreDead() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        system.powerCut()
        #expect(throws: StorageIOError.self) { try write([1], to: file) }
        #expect(throws: StorageIOError.self) { try file.sync() }
    }

    @Test func handleFollowsTheFileAcrossRenameAndRemove() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try system.rename("/data/a", to: "/data/b")
        try write([4], to: file)
        #expect(system.contents(of: "/data/b") == [4])
        try system.remove("/data/b")
        try write([5], to: file, at: 1)
        #expect(try read(file) == [4, 5])
    }

    @Test func openModesAndErrors() throws {
        let system = try makeSystem()
        #expect(throws: StorageIOError(errno: ENOENT, operation: "open", path: "/data/x")) {
            _ = try system.open("/data/x", mode: .readOnly)
        }
        _ = try system.open("/data/x", mode: .createNew)
        #expect(throws: StorageIOError(errno: EEXIST, operation: "open", path: "/data/x")) {
            _ = try system.open("/data/x", mode: .createNew)
        }
        let readOnly = try system.open("/data/x", mode: .readOnly)
        #expect(throws: StorageIOError.self) { try write([1], to: readOnly) }
        #expect(throws: StorageIOError.self) { _ = try system.open("/missing/x", mode: .createNew) }
        #expect(throws: StorageIOError.self) { try system.remove("/data") }  // not empty
    }

    @Test func readsAtAndPastTheEnd() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try write([1, 2, 3], to: file)
        var buffer = [UInt8](repeating: 0, count: 8)
        let middle = try buffer.withUnsafeMutableBytes { b throws(StorageIOError) in try file.read(into: b, at: 1) }
        #expect(middle == 2 && Array(buffer[0..<2]) == [2, 3])
        let end = try buffer.withUnsafeMutableBytes { b throws(StorageIOError) in try file.read(into: b, at: 3) }
        #expect(end == 0)
        try write([9], to: file, at: 5)  // a write past the end leaves a hole of zeros
        #expect(try read(file) == [1, 2, 3, 0, 0, 9])
    }

    @Test func failedSyncLosesTheDirtyPagesForGood() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try system.syncDirectory("/data")
        try write([1, 2], to: file)
        try file.sync()
        try write([3, 4], to: file, at: 2)
        system.setFaults(SimulatedFaults(syncErrorRate: 1))
        #expect(throws: StorageIOError.self) { try file.sync() }
        system.setFaults(.none)
        try file.sync()  // "succeeds", as a retried fsync does on Linux
        #expect(try read(file) == [1, 2, 3, 4])  // the page cache still shows the bytes
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [1, 2, 0, 0])  // but they never reached the disk

        // Writing the range again makes it dirty and syncable again.
        let reopened = try system.open("/data/a", mode: .readWrite)
        try write([3, 4], to: reopened, at: 2)
        try reopened.sync()
        system.powerCut()
        #expect(system.contents(of: "/data/a") == [1, 2, 3, 4])
    }

    @Test func capacityGivesShortWritesThenNoSpace() throws {
        let system = try makeSystem(faults: SimulatedFaults(capacityBytes: 10))
        let file = try system.open("/data/a", mode: .createNew)
        let first = try [UInt8](repeating: 1, count: 8).withUnsafeBytes { b throws(StorageIOError) in try file.write(b, at: 0) }
        #expect(first == 8)
        let second = try [UInt8](repeating: 2, count: 8).withUnsafeBytes { b throws(StorageIOError) in try file.write(b, at: 8) }
        #expect(second == 2)
        #expect(throws: StorageIOError(errno: ENOSPC, operation: "write", path: "/data/a")) {
            _ = try [UInt8](repeating: 3, count: 1).withUnsafeBytes { b throws(StorageIOError) in try file.write(b, at: 10) }
        }
        // Overwriting inside the file needs no new space.
        let overwrite = try [UInt8](repeating: 4, count: 4).withUnsafeBytes { b throws(StorageIOError) in try file.write(b, at: 0) }
        #expect(overwrite == 4)
        #expect(system.usedBytes == 10)
        try system.remove("/data/a")
        #expect(system.usedBytes == 0)
    }

    @Test func scheduledPowerCutHaltsUntilRestart() throws {
        let system = try makeSystem()
        let file = try system.open("/data/a", mode: .createNew)
        try system.syncDirectory("/data")
        try write([1], to: file)
        try file.sync()
        system.setFaults(SimulatedFaults(powerCutAfterOperations: 2))
        try write([2], to: file, at: 1)   // counted op 1
        try write([3], to: file, at: 2)   // counted op 2
        #expect(throws: StorageIOError.self) { try file.sync() }  // op 3: the power goes
        #expect(system.isHalted && system.powerCuts == 1)
        #expect(throws: StorageIOError.self) { _ = try system.open("/data/b", mode: .createNew) }
        #expect(throws: StorageIOError.self) { _ = try system.listDirectory("/data") }
        system.restart()
        #expect(system.contents(of: "/data/a") == [1])
        #expect(throws: StorageIOError.self) { try write([4], to: file) }  // old handle stays dead
    }

    @Test func shortWritesAreNonEmptyPrefixes() throws {
        let system = try makeSystem(faults: SimulatedFaults(shortWriteRate: 1))
        let file = try system.open("/data/a", mode: .createNew)
        let bytes = (0..<100).map { UInt8($0) }
        var offset = 0
        var calls = 0
        while offset < bytes.count {
            let written = try bytes[offset...].withUnsafeBytes { b throws(StorageIOError) in try file.write(b, at: Int64(offset)) }
            #expect(written >= 1 && written <= bytes.count - offset)
            offset += written
            calls += 1
        }
        #expect(calls > 1)
        #expect(try read(file) == bytes)
    }

    @Test func sameSeedSameFaults() throws {
        func trace(seed: UInt64) throws -> [String] {
            let faults = SimulatedFaults(writeErrorRate: 0.2, syncErrorRate: 0.2, noSpaceRate: 0.1, shortWriteRate: 0.3)
            let system = try makeSystem(seed: seed, faults: faults)
            system.setFaults(.none)
            let file = try system.open("/data/a", mode: .createNew)
            system.setFaults(faults)
            var log: [String] = []
            for index in 0..<200 {
                do {
                    let n = try [UInt8](repeating: UInt8(index & 0xFF), count: 16).withUnsafeBytes { b throws(StorageIOError) in
                        try file.write(b, at: Int64(index * 16))
                    }
                    log.append("w\(n)")
                    try file.sync()
                    log.append("s")
                } catch {
                    log.append("e\((error as? StorageIOError)?.errno ?? -1)")
                }
            }
            return log
        }
        let first = try trace(seed: 42)
        #expect(try trace(seed: 42) == first)
        #expect(try trace(seed: 43) != first)
        #expect(first.contains { $0.hasPrefix("e") } && first.contains("s"))
    }

    @Test func tornTailKeepsAPrefixOfTheUnsyncedBytes() throws {
        var sawPartial = false
        for seed in UInt64(0)..<20 {
            let system = try makeSystem(seed: seed, faults: SimulatedFaults(unsyncedTailSurvivalRate: 1))
            let file = try system.open("/data/a", mode: .createNew)
            try system.syncDirectory("/data")
            try write([1, 2], to: file)
            try file.sync()
            try write([3, 4, 5, 6, 7, 8], to: file, at: 2)
            system.powerCut()
            let survived = try #require(system.contents(of: "/data/a"))
            #expect(survived.count >= 2 && survived == Array([1, 2, 3, 4, 5, 6, 7, 8].prefix(survived.count)))
            if survived.count > 2 && survived.count < 8 { sawPartial = true }
        }
        #expect(sawPartial)
    }

    @Test func concurrentUseIsSafe() async throws {
        let system = try makeSystem()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    let file = try system.open("/data/f\(worker)", mode: .createNew)
                    for index in 0..<500 {
                        _ = try [UInt8(index & 0xFF)].withUnsafeBytes { b throws(StorageIOError) in try file.write(b, at: Int64(index)) }
                    }
                    try file.sync()
                }
            }
            try await group.waitForAll()
        }
        #expect(system.usedBytes == 2000)
    }
}
