public import NIOPosix

/// The threads every log's group-commit fdatasyncs run on (`PartitionLog.open`'s default),
/// apart from NIO's shared blocking pool, which has one thread per core: with two cores,
/// eight partitions syncing under `fsync always` took turns two at a time, while the disk
/// takes several fdatasyncs of different files at once (ext4 commits them in one journal
/// transaction; the device queues their writes). A log has at most one sync run at a time
/// (`LogState.syncRunning`), so one file never occupies two of these threads. Each thread
/// spends its time asleep in the kernel, not on a core. Started on first use; never stopped.
public enum SyncThreads {
    public static let shared: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: StorageLimits.defaults.syncThreads.value)
        pool.start()
        return pool
    }()
}
