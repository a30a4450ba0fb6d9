import SluiceAPI
import SluiceWire

/// Reads one assigned partition for a `GroupConsumer`: a `Subscribe` stream marked with the
/// member's `GroupReader`, whose batches go into the consumer's bounded buffer. It ends when
/// the ownership it was started for ends (revocation, lost session, stop): the consumer
/// cancels it, and `enqueue` answers false.
struct PartitionReader {
    let consumer: GroupConsumer
    let partition: TopicPartition
    let token: Int
    var start: ConsumerStart

    func run() async {
        var start = start
        /// The offset after the last record put into the buffer: where a resubscription starts.
        var nextOffset: Int64? = if case .offset(let offset) = start { offset } else { nil }
        var failures = 0
        let configuration = consumer.configuration
        while !Task.isCancelled {
            guard let subscription = await consumer.subscription(for: partition, token: token) else { return }
            let (connection, groupReader) = subscription
            do {
                let call = try await ProtobufCall<SubscribeRequest, SubscribeResponse>(connection, path: BrokerMethod.subscribe)
                defer { call.cancel() }
                try await call.send(SubscribeRequest(
                    topic: partition.topic,
                    partitions: [PartitionSubscription(partition: UInt32(partition.partition), start: start.protobuf)],
                    minBytes: configuration.subscription.minBytes,
                    maxWaitMs: UInt32(clamping: configuration.subscription.maxWait.wholeMilliseconds),
                    maxBytes: configuration.subscription.maxBytes, groupReader: groupReader))
                try await call.finishSending()
                for try await response in call.responses {
                    var records: [ConsumerRecord] = []
                    for batch in response.batches {
                        let decoded: [RecordBatchCodec.DecodedRecord]
                        do {
                            decoded = try RecordBatchCodec.records(
                                of: batch, maxDecompressedBytes: configuration.subscription.maxDecompressedBatchBytes)
                        } catch {
                            await consumer.fail(GroupConsumerError.corruptBatch(partition, error))
                            return
                        }
                        // The broker starts at the batch holding the start offset.
                        for record in decoded where nextOffset.map({ record.offset >= $0 }) ?? true {
                            records.append(ConsumerRecord(
                                topic: partition.topic, partition: partition.partition, offset: record.offset,
                                timestampMs: record.timestampMs, key: record.key, value: record.value, headers: record.headers))
                            nextOffset = record.offset + 1
                        }
                    }
                    failures = 0
                    guard !records.isEmpty else { continue }
                    guard await consumer.enqueue(records, partition: partition, token: token) else { return }
                    if let nextOffset { start = .offset(nextOffset) }
                }
                // The broker ended the stream cleanly: subscribe again.
                failures += 1
            } catch let status as GRPCStatus {
                guard !Task.isCancelled, await consumer.owns(partition, token: token) else { return }
                switch status.code {
                case .outOfRange:
                    // The position left the log (retention, or a reset): the reset policy decides.
                    do {
                        start = try consumer.resetStart(partition, committed: nextOffset)
                        nextOffset = nil
                    } catch {
                        await consumer.fail(error)
                        return
                    }
                    continue
                case .failedPrecondition:
                    // The broker no longer sees this member as the owner in this generation;
                    // if the member still does (an Assignment of a newer generation is on its
                    // way), subscribing again with the new generation succeeds.
                    failures += 1
                case let code where GroupConsumer.isRetriable(code):
                    failures += 1
                default:
                    await consumer.fail(GroupConsumerError.refused(status))
                    return
                }
            } catch {
                return
            }
            guard failures <= configuration.maxReconnectAttempts else {
                await consumer.fail(GroupConsumerError.reconnectsExhausted(
                    attempts: failures - 1, last: "subscription of \(partition) kept failing"))
                return
            }
            do {
                try await Task.sleep(for: consumer.backoff(failures))
            } catch {
                return
            }
        }
    }
}
