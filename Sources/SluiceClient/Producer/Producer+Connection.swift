import Foundation
import Logging
import SluiceAPI
import SluiceWire

/// The producer's connection, its one Produce stream, and the topic descriptions it sends
/// by: opened on first use, shared by every partition, described again when stale.
extension Producer {
    func openConnection() async throws -> GRPCClientConnection {
        if let connection { return connection }
        if let connecting { return try await connecting.value }
        let address = address
        let logger = logger
        let task = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            return try await address.connect(logger: logger)
        }
        connecting = task
        do {
            let opened = try await task.value
            connecting = nil
            if let connection, connection !== opened {
                await opened.close()
                return connection
            }
            connection = opened
            return opened
        } catch {
            connecting = nil
            throw error
        }
    }

    func openSession() async throws -> ProduceSession {
        if let session { return session }
        let connection = try await openConnection()
        if let session { return session }
        let call = try await ProtobufCall<ProduceRequest, ProduceResponse>(connection, path: BrokerMethod.produce)
        if let session {
            call.cancel()
            return session
        }
        sessionCount += 1
        let opened = ProduceSession(id: sessionCount, call: call, producer: self)
        session = opened
        return opened
    }

    /// `metadata(of:)`, retried with backoff while the broker is unreachable or answers
    /// UNAVAILABLE, for at most `maxBlock`: a producer started before its broker, or during
    /// a restart, waits for it as the consumers do, instead of failing its first send.
    func metadataWaiting(for topic: String) async throws -> ProducerTopicMetadata {
        let deadline = ContinuousClock.now.advanced(by: configuration.maxBlock)
        var backoff = configuration.retryBackoff
        /// The last attempt's own failure: what `send` reports when maxBlock cuts the next one.
        var last: GRPCStatus?
        while true {
            do {
                // Each attempt gets what is left of `maxBlock`: a connect or a lookup that the
                // broker never answers must not hold `send` past it.
                let left = max(.zero, ContinuousClock.now.duration(to: deadline))
                return try await firstOf(within: left, timeoutError: MaxBlockPassed()) { try await self.metadata(of: topic) }
            } catch is MaxBlockPassed {
                let status = last ?? GRPCStatus(.deadlineExceeded, "no answer from the broker within maxBlock (\(configuration.maxBlock))")
                throw ProducerError.transport(status, context: "cannot look up topic \(topic)")
            } catch let status as GRPCStatus {
                last = status
                let retriable: Set<GRPCStatus.Code> = [.unavailable, .deadlineExceeded]
                let now = ContinuousClock.now
                guard retriable.contains(status.code), now.advanced(by: backoff) < deadline, !isClosed else {
                    throw ProducerError.transport(status, context: "cannot look up topic \(topic)")
                }
                logger.debug("the broker cannot describe the topic yet; retrying", metadata: [
                    "topic": "\(topic)", "status": "\(status.code)", "backoff": "\(backoff)"])
                // A timer, not synchronisation: the pause between attempts (cancellable).
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxRetryBackoff)
            }
        }
    }

    /// `maxBlock` passed during an attempt to describe a topic.
    fileprivate struct MaxBlockPassed: Error {}

    /// The topic's partition count and batch limit, described again once older than
    /// `metadataMaxAge` (ProducerTopicMetadata). While a refresh fails, the last
    /// description is kept and the next try waits `maxRetryBackoff`, so records keep
    /// flowing to the partitions known and a broker outage does not stall every enqueue.
    func metadata(of topic: String) async throws -> ProducerTopicMetadata {
        let known = topicMetadata[topic]
        if let known, known.isFresh(now: .now, maxAge: configuration.metadataMaxAge) { return known }
        let description: TopicDescription
        do {
            let connection = try await openConnection()
            description = try await SluiceAdminClient(connection: connection, timeout: configuration.requestTimeout)
                .describeTopic(named: topic)
        } catch let status as GRPCStatus where status.code == .notFound {
            topicMetadata[topic] = nil
            throw ProducerError.unknownTopic(topic)
        } catch {
            guard var known else {
                // A status as it is: `metadataWaiting` retries the ones a broker coming
                // back can cure, and says what went wrong if it gives up.
                throw error
            }
            logger.debug("refreshing a topic's metadata failed; keeping the last", metadata: [
                "topic": "\(topic)", "error": "\(error)"])
            known.fetchedAt = ContinuousClock.now.advanced(by: configuration.maxRetryBackoff - configuration.metadataMaxAge)
            topicMetadata[topic] = known
            return known
        }
        let fresh = ProducerTopicMetadata(description, fetchedAt: .now)
        guard fresh.partitionCount > 0 else {
            throw ProducerError.transport(
                GRPCStatus(.internalError, "the broker reports topic \(topic) with no partitions"), context: "cannot use topic \(topic)")
        }
        topicMetadata[topic] = fresh
        return fresh
    }
}
