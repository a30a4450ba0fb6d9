/// Which faults a `SimulatedFileSystem` injects. Rates are per call, drawn from the file
/// system's seeded generator, so a run with the same seed and the same sequence of calls
/// meets the same faults.
public struct SimulatedFaults: Sendable, Equatable {
    /// `write` fails with EIO before writing anything.
    public var writeErrorRate: Double
    /// `sync` / `syncDirectory` fail with EIO. A failed file sync also loses the dirty
    /// pages (see `SimulatedFileSystem`): a later successful sync does not bring them back.
    public var syncErrorRate: Double
    /// `read` fails with EIO.
    public var readErrorRate: Double
    /// `write` (and growing `truncate`, `open(.createNew)`) fail with ENOSPC at random.
    public var noSpaceRate: Double
    /// `write` writes a random non-empty strict prefix of the buffer and reports its length.
    public var shortWriteRate: Double
    /// `rename`, `remove`, `createDirectory` and `open` fail with EIO.
    public var metadataErrorRate: Double
    /// Total bytes all live files may hold; a write that would pass it writes what fits
    /// (a short write) or fails with ENOSPC when nothing fits.
    public var capacityBytes: Int64?
    /// After this many counted operations (every call that changes state or syncs:
    /// write, truncate, sync, open(.createNew), rename, remove, createDirectory,
    /// syncDirectory) the next one cuts the power instead of running: the file system
    /// reverts to its durable state and then refuses every call with EIO until
    /// `restart()`, as a dead machine would.
    public var powerCutAfterOperations: Int?
    /// At a power cut, each file whose unsynced bytes extend past its durable length keeps
    /// a random prefix of that unsynced tail with this probability (the disk wrote some
    /// pages before power went): a torn tail that recovery must cope with.
    public var unsyncedTailSurvivalRate: Double

    public init(
        writeErrorRate: Double = 0,
        syncErrorRate: Double = 0,
        readErrorRate: Double = 0,
        noSpaceRate: Double = 0,
        shortWriteRate: Double = 0,
        metadataErrorRate: Double = 0,
        capacityBytes: Int64? = nil,
        powerCutAfterOperations: Int? = nil,
        unsyncedTailSurvivalRate: Double = 0
    ) {
        self.writeErrorRate = writeErrorRate
        self.syncErrorRate = syncErrorRate
        self.readErrorRate = readErrorRate
        self.noSpaceRate = noSpaceRate
        self.shortWriteRate = shortWriteRate
        self.metadataErrorRate = metadataErrorRate
        self.capacityBytes = capacityBytes
        self.powerCutAfterOperations = powerCutAfterOperations
        self.unsyncedTailSurvivalRate = unsyncedTailSurvivalRate
    }

    /// No faults: a perfectly reliable in-memory disk that still honours power cuts.
    public static let none = SimulatedFaults()
}
