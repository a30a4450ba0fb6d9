import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire

/// An in-memory stand-in for the broker's Produce, Subscribe and DescribeTopic, with
/// scripted failures, so the client's retry, ordering and reconnect logic is tested
/// without a real broker. It follows proto/sluice/v1/broker.proto: answers in request
/// order, offsets assigned per partition, subscriptions from a batch boundary.
actor FakeBroker {
    enum ProduceFault: Sendable {
        /// Answer this error code without appending.
        case error(ErrorCode)
        /// End the whole stream with UNAVAILABLE without answering or appending.
        case dropStream
    }

    let topic: String
    let partitionCount: Int
    private(set) var log: [[RecordBatch]]
    private var nextOffset: [Int64]
    /// Every produce request as received, in arrival order.
    private(set) var received: [ProduceRequest] = []
    /// Faults for the n-th produce request (0-based, across streams).
    var faults: [Int: ProduceFault] = [:]
    /// End the n-th subscription (0-based) with UNAVAILABLE after this many responses.
    var dropSubscription: [Int: Int] = [:]
    private(set) var subscriptions: [SubscribeRequest] = []
    private var appendWaiters: [CheckedContinuation<Void, Never>] = []

    private var server: GRPCServer?

    init(topic: String, partitionCount: Int) {
        self.topic = topic
        self.partitionCount = partitionCount
        log = Array(repeating: [], count: partitionCount)
        nextOffset = Array(repeating: 0, count: partitionCount)
    }

    func setFaults(_ faults: [Int: ProduceFault]) {
        self.faults = faults
    }

    func setDropSubscription(_ drops: [Int: Int]) {
        dropSubscription = drops
    }

    /// Starts listening on an ephemeral port of 127.0.0.1.
    func start() async throws -> BrokerAddress {
        let methods: [GRPCMethod] = [
            .unary("/sluice.v1.Broker/DescribeTopic") { bytes, _ in
                let request = try DescribeTopicRequest(protobuf: bytes)
                return try await self.describe(request).protobufBytes()
            },
            .bidirectional("/sluice.v1.Broker/Produce") { requests, writer, _ in
                for try await bytes in requests {
                    let request = try ProduceRequest(protobuf: bytes)
                    guard let response = try await self.produce(request) else { continue }
                    try await writer.write(response.protobufBytes())
                }
            },
            .serverStreaming("/sluice.v1.Broker/Subscribe") { bytes, writer, _ in
                try await self.subscribe(try SubscribeRequest(protobuf: bytes), writer: writer)
            },
        ]
        let (server, address) = try await startFakeServer(methods, label: "sluice.test.fake-broker")
        self.server = server
        return address
    }

    func stop() async {
        await server?.shutdown()
        server = nil
    }

    private func describe(_ request: DescribeTopicRequest) throws -> DescribeTopicResponse {
        guard request.name == topic else { throw GRPCStatus(.notFound, "topic \(request.name) does not exist") }
        return DescribeTopicResponse(topic: TopicDescription(name: topic, topicId: "fake", partitionCount: UInt32(partitionCount)))
    }

    private func produce(_ request: ProduceRequest) throws -> ProduceResponse? {
        let index = received.count
        received.append(request)
        var response = ProduceResponse(
            correlationId: request.correlationId, topic: request.topic, partition: request.partition, logAppendTimeMs: -1)
        switch faults[index] {
        case .dropStream?:
            throw GRPCStatus(.unavailable, "scripted stream drop")
        case .error(let code)?:
            response.error = code
            return response
        case nil:
            break
        }
        guard request.topic == topic else {
            response.error = .unknownTopic
            return response
        }
        let partition = Int(request.partition)
        guard partition < partitionCount, var batch = request.batch else {
            response.error = .unknownPartition
            return response
        }
        batch.baseOffset = nextOffset[partition]
        nextOffset[partition] += Int64(batch.recordCount)
        log[partition].append(batch)
        response.baseOffset = batch.baseOffset
        for waiter in appendWaiters { waiter.resume() }
        appendWaiters.removeAll()
        return request.acks == .none ? nil : response
    }

    private func waitForAppend() async {
        await withCheckedContinuation { appendWaiters.append($0) }
    }

    /// Serves existing batches from each partition's start, then new ones as they come.
    private func subscribe(_ request: SubscribeRequest, writer: GRPCResponseWriter) async throws {
        let index = subscriptions.count
        subscriptions.append(request)
        guard request.topic == topic else { throw GRPCStatus(.notFound, "topic \(request.topic) does not exist") }
        var next: [Int: Int64] = [:]
        let chosen = request.partitions.isEmpty
            ? (0..<partitionCount).map { PartitionSubscription(partition: UInt32($0), start: request.defaultStart) }
            : request.partitions
        for subscription in chosen {
            let partition = Int(subscription.partition)
            guard partition < partitionCount else { throw GRPCStatus(.invalidArgument, "no partition \(partition)") }
            switch subscription.start?.position {
            case .offset(let offset)?:
                guard offset <= nextOffset[partition] else { throw GRPCStatus(.outOfRange, "offset \(offset) is past the end") }
                next[partition] = offset
            case .latest?: next[partition] = nextOffset[partition]
            case .timestampMs(let time)?:
                next[partition] = log[partition].first { $0.maxTimestampMs >= time }?.baseOffset ?? nextOffset[partition]
            default: next[partition] = 0
            }
        }
        var sent = 0
        while true {
            for partition in next.keys.sorted() {
                guard let position = next[partition] else { continue }
                let batches = log[partition].filter { $0.baseOffset + Int64($0.recordCount) > position }
                guard !batches.isEmpty else { continue }
                if let limit = dropSubscription[index], sent >= limit {
                    throw GRPCStatus(.unavailable, "scripted subscription drop")
                }
                // One batch per response, so a drop can land between any two batches.
                let batch = batches[0]
                next[partition] = batch.baseOffset + Int64(batch.recordCount)
                try await writer.write(SubscribeResponse(
                    partition: UInt32(partition), batches: [batch], highWatermark: nextOffset[partition]).protobufBytes())
                sent += 1
            }
            let caughtUp = next.allSatisfy { $0.value >= nextOffset[$0.key] }
            if caughtUp { await waitForAppend() }
        }
    }

    /// The values of every stored record of `partition`, in offset order.
    func values(of partition: Int) throws -> [String] {
        try log[partition].flatMap { try RecordBatchCodec.records(of: $0) }.map {
            String(decoding: $0.value.readableBytesView, as: UTF8.self)
        }
    }
}

/// Serves `methods` on 127.0.0.1, on a port the kernel picks: the fakes' real gRPC server.
func startFakeServer(_ methods: [GRPCMethod], label: String) async throws -> (GRPCServer, BrokerAddress) {
    let server = GRPCServer(
        configuration: GRPCServerConfiguration(host: "127.0.0.1", port: 0), methods: methods, logger: Logger(label: label))
    let address = try await server.start()
    return (server, BrokerAddress(host: address.host, port: address.port))
}
