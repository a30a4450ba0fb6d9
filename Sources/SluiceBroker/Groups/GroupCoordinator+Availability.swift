import Synchronization

/// Opens the journal of committed offsets; throws why it cannot (yet). `attempt` counts
/// from 0, so a retry can redo what the first attempt found already done.
public typealias OffsetJournalOpener = @Sendable (_ attempt: Int) throws(BrokerError) -> any OffsetJournal

/// The coordinator without its offsets: when the offsets log cannot be opened (a full
/// disk at startup, a damaged segment), the broker still starts and serves topics, and
/// only group calls fail, with UNAVAILABLE and the reason, until the log opens.
///
/// Groups without their committed offsets would hand out wrong positions (a member
/// would restart from its reset policy, an admin would see no groups), so every group
/// call waits for them rather than guessing. Each group call while the journal is
/// missing may try the opener again, at most once per backoff interval (doubling up to
/// `GroupSettings.offsetsLogMaxRetryMs`), so a freed disk brings groups back within
/// seconds and a failing one is not hammered by a client's retries.
extension GroupCoordinator {
    struct JournalOpening {
        let open: OffsetJournalOpener
        /// Why the last attempt failed; nil once the journal is open.
        var failure: String?
        var attempts = 0
        /// The coordinator clock's monotonic time before which no new attempt is made.
        var nextAttemptMs: Int64
        var backoffMs: Int64
    }

    /// Returns once committed offsets are loaded; otherwise tries the opener if its
    /// backoff has passed, and throws `.offline` with the reason while it still fails.
    public func requireOffsets() throws(BrokerError) {
        if offsetsLoaded.load(ordering: .acquiring) { return }
        try journalOpening.withLock { (slot: inout JournalOpening?) throws(BrokerError) -> Void in
            guard var opening = slot, let failure = opening.failure else { return }
            defer { slot = opening }
            let now = clock.monotonicMilliseconds()
            guard now >= opening.nextAttemptMs else { throw Self.offsetsOffline(failure) }
            do throws(BrokerError) {
                opening.attempts += 1
                let journal = try opening.open(opening.attempts - 1)
                let loaded = try journal.load()
                // Lock order: journalOpening, then state (never the other way).
                state.withLock { s in
                    s.offsets = OffsetStore(loaded)
                    s.journal = journal
                }
                opening.failure = nil
                offsetsLoaded.store(true, ordering: .releasing)
            } catch {
                opening.failure = error.message
                opening.nextAttemptMs = now + opening.backoffMs
                opening.backoffMs = min(opening.backoffMs * 2, settings.offsetsLogMaxRetryMs)
                throw Self.offsetsOffline(error.message)
            }
        }
    }

    /// Why groups are unavailable right now; nil when they are available.
    public var offsetsUnavailableReason: String? {
        if offsetsLoaded.load(ordering: .acquiring) { return nil }
        return journalOpening.withLock { $0?.failure }
    }

    static func offsetsOffline(_ reason: String) -> BrokerError {
        BrokerError(.offline, "consumer groups are unavailable: the consumer offsets log cannot be opened: \(reason); retrying")
    }
}
