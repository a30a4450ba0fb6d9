import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire

/// A scripted stand-in for `sluice.v1.Groups` (Join, CommitOffsets, FetchOffsets) and the
/// Broker's Subscribe, over real gRPC, for the group consumer's protocol tests. The test
/// plays the coordinator: it sends `Joined`, `Assignment` and `Revocation` down a member's
/// Join stream, or ends it with a status, and reads back what the member did, in order.
actor FakeGroupsBroker {
    let topic: String
    private var log: [[RecordBatch]]
    private var nextOffset: [Int64]
    private var appendWaiters: [CheckedContinuation<Void, Never>] = []

    /// What members did, in arrival order: "join", "heartbeat" is left out (timing), "ack
    /// g=2 p=1", "leave", "commit member=m g=1 p0=3", "subscribe p=0 member=m g=1 start=…".
    private(set) var events: [String] = []
    private(set) var joins: [JoinGroup] = []
    private(set) var committed: [Int: Int64] = [:]
    /// Offsets returned by FetchOffsets; absent means -1 (nothing committed).
    var initialOffsets: [Int: Int64] = [:]
    /// Per-partition error answered to commits of that partition.
    var commitErrors: [Int: ErrorCode] = [:]
    private var sessions: [AsyncStream<Command>.Continuation] = []

    enum Command: Sendable {
        case send(CoordinatorMessage)
        case end(GRPCStatus)
    }

    private var server: GRPCServer?
    private var stopped = false

    init(topic: String, partitionCount: Int) {
        self.topic = topic
        log = Array(repeating: [], count: partitionCount)
        nextOffset = Array(repeating: 0, count: partitionCount)
    }

    func setInitialOffsets(_ offsets: [Int: Int64]) { initialOffsets = offsets }
    func setCommitErrors(_ errors: [Int: ErrorCode]) { commitErrors = errors }

    func start() async throws -> BrokerAddress {
        let methods: [GRPCMethod] = [
            .bidirectional("/sluice.v1.Groups/Join") { requests, writer, _ in
                try await self.join(requests, writer)
            },
            .unary("/sluice.v1.Groups/CommitOffsets") { bytes, _ in
                try await self.commit(CommitOffsetsRequest(protobuf: bytes)).protobufBytes()
            },
            .unary("/sluice.v1.Groups/FetchOffsets") { bytes, _ in
                try await self.fetch(FetchOffsetsRequest(protobuf: bytes)).protobufBytes()
            },
            .serverStreaming("/sluice.v1.Broker/Subscribe") { bytes, writer, _ in
                try await self.subscribe(SubscribeRequest(protobuf: bytes), writer)
            },
        ]
        let (server, address) = try await startFakeServer(methods, label: "sluice.test.fake-groups")
        self.server = server
        return address
    }

    func stop() async {
        stopped = true
        releaseCommits()
        for waiter in appendWaiters { waiter.resume() }
        appendWaiters.removeAll()
        for session in sessions { session.finish() }
        await server?.shutdown()
        server = nil
    }

    /// Appends one batch of `values` to `partition`.
    func append(partition: Int, values: [String], compression: RecordCompression = .none) {
        var batch = RecordBatchCodec.makeBatch(values.map {
            RecordBatchCodec.Entry(key: nil, value: ByteBuffer(string: $0), timestampMs: 1_700_000_000_000)
        }, compression: compression)
        batch.baseOffset = nextOffset[partition]
        nextOffset[partition] += Int64(values.count)
        log[partition].append(batch)
        for waiter in appendWaiters { waiter.resume() }
        appendWaiters.removeAll()
    }

    /// Plays the coordinator on the `session`-th Join stream (0-based).
    func send(_ message: CoordinatorMessage.Kind, session: Int) {
        sessions[session].yield(.send(CoordinatorMessage(kind: message)))
    }

    func end(session: Int, with status: GRPCStatus) {
        sessions[session].yield(.end(status))
    }

    var sessionCount: Int { sessions.count }

    private func record(_ event: String) { events.append(event) }

    private nonisolated func join(_ requests: GRPCRequestStream, _ writer: GRPCResponseWriter) async throws {
        var iterator = requests.makeAsyncIterator()
        guard let first = try await iterator.next(), case .join(let join)? = try MemberMessage(protobuf: first).kind else {
            throw GRPCStatus(.invalidArgument, "the first message must be a join")
        }
        let (commands, continuation) = await open(join)
        let reading = Task {
            while let bytes = try await iterator.next() {
                switch try MemberMessage(protobuf: bytes).kind {
                case .revokeAck(let ack)?:
                    let partitions = ack.partitions.flatMap(\.partitions).map(String.init).joined(separator: ",")
                    await self.record("ack g=\(ack.generation) p=\(partitions)")
                case .leave?:
                    // As the coordinator does: a leave ends the member's stream.
                    await self.record("leave")
                    continuation.finish()
                default: break
                }
            }
        }
        defer { reading.cancel() }
        for await command in commands {
            switch command {
            case .send(let message): try await writer.write(message.protobufBytes())
            case .end(let status): throw status
            }
        }
    }

    private func open(_ join: JoinGroup) -> (AsyncStream<Command>, AsyncStream<Command>.Continuation) {
        joins.append(join)
        record("join instance=\(join.instanceId) session=\(sessions.count)")
        let (commands, continuation) = AsyncStream<Command>.makeStream()
        sessions.append(continuation)
        return (commands, continuation)
    }

    /// While true, commits wait (unanswered) until `releaseCommits()`.
    private var holdCommits = false
    private var heldCommits: [CheckedContinuation<Void, Never>] = []
    private(set) var heldCommitCount = 0

    func setHoldCommits(_ hold: Bool) { holdCommits = hold }

    func releaseCommits() {
        holdCommits = false
        for commit in heldCommits { commit.resume() }
        heldCommits.removeAll()
    }

    private func commit(_ request: CommitOffsetsRequest) async -> CommitOffsetsResponse {
        if holdCommits {
            heldCommitCount += 1
            await withCheckedContinuation { heldCommits.append($0) }
        }
        var results: [OffsetCommitResult] = []
        var parts: [String] = []
        for offset in request.offsets {
            let partition = Int(offset.partition)
            let error = commitErrors[partition] ?? .none
            results.append(OffsetCommitResult(topic: offset.topic, partition: offset.partition, error: error))
            parts.append("p\(partition)=\(offset.offset)\(error == .none ? "" : "!")")
            if error == .none { committed[partition] = offset.offset }
        }
        record("commit member=\(request.memberId) g=\(request.generation) \(parts.joined(separator: " "))")
        return CommitOffsetsResponse(results: results)
    }

    private func fetch(_ request: FetchOffsetsRequest) -> FetchOffsetsResponse {
        return FetchOffsetsResponse(offsets: request.partitions.flatMap { list in
            list.partitions.map { CommittedOffset(topic: list.topic, partition: $0, offset: initialOffsets[Int($0)] ?? -1) }
        })
    }

    private func subscribe(_ request: SubscribeRequest, _ writer: GRPCResponseWriter) async throws {
        guard request.partitions.count == 1, let subscription = request.partitions.first else {
            throw GRPCStatus(.invalidArgument, "the fake serves one partition per subscription")
        }
        let partition = Int(subscription.partition)
        var position: Int64
        var startText: String
        switch subscription.start?.position {
        case .offset(let offset)?: position = offset; startText = "\(offset)"
        case .latest?: position = nextOffset[partition]; startText = "latest"
        default: position = 0; startText = "earliest"
        }
        let reader = request.groupReader
        record("subscribe p=\(partition) member=\(reader?.memberId ?? "-") g=\(reader?.generation ?? -1) start=\(startText)")
        while !Task.isCancelled, !stopped {
            let batches = log[partition].filter { $0.baseOffset + Int64($0.recordCount) > position }
            if let batch = batches.first {
                position = batch.baseOffset + Int64(batch.recordCount)
                try await writer.write(SubscribeResponse(
                    partition: UInt32(partition), batches: [batch], highWatermark: nextOffset[partition]).protobufBytes())
            } else {
                await withCheckedContinuation { appendWaiters.append($0) }
            }
        }
    }
}

