import SluiceAPI
import SluiceWire

/// One open `Produce` stream of a `Producer`. Requests are written by one writer task
/// (a gRPC call takes one write at a time) in the order the producer hands them over;
/// responses are read by one reader task and passed back to the producer, which matches
/// them by correlation id. When the stream ends for any reason the producer hears it once,
/// with the status, and retries what was in flight on a new session.
final class ProduceSession: Sendable {
    let id: Int
    private let call: ProtobufCall<ProduceRequest, ProduceResponse>
    private let outbound: AsyncStream<ProduceRequest>.Continuation
    private let writer: Task<Void, Never>
    private let reader: Task<Void, Never>

    init(id: Int, call: ProtobufCall<ProduceRequest, ProduceResponse>, producer: Producer) {
        self.id = id
        self.call = call
        // Unbounded here because the producer's byte budget already bounds what is queued.
        let (stream, continuation) = AsyncStream.makeStream(of: ProduceRequest.self)
        outbound = continuation
        writer = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            do {
                for await request in stream { try await call.send(request) }
                try await call.finishSending()
            } catch {
                // The reader sees the call end and reports it.
                call.cancel()
            }
        }
        // The reader holds the producer weakly: a producer its user dropped without
        // `close()` must still be freed, and its deinit then closes this stream.
        reader = Task { [weak producer, counted = ClientTasks.begin()] in
            defer { counted.end() }
            var ending = GRPCStatus(.unavailable, "the broker ended the produce stream")
            do {
                for try await response in call.responses {
                    guard let producer else { break }
                    await producer.received(response, session: id)
                }
            } catch let status as GRPCStatus {
                ending = status
            } catch {
                ending = GRPCStatus(.unknown, "\(error)")
            }
            await producer?.sessionEnded(id, status: ending)
        }
    }

    func send(_ request: ProduceRequest) {
        outbound.yield(request)
    }

    /// Half-closes after the queued requests and waits, at most `bound`, for the broker to
    /// end the stream: with acks none nothing else says the batches were read.
    func finishAndWait(bound: Duration) async {
        outbound.finish()
        await writer.value
        let reader = reader
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await reader.value }
            group.addTask { try? await Task.sleep(for: bound) }
            await group.next()
            group.cancelAll()
        }
    }

    func cancel() {
        outbound.finish()
        call.cancel()
    }
}
