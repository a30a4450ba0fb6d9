public import ArgumentParser
import SluiceAPI
import SluiceBroker
import SluiceService
import SluiceStorage
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

    @Option(help: "Milliseconds the group commit waits before each fdatasync so more appends share it (default 0; throughput: 2).")
    var groupCommitWindowMs: Double?

    @Option(help: "HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE: bytes a producer may send per stream ahead of the broker (default 1 MiB; throughput: 4 MiB).")
    var initialWindowBytes: Int?

    @Option(help: "HTTP/2 receive window of a whole connection (default 8 MiB; throughput: 32 MiB).")
    var connectionWindowBytes: Int?

    @Option(help: "HTTP/2 SETTINGS_MAX_FRAME_SIZE, 16384 to 16777215 (default 16 KiB; throughput: 64 KiB).")
    var maxFrameBytes: Int?

    @Option(help: "Decoded requests held per stream for a handler that has not read them (default 256 KiB; throughput: 1 MiB).")
    var inboundBufferBytes: Int?

    @Option(help: "A subscription's max_bytes when its request says 0 (default 1 MiB; latency: 256 KiB; throughput: 4 MiB - 64 KiB).")
    var subscribeDefaultMaxBytes: Int?

    @Option(help: ArgumentHelp(
        "Produce bytes the broker holds between receiving a batch and answering it, across all producers.",
        discussion: "When reached, the broker stops reading from producers (HTTP/2 flow control) until answers free room. At least --max-message-bytes. Not part of any profile."))
    var maxInflightBytes: Int = ProduceLimits.defaultMemoryBudgetBytes

    @Option(help: "For tests only: make every fdatasync take this many more milliseconds (a slow disk).")
    var testSyncDelayMs: Int?

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
        if let maxFrameBytes, !(16_384...16_777_215).contains(maxFrameBytes) {
            throw ValidationError("--max-frame-bytes must be 16384 to 16777215")
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
