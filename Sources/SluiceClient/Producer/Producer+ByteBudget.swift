/// The producer's byte budget (`ProducerConfiguration.maxBufferedBytes`): bytes of records
/// accepted and not yet answered, across all partitions. A caller that would pass it waits
/// (first come, first served) or is refused at once (`whenBufferFull`).
extension Producer {
    func reserve(_ bytes: Int) async throws {
        if spaceWaiters.isEmpty && bufferedBytes + bytes <= configuration.maxBufferedBytes {
            bufferedBytes += bytes
            return
        }
        guard configuration.whenBufferFull == .block else { throw ProducerError.bufferFull }
        nextSpaceWaiter += 1
        let id = nextSpaceWaiter
        // Bounded without a timer of its own: records in flight are answered or fail by
        // their delivery deadline, and each frees its bytes.
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    spaceWaiters.append(SpaceWaiter(id: id, bytes: bytes, continuation: continuation))
                }
            }
        } onCancel: {
            Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                await self.cancelSpaceWaiter(id)
            }
        }
    }

    func cancelSpaceWaiter(_ id: Int) {
        guard let index = spaceWaiters.firstIndex(where: { $0.id == id }) else { return }
        spaceWaiters.remove(at: index).continuation.resume(throwing: CancellationError())
        // A large waiter leaving may let smaller ones behind it in.
        release(0)
    }

    func release(_ bytes: Int) {
        bufferedBytes -= bytes
        precondition(bufferedBytes >= 0, "released more bytes than were reserved")
        // First come, first served: a large waiter is not overtaken by smaller ones.
        while let first = spaceWaiters.first, bufferedBytes + first.bytes <= configuration.maxBufferedBytes {
            spaceWaiters.removeFirst()
            bufferedBytes += first.bytes
            first.continuation.resume()
        }
    }
}
