public import Logging
import NIOCore
import SluiceAPI
import Synchronization

/// A broker's standing for controller, for as long as it runs: it stands
/// (`ControllerElection`), and once elected acts as the `Controller` until its lease is
/// lost, then stands again. While in office it reconciles every partition with the live
/// brokers at once (a failover missed while no controller ran) and after every change the
/// `BrokerRegistry` reports (a broker left: its partitions get new leaders from their
/// ISRs; one joined: the partitions left without a leader get one if it is in their ISR).
///
/// A term ends when the lease is lost (the keep-alive could not confirm it, or etcd says
/// it expired) or the controller finds itself fenced: it stops acting, then tries to
/// delete the controller key in a fenced Txn, which fails (and says so in the log) when a
/// successor already holds it. `stop()` ends the candidacy the same way and revokes the
/// lease, so a successor is elected at once.
///
/// As a `TopicController` it is the controller while this broker is elected and answers
/// `notController` (naming the current one) otherwise.
public final class ControllerCandidacy: TopicController {
    public let info: BrokerInfo
    private let current = Mutex<Controller?>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let client: EtcdClient
    private let keys: ClusterKeys

    /// Starts standing; returns at once.
    /// `leaderRebalanceInterval`: while in office, how often the controller moves
    /// leadership back to preferred replicas (`Controller.electPreferredLeaders`); nil never.
    public static func start(
        _ info: BrokerInfo, keys: ClusterKeys, client: EtcdClient, registry: BrokerRegistry,
        leaseTTLSeconds: Int64, leaderRebalanceInterval: Duration? = ClusterLimits.defaults.leaderRebalanceInterval.value,
        logger: Logger
    ) -> ControllerCandidacy {
        let candidacy = ControllerCandidacy(info: info, keys: keys, client: client, leaderRebalanceInterval: leaderRebalanceInterval)
        let task = Task { await candidacy.run(registry: registry, leaseTTLSeconds: leaseTTLSeconds, logger: logger) }
        candidacy.task.withLock { $0 = task }
        return candidacy
    }

    private let leaderRebalanceInterval: Duration?

    private init(info: BrokerInfo, keys: ClusterKeys, client: EtcdClient, leaderRebalanceInterval: Duration?) {
        self.info = info
        self.keys = keys
        self.client = client
        self.leaderRebalanceInterval = leaderRebalanceInterval
    }

    /// The controller while this broker is elected; nil otherwise.
    public var controller: Controller? { current.withLock { $0 } }

    /// Stops standing; a controller steps down (the key is deleted, the lease revoked).
    public func stop() async {
        let task = task.withLock { $0 }
        task?.cancel()
        await task?.value
    }

    public func createTopic(
        name: String, partitions: UInt32, replicationFactor: UInt32, configs: [String: String]
    ) async throws(ControllerError) -> ClusterTopic {
        try await inOffice().createTopic(name: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs)
    }

    public func deleteTopic(name: String) async throws(ControllerError) {
        try await inOffice().deleteTopic(name: name)
    }

    public func alterTopicConfig(name: String, set: [String: String], reset: [String]) async throws(ControllerError) -> ClusterTopic {
        try await inOffice().alterTopicConfig(name: name, set: set, reset: reset)
    }

    public func createPartitions(name: String, totalCount: UInt32) async throws(ControllerError) -> ClusterTopic {
        try await inOffice().createPartitions(name: name, totalCount: totalCount)
    }

    private func inOffice() async throws(ControllerError) -> Controller {
        if let controller, controller.isActive { return controller }
        let holder = try? await client.kv.range(key: keys.controller).kvs.first
        throw .notController(current: holder.flatMap { BrokerInfo(decoding: $0.value) })
    }

    private func run(registry: BrokerRegistry, leaseTTLSeconds: Int64, logger: Logger) async {
        while !Task.isCancelled {
            guard let term = await retryingUntilAnswered("standing for controller", logger: logger, {
                try await ControllerElection.stand(info, keys: keys, client: client, leaseTTLSeconds: leaseTTLSeconds, logger: logger)
            }) else { return }
            logger.notice("elected controller at revision \(term.electionRevision)")
            let controller = Controller(info: info, electionRevision: term.electionRevision, client: client, keys: keys, logger: logger)
            current.withLock { $0 = controller }
            let loss = await serve(controller, term: term, registry: registry, logger: logger)
            current.withLock { $0 = nil }
            if let loss { logger.warning("the controller lease is lost: this broker stopped acting as controller", metadata: ["reason": "\(loss)"]) }
            // Stopping cancels this task, and a cancelled etcd call fails at once: the step
            // down runs in a task of its own, once (a broker shutting down does not wait on
            // an etcd that does not answer; the lease ends the term then).
            let attempts = Task.isCancelled ? 1 : ClusterLimits.defaults.controllerAttempts.value
            await Task { [client] in
                do throws(ControllerError) {
                    try await controller.stepDown(attempts: attempts)
                    logger.notice("stepped down as controller (elected at revision \(term.electionRevision))")
                } catch .fenced {
                    // Logged by the controller.
                } catch {
                    logger.warning("could not delete the controller key; it goes when its lease expires", metadata: ["error": "\(error)"])
                }
                await term.keepAlive.stop()
                _ = try? await client.lease.revoke(term.keepAlive.lease.id)
            }.value
        }
    }

    /// Acts as controller until the lease is lost (returned), the controller is fenced
    /// (nil), or the task is cancelled (nil).
    private func serve(_ controller: Controller, term: ControllerTerm, registry: BrokerRegistry, logger: Logger) async -> EtcdLeaseLoss? {
        await withTaskGroup(of: EtcdLeaseLoss?.self) { group in
            group.addTask {
                let loss = await withTaskCancellationHandler { await term.keepAlive.lost() } onCancel: { term.keepAlive.cancel() }
                return loss.reason == .stopped ? nil : loss
            }
            group.addTask {
                await Self.follow(registry: registry, controller: controller, logger: logger)
                return nil
            }
            if let interval = leaderRebalanceInterval {
                group.addTask {
                    await Self.rebalance(every: interval, controller: controller, logger: logger)
                    return nil
                }
            }
            // Whichever ends first ends the term.
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Elects preferred leaders every `interval` until cancelled (the term's end). A failed
    /// attempt (etcd, or fenced: `follow` ends the term then) waits for the next interval.
    private static func rebalance(every interval: Duration, controller: Controller, logger: Logger) async {
        while !Task.isCancelled {
            // A period, not synchronisation: how often leadership is spread again.
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            do throws(ControllerError) {
                let moves = try await controller.electPreferredLeaders()
                if !moves.isEmpty { logger.notice("preferred leaders elected: \(moves.map(\.description).joined(separator: "; "))") }
            } catch {
                logger.warning("electing preferred leaders failed; trying again in \(interval)", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Reconciles at once and after every change of the live brokers, until fenced or
    /// cancelled. A reconciliation etcd failed is tried again after a pause.
    private static func follow(registry: BrokerRegistry, controller: Controller, logger: Logger) async {
        var changes = registry.changes().makeAsyncIterator()
        var reason = "elected at revision \(controller.electionRevision)"
        while !Task.isCancelled {
            do throws(ControllerError) {
                let moves = try await controller.reconcile()
                logger.notice("\(reason): partitions moved: \(moves.isEmpty ? "none" : moves.map(\.description).joined(separator: "; "))")
            } catch .etcd(let detail) {
                logger.warning("following the live brokers failed; retrying", metadata: ["error": "\(detail)"])
                // Pauses between attempts at an etcd that does not answer.
                try? await Task.sleep(for: ClusterLimits.defaults.retryPauseCap.value)
                continue
            } catch {
                // Fenced or out of office: the term is over.
                return
            }
            guard let change = await changes.next() else { return }
            switch change {
            case .left(let id, _): reason = "broker \(id) left"
            case .joined(let broker, _): reason = "broker \(broker.id) joined"
            case .updated(let broker, _): reason = "broker \(broker.id) changed"
            }
        }
    }
}
