import Foundation
import Logging
import SluiceAPI
import SluiceWire

/// The producer's connections: one per broker that leads a partition it sends to (opened
/// on first use, closed once no partition it sends to is led there), each with one
/// pipelined Produce stream, and the topic descriptions it sends by.
struct BrokerLink: Sendable {
    var address: BrokerAddress
    var connection: GRPCClientConnection?
    var connecting: Task<GRPCClientConnection, any Error>?
    var session: ProduceSession?
}

extension Producer {
    /// A connection to `broker`, shared by everything the producer sends there.
    func openConnection(to broker: BrokerAddress) async throws -> GRPCClientConnection {
        let key = broker.description
        if let connection = links[key]?.connection { return connection }
        if let connecting = links[key]?.connecting { return try await connecting.value }
        let logger = logger
        let task = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            return try await broker.connect(logger: logger)
        }
        links[key, default: BrokerLink(address: broker)].connecting = task
        do {
            let opened = try await task.value
            links[key]?.connecting = nil
            return adopt(opened, at: broker)
        } catch {
            links[key]?.connecting = nil
            throw error
        }
    }

    /// A connection to any broker, for what every broker answers (DescribeTopic,
    /// InitProducerId): one already open, else the first bootstrap broker that answers.
    func openAnyConnection() async throws -> GRPCClientConnection {
        if let open = links.values.lazy.compactMap(\.connection).first { return open }
        if let anyConnecting { return try await anyConnecting.value.0 }
        let bootstrap = bootstrap
        let logger = logger
        let task = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            return try await BrokerAddress.connectFirst(of: bootstrap, logger: logger)
        }
        anyConnecting = task
        defer { anyConnecting = nil }
        let (opened, broker) = try await task.value
        return adopt(opened, at: broker)
    }

    /// Keeps `opened` as the link to `broker`, unless another caller opened one meanwhile
    /// (then `opened` is closed): one connection per broker.
    private func adopt(_ opened: GRPCClientConnection, at broker: BrokerAddress) -> GRPCClientConnection {
        let key = broker.description
        if let existing = links[key]?.connection, existing !== opened {
            Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                await opened.close()
            }
            return existing
        }
        links[key, default: BrokerLink(address: broker)].connection = opened
        return opened
    }

    func openSession(at broker: BrokerAddress) async throws -> ProduceSession {
        let key = broker.description
        if let session = links[key]?.session { return session }
        let connection = try await openConnection(to: broker)
        if let session = links[key]?.session { return session }
        let call = try await ProtobufCall<ProduceRequest, ProduceResponse>(connection, path: BrokerMethod.produce)
        if let session = links[key]?.session {
            call.cancel()
            return session
        }
        sessionCount += 1
        let opened = ProduceSession(id: sessionCount, call: call, producer: self)
        links[key, default: BrokerLink(address: broker)].session = opened
        return opened
    }

    /// Where `place`'s batches go: its leader as the cluster metadata says, refreshed
    /// first when it names none (a topic or partition it does not know yet).
    func leader(of place: TopicPartition) async throws -> BrokerAddress {
        let key = place
        if let known = cluster.leader(of: key) { return known }
        try await cluster.refresh(reason: "no leader known for \(place.topic)/\(place.partition)")
        if let known = cluster.leader(of: key) { return known }
        throw GRPCStatus(.unavailable, "no leader known for \(place.topic)/\(place.partition)")
    }

    /// Closes the links to brokers that lead none of the partitions the producer sends to
    /// and carry no batch in flight; checked once per change of the cluster metadata.
    func closeIdleLinks() {
        let version = cluster.version
        guard version != linksCheckedAt else { return }
        linksCheckedAt = version
        let metadata = cluster.metadata
        let needed = metadata.leaderAddresses(of: placesInUse)
        let busy = Set(inFlightSessions)
        for (key, link) in links where link.connecting == nil && !(link.session.map { busy.contains($0.id) } ?? false) {
            guard !needed.contains(key) else { continue }
            links[key] = nil
            logger.debug("closing the connection to a broker that leads nothing sent", metadata: ["broker": "\(key)"])
            link.session?.cancel()
            if let connection = link.connection {
                Task { [counted = ClientTasks.begin()] in
                    defer { counted.end() }
                    await connection.close()
                }
            }
        }
    }

    /// The stream `id` ended: its link is dropped (the next batch reconnects) and the
    /// cluster metadata refreshed, since a lost connection may be a leader gone.
    func dropLink(ofSession id: Int) {
        guard let key = links.first(where: { $0.value.session?.id == id })?.key, let link = links.removeValue(forKey: key) else { return }
        link.session?.cancel()
        if let lost = link.connection {
            Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                await lost.close()
            }
        }
        if !isClosed { cluster.requestRefresh(reason: "the connection to \(key) was lost") }
    }

    /// `metadata(of:)`, retried with backoff while the broker is unreachable or answers
    /// UNAVAILABLE, for at most `maxBlock`: a producer started before its broker, or during
    /// a restart, waits for it as the consumers do, instead of failing its first send.
    func metadataWaiting(for topic: String) async throws -> ProducerTopicMetadata {
        // The path of nearly every send: a fresh description needs no deadline, and the
        // child task and timer `firstOf` would start for it cost more than the send itself
        // (ingest fell to a quarter with them: docs/benchmarks.md).
        if let known = topicMetadata[topic], known.isFresh(now: .now, maxAge: configuration.metadataMaxAge) { return known }
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
            let connection = try await openAnyConnection()
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
