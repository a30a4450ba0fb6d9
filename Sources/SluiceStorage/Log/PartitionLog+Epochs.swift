import Synchronization

/// The leader-epoch checkpoint of an open replica (`LeaderEpochCheckpoint`; a log opened
/// without `LogConfig.replicated` keeps none): kept in the log's state, written before
/// the first batch of each new epoch is stored (`store`), cut by truncation and
/// retention, and checked against the batches at open.
extension PartitionLog {
    /// Where `epoch` ends in this log (see `EpochEndOffset`), from its leader-epoch
    /// checkpoint: the leader answers a follower's `last_fetched_epoch` with it. On a log
    /// that keeps no checkpoint (not `LogConfig.replicated`) it is always `.unknown`.
    public func endOffset(forEpoch epoch: Int32) -> EpochEndOffset {
        state.withLock { $0.epochs.endOffset(forEpoch: epoch, logEnd: $0.logEndOffset) }
    }

    /// The leader-epoch checkpoint: each epoch the log holds with its first offset, oldest
    /// first; empty on a log that keeps none (not `LogConfig.replicated`).
    public var epochStarts: [EpochStart] { state.withLock { $0.epochs.entries } }

    /// Under the lock: makes `epochs` the log's checkpoint, writing the file first if it
    /// changed. A failed write fences the log (the file would no longer match the log).
    func replaceLeaderEpochs(_ s: inout LogState, with epochs: LeaderEpochCheckpoint) throws(LogError) {
        guard epochs != s.epochs else { return }
        do throws(StorageIOError) {
            try writeLeaderEpochs(epochs)
        } catch {
            throw fence(&s, LogError(error))
        }
        s.epochs = epochs
    }

    func writeLeaderEpochs(_ epochs: LeaderEpochCheckpoint) throws(StorageIOError) {
        try fileSystem.replaceAtomically(
            directory + "/" + LeaderEpochCheckpoint.fileName, with: epochs.encoded(), directory: directory)
    }

    /// Under the lock, at open (after the log's last epoch is known): the checkpoint the
    /// log's batches imply. The stored file less its entries at or past the log end,
    /// cut to the log start; rebuilt from the batch headers if it is missing, fails its
    /// checks, or does not end with the newest batch's epoch (a crash between writing it
    /// and the batch can only leave entries past the log end, which are dropped: anything
    /// else means it is not this log's). Returns whether the file must be written.
    func openLeaderEpochs(_ s: inout LogState) throws(LogError) -> Bool {
        let stored = readLeaderEpochs()
        var epochs = stored ?? LeaderEpochCheckpoint()
        epochs.truncate(fromEnd: s.logEndOffset)
        epochs.truncate(fromStart: s.logStartOffset)
        if epochs.latestEpoch != s.lastLeaderEpoch { epochs = try rebuiltLeaderEpochs(&s) }
        s.epochs = epochs
        return stored.map { $0 != epochs } ?? !epochs.entries.isEmpty
    }

    /// The stored checkpoint, nil when it is missing or does not decode (it is rebuilt).
    private func readLeaderEpochs() -> LeaderEpochCheckpoint? {
        let path = directory + "/" + LeaderEpochCheckpoint.fileName
        guard fileSystem.fileExists(path), let file = try? fileSystem.open(path, mode: .readOnly) else { return nil }
        defer { file.close() }
        guard let bytes = try? file.readAll(), case .success(let epochs) = LeaderEpochCheckpoint.decode(bytes) else {
            return nil
        }
        return epochs
    }

    /// The checkpoint from the batch headers, headers only: a segment whose first and
    /// last batches have one epoch holds no other (epochs never go back), so only the
    /// segments where the epoch changes are walked batch by batch.
    private func rebuiltLeaderEpochs(_ s: inout LogState) throws(LogError) -> LeaderEpochCheckpoint {
        var epochs = LeaderEpochCheckpoint()
        for index in s.segments.indices where !s.segments[index].isEmpty {
            let segment = try loadedSegment(&s, index)
            var position: Int64 = 0
            var expected = segment.baseOffset
            guard let first = try segment.checkedHeader(at: position, expectedBaseOffset: expected) else { continue }
            if let last = try segment.locate(offset: segment.nextOffset - 1)?.header, last.leaderEpoch == first.leaderEpoch {
                _ = epochs.assign(epoch: first.leaderEpoch, startOffset: first.baseOffset)
                continue
            }
            while let header = try segment.checkedHeader(at: position, expectedBaseOffset: expected) {
                _ = epochs.assign(epoch: header.leaderEpoch, startOffset: header.baseOffset)
                position += Int64(header.storedSize)
                expected = header.nextOffset
            }
        }
        epochs.truncate(fromStart: s.logStartOffset)
        return epochs
    }
}
