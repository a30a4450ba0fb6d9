public import ArgumentParser
import SluiceAPI
import SluiceBroker
import SluiceService
import SluiceStorage
import SluiceWire
#if canImport(Glibc)
import Glibc
#endif

extension PerformanceProfile: ExpressibleByArgument {}

/// `sluice serve`'s throughput/latency settings and its produce memory budget
/// (docs/profiles.md). Each tuning flag left out takes the profile's value, or the
/// built-in default without a profile; a flag given always wins.
struct ServeTuningOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "A named set of the settings below: latency or throughput.",
        discussion: "Never changes --fsync or the producers' acks. docs/profiles.md lists each profile's values."))
    var profile: PerformanceProfile?

    @Option(help: .tuning(
        "Milliseconds the group commit waits before each fdatasync so more appends share it", \.groupCommitWindow,
        shown: shownMilliseconds, why: StorageLimits.defaults.groupCommitWindow.why))
    var groupCommitWindowMs: Double?

    @Option(help: .tuning(
        "HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE: bytes a producer may send per stream ahead of the broker", \.initialWindowBytes,
        shown: shownBytes, why: WireLimits.defaults.initialWindowBytes.why))
    var initialWindowBytes: Int?

    @Option(help: .tuning(
        "HTTP/2 receive window of a whole connection", \.connectionWindowBytes,
        shown: shownBytes, why: WireLimits.defaults.connectionWindowBytes.why))
    var connectionWindowBytes: Int?

    @Option(help: .tuning(
        "HTTP/2 SETTINGS_MAX_FRAME_SIZE, \(ServeTuningOptions.allowedFrameBytes.lowerBound) to \(ServeTuningOptions.allowedFrameBytes.upperBound)",
        \.maxFrameBytes, shown: shownBytes, why: WireLimits.defaults.maxFrameBytes.why))
    var maxFrameBytes: Int?

    @Option(help: .tuning(
        "Decoded requests held per stream for a handler that has not read them", \.inboundBufferBytes,
        shown: shownBytes, why: WireLimits.defaults.inboundBufferBytes.why))
    var inboundBufferBytes: Int?

    @Option(help: .tuning(
        "A subscription's max_bytes when its request says 0", \.subscribeDefaultMaxBytes,
        shown: shownBytes, why: BrokerLimits.defaults.subscribeDefaultMaxBytes.why))
    var subscribeDefaultMaxBytes: Int?

    @Option(help: .limit(
        "Produce bytes the broker holds between receiving a batch and answering it, across all producers. When reached, the broker stops reading from producers (HTTP/2 flow control) until answers free room. At least --max-message-bytes. Not part of any profile.",
        why: BrokerLimits.defaults.produceMemoryBudgetBytes.why))
    var maxInflightBytes: Int = BrokerLimits.defaults.produceMemoryBudgetBytes.value

    @Option(help: "For tests only: make every fdatasync take this many more milliseconds (a slow disk).")
    var testSyncDelayMs: Int?

    private static let allowedFrameBytes = WireLimits.defaults.allowedFrameBytes.value

    var overrides: BrokerTuning {
        var tuning = BrokerTuning()
        tuning.groupCommitWindow = groupCommitWindowMs.map { .microseconds(Int64($0 * 1000)) }
        tuning.initialWindowBytes = initialWindowBytes
        tuning.connectionWindowBytes = connectionWindowBytes
        tuning.maxFrameBytes = maxFrameBytes
        tuning.inboundBufferBytes = inboundBufferBytes
        tuning.subscribeDefaultMaxBytes = subscribeDefaultMaxBytes
        return tuning
    }

    func validate(maxMessageBytes: Int) throws {
        if let groupCommitWindowMs, !(groupCommitWindowMs >= 0 && groupCommitWindowMs <= 1000) {
            throw ValidationError("--group-commit-window-ms must be 0 to 1000")
        }
        let window = 1...Int(Int32.max)
        if let initialWindowBytes, !window.contains(initialWindowBytes) { throw ValidationError("--initial-window-bytes must be 1 to 2^31-1") }
        if let connectionWindowBytes, !window.contains(connectionWindowBytes) {
            throw ValidationError("--connection-window-bytes must be 1 to 2^31-1")
        }
        if let maxFrameBytes, !Self.allowedFrameBytes.contains(maxFrameBytes) {
            throw ValidationError("--max-frame-bytes must be \(Self.allowedFrameBytes.lowerBound) to \(Self.allowedFrameBytes.upperBound)")
        }
        if let inboundBufferBytes, inboundBufferBytes < 1 { throw ValidationError("--inbound-buffer-bytes must be positive") }
        if let subscribeDefaultMaxBytes, subscribeDefaultMaxBytes < 1 {
            throw ValidationError("--subscribe-default-max-bytes must be positive")
        }
        // So that every request the transport lets through can be admitted.
        guard maxInflightBytes >= maxMessageBytes else {
            throw ValidationError("--max-inflight-bytes must be at least --max-message-bytes (\(maxMessageBytes))")
        }
        if let testSyncDelayMs, testSyncDelayMs < 0 { throw ValidationError("--test-sync-delay-ms must be 0 or more") }
    }

    func apply(to configuration: inout BrokerServer.Configuration) {
        configuration.apply(profile: profile, overrides: overrides)
        configuration.produceLimits.memoryBudget = ProduceMemoryBudget(limitBytes: maxInflightBytes)
        if let testSyncDelayMs {
            // Test only: a slow disk, for the surge test.
            // Syncs run on the storage's sync threads, never on the Swift concurrency pool,
            // so sleeping there is what a slow fdatasync does too.
            let delayMicroseconds = UInt32(clamping: testSyncDelayMs * 1000)
            configuration.storage.fileSystem = SyncHookFileSystem(wrapping: configuration.storage.fileSystem) {
                usleep(delayMicroseconds)
            }
        }
    }
}
